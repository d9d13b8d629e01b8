"""PyTorch ``state_dict`` -> cnnjax variables, for the models that have a PyTorch layout here.

  variables = torch_weights.load("resnet18.pth", "tv_resnet18")        # .pth needs torch
  variables = torch_weights.load("resnet18.safetensors", "tv_resnet18")  # no torch needed

Supported (:data:`LAYOUTS`): the torchvision-layout models of :mod:`cnnjax.models.torchvision`
(``tv_resnet18/34``, ``tv_vgg11_bn/16_bn``: torchvision's own key names, the naming that module
declares) and the models with a PyTorch twin in :mod:`cnnjax.weights.torch_twins` (``lenet5``,
``padded_cnn``, ``separable_cnn``, ``dilated_cnn``, ``grouped_cnn``, ``vgg_bn``, ``resnet20``, the
``airbench`` family), whose layouts stand beside the twins.  The conversion, per tensor:

* conv weight (O, I/groups, kH, kW) -> kernel HWIO (kH, kW, I/groups, O); linear weight (O, I) ->
  kernel (I, O); biases as they are;
* a linear layer after a spatial flatten: torch flattens NCHW maps as (C, H, W), cnnjax NHWC
  maps as (H, W, C); its weight's input axis is reordered.  Which layers these are, and their C,
  come from the model's structure (:func:`flattened_inputs`), never from the file's key order (a
  ``.safetensors`` file lists its keys sorted by name, not in module order);
* batch norm: weight -> ``scale``, bias -> ``bias``, running_mean / running_var -> batch_stats
  ``mean`` / ``var``; ``num_batches_tracked`` is dropped.  Epsilon is the model's (torch's 1e-5
  in these models; airbench's 1e-12 in both); momentum does not enter inference.  Torch's momentum m
  is Flax's 1 - m, for training on.

Files as they come (:func:`read_state_dict`): ``.pth`` / ``.pt`` / ``.bin`` (torch.load with
``weights_only``: a pickle that would run code is refused unrun) and ``.safetensors`` (no torch);
the state_dict itself or nested under ``state_dict`` / ``model`` / ``model_state_dict`` /
``state_dict_ema``, beside other entries (epoch, optimizer); keys prefixed ``module.``
(DataParallel / DDP) or ``_orig_mod.`` (torch.compile); any key order.

A file that is not a state_dict, a key that does not map, or a tensor whose shape does not fit the
model is a :class:`ConversionError` naming the file or the key: a file for another architecture
fails at its first such key.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
from flax import traverse_util

from cnnjax import models, summary
from cnnjax.models import torchvision as tv_models
from cnnjax.weights import torch_twins, variables


class ConversionError(ValueError):
    """A state_dict that does not convert to the model: the message names the first key."""


def _layout(model_name: str):
    """torch module name -> cnnjax module path (None: no such module) of ``model_name``: torchvision's
    naming for the models laid out as torchvision's, else the layout of the model's PyTorch twin."""
    if model_name in tv_models.MODELS:
        return tv_models.torch_module_path
    return torch_twins.LAYOUTS.get(model_name)


#: the models with a PyTorch layout: torchvision's and the twins'
LAYOUTS = (*tv_models.MODELS, *torch_twins.LAYOUTS)

#: torch leaf -> (collection, cnnjax leaf); a separable conv's two weights have their own names
_LEAVES = {"bias": ("params", "bias"), "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}


def _leaf(model: str, module: str, leaf: str, ndim: int) -> tuple[str, str] | None:
    if leaf == "weight":
        if model == "separable_cnn" and module in ("3.0", "3.1"):
            return "params", "depthwise" if module == "3.0" else "pointwise"
        return "params", "scale" if ndim == 1 else "kernel"
    return _LEAVES.get(leaf)


def flattened_inputs(model, image_shape) -> dict[str, int]:
    """{linear layer path: C} for each linear (2-D kernel) layer of ``model`` on (H, W, C) images
    whose input is a flattened feature map of C channels -- read from the model's structure, never
    from a file's key order: the layers in execution order (:func:`cnnjax.summary.summarize`, an
    abstract evaluation), the linear layer's nearest earlier layer with parameters or a spatial
    output; when that output is a (H, W, C) map, the linear layer reads it flattened (after any
    pooling, which keeps C).  A linear layer after global pooling reads C features (H*W = 1:
    nothing to reorder); one after another linear layer reads no map."""
    rows = summary.summarize(model, image_shape).rows
    out = {}
    for i, row in enumerate(rows):
        if len(row.output_shape) != 1 or row.params == 0:
            continue
        for before in reversed(rows[:i]):
            if len(before.output_shape) == 3:
                out[row.name] = int(before.output_shape[-1])
                break
            if before.params:
                break
    return out


def _nhwc_flatten_order(weight: np.ndarray, channels: int) -> np.ndarray:
    """torch's linear weight (O, C*H*W) read from an NCHW flatten -> the same weight read from
    cnnjax's NHWC flatten (O, H*W*C)."""
    out_features, in_features = weight.shape
    return weight.reshape(out_features, channels, in_features // channels).transpose(0, 2, 1).reshape(
        out_features, in_features)


