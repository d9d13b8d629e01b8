"""Pixel-value ops of RandAugment / TrivialAugment, for greyscale (C = 1) and colour (C = 3).

Every op takes uint8 (B, H, W, C) NHWC images and per-image parameters (a scalar or a (B,)
array) and returns uint8 of the same shape; it is pure and jit-able.  The enhancement ops
follow PIL's ``ImageEnhance`` (as torchvision's do): ``blend(degenerate, image, factor) =
degenerate + factor * (image - degenerate)``, rounded to the nearest integer (PIL and
torchvision truncate; we round) and clipped to 0..255, so factor 1 is the identity, 0 the
degenerate image and > 1 extrapolates away from it:

=============  ======================================================  ========================
op             degenerate image / rule                                  identity parameter
=============  ======================================================  ========================
brightness     black                                                    factor 1
contrast       the mean of the image's grey level (one value)           factor 1
color          the image's grey level (C = 3; C = 1: the identity)      factor 1
sharpness      3x3 smoothing [[1,1,1],[1,5,1],[1,1,1]]/13, border kept  factor 1
posterize      keep the ``bits`` high bits of each value                bits 8
solarize       values >= ``threshold`` become 255 - value               threshold 256
autocontrast   per channel, stretch [min, max] to [0, 255] (PIL's)      (none: a constant image)
equalize       per channel, PIL's histogram equalisation                (none)
=============  ======================================================  ========================

Grey level: PIL's ``L = (299 R + 587 G + 114 B) / 1000``.  ``equalize``, ``posterize`` and
``solarize`` equal Pillow's ``ImageOps`` bit for bit (tests/test_augment.py); ``autocontrast``
is its exact rule, ``floor((v - lo) * 255 / (hi - lo))``, which Pillow computes in float64 as
``v * s + o`` and so sometimes lands just under an integer and gives one less (lo=222, hi=251:
Pillow maps 251 to 254); the tests compare with Pillow everywhere else.
All ours: dm-pix's ``adjust_contrast`` / ``adjust_brightness`` / ``solarize`` work on floats with
other definitions (per-channel mean; an additive delta; values in [0, 1]), not PIL's, which the
RandAugment magnitudes were set for.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _per_image(v, b: int, dtype=jnp.float32):
    """A scalar or (B,) parameter as (B, 1, 1, 1)."""
    return jnp.broadcast_to(jnp.asarray(v, dtype), (b,)).reshape(b, 1, 1, 1)


def _to_uint8(x):
    return jnp.clip(jnp.round(x), 0, 255).astype(jnp.uint8)


def grey(images):
    """float32 (B, H, W, 1): PIL's L of RGB images; C = 1 images as they are."""
    x = images.astype(jnp.float32)
    if images.shape[-1] == 3:
        return jnp.round((x[..., :1] * 299 + x[..., 1:2] * 587 + x[..., 2:] * 114) / 1000)
    return x


def blend(degenerate, images, factor):
    """``degenerate + factor * (images - degenerate)`` (float32 or uint8 inputs), uint8 out."""
    f = _per_image(factor, images.shape[0])
    d = jnp.asarray(degenerate, jnp.float32)
    return _to_uint8(d + f * (images.astype(jnp.float32) - d))


def brightness(images, factor):
    return blend(jnp.zeros((), jnp.float32), images, factor)


def contrast(images, factor):
    mean = jnp.round(jnp.mean(grey(images), axis=(1, 2, 3), keepdims=True))
    return blend(mean, images, factor)


def color(images, factor):
    if images.shape[-1] != 3:
        return images
    return blend(grey(images), images, factor)


def sharpness(images, factor):
    x = images.astype(jnp.int32)
    h, w = x.shape[1:3]
    window = sum(x[:, a:a + h - 2, b:b + w - 2] for a in range(3) for b in range(3))
    inner = window + 4 * x[:, 1:-1, 1:-1]           # [[1,1,1],[1,5,1],[1,1,1]]: exact integers
    smooth = (2 * inner + 13) // 26                  # round(inner / 13); no ties (13 is odd)
    degenerate = x.at[:, 1:-1, 1:-1].set(smooth)     # the border keeps its own pixels
    return blend(degenerate, images, factor)


def posterize(images, bits):
    """Keep the ``bits`` (1..8) high bits of every value."""
    shift = 8 - _per_image(bits, images.shape[0], jnp.int32)
    mask = (jnp.left_shift(jnp.int32(0xFF), shift) & 0xFF).astype(jnp.uint8)
    return images & mask


def solarize(images, threshold):
    """Values >= ``threshold`` (in 0..256; 256 = none) inverted (255 - value)."""
    t = _per_image(threshold, images.shape[0])
    return jnp.where(images.astype(jnp.float32) >= t, 255 - images, images)


def _histograms(images):
    """int32 (B, C, 256): each image's per-channel histogram."""
    b, h, w, c = images.shape
    flat = images.transpose(0, 3, 1, 2).reshape(b * c, h * w).astype(jnp.int32)
    rows = jnp.broadcast_to(jnp.arange(b * c)[:, None], flat.shape)
    return jnp.zeros((b * c, 256), jnp.int32).at[rows, flat].add(1).reshape(b, c, 256)


def _apply_lut(images, lut):
    """``images`` (B, H, W, C) mapped through per-image per-channel tables ``lut`` (B, C, 256)."""
    b, h, w, c = images.shape
    flat = images.transpose(0, 3, 1, 2).reshape(b, c, h * w).astype(jnp.int32)
    out = jnp.take_along_axis(lut, flat, axis=-1)
    return out.reshape(b, c, h, w).transpose(0, 2, 3, 1).astype(jnp.uint8)


def autocontrast(images):
    """Per image and channel, [lo, hi] (its min and max) stretched to [0, 255]:
    ``floor((v - lo) * 255 / (hi - lo))``; a channel with lo == hi unchanged (PIL, cutoff 0)."""
    lo = jnp.min(images, axis=(1, 2), keepdims=True).astype(jnp.int32)
    hi = jnp.max(images, axis=(1, 2), keepdims=True).astype(jnp.int32)
    x = images.astype(jnp.int32)
    stretched = (x - lo) * 255 // jnp.where(hi > lo, hi - lo, 1)  # integers: exact (XLA may turn a float
    return jnp.where(hi > lo, stretched, x).astype(jnp.uint8)      # division into a reciprocal product)


def equalize(images):
    """PIL's ``ImageOps.equalize`` per image and channel: with histogram ``h`` and ``step =
    (n - h[last non-empty value]) // 255``, value ``i`` maps to ``min(255, (step // 2 +
    sum(h[:i])) // step)``; a channel with step 0 is unchanged."""
    hist = _histograms(images)
    n = hist.sum(-1, keepdims=True)
    last = jnp.max(jnp.where(hist > 0, jnp.arange(256), -1), axis=-1, keepdims=True)
    step = (n - jnp.take_along_axis(hist, last, axis=-1)) // 255
    before = jnp.cumsum(hist, -1) - hist
    safe = jnp.maximum(step, 1)
    lut = jnp.minimum(255, (step // 2 + before) // safe)
    lut = jnp.where(step > 0, lut, jnp.arange(256))
    return _apply_lut(images, lut)
