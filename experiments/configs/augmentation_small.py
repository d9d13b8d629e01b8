r"""The slice of the augmentation study (augmentation.py) that was run: padded_cnn (the default
recipe, 15 epochs) on the first 1,000 and 5,000 Fashion-MNIST training images, the seven
augmentation settings, 3 seeds, paired by seed with ``none`` (today's default):

  nice -n 5 python -m launch.sweep --config=experiments/configs/augmentation_small.py \
      --out=results/augmentation_small --num_cpus=2 --cpus_per_run=1

42 runs.  Command, runtime and load: results/augmentation_small/README.md.
"""
from experiments.configs.augmentation import BASELINE, SETTINGS, get_config, grid  # noqa: F401


def get_sweep():
    return grid(["padded_cnn"], [1000, 5000])
