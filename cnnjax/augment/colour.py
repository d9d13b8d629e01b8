"""Pixel-value ops of RandAugment / TrivialAugment, for greyscale (C = 1) and colour (C = 3).

Every op takes uint8 (B, H, W, C) NHWC images and per-image parameters (a scalar or a (B,)
array) and returns uint8 of the same shape; it is pure and jit-able.  The enhancement ops
follow PIL's ``ImageEnhance`` (as torchvision's do): ``blend(degenerate, image, factor) =
degenerate + factor * (image - degenerate)``, rounded to the nearest integer (PIL and
torchvision truncate; we round; the factor is taken to a multiple of 2**-14 first, which makes
the arithmetic exact: :func:`exact_factor`) and clipped to 0..255, so factor 1 is the identity, 0 the
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


def exact_factor(factor):
    """``factor`` to the nearest multiple of 2**-14: then, for factors within (-2, 2) and integer
    degenerate values, every step of a blend is exact in float32, so its rounding is the same
    whichever way XLA compiles it (with or without fused multiply-adds, as one image or inside a
    batch); the policies' factors, 1 ± 0.99 m/30, move by less than 3.1e-5."""
    return jnp.round(jnp.asarray(factor, jnp.float32) * 2.0 ** 14) / 2.0 ** 14


def blend(degenerate, images, factor):
    """``degenerate + factor * (images - degenerate)`` (float32 or uint8 inputs; the factor
    :func:`exact_factor`), uint8 out."""
    f = exact_factor(_per_image(factor, images.shape[0]))
    d = jnp.asarray(degenerate, jnp.float32)
    return _to_uint8(d + f * (images.astype(jnp.float32) - d))


def identity_lut():
    """int32 (1, 1, 256): every pixel value, i.e. the table that maps each value to itself, as a
    row of per-image per-channel tables (made when traced: an array at import time would start
    JAX's backend before cnnjax.xla_cpu sets its threads)."""
    return jnp.arange(256, dtype=jnp.int32)[None, None, :]


def apply_lut(images, lut):
    """``images`` (uint8 (B, H, W, C)) mapped through per-image per-channel tables ``lut``
    (B, C, 256) of values 0..255: one gather."""
    b, h, w, c = images.shape
    row = (jnp.arange(b)[:, None, None, None] * c + jnp.arange(c)) * 256  # no transposes: flat indices
    return lut.astype(jnp.uint8).reshape(-1)[row + images.astype(jnp.int32)]


def _blend_lut(degenerate, factor, b: int):
    """(B, 1, 256): :func:`blend` of every value with per-image ``degenerate`` (B,) or scalar."""
    f = exact_factor(jnp.broadcast_to(jnp.asarray(factor, jnp.float32), (b,))[:, None, None])
    d = jnp.asarray(degenerate, jnp.float32)
    d = d.reshape(b, 1, 1) if d.ndim else d
    return _to_uint8(d + f * (identity_lut().astype(jnp.float32) - d))


def brightness_lut(images, factor):
    return _blend_lut(0.0, factor, images.shape[0])


def contrast_lut(images, factor):
    # the mean grey level, summed in integers: exact, and several times faster here than a float
    # reduction (equal to jnp.mean of the float grey levels wherever that sum is exact, < 2**24)
    h, w = images.shape[1:3]
    total = jnp.sum(grey(images).astype(jnp.int32), axis=(1, 2, 3))
    mean = jnp.round(total.astype(jnp.float32) / (h * w))
    return _blend_lut(mean, factor, images.shape[0])


def posterize_lut(images, bits):
    shift = 8 - jnp.broadcast_to(jnp.asarray(bits, jnp.int32), (images.shape[0],))[:, None, None]
    return identity_lut() & (jnp.left_shift(jnp.int32(0xFF), shift) & 0xFF)


def solarize_lut(images, threshold):
    t = jnp.broadcast_to(jnp.asarray(threshold, jnp.float32), (images.shape[0],))[:, None, None]
    return jnp.where(identity_lut().astype(jnp.float32) >= t, 255 - identity_lut(), identity_lut())


def autocontrast_lut(images):
    """Per image and channel, [lo, hi] (its min and max) stretched to [0, 255]:
    ``floor((v - lo) * 255 / (hi - lo))``; a channel with lo == hi unchanged (PIL, cutoff 0)."""
    lo = jnp.min(images, axis=(1, 2)).astype(jnp.int32)[..., None]  # (B, C, 1)
    hi = jnp.max(images, axis=(1, 2)).astype(jnp.int32)[..., None]
    stretched = jnp.clip((identity_lut() - lo) * 255 // jnp.where(hi > lo, hi - lo, 1), 0, 255)  # integers: exact
    return jnp.where(hi > lo, stretched, identity_lut())


def equalize_lut(images):
    """PIL's ``ImageOps.equalize`` per image and channel: with histogram ``h`` and ``step =
    (n - h[last non-empty value]) // 255``, value ``i`` maps to ``min(255, (step // 2 +
    sum(h[:i])) // step)``; a channel with step 0 is unchanged."""
    hist = _histograms(images)
    n = hist.sum(-1, keepdims=True)
    last = jnp.max(jnp.where(hist > 0, jnp.arange(256), -1), axis=-1, keepdims=True)
    step = (n - jnp.take_along_axis(hist, last, axis=-1)) // 255
    before = jnp.cumsum(hist, -1) - hist
    lut = jnp.minimum(255, (step // 2 + before) // jnp.maximum(step, 1))
    return jnp.where(step > 0, lut, identity_lut())


def _lut_op(table):
    def op(images, *args):
        lut = table(images, *args)
        return apply_lut(images, jnp.broadcast_to(lut, (images.shape[0], images.shape[-1], 256)))
    op.__name__ = table.__name__[:-4]
    op.__doc__ = table.__doc__
    return op


brightness = _lut_op(brightness_lut)
contrast = _lut_op(contrast_lut)
posterize = _lut_op(posterize_lut)
solarize = _lut_op(solarize_lut)
autocontrast = _lut_op(autocontrast_lut)
equalize = _lut_op(equalize_lut)


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


def _histograms(images):
    """int32 (B, C, 256): each image's per-channel histogram."""
    b, h, w, c = images.shape
    row = (jnp.arange(b)[:, None, None, None] * c + jnp.arange(c)) * 256
    return jnp.zeros(b * c * 256, jnp.int32).at[(row + images.astype(jnp.int32)).reshape(-1)].add(1).reshape(b, c, 256)
