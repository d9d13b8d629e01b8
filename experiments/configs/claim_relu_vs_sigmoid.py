r"""Study, course claim (2): ReLU trains much faster than sigmoid.

  python -m launch.sweep --config=experiments/configs/claim_relu_vs_sigmoid.py \
      --out=results/claims/relu_vs_sigmoid

padded_cnn (28,938 params whatever the activation) with activation relu vs sigmoid, and tanh
as a third point, x seeds 0,1,2: 9 runs.  Only the activation changes (Adam 1e-3, batch 128,
max pooling).  Writes OUT/results.{md,csv,png} and OUT/curves.png (validation accuracy vs epoch,
mean ± std over seeds: the chart for this claim).

SMALL BY DEFAULT (claims_base.py): ``--config.num_train=0 --config.epochs=15`` gives the
full-size study (~30x longer).

Runtime: measured figures in docs/experiments.md ("How long the studies take").
"""
from cnnjax.train import config
from experiments.configs import claims_base


def get_config():
    return claims_base.small_config()


BASELINE = {"model_options.activation": "relu"}  # results.md compares every row with it, paired by seed


def get_sweep():
    return config.product(claims_base.SEEDS, config.sweep("model_options.activation", ["relu", "sigmoid", "tanh"]))
