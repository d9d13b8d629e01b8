r"""Study, course claim (3): max pooling vs average pooling.

  python -m launch.sweep --config=experiments/configs/claim_max_vs_avg_pool.py \
      --out=results/claims/max_vs_avg_pool

padded_cnn (ReLU, 28,938 params, pooling has none) with pool max vs avg (both 2x2 stride 2),
x seeds 0,1,2: 6 runs; only the pooling changes.  Writes OUT/results.{md,csv,png} and
OUT/curves.png.

SMALL BY DEFAULT (claims_base.py): ``--config.num_train=0 --config.epochs=15`` gives the
full-size study (~30x longer).

Runtime: measured figures in docs/experiments.md ("How long the studies take").
"""
from cnnjax.train import config
from experiments.configs import claims_base


def get_config():
    return claims_base.small_config()


BASELINE = {"model_options.pool": "max"}  # results.md compares every row with it, paired by seed


def get_sweep():
    return config.product(claims_base.SEEDS, config.sweep("model_options.pool", ["max", "avg"]))
