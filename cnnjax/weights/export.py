"""A trained classifier as a file that runs without cnnjax: StableHLO (``jax.export``) or ONNX (jax2onnx).

Both export the same function, self-contained (the weights are constants in the file):

    logits = f(images)    images uint8 (B, H, W, C), B symbolic (any batch size);
                          logits float32 (B, num_classes)

with the run's normalisation ``(images / 255 - mean) / std`` inside and the model's evaluation
forward pass (``train=False``: batch norm's running statistics, no dropout).  Test-time
augmentation (``config.tta``) is not part of it: the file is the model's plain forward pass.
Convolutions and pools are exported as the plain ops every runtime has (``conv_impl='lax'``:
the same parameters and values as cnnjax's CPU fast path, to float rounding).

* **stablehlo**: :func:`jax.export.export` with a symbolic batch dimension, serialised
  (``Exported.serialize()``); reload with ``jax.export.deserialize(blob).call(images)``.
* **onnx**: ``jax2onnx.to_onnx`` (opset 23), input ``images`` and output ``logits`` with a
  symbolic batch dimension ``B``; run with onnxruntime.  cnnjax's pools are traced as
  ``flax.linen.max_pool`` / ``avg_pool`` (which jax2onnx turns into ONNX MaxPool /
  AveragePool; its generic lowering of a NHWC ``reduce_window`` emits a 4-d kernel that
  onnxruntime rejects).  Every registered classifier exports at its default options (tested,
  reloads within 1e-5 of the JAX logits); a model with an operation jax2onnx has no rule for
  (e.g. an FFT) raises :class:`ExportError` naming the model and jax2onnx's reason.

``python -m experiments.export`` is the command line; docs/explain.md has the table of models.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cnnjax import blocks
from cnnjax import data as data_lib
from cnnjax import ops

FORMATS = ("stablehlo", "onnx")

class ExportError(ValueError):
    """A model the chosen format cannot express (one line: the model, the format and why)."""


def _portable(model: nn.Module) -> nn.Module:
    """``model`` with its convs and pools on lax's ops (a model receives them as its ``conv``)."""
    names = {f.name for f in dataclasses.fields(model)}
    return model.clone(conv=blocks.ConvDef("lax")) if "conv" in names else model


def logits_function(model: nn.Module, variables, mean, std) -> Callable:
    """``f(images_u8) -> logits`` of the module docstring (pure; the variables are closed over)."""
    model = _portable(model)

    def logits(images):
        return model.apply(variables, data_lib.normalize(images, mean, std), train=False).astype(jnp.float32)
    return logits


def stablehlo(model: nn.Module, variables, image_shape: Sequence[int], mean, std) -> bytes:
    """The serialised :class:`jax.export.Exported` of :func:`logits_function`, batch symbolic."""
    batch, = jax.export.symbolic_shape("batch")
    spec = jax.ShapeDtypeStruct((batch, *image_shape), jnp.uint8)
    exported = jax.export.export(jax.jit(logits_function(model, variables, mean, std)))(spec)
    return bytes(exported.serialize())


def _flax_pools(next_fun, args, kwargs, context):
    """cnnjax pools traced as flax.linen's (same values), which jax2onnx lowers to MaxPool / AveragePool."""
    module = context.module
    if context.method_name != "__call__" or not isinstance(module, (blocks.MaxPool, blocks.AvgPool)):
        return next_fun(*args, **kwargs)
    window = ops._pair(module.window, "window")
    stride = window if module.stride is None else ops._pair(module.stride, "stride")
    pads = tuple(tuple(int(p) for p in pair) for pair in ops.resolve_padding_2d(module.padding, window))
    padding = "VALID" if pads == ((0, 0), (0, 0)) else pads
    if isinstance(module, blocks.MaxPool):
        return nn.max_pool(args[0], window_shape=window, strides=stride, padding=padding)
    return nn.avg_pool(args[0], window_shape=window, strides=stride, padding=padding, count_include_pad=True)


def onnx(model: nn.Module, variables, image_shape: Sequence[int], mean, std, name: str = "model") -> bytes:
    """The ONNX ModelProto (serialised) of :func:`logits_function`, batch symbolic ``B``.
    ExportError when jax2onnx cannot convert the model."""
    from jax2onnx import to_onnx

    f = logits_function(model, variables, mean, std)

    def traced(images):
        with nn.intercept_methods(_flax_pools):
            return f(images)

    try:
        batch, = jax.export.symbolic_shape("B")
        proto = to_onnx(traced, [jax.ShapeDtypeStruct((batch, *image_shape), jnp.uint8)], model_name=name,
                        input_names=["images"], output_names=["logits"])
    except Exception as e:  # noqa: BLE001 - jax2onnx raises many kinds for an unsupported primitive
        reason = " ".join(f"{type(e).__name__}: {e}".split())[:300]
        raise ExportError(f"--format=onnx cannot express {name}: jax2onnx failed ({reason})") from None
    del proto.graph.value_info[:]  # jax2onnx annotates some NCHW intermediates with NHWC shapes: let the runtime infer them
    return proto.SerializeToString()


def run_stablehlo(blob: bytes, images: np.ndarray) -> np.ndarray:
    """Logits of a :func:`stablehlo` export for uint8 ``images`` (deserialised, then called)."""
    return np.asarray(jax.export.deserialize(bytearray(blob)).call(images))


def run_onnx(blob: bytes, images: np.ndarray) -> np.ndarray:
    """Logits of an :func:`onnx` export for uint8 ``images``, by onnxruntime on the CPU."""
    import onnxruntime
    session = onnxruntime.InferenceSession(blob, providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"images": np.asarray(images, np.uint8)})[0]


def export(fmt: str, model: nn.Module, variables, image_shape: Sequence[int], mean, std, name: str = "model") -> bytes:
    """The file contents of ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "stablehlo":
        return stablehlo(model, variables, image_shape, mean, std)
    if fmt == "onnx":
        return onnx(model, variables, image_shape, mean, std, name)
    raise ValueError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """``max |got - want| / max |want|``: the error measure of the export tests (<= 1e-5)."""
    return float(np.abs(np.asarray(got) - np.asarray(want)).max() / max(np.abs(np.asarray(want)).max(), 1e-30))
