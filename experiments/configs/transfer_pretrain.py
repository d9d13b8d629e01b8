r"""Study, course claim (seed 003) "a pretrained CNN classifies well from very few samples", stage 1
of 2: pretrain on Fashion-MNIST classes 0-4 (T-shirt, trouser, pullover, dress, coat), all their
training images less a 10% validation split, one network per model and seed.

  python -m launch.sweep --config=experiments/configs/transfer_pretrain.py --out=results/transfer/pretrain
  python -m launch.sweep --config=experiments/configs/transfer.py --out=results/transfer/transfer

Stage 2 (transfer.py) learns classes 5-9 from few images, starting from these runs.  2 models x
5 seeds = 10 runs.  Results and verdict: docs/transfer.md, results/transfer/.
"""
from cnnjax.train import config

SEEDS = config.sweep("seed", [0, 1, 2, 3, 4])
MODELS = ["padded_cnn", "vgg_bn"]
PRETRAIN_CLASSES = (0, 1, 2, 3, 4)


def get_config():
    return config.config_dict(dataset="fashion_mnist", classes=PRETRAIN_CLASSES, epochs=10, batch_size=128,
                              learning_rate=1e-3, optimizer="adam", validation_size=0.1)


def get_sweep():
    return config.product(SEEDS, config.sweep("model", MODELS))
