r"""Study: optimizer x learning rate on the padded CNN.

  python -m launch.sweep --config=experiments/configs/optimizers.py --out=sweeps/optimizers

optimizer sgd (momentum 0.9), adam, adamw x learning rate 1e-3, 1e-2, 1e-1 x seeds 0,1,
padded_cnn on Fashion-MNIST, 3 epochs, constant schedule, batch 128, weight decay 1e-4 for all
(L2 in the gradient for sgd/adam, decoupled for adamw: the adam/adamw difference): 18 runs.
Runs that diverge (NaN loss, trainer exit 3) are listed under the table as failed and make the
sweep exit 1; that is a result here, not a bug. OUT/curves.png shows test accuracy per epoch
for every configuration.

Runtime on a 2-core CPU: ESTIMATE ~60 min, not measured at full size. Measured throughput
(epoch 2 of a 7,680-image Fashion-MNIST run, two single-threaded runs in parallel on the shared
2-core dev VM, load average 4-6): padded_cnn 503 img/s -> ~126 s per 60k epoch; 18 runs x 3
epochs x 126 s / 2 in parallel ~ 57 min.
"""
from cnnjax.train import config


def get_config():
    return config.config_dict(model="padded_cnn", dataset="fashion_mnist", epochs=3, batch_size=128,
                              schedule="constant", weight_decay=1e-4)


BASELINE = {"optimizer": "adam"}  # results.md compares every row with it, paired by seed


def get_sweep():
    return config.product(config.sweep("seed", [0, 1]),
                          config.sweep("optimizer", ["sgd", "adam", "adamw"]),
                          config.sweep("learning_rate", [1e-3, 1e-2, 1e-1]))
