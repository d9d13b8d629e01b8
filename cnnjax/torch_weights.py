"""PyTorch ``state_dict`` -> cnnjax variables, for the models that have a PyTorch layout here.

  variables = torch_weights.load("resnet18.pth", "tv_resnet18")        # .pth needs torch
  variables = torch_weights.load("resnet18.safetensors", "tv_resnet18")  # no torch needed

Supported (:data:`LAYOUTS`): the torchvision-layout models of :mod:`cnnjax.models.torchvision`
(``tv_resnet18/34``, ``tv_vgg11_bn/16_bn``: torchvision's own key names) and the PyTorch twins of
``benchmarks/torch_twins.py`` (``lenet5``, ``padded_cnn``,
``separable_cnn``, ``dilated_cnn``, ``grouped_cnn``, ``vgg_bn``, ``resnet20``, the ``airbench``
family).  The conversion, per tensor:

* conv weight (O, I/groups, kH, kW) -> kernel HWIO (kH, kW, I/groups, O); linear weight (O, I) ->
  kernel (I, O); biases as they are;
* the first linear layer after a spatial flatten: torch flattens NCHW maps as (C, H, W), cnnjax
  NHWC maps as (H, W, C); its weight's input axis is reordered (C from the layer before it);
* batch norm: weight -> ``scale``, bias -> ``bias``, running_mean / running_var -> batch_stats
  ``mean`` / ``var``; ``num_batches_tracked`` is dropped.  Epsilon is the model's (torch's 1e-5
  in these models; airbench's 1e-12 in both); momentum does not enter inference.  Torch's momentum m
  is Flax's 1 - m, for training on.

A key that does not map, or a tensor whose shape does not fit the model, is a
:class:`ConversionError` naming it: a file for another architecture fails at its first such key.
"""
from __future__ import annotations

import os
import re

import jax
import numpy as np

from cnnjax import freeze


class ConversionError(ValueError):
    """A state_dict that does not convert to the model: the message names the first key."""


def _sequential(names: dict[int, str]):
    return lambda module: names.get(int(module)) if module.isdigit() else None


def _indexed(module: str) -> str:
    """torchvision naming: 'layer1.0.downsample.1' -> 'layer1_0/downsample_1'."""
    return re.sub(r"\.(\d+)", r"_\1", module).replace(".", "/")


def _vgg_bn_twin(stages: int = 2):
    names, i = {}, 0
    for s in range(1, stages + 1):
        for j in (1, 2):
            names[i], names[i + 1] = f"conv{s}_{j}", f"bn{s}_{j}"
            i += 3
        i += 1  # max pool
    names[i + 2] = "fc"  # flatten, dropout, linear
    return _sequential(names)


def _resnet20_twin(module: str):
    head, _, rest = module.partition(".")
    if not head.isdigit():
        return None
    i = int(head)
    if i in (0, 1, 14) and not rest:
        return {0: "stem", 1: "stem_bn", 14: "fc"}[i]
    if 3 <= i <= 11 and rest in ("conv1", "bn1", "conv2", "bn2"):
        return f"stage{(i - 3) // 3 + 1}_block{(i - 3) % 3 + 1}/{rest}"
    return None


_PADDED = _sequential({0: "conv1", 3: "conv2", 7: "fc"})

#: model -> (torch module name -> cnnjax module path, or None when it does not map)
LAYOUTS = {
    "tv_resnet18": _indexed, "tv_resnet34": _indexed, "tv_vgg11_bn": _indexed, "tv_vgg16_bn": _indexed,
    "lenet5": _sequential({0: "conv1", 3: "conv2", 7: "fc1", 9: "fc2", 11: "fc3"}),
    "padded_cnn": _PADDED, "dilated_cnn": _PADDED, "grouped_cnn": _PADDED,
    "separable_cnn": lambda m: {"0": "conv1", "3.0": "conv2", "3.1": "conv2", "7": "fc"}.get(m),
    "vgg_bn": _vgg_bn_twin(),
    "resnet20": _resnet20_twin,
    **{name: (lambda m: m if "." not in m else None) for name in ("airbench", "airbench28_s", "airbench28_m",
                                                                   "airbench28_l")},
}

