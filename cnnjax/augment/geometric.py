"""One affine warp for every geometric augmentation: rotation, translation, scale and shear.

Conventions (all ops of :mod:`cnnjax.augment` share them): images are uint8 (B, H, W, C) NHWC,
any C; per-image parameters are float32 arrays of shape (B,); the result is uint8 of the same
shape.  Geometry is about the image centre ``((H-1)/2, (W-1)/2)`` in pixel units:

* ``rotate`` degrees, positive = counter-clockwise as displayed (90 equals ``jnp.rot90(images,
  1, axes=(1, 2))`` on square images);
* ``translate`` ``(dy, dx)`` pixels, positive = down / right (integers equal
  :func:`cnnjax.shift.shift_images`);
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

Whose code: the resampling is dm-pix's (``dm_pix.affine_transform``, mode 'constant'); the
matrices, their parameterisation and the random draws are ours.
"""
from __future__ import annotations

import dm_pix
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
    # (x, y) with y down: rotation counter-clockwise as displayed, then in (y, x) order
    rot = jnp.stack([jnp.stack([cos, -sin], -1), jnp.stack([sin, cos], -1)], -2)          # [[y<-y, y<-x], [x<-y, x<-x]]
    shear = jnp.stack([jnp.stack([jnp.ones_like(hy), hy], -1), jnp.stack([hx, jnp.ones_like(hx)], -1)], -2)
    linear = rot @ (s[:, None, None] * shear)
    shift = jnp.stack([f(translate[0]), f(translate[1])], -1)
    return linear, shift


def warp(images, linear, shift, interpolation: str = "bilinear", fill: int = 0):
    """``images`` (uint8 (B, H, W, C)) warped by forward maps ``linear`` (B, 2, 2) (y, x) and
    ``shift`` (B, 2) about the centre (module docstring), uint8 out."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")
    _, h, w, _ = images.shape
    centre = jnp.array([(h - 1) / 2, (w - 1) / 2], jnp.float32)
    quantise = lambda a: jnp.round(a * 2.0 ** 16) / 2.0 ** 16
    inverse = quantise(jnp.linalg.inv(linear))
    offset = quantise(centre - jnp.einsum("bij,bj->bi", inverse, centre + shift))  # p_in = inv @ p_out + offset
    order = 1 if interpolation == "bilinear" else 0

    def one(image, inv, off):
        m = jnp.eye(4, dtype=jnp.float32).at[:2, :2].set(inv).at[:2, 3].set(off)
        return dm_pix.affine_transform(image, m, order=order, mode="constant", cval=float(fill))

    out = jax.vmap(one)(images.astype(jnp.float32), inverse, offset)
    return jnp.clip(jnp.round(out), 0, 255).astype(jnp.uint8)


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
