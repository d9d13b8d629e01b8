r"""Study (issue 38, point 4): which augmentations help on Fashion-MNIST, and by how much?

The full grid: padded_cnn (the default recipe: Adam 1e-3 cosine, batch 50, 15 epochs, label
smoothing 0.1) and vgg_bn (its recipe, recipes.py:vgg_bn, but with the augmentation of the row)
on the first 1,000 / 5,000 / all 60,000 training images (10% held out for validation), for each
augmentation of SETTINGS, 3 seeds, every row paired by seed with ``none`` (today's default) of
the same model and size:

  python -m launch.sweep --config=experiments/configs/augmentation.py --out=results/augmentation \
      --cpus_per_run=1

126 runs; on the 2-core machine the full-size ones take ~5 min (padded_cnn) and ~35 min
(vgg_bn) each, so the grid did not fit the issue's session.  What was run is the slice in
augmentation_small.py (padded_cnn at 1,000 and 5,000 images): results/augmentation_small/.

Settings (changes from the recipe; the others keep it):
  none            no augmentation (padded_cnn's default; vgg_bn's recipe flips)
  flip_crop       random horizontal flip + 2-pixel-shift crop (today's flip_crop)
  randaugment     RandAugment N=2, M=9 (torchvision's defaults), nearest, fill 0
  trivialaugment  TrivialAugmentWide
  mixup           MixUp, alpha 0.2 (torchvision's reference recipes), every image
  cutmix          CutMix, alpha 1.0, every image
  erasing         random erasing, p 0.5, area 2-33%, black (value 0)
"""
from cnnjax.train import config

_OFF = dict(augment="none", augment_policy="none", mix="none", mix_alpha=1.0, erasing_prob=0.0)
SETTINGS = {
    "none": dict(_OFF),
    "flip_crop": dict(_OFF, augment="flip_crop"),
    "randaugment": dict(_OFF, augment_policy="randaugment"),
    "trivialaugment": dict(_OFF, augment_policy="trivialaugment"),
    "mixup": dict(_OFF, mix="mixup", mix_alpha=0.2),
    "cutmix": dict(_OFF, mix="cutmix", mix_alpha=1.0),
    "erasing": dict(_OFF, erasing_prob=0.5),
}
MODELS = {
    "padded_cnn": dict(model="padded_cnn", epochs=15, batch_size=50, learning_rate=1e-3),
    "vgg_bn": dict(model="vgg_bn", epochs=20, batch_size=64, learning_rate=2e-3),
}
SIZES = [1000, 5000, 0]
SEEDS = [0, 1, 2]
BASELINE = SETTINGS["none"]  # results.md pairs every row with it, by seed, within model and size


def get_config():
    return config.config_dict(model="padded_cnn", dataset="fashion_mnist", validation_size=0.1,
                              label_smoothing=0.1, schedule="cosine")


def grid(models, sizes, seeds=SEEDS) -> list[dict]:
    """Seed-major (an interrupted sweep has one seed of everything first), small sizes first."""
    return config.product(config.sweep("seed", seeds), [MODELS[m] for m in models],
                          config.sweep("num_train", sizes), list(SETTINGS.values()))


def get_sweep():
    return grid(list(MODELS), SIZES)
