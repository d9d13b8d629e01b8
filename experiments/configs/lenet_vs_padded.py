r"""Study: LeNet-5 (sigmoid, avg pool) vs the seed tutorial's net vs the padded CNN.

  python -m launch.sweep --config=experiments/configs/lenet_vs_padded.py --out=sweeps/lenet_vs_padded

Models lenet5 (61,706 params), seed_net (8,490), padded_cnn (28,938) x seeds 0,1,2 on
Fashion-MNIST, 5 epochs, Adam 1e-3, batch 128: 9 runs.

Runtime on a 2-core CPU: ESTIMATE ~25 min, not measured at full size. Measured throughput
(epoch 2 of a 7,680-image Fashion-MNIST run, two single-threaded runs in parallel on the shared
2-core dev VM, load average 4-6): lenet5 3,349 img/s, seed_net 1,814, padded_cnn 503 -> ~19 /
35 / 126 s per 60k epoch; 3 seeds x 5 epochs x 180 s / 2 in parallel ~ 23 min plus start-up.

Small version (course claim (5), docs/experiments.md): add ``--config.num_train=10000
--config.epochs=3`` (first 10,000 training images, 3 epochs): MEASURED 12.9 min
(776 s wall) through Ray on the shared 2-core dev VM (two runs at a time; 1/5/15-min load average
5.7/6.2/5.9 at the end, from other jobs; 10% validation split, label smoothing 0.1), 2026-11-23.
"""
from cnnjax import config


def get_config():
    return config.config_dict(dataset="fashion_mnist", epochs=5, batch_size=128, learning_rate=1e-3,
                              optimizer="adam")


BASELINE = {"model": "padded_cnn"}  # results.md compares every row with it, paired by seed


def get_sweep():
    return config.product(config.sweep("seed", [0, 1, 2]),
                          config.sweep("model", ["lenet5", "seed_net", "padded_cnn"]))
