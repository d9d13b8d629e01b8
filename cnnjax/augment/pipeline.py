"""The augmentation of one training batch: which families run, in which order, with which key.

:class:`Augmentation` holds every family's parameters (the step builds it from the run's
config; this package never reads the config).  A batch goes through

1. ``flip_crop`` (``config.augment``)  -- key: the augmentation key itself, as before the other
   families existed, so runs with only flips/crops are unchanged bit for bit;
2. ``affine`` (random rotation, translation, scale, shear)  -- ``fold_in(key, FAMILY["affine"])``;
3. ``policy`` (RandAugment or TrivialAugment)               -- ``fold_in(key, FAMILY["policy"])``;
4. ``erasing`` (random erasing / Cutout)                    -- ``fold_in(key, FAMILY["erasing"])``;

on uint8 pixels (:meth:`Augmentation.pixels`), then, after normalisation,

5. ``mix`` (MixUp / CutMix)                                 -- ``fold_in(key, FAMILY["mix"])``

(:meth:`Augmentation.mix_batch`), which also returns the label weights of the loss.  ``key`` is the
step's augmentation key (``cnnjax.train.rng.augment_key``); the sub-stream constants below are pinned
in tests/test_rng.py: changing one changes every seeded run that uses the family.
"""
from __future__ import annotations

import dataclasses

import jax

from cnnjax.augment import erasing, flip_crop, geometric, mixing, policies

#: sub-streams of the augmentation key, one per family (flip_crop uses the key itself)
FAMILY = {"affine": 1, "policy": 2, "erasing": 3, "mix": 4}
POLICIES = ("none", "randaugment", "trivialaugment")


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Every family's parameters; the defaults do nothing.  Units: degrees, fractions of the
    side (``affine_translate``), pixel values 0..255 (``fill``, ``erasing_value``; -1 = noise)."""
    flip_crop: str = "none"
    crop_padding: int = 2
    affine_rotate: float = 0.0
    affine_translate: float = 0.0
    affine_scale: float = 0.0
    affine_shear: float = 0.0
    interpolation: str = "nearest"
    fill: int = 0
    policy: str = "none"
    randaugment_n: int = 2
    randaugment_m: int = 9
    erasing_prob: float = 0.0
    erasing_area: tuple = (0.02, 0.33)
    erasing_value: int = 0
    mix: str = "none"
    mix_alpha: float = 1.0
    mix_prob: float = 1.0

    def __post_init__(self):
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")

    @property
    def mixes(self) -> bool:
        return self.mix != "none" and self.mix_prob > 0

    def pixels(self, key, images):
        """uint8 (B, H, W, C) ``images`` through families 1-4 (module docstring)."""
        if self.flip_crop != "none":
            images = flip_crop.flip_crop(key, images, self.flip_crop, self.crop_padding)
        sub = lambda family: jax.random.fold_in(key, FAMILY[family])
        images = geometric.random_affine(sub("affine"), images, rotate=self.affine_rotate,
                                         translate=self.affine_translate, scale=self.affine_scale,
                                         shear=self.affine_shear, interpolation=self.interpolation, fill=self.fill)
        if self.policy == "randaugment":
            images = policies.rand_augment(sub("policy"), images, self.randaugment_n, self.randaugment_m,
                                           self.interpolation, self.fill)
        elif self.policy == "trivialaugment":
            images = policies.trivial_augment(sub("policy"), images, self.interpolation, self.fill)
        if self.erasing_prob > 0:
            images = erasing.random_erasing(sub("erasing"), images, self.erasing_prob, tuple(self.erasing_area),
                                            value=self.erasing_value)
        return images

    def mix_batch(self, key, x):
        """(float32 mixed ``x``, float32 (B,) label weights) of family 5 (:mod:`cnnjax.augment.mixing`)."""
        return mixing.mix(jax.random.fold_in(key, FAMILY["mix"]), x, self.mix, self.mix_alpha, self.mix_prob)


