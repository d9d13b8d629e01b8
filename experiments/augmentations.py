r"""Figures of the augmentation families: one batch, augmented, per family (docs/augmentation.md).

  python -m experiments.augmentations --out=docs/images
  python -m experiments.augmentations --out=figs --dataset=synthetic_color --images=6 --rows=4

Writes ``<out>/augment_<family>.png`` for each family of :mod:`cnnjax.augment` (flip_crop,
affine, randaugment, trivialaugment, erasing, mixup, cutmix): the batch's first ``--images``
training images in the top row, then ``--rows`` rows of the same batch augmented as the training
step would at steps 0, 1, ... of seed ``--seed`` (each row another step key); MixUp / CutMix
cells are titled with the weight of the image's own label.  Settings per family: ``FAMILIES``.
"""
from __future__ import annotations

import os

from absl import app, flags

_OUT = flags.DEFINE_string("out", "docs/images", "Directory the PNGs are written to.")
_DATASET = flags.DEFINE_string("dataset", "fashion_mnist", "Dataset whose first training images are shown.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Its directory (default: the system copy).")
_IMAGES = flags.DEFINE_integer("images", 8, "Images per row (the batch).")
_ROWS = flags.DEFINE_integer("rows", 3, "Augmented rows (steps) per figure.")
_SEED = flags.DEFINE_integer("seed", 0, "Run seed of the step keys.")

#: each family's settings (cnnjax.augment.Augmentation fields), as in the study's config
FAMILIES = {
    "flip_crop": dict(flip_crop="flip_crop", crop_padding=2),
    "affine": dict(affine_rotate=15.0, affine_translate=0.1, affine_scale=0.1, affine_shear=10.0,
                   interpolation="bilinear"),
    "randaugment": dict(policy="randaugment", randaugment_n=2, randaugment_m=9),
    "trivialaugment": dict(policy="trivialaugment"),
    "erasing": dict(erasing_prob=0.5),
    "mixup": dict(mix="mixup", mix_alpha=0.2),
    "cutmix": dict(mix="cutmix", mix_alpha=1.0),
}


def augmented_rows(images, family: str, rows: int, seed: int = 0):
    """[(uint8 or float images (B, H, W, C), weights (B,) or None)] for steps 0..rows-1: the
    batch as the training step augments it (keys from cnnjax.train.rng)."""
    import jax
    import jax.numpy as jnp
    from cnnjax.train import rng
    from cnnjax.augment import Augmentation
    aug = Augmentation(**FAMILIES[family])
    out = []
    for step in range(rows):
        key = rng.augment_key(rng.step_key(rng.run_key(seed), step))
        x = aug.pixels(key, jnp.asarray(images))
        weights = None
        if aug.mixes:
            x, weights = aug.mix_batch(key, x)
        out.append((jax.device_get(x), None if weights is None else jax.device_get(weights)))
    return out


def figure(images, family: str, rows: int, path: str, seed: int = 0) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    grid = [(images, None)] + augmented_rows(images, family, rows, seed)
    n = images.shape[0]
    fig, axes = plt.subplots(len(grid), n, figsize=(1.2 * n, 1.3 * len(grid)), squeeze=False)
    for r, (batch, weights) in enumerate(grid):
        for i in range(n):
            ax = axes[r][i]
            img = np.clip(np.asarray(batch[i], np.float32), 0, 255) / 255
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if weights is not None:
                ax.set_title(f"w={float(weights[i]):.2f}", fontsize=7)
        axes[r][0].set_ylabel("original" if r == 0 else f"step {r - 1}", fontsize=8)
    fig.suptitle(f"{family}: {FAMILIES[family]}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv):
    del argv
    from cnnjax import data as data_lib
    from cnnjax import xla_cpu
    del xla_cpu
    ds = data_lib.load(_DATASET.value, data_dir=_DATA_DIR.value)
    images = ds.train_images[:_IMAGES.value]
    os.makedirs(_OUT.value, exist_ok=True)
    for family in FAMILIES:
        print(figure(images, family, _ROWS.value, os.path.join(_OUT.value, f"augment_{family}.png"), _SEED.value))


if __name__ == "__main__":
    app.run(main)
