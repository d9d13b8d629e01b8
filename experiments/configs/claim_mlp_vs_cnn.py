r"""Study, course claim (1): a fully connected network needs far more parameters than a CNN for
the same job, and generalises worse on images.

  python -m launch.sweep --config=experiments/configs/claim_mlp_vs_cnn.py \
      --out=results/claims/mlp_vs_cnn

Four configurations x seeds 0,1,2 (12 runs), same training (claims_base.py: Adam 1e-3, batch 128):

  seed_net                 conv-pool-conv-pool-dense              8,490 params
  padded_cnn               padded convs, dense 1568->10          28,938
  mlp hidden=(35, 35)      784-35-35-10, as many params as the CNN 29,095
  mlp hidden=(256, 128)    784-256-128-10 (the default mlp)      235,146

The grid is not a product (``hidden`` is an mlp option only): it is the two CNNs plus the
product of mlp with two ``hidden`` sizes.  Writes OUT/results.{md,csv,png} (results.png: final
test accuracy vs parameters, log x) and OUT/curves.png.  metrics.jsonl of each run has
each epoch's train_accuracy (summary.json the final test accuracy) for the generalisation gap.

SMALL BY DEFAULT (claims_base.py): ``--config.num_train=0 --config.epochs=15`` gives the
full-size study (~30x longer).

Runtime: measured figures in docs/experiments.md ("How long the studies take").
"""
from cnnjax.train import config
from experiments.configs import claims_base


def get_config():
    return claims_base.small_config()


BASELINE = {"model": "padded_cnn"}  # results.md compares every row with it, paired by seed


def get_sweep():
    cnns = config.sweep("model", ["seed_net", "padded_cnn"])
    mlps = config.product(config.sweep("model", ["mlp"]),
                          config.sweep("model_options.hidden", [(35, 35), (256, 128)]))
    return config.product(claims_base.SEEDS, cnns + mlps)
