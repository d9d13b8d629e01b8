"""MixUp (Zhang et al. 2018) and CutMix (Yun et al. 2019): images mixed with a partner and the
weights of their two labels.  Ours.

Partner: image ``i`` is mixed with image ``i - 1`` of the batch (``jnp.roll(x, 1, 0)``, as
torchvision's ``MixUp`` / ``CutMix``), so the partner labels are ``jnp.roll(labels, 1)``
(:func:`partner`).  Per image (torchvision and timm draw one per batch), with probability
``prob``: ``lam ~ Beta(alpha, alpha)``;

* MixUp: ``x = lam * x + (1 - lam) * partner``; label weight ``lam``;
* CutMix: a box of ``int(H sqrt(1 - lam))`` x ``int(W sqrt(1 - lam))`` pixels centred at a
  uniform pixel, clipped to the image (torchvision's rule), is pasted from the partner; label
  weight ``1 - pasted area / (H W)``, the pasted area after clipping (exactly the pixels taken).

An image not mixed has weight 1.  The loss on mixed labels is the cross-entropy against
:func:`targets`, ``w * onehot(label) + (1 - w) * onehot(partner)``, label-smoothed: cross-entropy
is linear in the targets and smoothing is an affine map of them, so this equals ``w *
CE_smoothed(label) + (1 - w) * CE_smoothed(partner)`` (tests/test_augment.py).

Images: any dtype, NHWC (B, H, W, C); MixUp returns float32 (apply it after normalisation, as
the step does: normalisation is affine per channel, so mixing commutes with it), CutMix the
input's dtype.  Weights float32 (B,).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from cnnjax.augment.erasing import box_masks

KINDS = ("none", "mixup", "cutmix", "mixup_cutmix")


def partner(a):
    """Each example's partner along axis 0: ``jnp.roll(a, 1, 0)``."""
    return jnp.roll(a, 1, 0)


def _lam(key, b, alpha, prob):
    k_lam, k_apply = jax.random.split(key)
    lam = jax.random.beta(k_lam, alpha, alpha, (b,), jnp.float32)
    return jnp.where(jax.random.bernoulli(k_apply, prob, (b,)), lam, 1.0)


def mixup(key, images, alpha: float = 1.0, prob: float = 1.0):
    """(float32 mixed images, float32 (B,) weights of the own labels)."""
    lam = _lam(key, images.shape[0], alpha, prob)
    x = images.astype(jnp.float32)
    l4 = lam[:, None, None, None]
    return l4 * x + (1 - l4) * partner(x), lam


def cutmix_boxes(key, b: int, h: int, w: int, lam):
    """int32 (B, 4) ``(top, left, height, width)`` of the pasted boxes for weights ``lam`` (B,)."""
    k_y, k_x = jax.random.split(key)
    cut = jnp.sqrt(1.0 - lam)
    ch, cw = (h * cut).astype(jnp.int32), (w * cut).astype(jnp.int32)
    cy, cx = jax.random.randint(k_y, (b,), 0, h), jax.random.randint(k_x, (b,), 0, w)
    top, bottom = jnp.clip(cy - ch // 2, 0, h), jnp.clip(cy + ch // 2, 0, h)
    left, right = jnp.clip(cx - cw // 2, 0, w), jnp.clip(cx + cw // 2, 0, w)
    return jnp.stack([top, left, bottom - top, right - left], -1)


def cutmix(key, images, alpha: float = 1.0, prob: float = 1.0):
    """(images with boxes pasted from their partners, float32 (B,) weights = 1 - pasted fraction)."""
    b, h, w, _ = images.shape
    k_lam, k_box = jax.random.split(key)
    box = cutmix_boxes(k_box, b, h, w, _lam(k_lam, b, alpha, prob))
    mask = box_masks(box, h, w)
    weight = 1.0 - (box[:, 2] * box[:, 3]).astype(jnp.float32) / (h * w)
    return jnp.where(mask, partner(images), images), weight


def mix(key, images, kind: str, alpha: float = 1.0, prob: float = 1.0):
    """(float32 images, float32 (B,) weights) of ``kind`` (:data:`KINDS`; 'mixup_cutmix': each
    image MixUp or CutMix with probability 1/2, timm's switch).  'none': ``images`` as float32,
    weights 1."""
    if kind not in KINDS:
        raise ValueError(f"mix kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "none":
        return images.astype(jnp.float32), jnp.ones(images.shape[0], jnp.float32)
    k_mixup, k_cutmix, k_switch = jax.random.split(key, 3)
    if kind == "mixup":
        return mixup(k_mixup, images, alpha, prob)
    if kind == "cutmix":
        x, w = cutmix(k_cutmix, images, alpha, prob)
        return x.astype(jnp.float32), w
    xm, wm = mixup(k_mixup, images, alpha, prob)
    xc, wc = cutmix(k_cutmix, images, alpha, prob)
    use_cut = jax.random.bernoulli(k_switch, 0.5, (images.shape[0],))
    return jnp.where(use_cut[:, None, None, None], xc.astype(jnp.float32), xm), jnp.where(use_cut, wc, wm)


def targets(labels, weights, num_classes: int, smoothing: float = 0.0):
    """float32 (B, num_classes): ``weights * onehot(labels) + (1 - weights) * onehot(partner)``,
    smoothed by ``smoothing`` (optax.smooth_labels)."""
    w = weights[:, None]
    t = w * jax.nn.one_hot(labels, num_classes) + (1 - w) * jax.nn.one_hot(partner(labels), num_classes)
    return optax.smooth_labels(t, smoothing) if smoothing else t
