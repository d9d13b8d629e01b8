"""Named training recipes: ``--config=experiments/configs/recipes.py:NAME``.

  padded_cnn  the default config (target >= 91.5% on Fashion-MNIST, 15 epochs)
  vgg_bn      best under 100K params: VGG-style with batch norm and dropout (60,322 params),
              horizontal flips, label smoothing, Adam 2e-3 cosine, batch 64, 20 epochs
              (target >= 93.5%)

benchmarks.accuracy trains each recipe and checks its TARGETS; the measured accuracies (and
what did not help): docs/training.md, "Accuracy on Fashion-MNIST".
"""
from cnnjax.train import config

RECIPES = {
    "padded_cnn": {},
    "vgg_bn": dict(model="vgg_bn", epochs=20, batch_size=64, learning_rate=2e-3, schedule="cosine",
                   augment="flip", label_smoothing=0.1),
}
TARGETS = {"padded_cnn": 0.915, "vgg_bn": 0.935}  # Fashion-MNIST test accuracy each recipe must reach


def get_config(name: str = "padded_cnn"):
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; recipes: {', '.join(RECIPES)}")
    return config.config_dict(**RECIPES[name])
