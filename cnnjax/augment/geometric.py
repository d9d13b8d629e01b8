"""One affine warp for every geometric augmentation: rotation, translation, scale and shear.

Conventions (all ops of :mod:`cnnjax.augment` share them): images are uint8 (B, H, W, C) NHWC,
any C; per-image parameters are float32 arrays of shape (B,); the result is uint8 of the same
shape.  Geometry is about the image centre ``((H-1)/2, (W-1)/2)`` in pixel units:

* ``rotate`` degrees, positive = counter-clockwise as displayed (90 equals ``jnp.rot90(images,
  1, axes=(1, 2))`` on square images);
* ``translate`` ``(dy, dx)`` pixels, positive = down / right (integers equal
  :func:`cnnjax.interpret.shift.shift_images`);
* ``scale`` a factor (> 1 enlarges); ``shear_x`` / ``shear_y`` shear factors (``x' = x +
  shear_x * y``; torchvision's RandAugment magnitudes, not degrees).

The forward map is ``p' = R(rotate) S(scale) Sh(shear) (p - centre) + centre + translate``; the
warp pulls each output pixel from the input at the inverse image of its position, interpolated
``bilinear`` (order 1) or ``nearest`` (order 0).  **Fill**: an output pixel whose source
position lies outside ``[0, H-1] x [0, W-1]`` takes ``fill`` (a pixel value in 0..255; default
0, black: Fashion-MNIST's background), with no blending at the border (dm-pix's 'constant'
mode).  The inverse map is quantised to multiples of 2**-16 pixel, so that exact maps (a
quarter turn, whole-pixel shifts, the identity) sample exactly the pixels they name despite
float32 ``cos(90°) != 0``.  Values are rounded to the nearest integer and clipped to 0..255.

Whose code: ours.  The resampling follows ``dm_pix.affine_transform`` (bilinear, mode
'constant') and ``jax.scipy.ndimage.map_coordinates`` (nearest: half away from zero, mode
'constant'), which tests/test_augment.py holds it to; it is our own because dm-pix's version
interpolates over the channel axis too (an (H, W, C) volume: 8 gathers per pixel) and its
bilinear warp of a 50x28x28x1 batch took 21 ms on this CPU against 0.6 ms for the nearest one,
more than a padded_cnn training step (benchmarks/RESULTS.md, "Augmentation").
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

INTERPOLATIONS = ("bilinear", "nearest")


def matrices(b: int, *, rotate=0.0, translate=(0.0, 0.0), scale=1.0, shear_x=0.0, shear_y=0.0):
    """(B, 2, 2) forward linear parts and (B, 2) translations in (y, x) order of the maps above;
    each parameter a scalar or a (B,) array."""
    f = lambda v: jnp.broadcast_to(jnp.asarray(v, jnp.float32), (b,))
    theta = jnp.deg2rad(f(rotate))
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    s, hx, hy = f(scale), f(shear_x), f(shear_y)
    # (x, y) with y down: rotation counter-clockwise as displayed, in (y, x) order R = [[cos, -sin],
    # [sin, cos]]; shear Sh = [[1, hy], [hx, 1]]; linear = R (s Sh), written out entry by entry (one
    # fused kernel on the CPU, where a batched 2x2 matmul is a kernel of its own)
    linear = jnp.stack([jnp.stack([cos * s - sin * (s * hx), cos * (s * hy) - sin * s], -1),
                        jnp.stack([sin * s + cos * (s * hx), sin * (s * hy) + cos * s], -1)], -2)
    shift = jnp.stack([f(translate[0]), f(translate[1])], -1)
    return linear, shift


def inverse_map(linear, shift, h: int, w: int):
    """(inverse (B, 2, 2), offset (B, 2)), (y, x) order: the map the warp samples with, ``p_in =
    inverse @ p_out + offset``, for forward maps ``linear`` / ``shift`` about the centre of H x W
    images; both quantised to multiples of 2**-16 (module docstring).  The 2x2 inverse is written
    out (adjugate over determinant): on the CPU a batched ``jnp.linalg.inv`` is an LU
    decomposition and solves, several kernels of their own for 4 numbers an image."""
    centre = ((h - 1) / 2, (w - 1) / 2)
    quantise = lambda a: jnp.round(a * 2.0 ** 16) / 2.0 ** 16
    a, b, c, d = linear[:, 0, 0], linear[:, 0, 1], linear[:, 1, 0], linear[:, 1, 1]
    det = a * d - b * c
    i00, i01, i10, i11 = quantise(d / det), quantise(-b / det), quantise(-c / det), quantise(a / det)
    py, px = centre[0] + shift[:, 0], centre[1] + shift[:, 1]
    offset = jnp.stack([quantise(centre[0] - (i00 * py + i01 * px)), quantise(centre[1] - (i10 * py + i11 * px))], -1)
    return jnp.stack([jnp.stack([i00, i01], -1), jnp.stack([i10, i11], -1)], -2), offset


def warp(images, linear, shift, interpolation: str = "bilinear", fill: int = 0):
    """``images`` (uint8 (B, H, W, C)) warped by forward maps ``linear`` (B, 2, 2) (y, x) and
    ``shift`` (B, 2) about the centre (module docstring), uint8 out."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")
    b, h, w, c = images.shape
    inv, offset = inverse_map(linear, shift, h, w)
    # input positions of the output pixels, (B, H*W) each; exact: the quantised map times pixel indices
    gy = jnp.repeat(jnp.arange(h, dtype=jnp.float32), w)[None]
    gx = jnp.tile(jnp.arange(w, dtype=jnp.float32), h)[None]
    m = lambda i, j: inv[:, i, j, None]
    y = m(0, 0) * gy + m(0, 1) * gx + offset[:, 0, None]
    x = m(1, 0) * gy + m(1, 1) * gx + offset[:, 1, None]
    flat = images.reshape(b, h * w, c)
    take = lambda yi, xi: jnp.take_along_axis(flat, (yi * w + xi)[..., None], axis=1).astype(jnp.float32)
    if interpolation == "nearest":  # jax.scipy.ndimage.map_coordinates(order=0, mode='constant')
        away = lambda v: jnp.where(v >= 0, jnp.floor(v + 0.5), jnp.ceil(v - 0.5)).astype(jnp.int32)
        yi, xi = away(y), away(x)
        inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
        out = take(jnp.clip(yi, 0, h - 1), jnp.clip(xi, 0, w - 1))
    else:  # dm_pix.affine_transform(order=1, mode='constant')
        inside = (y >= 0) & (y <= h - 1) & (x >= 0) & (x <= w - 1)
        y0, x0 = jnp.clip(jnp.floor(y), 0, h - 1), jnp.clip(jnp.floor(x), 0, w - 1)
        wy, wx = (y - y0)[..., None], (x - x0)[..., None]
        y0, x0 = y0.astype(jnp.int32), x0.astype(jnp.int32)
        y1, x1 = jnp.minimum(y0 + 1, h - 1), jnp.minimum(x0 + 1, w - 1)
        out = ((1 - wy) * ((1 - wx) * take(y0, x0) + wx * take(y0, x1))
               + wy * ((1 - wx) * take(y1, x0) + wx * take(y1, x1)))
    out = jnp.where(inside[..., None], out, jnp.float32(fill))
    return jnp.clip(jnp.round(out), 0, 255).astype(jnp.uint8).reshape(b, h, w, c)


