"""Adversarial evaluation under an L-infinity budget: FGSM (Goodfellow et al. 2015) and PGD with a
random start (Madry et al. 2018), jitted and batched, for any classifier.

Units and contract.  Images are NHWC pixels in [0, 255], uint8 or float; ``eps`` and ``step_size``
are in the same pixel units (``eps=8`` allows every pixel to move by 8 of 255).  An attack returns
float32 images ``x_adv`` with ``|x_adv - x| <= eps`` everywhere and ``0 <= x_adv <= 255``, not
rounded to integers (a perturbation below one grey level is allowed).  The model is attacked
through ``logits_fn(variables, images)`` of :func:`cnnjax.train.evaluation.make_logits_fn`: the run's own
normalisation, compute dtype and test-time augmentation, in inference mode; the loss ascended is the
plain cross-entropy of the true label (:func:`cnnjax.train.step.cross_entropy`, no label smoothing).

* FGSM: ``x + eps * sign(grad)``, clipped to [0, 255].
* PGD: start at ``x + U(-eps, eps)`` (clipped), then ``steps`` times ``x + step_size * sign(grad)``
  projected back onto the eps-ball around ``x`` and [0, 255]; ``step_size`` defaults to
  ``2.5 * eps / steps`` (Madry et al.'s choice).  Per example it returns the strongest iterate seen
  (the random start included): a misclassified one before a correct one, then the higher loss; so
  more steps never make it weaker, and PGD is at least as strong as its own random start.

``eps = 0`` returns ``x`` itself as float32, whose logits are bit for bit those of the uint8
images: accuracy at eps 0 is the clean accuracy exactly.
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax import data as data_lib
from cnnjax.train import evaluation
from cnnjax.train.step import cross_entropy

ATTACKS = ("fgsm", "pgd")
PIXEL_MAX = 255.0


def _loss_and_grad(logits_fn: Callable, variables, num_classes: int):
    def total(x, labels):
        logits = logits_fn(variables, x)
        loss = cross_entropy(logits, labels, num_classes)
        return jnp.sum(loss), (loss, jnp.argmax(logits, -1))
    return jax.grad(total, has_aux=True)


def fgsm(logits_fn: Callable, variables, images, labels, eps, num_classes: int):
    """FGSM: float32 ``clip(x + eps * sign(d loss / d x), 0, 255)`` (same shape as ``images``)."""
    x = jnp.asarray(images, jnp.float32)
    grad, _ = _loss_and_grad(logits_fn, variables, num_classes)(x, labels)
    return jnp.clip(x + eps * jnp.sign(grad), 0.0, PIXEL_MAX)


def pgd(logits_fn: Callable, variables, images, labels, eps, key, num_classes: int, steps: int = 10,
        step_size=None):
    """PGD with a random start (module docstring): float32 adversarial images, the strongest
    iterate per example.  ``key`` draws the random start; ``steps`` >= 0 is static."""
    x = jnp.asarray(images, jnp.float32)
    step_size = 2.5 * eps / max(steps, 1) if step_size is None else step_size
    grad_fn = _loss_and_grad(logits_fn, variables, num_classes)
    lo, hi = jnp.maximum(x - eps, 0.0), jnp.minimum(x + eps, PIXEL_MAX)
    project = lambda z: jnp.clip(z, lo, hi)

    def score(loss, pred):  # misclassified first, then the larger loss
        return jnp.where(pred != labels, jnp.inf, loss)

    start = project(x + jax.random.uniform(key, x.shape, jnp.float32, -1.0, 1.0) * eps)
    grad, (loss, pred) = grad_fn(start, labels)
    shape = (-1,) + (1,) * (x.ndim - 1)

    def body(_, carry):
        z, g, best, best_score = carry
        z = project(z + step_size * jnp.sign(g))
        g, (loss, pred) = grad_fn(z, labels)
        s = score(loss, pred)
        better = s > best_score
        return z, g, jnp.where(better.reshape(shape), z, best), jnp.where(better, s, best_score)

    _, _, best, _ = jax.lax.fori_loop(0, steps, body, (start, grad, start, score(loss, pred)))
    return best


def check_settings(kind: str, eps: Sequence[float], steps: int = 10, step_size: float | None = None) -> None:
    """ValueError (one line naming the setting) for an unknown attack, a negative or non-finite
    eps, steps < 1 for PGD, or a step size <= 0."""
    if kind not in ATTACKS:
        raise ValueError(f"unknown attack {kind!r}; choose from {', '.join(ATTACKS)}")
    if not len(eps):
        raise ValueError("eps: give at least one value")
    for e in eps:
        if not np.isfinite(e) or e < 0:
            raise ValueError(f"eps must be >= 0 (pixel units of 255), got {e}")
    if kind == "pgd" and steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if step_size is not None and not step_size > 0:
        raise ValueError(f"step_size must be > 0 (pixel units of 255), got {step_size}")


def make_attack(model, mean, std, num_classes: int, kind: str = "pgd", steps: int = 10,
                compute_dtype: str = "float32", tta: str = "none") -> Callable:
    """jitted ``attack(variables, images, labels, eps, step_size, key) -> float32 images`` of
    ``kind`` ('fgsm' ignores ``steps``, ``step_size`` and ``key``); ``step_size`` None-free: pass
    ``2.5 * eps / steps`` for Madry et al.'s default (:func:`attack_evaluation` does)."""
    logits_fn = evaluation.make_logits_fn(model, mean, std, compute_dtype, tta)
    if kind == "fgsm":
        return jax.jit(lambda variables, images, labels, eps, step_size, key:
                       fgsm(logits_fn, variables, images, labels, eps, num_classes))
    if kind == "pgd":
        return jax.jit(lambda variables, images, labels, eps, step_size, key:
                       pgd(logits_fn, variables, images, labels, eps, key, num_classes, steps, step_size))
    raise ValueError(f"unknown attack {kind!r}; choose from {', '.join(ATTACKS)}")


