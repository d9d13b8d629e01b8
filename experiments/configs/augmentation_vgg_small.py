r"""The vgg_bn slice of the augmentation study (augmentation.py) that was run: vgg_bn (its recipe,
20 epochs, batch 64, with the augmentation of the row) on the first 1,000 and 5,000 Fashion-MNIST
training images, the seven augmentation settings, 3 seeds, paired by seed with ``none``:

  python -m launch.sweep --config=experiments/configs/augmentation_vgg_small.py \
      --out=results/augmentation_vgg_small

42 runs (the 1,000-image half was run first, as 21 runs; the sweep then grew).  Command, runtime and load: results/augmentation_vgg_small/README.md.
"""
from experiments.configs.augmentation import BASELINE, SETTINGS, get_config, grid  # noqa: F401


def get_sweep():
    return grid(["vgg_bn"], [1000, 5000])