def affine(images, *, rotate=0.0, translate=(0.0, 0.0), scale=1.0, shear_x=0.0, shear_y=0.0,
           interpolation: str = "bilinear", fill: int = 0):
    """``images`` warped by the given (scalar or per-image) parameters."""
    linear, shift = matrices(images.shape[0], rotate=rotate, translate=translate, scale=scale,
                             shear_x=shear_x, shear_y=shear_y)
    return warp(images, linear, shift, interpolation, fill)


def random_affine(key, images, *, rotate: float = 0.0, translate: float = 0.0, scale: float = 0.0,
                  shear: float = 0.0, interpolation: str = "bilinear", fill: int = 0):
    """torchvision's RandomAffine on the device, one draw per image: angle uniform in
    [-rotate, rotate] degrees; translation uniform in [-translate, translate] x the side, rounded
    to whole pixels; scale uniform in [1 - scale, 1 + scale]; horizontal shear angle uniform in
    [-shear, shear] degrees (factor tan(angle)).  All 0: ``images`` unchanged (no warp)."""
    if not (rotate or translate or scale or shear):
        return images
    b, h, w, _ = images.shape
    k = jax.random.split(key, 4)
    u = lambda kk, lo, hi, shape=(b,): jax.random.uniform(kk, shape, jnp.float32, lo, hi)
    t = jnp.round(u(k[1], -translate, translate, (b, 2)) * jnp.array([h, w], jnp.float32))
    return affine(images, rotate=u(k[0], -rotate, rotate), translate=(t[:, 0], t[:, 1]),
                  scale=u(k[2], 1 - scale, 1 + scale), shear_x=jnp.tan(jnp.deg2rad(u(k[3], -shear, shear))),
                  interpolation=interpolation, fill=fill)