#: torch leaf -> (collection, cnnjax leaf); a separable conv's two weights have their own names
_LEAVES = {"bias": ("params", "bias"), "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}


def _leaf(model: str, module: str, leaf: str, ndim: int) -> tuple[str, str] | None:
    if leaf == "weight":
        if model == "separable_cnn" and module in ("3.0", "3.1"):
            return "params", "depthwise" if module == "3.0" else "pointwise"
        return "params", "scale" if ndim == 1 else "kernel"
    return _LEAVES.get(leaf)


def to_cnnjax(state_dict: dict, model: str, target: dict) -> dict:
    """{collection: {path: np.ndarray}} of a torch ``state_dict`` (name -> array or tensor) for
    the cnnjax ``model`` whose variables (arrays or shapes) are ``target``; ConversionError
    naming the first key that does not map or fit."""
    layout = LAYOUTS.get(model)
    if layout is None:
        raise ConversionError(f"no PyTorch layout for model {model}; supported: {', '.join(sorted(LAYOUTS))}")
    shapes = {c: {freeze.path_str(p): tuple(v.shape) for p, v in jax.tree_util.tree_flatten_with_path(
        target.get(c, {}))[0]} for c in ("params", "batch_stats")}
    out = {"params": {}, "batch_stats": {}}
    channels = None  # output channels of the last conv: the C of a following flatten
    for key, value in state_dict.items():
        value = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)
        module, _, leaf = key.rpartition(".")
        if leaf == "num_batches_tracked":
            continue
        where = layout(module) if module else None
        collection, name = _leaf(model, module, leaf, value.ndim) or (None, None)
        path = f"{where}/{name}" if where and name else None
        if path is None or path not in shapes[collection]:
            raise ConversionError(f"key {key!r} does not map to a variable of {model} (another architecture?)")
        want = shapes[collection][path]
        if value.ndim == 4:
            value = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
            channels = value.shape[-1]
        elif value.ndim == 2:
            out_features, in_features = value.shape
            if channels and in_features != channels and in_features % channels == 0:  # after an NCHW flatten
                value = value.reshape(out_features, channels, in_features // channels).transpose(0, 2, 1)
                value = value.reshape(out_features, in_features)
            value, channels = value.T, None
        if value.shape != want:
            raise ConversionError(f"key {key!r} has shape {tuple(np.shape(state_dict[key]))}, {model}'s {path} "
                                  f"is {want}")
        out[collection][path] = np.ascontiguousarray(value, dtype=np.float32)
    missing = [f"{c}/{p}" for c in shapes for p in shapes[c] if p not in out[c]]
    if missing:
        raise ConversionError(f"the state_dict has no tensor for {model}'s {', '.join(missing[:5])}"
                              f"{' ...' if len(missing) > 5 else ''}")
    return out


def read_state_dict(path: str) -> dict:
    """name -> np.ndarray of a ``.pth`` / ``.pt`` (torch, weights only) or ``.safetensors`` file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist")
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file
        return load_file(path)
    import torch
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    return {k: v.detach().cpu().numpy() for k, v in state.items() if hasattr(v, "detach")}


def load(path: str, model: str, num_classes: int = 1000, image_shape=(224, 224, 3), **options) -> dict:
    """cnnjax variables ({'params', 'batch_stats'} trees) of ``model`` from a torch weights file."""
    from cnnjax import init_from, models
    net = models.create(model, num_classes, **options)
    target = freeze.variable_shapes(net, image_shape)
    flat = to_cnnjax(read_state_dict(path), model, target)
    loaded, _ = init_from.match(flat, target, where=path)
    return jax.tree_util.tree_map_with_path(
        lambda p, _: loaded[p[0].key][freeze.path_str(p[1:])], dict(target))
