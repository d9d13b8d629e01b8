r"""Study, course claim (3): max pooling vs average pooling.

  python -m launch.sweep --config=experiments/configs/claim_max_vs_avg_pool.py \
      --out=results/claims/max_vs_avg_pool

padded_cnn (ReLU, 28,938 params, pooling has none) with pool max vs avg (both 2x2 stride 2),
x seeds 0,1,2: 6 runs; only the pooling changes.  Writes OUT/results.{md,csv,png} and
OUT/curves.png.

SMALL BY DEFAULT (claims_base.py): ``--config.num_train=0 --config.epochs=15`` gives the
full-size study (~30x longer).

Runtime: MEASURED 6.6 min (397 s wall, 6 runs) through Ray on the shared 2-core dev VM (two runs
at a time, 1 CPU each; 1/5/15-min load average 5.3/5.9/6.5 at the end, from other jobs; CPU conv fast
path of cnnjax.fastconv; 10% validation split, label smoothing 0.1), 2026-11-23.
"""
from cnnjax import config
from experiments.configs import claims_base


def get_config():
    return claims_base.small_config()


BASELINE = {"model_options.pool": "max"}  # results.md compares every row with it, paired by seed


def get_sweep():
    return config.product(claims_base.SEEDS, config.sweep("model_options.pool", ["max", "avg"]))
