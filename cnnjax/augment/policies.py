"""RandAugment (Cubuk et al. 2020) and TrivialAugment (Müller & Hutter 2021), on the device.

Both follow torchvision's ``RandAugment`` / ``TrivialAugmentWide`` (op list, magnitude bins,
random signs), applied **per image**: every image of the batch draws its own ops, signs and (for
TrivialAugment) magnitude.  uint8 (B, H, W, C) NHWC in and out, any C (``color`` is left out
of the op list for C = 1, where it is the identity).

Ops: identity, shear_x, shear_y, translate_x, translate_y, rotate (one affine warp,
:mod:`cnnjax.augment.geometric`: about the centre, fill ``fill``), brightness, color, contrast,
sharpness, posterize, solarize, autocontrast, equalize (:mod:`cnnjax.augment.colour`).
Magnitude bin ``m`` in 0..30 (31 bins, torchvision's) scales each op's range linearly:

=====================  ==============================  ==============================
op                     RandAugment (bin m of 30)       TrivialAugmentWide
=====================  ==============================  ==============================
shear_x / shear_y      ± 0.3 m/30 (shear factor)       ± 0.99 m/30
translate_x / _y       ± int(150/331 side m/30) px     ± int(32 m/30) px
rotate                 ± 30 m/30 degrees               ± 135 m/30 degrees
brightness, color,     factor 1 ± 0.9 m/30             factor 1 ± 0.99 m/30
contrast, sharpness
posterize              8 - round(m / 7.5) bits          8 - round(m / 5) bits
solarize               threshold 255 (1 - m/30)        the same
=====================  ==============================  ==============================

Differences from torchvision: shears are about the image centre (torchvision: the top-left
corner), and values are rounded, not truncated (:mod:`cnnjax.augment.colour`).  Each layer
computes every op for the whole batch and selects per image, so its cost does not depend on the
draws: one warp, the value-wise ops (brightness, contrast, posterize, solarize, autocontrast,
equalize) as one 256-entry table per image and channel applied by one gather, sharpness and
color.  Ours.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from cnnjax.augment import colour, geometric

BINS = 31  # magnitude bins 0..30
GEOMETRIC = ("identity", "shear_x", "shear_y", "translate_x", "translate_y", "rotate")
PIXEL = ("brightness", "color", "contrast", "sharpness", "posterize", "solarize", "autocontrast", "equalize")
SIGNED = {"shear_x", "shear_y", "translate_x", "translate_y", "rotate", "brightness", "color", "contrast",
          "sharpness"}
#: the largest magnitude (bin 30) of each op, per policy; translate in pixels (None: 150/331 of the side)
RANGES = {
    "randaugment": {"shear": 0.3, "translate": None, "rotate": 30.0, "enhance": 0.9, "posterize_bits": 4},
    "trivialaugment": {"shear": 0.99, "translate": 32.0, "rotate": 135.0, "enhance": 0.99, "posterize_bits": 6},
}


def ops(channels: int) -> tuple[str, ...]:
    """The op names for images of ``channels`` channels, in torchvision's order."""
    return GEOMETRIC + tuple(o for o in PIXEL if channels == 3 or o != "color")


def apply_ops(images, op_index, bins, signs, policy: str = "randaugment", interpolation: str = "nearest",
              fill: int = 0):
    """Image ``i`` of ``images`` transformed by op ``ops(C)[op_index[i]]`` at magnitude bin
    ``bins[i]`` (0..30) with sign ``signs[i]`` (+1 / -1; used by the signed ops).  ``op_index``,
    ``bins``, ``signs``: int/float arrays of shape (B,)."""
    b, h, w, c = images.shape
    names = ops(c)
    r = RANGES[policy]
    frac = jnp.asarray(bins, jnp.float32) / (BINS - 1)
    sign = jnp.asarray(signs, jnp.float32)
    is_op = lambda name: jnp.asarray(op_index) == names.index(name)
    pick = lambda name, v: jnp.where(is_op(name), v, 0.0)
    shear, rot = r["shear"] * frac * sign, r["rotate"] * frac * sign
    tx = jnp.trunc((r["translate"] if r["translate"] is not None else 150 / 331 * w) * frac) * sign
    ty = jnp.trunc((r["translate"] if r["translate"] is not None else 150 / 331 * h) * frac) * sign
    linear, shift = geometric.matrices(b, rotate=pick("rotate", rot), translate=(pick("translate_y", ty),
                                       pick("translate_x", tx)), shear_x=pick("shear_x", shear),
                                       shear_y=pick("shear_y", shear))
    warped = geometric.warp(images, linear, shift, interpolation, fill)  # the identity where no warp is drawn
    factor = 1.0 + r["enhance"] * frac * sign
    bits = 8 - jnp.round(frac * r["posterize_bits"]).astype(jnp.int32)
    # the value-wise ops as one table per image (the drawn op's; the identity for the others) and one gather
    tables = {
        "brightness": lambda: colour.brightness_lut(images, factor),
        "contrast": lambda: colour.contrast_lut(images, factor),
        "posterize": lambda: colour.posterize_lut(images, bits),
        "solarize": lambda: colour.solarize_lut(images, 255.0 * (1 - frac)),
        "autocontrast": lambda: colour.autocontrast_lut(images),
        "equalize": lambda: colour.equalize_lut(images),
    }
    lut = jnp.broadcast_to(jnp.arange(256, dtype=jnp.int32), (b, c, 256))
    for name, table in tables.items():
        lut = jnp.where(is_op(name)[:, None, None], table(), lut)
    out = jnp.where(jnp.isin(jnp.asarray(op_index), jnp.array([names.index(n) for n in tables]))[:, None, None, None],
                    colour.apply_lut(images, lut), warped)
    out = jnp.where(is_op("sharpness")[:, None, None, None], colour.sharpness(images, factor), out)
    if "color" in names:
        out = jnp.where(is_op("color")[:, None, None, None], colour.color(images, factor), out)
    return out


def rand_augment(key, images, num_ops: int = 2, magnitude: int = 9, interpolation: str = "nearest",
                 fill: int = 0):
    """RandAugment(N=``num_ops``, M=``magnitude`` in 0..30): ``num_ops`` layers, each drawing
    one op uniformly and a sign per image, at bin ``magnitude``.  N = 0: ``images`` unchanged.
    Layer ``l`` draws from ``fold_in(key, l)``."""
    b, c = images.shape[0], images.shape[-1]
    for layer in range(num_ops):
        k_op, k_sign = jax.random.split(jax.random.fold_in(key, layer))
        op = jax.random.randint(k_op, (b,), 0, len(ops(c)))
        sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, (b,)), -1.0, 1.0)
        images = apply_ops(images, op, jnp.full((b,), magnitude), sign, "randaugment", interpolation, fill)
    return images


def trivial_augment(key, images, interpolation: str = "nearest", fill: int = 0):
    """TrivialAugmentWide: one op per image, drawn uniformly, at a bin drawn uniformly from 0..30
    and a random sign."""
    b, c = images.shape[0], images.shape[-1]
    k_op, k_bin, k_sign = jax.random.split(key, 3)
    op = jax.random.randint(k_op, (b,), 0, len(ops(c)))
    bins = jax.random.randint(k_bin, (b,), 0, BINS)
    sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, (b,)), -1.0, 1.0)
    return apply_ops(images, op, bins, sign, "trivialaugment", interpolation, fill)
