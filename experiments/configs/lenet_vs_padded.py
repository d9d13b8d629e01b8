r"""Study: LeNet-5 (sigmoid, avg pool) vs the seed tutorial's net vs the padded CNN.

  python -m launch.sweep --config=experiments/configs/lenet_vs_padded.py --out=sweeps/lenet_vs_padded

Models lenet5 (61,706 params), seed_net (8,490), padded_cnn (28,938) x seeds 0,1,2 on
Fashion-MNIST, 5 epochs, Adam 1e-3, batch 128: 9 runs.

Small version (course claim (5), docs/experiments.md): add ``--config.num_train=10000
--config.epochs=3`` (the first 10,000 training images, 3 epochs).

Runtime: measured figures in docs/experiments.md ("How long the studies take").
"""
from cnnjax.train import config


def get_config():
    return config.config_dict(dataset="fashion_mnist", epochs=5, batch_size=128, learning_rate=1e-3,
                              optimizer="adam")


BASELINE = {"model": "padded_cnn"}  # results.md compares every row with it, paired by seed


def get_sweep():
    return config.product(config.sweep("seed", [0, 1, 2]),
                          config.sweep("model", ["lenet5", "seed_net", "padded_cnn"]))
