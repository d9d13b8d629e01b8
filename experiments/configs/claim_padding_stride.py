r"""Study, course claim (4): padding keeps the spatial size, stride shrinks it.

  python -m launch.sweep --config=experiments/configs/claim_padding_stride.py \
      --out=results/claims/padding_stride

padded_cnn with padding 2 / 0 (both 5x5 convs) x stride 1 / 2 (conv1), x seeds 0,1,2: 12 runs.
The sizes (``python -m experiments.summary --config.model_options.padding=0
--config.model_options.stride=2``):

  padding  stride  conv1    pool1  conv2  pool2  dense     params
  2        1       28x28    14     14     7      1568->10  28,938   (the default padded_cnn)
  0        1       24x24    12     8      4      512->10   18,378
  2        2       14x14    7      7      3      288->10   16,138
  0        2       12x12    6      2      1      32->10    13,578

The conv weights are the same in all four; only the dense layer follows the spatial size.
results.md lists each configuration's params, FLOPs and receptive field next to its accuracy.

SMALL BY DEFAULT (claims_base.py): ``--config.num_train=0 --config.epochs=15`` gives the
full-size study (~30x longer).

Runtime: measured figures in docs/experiments.md ("How long the studies take").
"""
from cnnjax.train import config
from experiments.configs import claims_base


def get_config():
    return claims_base.small_config()


# results.md compares every row with it, paired by seed
BASELINE = {"model_options.padding": 2, "model_options.stride": 1}


def get_sweep():
    return config.product(claims_base.SEEDS, config.sweep("model_options.padding", [2, 0]),
                          config.sweep("model_options.stride", [1, 2]))
