r"""The full-size padded_cnn part of the augmentation study (augmentation.py): padded_cnn (the
default recipe, 15 epochs) on all 60,000 Fashion-MNIST training images (10% held out), the seven
augmentation settings, 3 seeds, paired by seed with ``none`` (today's default):

  nice -n 5 python -m launch.sweep --config=experiments/configs/augmentation_padded_full.py \
      --out=results/augmentation_padded_full --num_cpus=2 --cpus_per_run=1

21 runs.  The 1,000 and 5,000-image runs of the same model: augmentation_small.py.  Command,
runtime and load: results/augmentation_padded_full/README.md.
"""
from experiments.configs.augmentation import BASELINE, SETTINGS, get_config, grid  # noqa: F401


def get_sweep():
    return grid(["padded_cnn"], [0])
