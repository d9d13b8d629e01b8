"""Evaluation of trained variables on a split: loss, accuracy, per-class accuracy and confusion,
optionally with test-time augmentation (airbench94's flip / flip-and-shift views)."""
from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.train import config as config_lib
from cnnjax import data as data_lib
from cnnjax.train.step import cast_floats, cross_entropy, resolve_compute_dtype


def tta_views(x, tta: str = "none"):
    """(views (V, B, H, W, C), weights (V,)) of :func:`tta_logits` for a (B, H, W, C) batch."""
    flip = lambda v: v[:, :, ::-1, :]
    if tta == "none":
        return x[None], jnp.ones(1, jnp.float32)
    if tta == "flip":
        return jnp.stack([x, flip(x)]), jnp.full(2, 0.5, jnp.float32)
    if tta == "flip_shift":
        _, h, w, _ = x.shape
        padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
        down, up = padded[:, :h, :w], padded[:, 2:, 2:]
        return (jnp.stack([x, flip(x), down, flip(down), up, flip(up)]),
                jnp.array([0.25, 0.25, 0.125, 0.125, 0.125, 0.125], jnp.float32))
    raise ValueError(f"unknown tta {tta!r}")


def tta_logits(logits_fn: Callable, x, tta: str = "none"):
    """Test-time augmentation (airbench94's ``infer``) of a (B, H, W, C) batch: the logits
    ``logits_fn(view)`` (B, classes) averaged over views of ``x``.

    * 'none': x itself;
    * 'flip': (f(x) + f(mirror x)) / 2, mirror = reversed width axis;
    * 'flip_shift': flip(x) / 2 + (flip(x shifted down-right) + flip(x shifted up-left)) / 4, a
      shift moving the image one pixel along both axes with reflect padding (6 views).

    The views run one after another through one traced ``logits_fn`` (``lax.map``): a jitted
    evaluation compiles the model once, not once per view."""
    if tta == "none":
        return logits_fn(x)
    views, weights = tta_views(x, tta)
    return jnp.tensordot(weights, jax.lax.map(logits_fn, views), axes=1)


def make_logits_fn(model: nn.Module, mean: float, std: float, compute_dtype: str = "float32",
                   tta: str = "none") -> Callable:
    """``logits(variables, images) -> (B, classes) float32``, not jitted (to be traced inside a
    jitted function, or differentiated with respect to ``images``): the evaluation's forward pass.
    ``images`` (B, H, W, C) are pixels in [0, 255], uint8 or float (an attack's perturbed
    images: a float image equal to a uint8 one gives the same logits, bit for bit), normalised
    with ``mean`` / ``std`` (:func:`cnnjax.data.normalize`), the model run in ``compute_dtype``
    (as trained; 'auto' as :func:`cnnjax.train.step.resolve_compute_dtype`) in inference mode, its
    logits averaged over the views of :func:`tta_logits`.  ValueError for an unknown ``tta``."""
    compute = jnp.dtype(resolve_compute_dtype(compute_dtype))
    if tta not in config_lib.TTA:
        raise ValueError(f"config.tta must be one of {', '.join(config_lib.TTA)}; got {tta!r}")

    def logits_fn(variables, images):
        x = data_lib.normalize(images, mean, std)
        if compute != jnp.float32:
            variables, x = cast_floats(variables, compute), x.astype(compute)
        return tta_logits(lambda v: model.apply(variables, v, train=False).astype(jnp.float32), x, tta)

    return logits_fn


def make_eval_step(model: nn.Module, mean: float, std: float, num_classes: int,
                   compute_dtype: str = "float32", tta: str = "none") -> Callable:
    """``eval_step(variables, images_u8, labels, mask) -> (loss_sum, correct_sum, predictions)``,
    the logits of :func:`make_logits_fn` (the model run in ``compute_dtype``, averaged over the
    views of :func:`tta_logits`), the loss in float32.  ``mask`` (B,) float32 weighs each example
    (0: padding).  ``images`` may also be float pixels in [0, 255] (another compilation)."""
    logits_fn = make_logits_fn(model, mean, std, compute_dtype, tta)

    @jax.jit
    def eval_step(variables, images, labels, mask):
        logits = logits_fn(variables, images)
        loss = cross_entropy(logits, labels, num_classes)
        pred = jnp.argmax(logits, -1)
        return jnp.sum(loss * mask), jnp.sum((pred == labels) * mask), pred

    return eval_step


def batches(n: int, batch_size: int):
    """``(start, stop, pad)`` of the batches of ``n`` examples; the last one is padded by ``pad``
    examples so that one compiled shape serves all (:func:`pad_batch`)."""
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        yield start, stop, batch_size - (stop - start)


def pad_batch(pad: int, *arrays):
    """``arrays`` each extended by ``pad`` zero rows (their dtype), and the (B,) float32 mask (0: padding)."""
    mask = np.ones(len(arrays[0]) + pad, np.float32)
    if pad:
        mask[-pad:] = 0
        arrays = [np.concatenate([a, np.zeros((pad, *a.shape[1:]), a.dtype)]) for a in arrays]
    return (*arrays, mask)


def predict_logits(logits_fn: Callable, variables, images, batch_size: int = 1000) -> np.ndarray:
    """(N, classes) float32 logits of ``images`` in batches of ``batch_size`` (the last padded), with
    ``logits_fn`` of :func:`make_logits_fn` (jitted here if it is not)."""
    fn = logits_fn if hasattr(logits_fn, "lower") else jax.jit(logits_fn)
    out = []
    for start, stop, pad in batches(len(images), batch_size):
        xb, _ = pad_batch(pad, np.asarray(images[start:stop]))
        out.append(np.asarray(fn(variables, xb))[:stop - start])
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def evaluate(model: nn.Module, variables, dataset: data_lib.Dataset, batch_size: int = 1000,
             split: str = "test", eval_step: Callable | None = None, compute_dtype: str = "float32",
             tta: str = "none") -> dict:
    """Loss, accuracy, per-class accuracy, confusion matrix (rows = true class) and the
    ``predictions`` (N,) on a split; the model runs in ``compute_dtype`` with test-time
    augmentation ``tta`` unless an ``eval_step`` is given."""
    images = getattr(dataset, f"{split}_images")
    labels = getattr(dataset, f"{split}_labels")
    n = len(labels)
    eval_step = eval_step or make_eval_step(model, dataset.mean, dataset.std, dataset.num_classes, compute_dtype, tta)
    loss = correct = 0.0
    preds = []
    for start in range(0, n, batch_size):
        xb, yb = images[start:start + batch_size], labels[start:start + batch_size]
        pad = batch_size - len(yb)  # pad the last batch so one compiled shape serves all
        mask = np.ones(batch_size, np.float32)
        if pad:
            xb = np.concatenate([xb, np.zeros((pad, *xb.shape[1:]), xb.dtype)])
            yb = np.concatenate([yb, np.zeros(pad, yb.dtype)])
            mask[batch_size - pad:] = 0
        l, c, p = eval_step(variables, xb, yb, mask)
        loss, correct = loss + float(l), correct + float(c)
        preds.append(np.asarray(p)[:batch_size - pad])
    preds = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    k = dataset.num_classes
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (labels, preds), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(1), 1)
    return {"loss": loss / max(n, 1), "accuracy": correct / max(n, 1), "per_class_accuracy": per_class,
            "confusion": confusion, "predictions": preds}
