r"""Study: ablation of PaddedCNN's second conv block: plain 5x5, separable, dilated, grouped.

  python -m launch.sweep --config=experiments/configs/ablation_blocks.py --out=sweeps/ablation_blocks

Models padded_cnn, separable_cnn, dilated_cnn, grouped_cnn (28,938 / 17,050 / 20,746 / 19,338
params) x seeds 0,1,2 on Fashion-MNIST, 3 epochs, Adam 1e-3, batch 128: 12 runs.
Results: OUT/results.md (accuracy vs params/FLOPs, mean ± std over seeds) and OUT/curves.png.

A committed run: results/ablation_blocks (``--out=results/ablation_blocks``).  Runtime: measured
figures in docs/experiments.md ("How long the studies take").
"""
from cnnjax.train import config


def get_config():
    return config.config_dict(dataset="fashion_mnist", epochs=3, batch_size=128, learning_rate=1e-3,
                              optimizer="adam")


BASELINE = {"model": "padded_cnn"}  # results.md compares every row with it, paired by seed


def get_sweep():
    return config.product(config.sweep("seed", [0, 1, 2]),
                          config.sweep("model", ["padded_cnn", "separable_cnn", "dilated_cnn", "grouped_cnn"]))