def to_cnnjax(state_dict: dict, model_name: str, model, image_shape) -> dict:
    """{collection: {path: np.float32 array}} of a torch ``state_dict`` (name -> array or tensor,
    in any key order) for the cnnjax ``model`` (registry name ``model_name``) on (H, W, C)
    ``image_shape`` images.  Which linear layer follows a spatial flatten, and the C of that
    flatten, come from the model (:func:`flattened_inputs`), so any permutation of the keys gives
    bit-identical variables.  ConversionError naming the first key that does not map or fit."""
    layout = _layout(model_name)
    if layout is None:
        raise ConversionError(f"no PyTorch layout for model {model_name}; supported: {', '.join(sorted(LAYOUTS))}")
    shapes = variables.flatten(variables.variable_shapes(model, image_shape), lambda v: tuple(v.shape))
    flattens = flattened_inputs(model, image_shape)
    out = {"params": {}, "batch_stats": {}}
    for key, value in state_dict.items():
        value = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)
        module, _, leaf = key.rpartition(".")
        if leaf == "num_batches_tracked":
            continue
        where = layout(module) if module else None
        collection, name = _leaf(model_name, module, leaf, value.ndim) or (None, None)
        path = f"{where}/{name}" if where and name else None
        if path is None or path not in shapes[collection]:
            raise ConversionError(f"key {key!r} does not map to a variable of {model_name} (another architecture?)")
        want = shapes[collection][path]
        if value.ndim == 4:
            value = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        elif value.ndim == 2:
            channels = flattens.get(where)
            if channels and value.shape[1] != channels and value.shape[1] % channels == 0:
                value = _nhwc_flatten_order(value, channels)
            value = value.T
        if value.shape != want:
            raise ConversionError(f"key {key!r} has shape {tuple(np.shape(state_dict[key]))}, {model_name}'s {path} "
                                  f"is {want}")
        out[collection][path] = np.ascontiguousarray(value, dtype=np.float32)
    missing = [f"{c}/{p}" for c in shapes for p in shapes[c] if p not in out[c]]
    if missing:
        raise ConversionError(f"the state_dict has no tensor for {model_name}'s {', '.join(missing[:5])}"
                              f"{' ...' if len(missing) > 5 else ''}")
    return out


#: where training scripts nest the weights in a checkpoint dict (Lightning, timm's train.py, ...)
NESTED = ("state_dict", "model", "model_state_dict", "state_dict_ema")
#: what wrappers put before every key: DataParallel / DDP, torch.compile
PREFIXES = ("module.", "_orig_mod.")
TORCH_SUFFIXES = (".pth", ".pt", ".bin")