def attack_evaluation(model, variables, dataset: data_lib.Dataset, kind: str, eps: Sequence[float], *,
                      steps: int = 10, step_size: float | None = None, seed: int = 0, batch_size: int = 500,
                      compute_dtype: str = "float32", tta: str = "none", mean=None, std=None) -> list[dict]:
    """One row per ``eps``: ``{"attack", "eps", "steps", "step_size", "accuracy", "loss"}`` on
    ``dataset``'s test split attacked by ``kind`` and scored by the evaluation step of
    :func:`cnnjax.train.evaluation.make_eval_step` (so eps 0 is the clean accuracy exactly);
    normalised with ``mean`` / ``std`` (default the dataset's; pass a run's recorded ones).  PGD's
    random start of batch b draws from ``fold_in(key(seed), b)``: the same seed, the same numbers."""
    check_settings(kind, eps, steps, step_size)
    mean = dataset.mean if mean is None else mean
    std = dataset.std if std is None else std
    attack = make_attack(model, mean, std, dataset.num_classes, kind, steps, compute_dtype, tta)
    step = evaluation.make_eval_step(model, mean, std, dataset.num_classes, compute_dtype, tta)
    images, labels = dataset.test_images, dataset.test_labels
    n, rows = len(labels), []
    for e in eps:
        size = (2.5 * e / steps if step_size is None else step_size) if kind == "pgd" else None
        loss = correct = 0.0
        for b, (start, stop, pad) in enumerate(evaluation.batches(n, batch_size)):
            xb, yb, mask = evaluation.pad_batch(pad, np.asarray(images[start:stop]), labels[start:stop])
            key = jax.random.fold_in(jax.random.key(seed), b)
            adv = attack(variables, xb, yb, jnp.float32(e), jnp.float32(size or 0.0), key)
            l, c, _ = step(variables, adv, yb, mask)
            loss, correct = loss + float(l), correct + float(c)
        rows.append({"attack": kind, "eps": float(e), "steps": steps if kind == "pgd" else None,
                     "step_size": size, "accuracy": correct / max(n, 1), "loss": loss / max(n, 1)})
    return rows
