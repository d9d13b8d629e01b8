r"""Study, course claim (seeds 002/003, "平移不变性"): a CNN handles shifted inputs where a fully
connected net does not.

  python -m launch.sweep --config=experiments/configs/claim_shift_invariance.py --out=OUT
  python -m launch.invariance --out=OUT --shifts=4 --test_images=2500   # -> OUT/invariance.{md,csv,png}

Five networks x seeds 0,1,2 (15 runs), trained the same way WITHOUT shift augmentation
(``augment='none'``): every training image is centred as Fashion-MNIST centres it.

  mlp                          784-256-128-10, no spatial structure        235,146 params
  lenet5                       sigmoid, avg pool (the course's LeNet-5)     61,706
  padded_cnn pool=max          5x5 convs padded, max pool 2 (x2), dense      28,938
  padded_cnn pool=avg          the same with average pooling                28,938
  padded_cnn stride=2          conv1 strides 2 (the strided net), max pool  16,138

Every CNN here ends in a dense layer on the flattened feature map (none has a global pool), so
none is shift-invariant by construction: the study measures how much of the invariance the
course claims the convs and pools give.  ``launch.invariance`` then scores each run's
validation-selected checkpoint on the test set shifted 0..4 px up, down, left and right (zero
fill, :mod:`cnnjax.interpret.shift`).

Budget: the full 54,000 training images (6,000 held out for validation), 3 epochs, Adam 1e-3,
batch 128, label smoothing 0.1 (the claims' training, claims_base.py, on all the data).

Runtime: docs/experiments.md ("How long the studies take"); results in results/invariance, the
verdict in docs/explain.md.
"""
from cnnjax.train import config
from experiments.configs import claims_base

NETWORKS = [
    {"model": "mlp"},
    {"model": "lenet5"},
    {"model": "padded_cnn", "model_options.pool": "max"},
    {"model": "padded_cnn", "model_options.pool": "avg"},
    {"model": "padded_cnn", "model_options.stride": 2},
]


def get_config():
    cfg = claims_base.small_config()
    cfg.num_train, cfg.augment = 0, "none"  # all the training images; no shifts in training
    return cfg


BASELINE = {"model": "mlp"}  # results.md compares every row with the fully connected net, paired by seed


def get_sweep():
    return config.product(claims_base.SEEDS, NETWORKS)
