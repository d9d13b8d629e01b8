"""Evaluation on shifted test images: how translation-invariant a trained classifier is.

``shift_images(images, dy, dx)`` moves every image ``dy`` pixels down and ``dx`` pixels right
(negative: up / left); the pixels that enter are 0 (black, Fashion-MNIST's background), the
pixels pushed over the edge are lost.  The shift is done on the uint8 images, before the
run's normalisation, so a shifted image is exactly what a camera would have recorded one
object position over.

``shift_evaluation(model, variables, dataset, max_shift)`` scores the test set at shift 0 and
at 1..max_shift pixels in each of the four directions (up, down, left, right) with
:func:`cnnjax.train.evaluation.evaluate` -- the same evaluation, so shift 0 is the plain evaluation's
result exactly.  Each row also has the ``consistency`` of the offset: the fraction of test images
whose predicted class is the one predicted for the unshifted image (1.0 at offset 0).

Zhang's consistency ("Making Convolutional Networks Shift-Invariant Again", 2019, sec. 4.1):
how often two randomly shifted copies of an image get the same class, whatever the label.
:func:`random_shift_consistency` draws for every test image two offsets (dy, dx), each coordinate
uniform in [-max_shift, max_shift], independently (Zhang draws two random crops of an ImageNet
image; here a crop is the image shifted with zero fill), seeded, and reports the fraction that
agree; unlike accuracy it needs no label and it is 1.0 for a perfectly shift-invariant classifier.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from cnnjax import data as data_lib
from cnnjax.train import evaluation

DIRECTIONS = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}


def shift_images(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``images`` (N, H, W, C) moved ``dy`` rows down and ``dx`` columns right, zero fill, same
    shape and dtype: ``out[:, i, j] = images[:, i - dy, j - dx]`` where that is inside, else 0."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    out = np.zeros_like(images)
    if abs(dy) >= h or abs(dx) >= w:
        return out
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        images[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def shift_each(images: np.ndarray, dy, dx) -> np.ndarray:
    """Image i moved ``dy[i]`` rows down and ``dx[i]`` columns right, zero fill (as
    :func:`shift_images`, one offset per image): (N, H, W, C), the images' dtype."""
    images = np.asarray(images)
    n, h, w, _ = images.shape
    dy, dx = np.asarray(dy, int), np.asarray(dx, int)
    m = int(max(np.abs(dy).max(initial=0), np.abs(dx).max(initial=0)))
    padded = np.pad(images, ((0, 0), (m, m), (m, m), (0, 0)))
    rows = (m - dy)[:, None] + np.arange(h)
    cols = (m - dx)[:, None] + np.arange(w)
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def consistency(pred_a, pred_b) -> float:
    """The fraction of examples with the same predicted class in ``pred_a`` and ``pred_b`` (N,)."""
    pred_a, pred_b = np.asarray(pred_a), np.asarray(pred_b)
    return float(np.mean(pred_a == pred_b)) if len(pred_a) else 0.0


def random_shift_consistency(model, variables, dataset: data_lib.Dataset, max_shift: int = 4, seed: int = 0,
                             batch_size: int = 1000, compute_dtype: str = "float32", tta: str = "none", mean=None,
                             std=None) -> dict:
    """Zhang's consistency of the test split (module docstring): ``{"max_shift", "seed",
    "consistency", "accuracy_a", "accuracy_b"}``, the last two the accuracies of the two shifted
    copies.  The offsets come from ``numpy.random.default_rng(seed)``: the same seed, the same
    pairs."""
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    mean = dataset.mean if mean is None else mean
    std = dataset.std if std is None else std
    step = evaluation.make_eval_step(model, mean, std, dataset.num_classes, compute_dtype, tta)
    n = len(dataset.test_labels)
    offs = np.random.default_rng(seed).integers(-max_shift, max_shift + 1, size=(2, 2, n))  # copy, axis, image
    preds, accs = [], []
    for (dy, dx) in offs:
        shifted = dataclasses.replace(dataset, test_images=shift_each(dataset.test_images, dy, dx))
        ev = evaluation.evaluate(model, variables, shifted, batch_size, "test", eval_step=step)
        preds.append(ev["predictions"])
        accs.append(ev["accuracy"])
    return {"max_shift": max_shift, "seed": seed, "consistency": consistency(*preds), "accuracy_a": accs[0],
            "accuracy_b": accs[1]}


def offsets(max_shift: int) -> list[tuple[str, int, int, int]]:
    """``(direction, pixels, dy, dx)``: ('none', 0, 0, 0), then 1..max_shift pixels in each direction."""
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    return [("none", 0, 0, 0)] + [(d, k, k * uy, k * ux) for k in range(1, max_shift + 1)
                                  for d, (uy, ux) in DIRECTIONS.items()]


def shift_evaluation(model, variables, dataset: data_lib.Dataset, max_shift: int = 4, batch_size: int = 1000,
                     compute_dtype: str = "float32", tta: str = "none", mean=None, std=None) -> list[dict]:
    """One row per offset of :func:`offsets`: ``{"direction", "pixels", "dy", "dx", "accuracy",
    "loss", "consistency"}`` (consistency: agreement with the unshifted prediction) on ``dataset``'s test split shifted by (dy, dx), evaluated as
    :func:`cnnjax.train.evaluation.evaluate` (one compiled evaluation step for all offsets), normalised with
    ``mean`` / ``std`` (default the dataset's; pass a run's recorded ones, data.json's, to
    evaluate exactly as it was trained)."""
    mean = dataset.mean if mean is None else mean
    std = dataset.std if std is None else std
    step = evaluation.make_eval_step(model, mean, std, dataset.num_classes, compute_dtype, tta)
    rows, clean = [], None
    for direction, pixels, dy, dx in offsets(max_shift):
        shifted = dataset if (dy, dx) == (0, 0) else dataclasses.replace(
            dataset, test_images=shift_images(dataset.test_images, dy, dx))
        ev = evaluation.evaluate(model, variables, shifted, batch_size, "test", eval_step=step)
        clean = ev["predictions"] if clean is None else clean
        rows.append({"direction": direction, "pixels": pixels, "dy": dy, "dx": dx,
                     "accuracy": ev["accuracy"], "loss": ev["loss"],
                     "consistency": consistency(clean, ev["predictions"])})
    return rows


def by_distance(rows: list[dict], key: str = "accuracy") -> dict[int, float]:
    """Accuracy (or another ``key`` of the rows, e.g. 'consistency') per shift distance, averaged
    over the directions: ``{0: acc, 1: acc, ...}``."""
    out: dict[int, list[float]] = {}
    for r in rows:
        out.setdefault(r["pixels"], []).append(r[key])
    return {k: float(np.mean(v)) for k, v in sorted(out.items())}
