"""The default experiment: padded_cnn on Fashion-MNIST, Adam 1e-3 with a cosine schedule,
batch 50, label smoothing 0.1, 15 epochs, 10% of the training images held out for validation
(its measured test accuracy: docs/training.md, "Accuracy on Fashion-MNIST").

Every setting and its default is declared once, in :class:`cnnjax.train.config.TrainConfig`; a
config file returns it as a ConfigDict and changes only what differs (see recipes.py).

  python -m experiments.train --config=experiments/configs/default.py --workdir=workdirs/a \
      --config.learning_rate=3e-3 --config.model_options.activation=sigmoid
"""
from cnnjax.train import config


def get_config():
    return config.config_dict()
