"""Every registered cnnjax model as a Flax NNX module, through ``flax.nnx.bridge.ToNNX``.

  from flax import nnx
  from cnnjax.weights import nnx as cnnjax_nnx
  model = cnnjax_nnx.Model("vgg_bn", 10, image_shape=(28, 28, 1), rngs=nnx.Rngs(0))
  logits = model(images)                       # float NHWC, normalised; eval mode
  logits = model(images, train=True)           # batch norm updates its statistics, dropout draws

Why the bridge and not native NNX definitions: each architecture keeps one definition (the Linen
module of :mod:`cnnjax.models`), so everything built on the Linen variables -- checkpoints,
``config.init_from``, :mod:`cnnjax.weights.pytorch`, :mod:`cnnjax.train.freeze` paths -- serves NNX code
unchanged: :class:`Model` takes and gives Linen variables (:meth:`Model.linen_variables`).  The NNX
state has the same names: ``model.net.conv1`` holds ``kernel`` / ``bias`` as ``nnx.Param``,
``model.net.bn1_1`` its ``mean`` / ``var`` as ``nnx.BatchStat``.  A training step with
``nnx.Optimizer(model, tx, wrt=nnx.Param)`` is in docs/transfer.md.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.bridge import variables as bridge_variables

from cnnjax import models


class Model(nnx.Module):
    """A registered model (or any cnnjax Linen module) as an NNX module.

    ``model``: a registry name (created with ``num_classes`` and ``options``, as
    :func:`cnnjax.models.create`) or a Linen module; ``image_shape`` (H, W, C) initialises it;
    ``variables`` (Linen ``{'params', 'batch_stats'}``, e.g. from
    :func:`cnnjax.train.runs.load_trained`) replace the fresh ones.  ``rngs`` draws the
    initialisation and dropout (streams 'params' / 'dropout'; Linen draws from 'params' where
    there is no 'dropout' stream, and ToNNX names the default stream 'params')."""

    def __init__(self, model: str | nn.Module, num_classes: int = 10, *, image_shape, rngs: nnx.Rngs,
                 variables: dict | None = None, **options):
        linen = models.create(model, num_classes, **options) if isinstance(model, str) else model
        self.net = nnx.bridge.ToNNX(linen, rngs=rngs).lazy_init(jnp.zeros((1, *image_shape), jnp.float32),
                                                                 train=False)
        self.has_batch_stats = bool(nnx.state(self.net, nnx.BatchStat))
        if variables is not None:
            nnx.update(self.net, bridge_variables.linen_vars_to_nnx_attrs(dict(variables)))

    def __call__(self, x, train: bool = False, rngs: nnx.Rngs | None = None):
        """Logits (N, classes) of float NHWC ``x``; with ``train`` the batch-norm statistics are
        updated in place and dropout is drawn from ``rngs`` (default: the module's own)."""
        mutable = ["batch_stats"] if train and self.has_batch_stats else False
        return self.net(x, train=train, mutable=mutable, rngs=rngs)

    def linen_variables(self) -> dict:
        """The Linen ``{'params'[, 'batch_stats']}`` of the current state (for checkpoints, evaluation, export)."""
        out = {"params": self._collection(nnx.Param)}
        if self.has_batch_stats:
            out["batch_stats"] = self._collection(nnx.BatchStat)
        return out

    def _collection(self, kind) -> dict:
        state = nnx.to_pure_dict(nnx.state(self.net, kind))
        return jax.tree.map(jnp.asarray, state)
