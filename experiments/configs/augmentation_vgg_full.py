r"""The full-size vgg_bn part of the augmentation study (augmentation.py): vgg_bn (its recipe, 20
epochs, batch 64, with the augmentation of the row) on all 60,000 Fashion-MNIST training images
(10% held out), the seven augmentation settings, 3 seeds, paired by seed with ``none``:

  nice -n 5 python -m launch.sweep --config=experiments/configs/augmentation_vgg_full.py \
      --out=results/augmentation_vgg_full --num_cpus=2 --cpus_per_run=1

21 runs; NOT RUN yet: ESTIMATE ~4 h on the 2-core VM (vgg_bn took 110-140 s a run at 5,000 images,
two at a time, so ~20-25 min a run here).  The last part of the grid not run; the others:
augmentation_small.py, augmentation_padded_full.py, augmentation_vgg_small.py.
"""
from experiments.configs.augmentation import BASELINE, SETTINGS, get_config, grid  # noqa: F401


def get_sweep():
    return grid(["vgg_bn"], [0])
