"""Frozen and slower layers: path patterns over a Flax variable tree, and the optax partition they define.

Paths and patterns (``conv1``, ``stage1_*``, ``("*", "!fc")``; the last match decides) are
defined in :mod:`cnnjax.weights.variables`.

Optimisation (:func:`partition`), one ``optax.multi_transform`` for all of it:

* ``freeze`` patterns: the matched parameters get zero updates (``optax.set_to_zero``: no step,
  no weight decay, no optimizer moments).  A batch-norm layer is frozen when a freeze pattern
  matches its statistics (``bn1_1``, ``*``) or when every parameter of it is frozen; in training it
  then normalises with its running statistics, which stay as they are (inference mode, as Keras'
  ``trainable=False`` and timm's ``FrozenBatchNorm2d``: :func:`frozen_batch_norm`).
* ``lr_multipliers`` (pattern -> factor > 0): the matched parameters' updates are the base
  optimizer's times the factor (``optax.scale`` after it: exactly a learning rate times the
  factor, decoupled weight decay included, since both are proportional to the learning rate).
  Two patterns giving one path different factors is an error; a frozen path ignores its factor.

``config.whiten_init`` freezes the pattern :data:`WHITEN` the same way.
"""
from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import optax

from cnnjax.weights.variables import PatternError, check_patterns, matches, path_str, paths, selected  # PatternError: raised here too

#: the parameter that config.whiten_init sets from the data and freezes
WHITEN = "whiten/kernel"

#: optax.multi_transform group names: the base optimizer, zero updates, and one group per multiplier
TRAINED, FROZEN = "trained", "frozen"


def multiplier_label(factor: float) -> str:
    return f"lr_x{factor:g}"


def labels(params, freeze: Sequence[str] = (), lr_multipliers: Mapping[str, float] | None = None):
    """The group of every parameter (a tree like ``params``): :data:`FROZEN`, :data:`TRAINED`, or
    :func:`multiplier_label` of its factor.  ValueError when two multiplier patterns give one path
    different factors."""
    lr_multipliers = dict(lr_multipliers or {})

    def label(path, _):
        name = path_str(path)
        if selected(freeze, name):
            return FROZEN
        factors = {float(f) for p, f in lr_multipliers.items() if matches(p, name)}
        if len(factors) > 1:
            raise PatternError(f"config.lr_multipliers: {name} is matched by patterns with different factors "
                               f"{sorted(factors)}")
        return multiplier_label(factors.pop()) if factors else TRAINED

    return jax.tree_util.tree_map_with_path(label, params)


def partition(tx: optax.GradientTransformation, freeze: Sequence[str] = (),
              lr_multipliers: Mapping[str, float] | None = None) -> optax.GradientTransformation:
    """``tx`` with the ``freeze`` patterns' parameters frozen and the ``lr_multipliers`` patterns'
    updates scaled (module docstring); ``tx`` itself when both are empty."""
    lr_multipliers = dict(lr_multipliers or {})
    if not freeze and not lr_multipliers:
        return tx
    groups = {TRAINED: tx, FROZEN: optax.set_to_zero()}
    for factor in sorted({float(f) for f in lr_multipliers.values()}):
        groups[multiplier_label(factor)] = optax.chain(tx, optax.scale(factor))
    return optax.multi_transform(groups, lambda params: labels(params, freeze, lr_multipliers))


def frozen_bn_layers(variables: Mapping[str, Any], freeze: Sequence[str]) -> frozenset[str]:
    """The '/'-joined paths of the batch-norm layers (those with ``batch_stats``) that ``freeze`` freezes."""
    if not freeze:
        return frozenset()
    param_paths = paths(variables.get("params", {}))
    layers = {p.rsplit("/", 1)[0] for p in paths(variables.get("batch_stats", {}))}

    def frozen(layer):
        own = [p for p in param_paths if p.rsplit("/", 1)[0] == layer]
        stats = selected(freeze, layer + "/mean") or selected(freeze, layer + "/var")
        return stats or (bool(own) and all(selected(freeze, p) for p in own))

    return frozenset(layer for layer in layers if frozen(layer))


@contextlib.contextmanager
def frozen_batch_norm(layers: frozenset[str]):
    """Within the context, the ``nn.BatchNorm`` layers at ``layers`` (paths as
    :func:`frozen_bn_layers`) run in inference mode even when the model is applied with
    ``train=True``: they normalise with, and do not update, their running statistics."""
    if not layers:
        yield
        return

    def interceptor(next_fun, args, kwargs, context):
        module = context.module
        if (context.method_name != "__call__" or not isinstance(module, nn.BatchNorm)
                or "/".join(module.scope.path) not in layers or module.use_running_average is not False):
            return next_fun(*args, **kwargs)
        # the layer's own attribute says train mode; nn.merge_param refuses a call argument beside it
        object.__setattr__(module, "use_running_average", None)
        try:
            return next_fun(*args, **{**kwargs, "use_running_average": True})
        finally:
            object.__setattr__(module, "use_running_average", False)

    with nn.intercept_methods(interceptor):
        yield


def check(variables: Mapping[str, Any], freeze: Sequence[str] = (), lr_multipliers: Mapping | None = None) -> None:
    """PatternError (one line, naming the setting) for the ``freeze`` / ``lr_multipliers`` of a
    model with ``variables`` (arrays or shapes): a pattern matching nothing, or nothing left to train."""
    params, stats = variables.get("params", {}), variables.get("batch_stats", {})
    available = paths(params) + paths(stats)
    check_patterns(freeze, available, "config.freeze")
    check_patterns(list(lr_multipliers or {}), paths(params), "config.lr_multipliers")
    groups = jax.tree.leaves(labels(params, freeze, lr_multipliers))
    if freeze and groups and all(g == FROZEN for g in groups):
        raise PatternError(f"config.freeze {list(freeze)} freezes every parameter: nothing would train "
                           f"(un-freeze some with '!', e.g. '!fc')")
