"""Intermediate activations of a model, by layer name: ``features(model, variables, x, layer)``.

Layer names are the module paths of :func:`cnnjax.summary.summarize` (``python -m
experiments.summary`` prints them): ``conv1``, ``pool2``, ``stage2_block1/conv1``, ...  A layer's
output is what its module's ``__call__`` returns, e.g. a :class:`cnnjax.blocks.Conv` after its
bias and activation (for VGG-style nets the conv before its batch norm, which is a layer of its
own).  The model runs with ``train=False`` (batch norm uses its running statistics, no dropout),
so every image's activations are independent of the others in its batch.

Nothing in the models changes to expose an activation: :func:`layer_output` intercepts the
module's call (``flax.linen.intercept_methods``), records its output and optionally adds a
perturbation to it -- which is how :mod:`cnnjax.interpret.attribution` differentiates a class score with
respect to a layer (Grad-CAM).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnnjax import blocks, summary


def _frozen(value):
    return tuple(_frozen(v) for v in value) if isinstance(value, (list, tuple)) else value


def hashable(model: nn.Module) -> nn.Module:
    """``model`` with its list-valued options as tuples (the same module: same parameters and
    outputs), so it can key a cache or be a static argument of ``jax.jit`` -- a model built from
    a JSON config has lists, e.g. ``hidden=[35, 35]``."""
    lists = {f.name: _frozen(getattr(model, f.name)) for f in dataclasses.fields(model)
             if f.name not in ("parent", "name") and isinstance(getattr(model, f.name), list)}
    return model.clone(**lists) if lists else model


def _conv_kinds() -> frozenset[str]:
    """Class names of every conv block (subclasses of the conv base of :mod:`cnnjax.blocks`,
    including those defined by models, e.g. ResNet's shortcut conv)."""
    kinds, todo = set(), [blocks._ConvBase]
    while todo:
        for sub in todo.pop().__subclasses__():
            kinds.add(sub.__name__)
            todo.append(sub)
    return frozenset(kinds)


@functools.lru_cache(maxsize=64)
def _rows(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[summary.LayerRow, ...]:
    return tuple(summary.summarize(model, input_shape).rows)


def _layer_rows(model: nn.Module, input_shape) -> tuple[summary.LayerRow, ...]:
    return _rows(hashable(model), tuple(int(d) for d in input_shape))


def conv_layers(model: nn.Module, input_shape) -> list[str]:
    """The conv layers (spatial output H' x W' x C') of ``model``, in call order."""
    kinds = _conv_kinds()
    return [r.name for r in _layer_rows(model, input_shape) if r.kind in kinds and len(r.output_shape) == 3]


def layer_shape(model: nn.Module, input_shape, layer: str, *, conv: bool = False) -> tuple[int, ...]:
    """Per-image output shape of ``layer``; ValueError naming the layer and listing the valid
    names (only the conv layers when ``conv``) when it is not one."""
    rows = {r.name: r for r in _layer_rows(model, input_shape)}
    valid = conv_layers(model, input_shape) if conv else list(rows)
    if layer not in valid:
        what = "conv layer" if conv else "layer"
        raise ValueError(f"layer {layer!r} is not a {what} of {type(model).__name__} on "
                         f"{'x'.join(map(str, input_shape))} images; {what}s: {', '.join(valid) or 'none'}")
    return tuple(rows[layer].output_shape)


def layer_output(model: nn.Module, variables, x, layer: str, delta: Optional[jax.Array] = None):
    """``(logits, activation)``: ``model.apply(variables, x, train=False)`` and the output of
    ``layer`` (N, ...) in that forward pass; with ``delta`` (the activation's shape) the model
    continues from ``activation + delta`` (so ``jax.grad`` with respect to ``delta`` at zero is the
    gradient with respect to the activation).  Pure and traceable; the layer name is not checked
    here (:func:`layer_shape` does): an unknown name raises KeyError after the forward pass."""
    path = tuple(layer.split("/"))
    seen: dict[str, Any] = {}

    def intercept(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        scope = context.module.scope
        if context.method_name == "__call__" and scope is not None and tuple(scope.path) == path:
            seen["out"] = out
            if delta is not None:
                out = out + delta
        return out

    with nn.intercept_methods(intercept):
        logits = model.apply(variables, x, train=False)
    return logits, seen["out"]


@functools.partial(jax.jit, static_argnames=("model", "layer"))
def _features(model, variables, x, layer):
    return layer_output(model, variables, x, layer)[1]


def features(model: nn.Module, variables, x, layer: str, batch_size: int = 256) -> jax.Array:
    """The output of ``layer`` for float NHWC inputs ``x`` (the model's input: normalised
    images, e.g. :func:`cnnjax.data.normalize`): ``(N, *layer_shape)`` float32, computed
    ``batch_size`` images per jitted call (the last batch padded, so one compiled shape serves
    every batch).  ValueError listing the model's layers for an unknown ``layer``."""
    x = jnp.asarray(x, jnp.float32)
    model = hashable(model)
    layer_shape(model, x.shape[1:], layer)
    n = x.shape[0]
    if n <= batch_size:
        return _features(model, variables, x, layer)
    out = []
    for start in range(0, n, batch_size):
        xb = x[start:start + batch_size]
        pad = batch_size - xb.shape[0]
        if pad:
            xb = jnp.concatenate([xb, jnp.zeros((pad, *xb.shape[1:]), xb.dtype)])
        out.append(_features(model, variables, xb, layer)[:batch_size - pad])
    return jnp.concatenate(out)
