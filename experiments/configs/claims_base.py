"""What the course-claim studies (claim_*.py, docs/experiments.md) share; not a config file itself.

SMALL BY DEFAULT, to fit a shared 2-core CPU: padded_cnn on the first 10,000 Fashion-MNIST
training images (the full 10,000-image test set), 3 epochs, Adam 1e-3, batch 128, seeds 0,1,2.
``--config.num_train=0 --config.epochs=15`` turns any claim study into the full-size one
(~30x longer).
"""
from cnnjax.train import config

SEEDS = config.sweep("seed", [0, 1, 2])


def small_config():
    """The claims' base run: padded_cnn on the small Fashion-MNIST budget above."""
    return config.config_dict(model="padded_cnn", dataset="fashion_mnist", num_train=10000, epochs=3,
                              batch_size=128, learning_rate=1e-3, optimizer="adam")
