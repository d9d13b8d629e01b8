"""Random horizontal flips and padded crops: ``config.augment`` (none, flip, crop, flip_crop).

Moved here unchanged from ``cnnjax.train.step.augment_batch`` (which still re-exports it): the same
key use, so runs made before the move are reproduced bit for bit.  Ours (plain jnp/lax).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

KINDS = ("none", "flip", "crop", "flip_crop")


def flip_crop(rng, images, kind: str, pad: int = 2):
    """``images`` (uint8 (B, H, W, C), any C) randomly flipped left-right (p = 0.5 per image)
    and/or zero-padded by ``pad`` pixels per side and cropped back to H x W at a uniform offset,
    per ``kind`` (one of :data:`KINDS`).  Key use: with flips, ``split(rng)``'s second key
    draws the flips and its first the crops; without, ``rng`` draws the crops.  Same dtype and
    shape; 'none' returns ``images``."""
    if kind not in KINDS:
        raise ValueError(f"augment kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind in ("flip", "flip_crop"):
        rng, sub = jax.random.split(rng)
        flip = jax.random.bernoulli(sub, 0.5, (images.shape[0], 1, 1, 1))
        images = jnp.where(flip, images[:, :, ::-1, :], images)
    if kind in ("crop", "flip_crop"):
        b, h, w, _ = images.shape
        padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        offsets = jax.random.randint(rng, (b, 2), 0, 2 * pad + 1)
        crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, img.shape[-1]))
        images = jax.vmap(crop)(padded, offsets)
    return images