def _unpickling_refused(error: Exception) -> str | None:
    """The line of torch.load(weights_only=True)'s long refusal that names what the pickle would
    run (e.g. 'Trying to load unsupported GLOBAL posix.system ...'), or None for other errors."""
    text = str(error)
    if "weights_only" not in text and "Weights only" not in text:
        return None
    lines = [line.strip() for line in text.splitlines() if "GLOBAL" in line or "global" in line.lower()]
    return lines[0] if lines else "it holds Python objects other than tensors"


def _load_torch(path: str):
    try:
        import torch
    except ImportError:
        raise ConversionError(f"{path} is a PyTorch file and torch is not installed (pip install "
                              f"'cnnjax[torch]', or convert it to .safetensors where torch is)") from None
    with warnings.catch_warnings():  # torch's own UserWarnings (e.g. on legacy files) are not ours to print
        warnings.simplefilter("ignore")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - pickle and zip errors of many kinds
            refused = _unpickling_refused(e)
            if refused:
                raise ConversionError(f"{path} is not a plain weights file, refused without running it "
                                      f"(torch.load weights_only: {refused})") from None
            raise ConversionError(f"{path} cannot be read by torch.load ({type(e).__name__}: "
                                  f"{' '.join(str(e).split())})") from None


def unwrap(state: dict, path: str = "the file") -> dict:
    """The flat name -> tensor dict of a loaded PyTorch file: a state_dict as it is, or nested
    under one of :data:`NESTED` (the first present that holds tensors), every key's wrapper prefix
    (:data:`PREFIXES`, e.g. ``module.``) removed where every tensor key has it.  Non-tensor entries
    (an epoch, optimizer settings) are dropped; ConversionError when no tensor is left."""
    if not isinstance(state, dict):
        raise ConversionError(f"{path} holds a {type(state).__name__}, not a state_dict (a dict of tensors)")
    for key in NESTED:
        if isinstance(state.get(key), dict) and any(_is_tensor(v) for v in state[key].values()):
            state = state[key]
            break
    tensors = {k: v for k, v in state.items() if isinstance(k, str) and _is_tensor(v)}
    if not tensors:
        raise ConversionError(f"{path} holds no tensors (keys: {', '.join(map(str, list(state)[:5]))}"
                              f"{' ...' if len(state) > 5 else ''}): not a state_dict")
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if all(k.startswith(prefix) for k in tensors):
                tensors = {k[len(prefix):]: v for k, v in tensors.items()}
                changed = True
    return tensors


def _is_tensor(v) -> bool:
    return hasattr(v, "detach") or isinstance(v, np.ndarray)


def read_state_dict(path: str) -> dict:
    """name -> np.ndarray of a PyTorch weights file: ``.pth`` / ``.pt`` / ``.bin`` (torch.load with
    weights_only: a pickle that would run code is refused without running it) or ``.safetensors``
    (no torch needed), unwrapped by :func:`unwrap`.  FileNotFoundError, or ConversionError naming
    the file (one line) for a file that is not a state_dict."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".safetensors":
        from safetensors.numpy import load_file
        try:
            state = load_file(path)
        except Exception as e:  # noqa: BLE001 - a truncated or foreign file: one line
            raise ConversionError(f"{path} is not a readable .safetensors file ({type(e).__name__}: "
                                  f"{' '.join(str(e).split())})") from None
    elif suffix in TORCH_SUFFIXES:
        state = _load_torch(path)
    else:
        raise ConversionError(f"{path}: PyTorch weights are read from {', '.join(TORCH_SUFFIXES)} or .safetensors")
    tensors = unwrap(state, path)
    return {k: np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v) for k, v in tensors.items()}


def load(path: str, model: str, num_classes: int = 1000, image_shape=(224, 224, 3), **options) -> dict:
    """cnnjax variables ({'params', 'batch_stats'} trees) of ``model`` from a PyTorch weights file
    (:func:`read_state_dict`: any of its file kinds, wrappers and key orders)."""
    net = models.create(model, num_classes, **options)
    flat = to_cnnjax(read_state_dict(path), model, net, image_shape)  # every variable of net, or ConversionError
    return {c: traverse_util.unflatten_dict(tree, sep="/") for c, tree in flat.items() if tree}
