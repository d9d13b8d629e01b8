"""Random erasing (Zhong et al. 2020; torchvision's ``RandomErasing``), which with a fixed
square is Cutout (DeVries & Taylor 2017).  Ours.

Per image, with probability ``prob``: a rectangle of area ``s * H * W`` (``s`` uniform in
``area``) and aspect ratio ``r`` (log-uniform in ``ratio``; height ``round(sqrt(s H W r))``,
width ``round(sqrt(s H W / r))``, each clipped to the image: torchvision redraws up to 10 times
instead) at a uniform position inside the image is set to ``value`` (a pixel value 0..255) or,
with ``value = -1``, to uniform random pixels.  uint8 (B, H, W, C) NHWC in and out; the erasing
is in pixel units, before normalisation (torchvision erases the normalised tensor, where 0 is the
mean).  ``prob`` 0: ``images`` unchanged.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def boxes(key, b: int, h: int, w: int, area=(0.02, 0.33), ratio=(0.3, 3.3)):
    """int32 (B, 4): ``(top, left, height, width)`` of each image's rectangle."""
    k_area, k_ratio, k_y, k_x = jax.random.split(key, 4)
    s = jax.random.uniform(k_area, (b,), jnp.float32, area[0], area[1]) * h * w
    r = jnp.exp(jax.random.uniform(k_ratio, (b,), jnp.float32, math.log(ratio[0]), math.log(ratio[1])))
    bh = jnp.clip(jnp.round(jnp.sqrt(s * r)), 1, h).astype(jnp.int32)
    bw = jnp.clip(jnp.round(jnp.sqrt(s / r)), 1, w).astype(jnp.int32)
    top = jnp.floor(jax.random.uniform(k_y, (b,)) * (h - bh + 1)).astype(jnp.int32)
    left = jnp.floor(jax.random.uniform(k_x, (b,)) * (w - bw + 1)).astype(jnp.int32)
    return jnp.stack([top, left, bh, bw], -1)


def box_masks(box, h: int, w: int):
    """bool (B, H, W, 1): inside each ``(top, left, height, width)`` row of ``box``."""
    ys, xs = jnp.arange(h)[None, :, None], jnp.arange(w)[None, None, :]
    t, l, bh, bw = (box[:, i, None, None] for i in range(4))
    return ((ys >= t) & (ys < t + bh) & (xs >= l) & (xs < l + bw))[..., None]


def random_erasing(key, images, prob: float = 0.5, area=(0.02, 0.33), ratio=(0.3, 3.3), value: int = 0):
    """``images`` with a random rectangle erased per image with probability ``prob`` (module docstring)."""
    if prob <= 0:
        return images
    b, h, w, c = images.shape
    k_apply, k_box, k_noise = jax.random.split(key, 3)
    mask = box_masks(boxes(k_box, b, h, w, area, ratio), h, w)
    mask = mask & jax.random.bernoulli(k_apply, prob, (b, 1, 1, 1))
    fill = (jax.random.randint(k_noise, images.shape, 0, 256).astype(jnp.uint8) if value < 0
            else jnp.asarray(value, jnp.uint8))
    return jnp.where(mask, fill, images)
