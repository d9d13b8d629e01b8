r"""Study: ablation of PaddedCNN's second conv block: plain 5x5, separable, dilated, grouped.

  python -m launch.sweep --config=experiments/configs/ablation_blocks.py --out=sweeps/ablation_blocks

Models padded_cnn, separable_cnn, dilated_cnn, grouped_cnn (28,938 / 17,050 / 20,746 / 19,338
params) x seeds 0,1,2 on Fashion-MNIST, 3 epochs, Adam 1e-3, batch 128: 12 runs.
Results: OUT/results.md (accuracy vs params/FLOPs, mean ± std over seeds) and OUT/curves.png.

Runtime on a 2-core CPU: ESTIMATE ~65 min, not measured at full size. Measured throughput
(epoch 2 of a 7,680-image Fashion-MNIST run, two single-threaded runs in parallel on the shared
2-core dev VM, load average 4-6): padded 503 img/s, separable 233, dilated 543, grouped 188 ->
one epoch of 60k (+10k test) ~125 / 270 / 115 / 340 s; 3 seeds x 3 epochs x 850 s / 2 in
parallel ~ 64 min plus ~15 s start-up per run. Separable and grouped are slow on CPU XLA
despite fewer FLOPs (depthwise / grouped convs).
"""
from cnnjax import config


def get_config():
    return config.config_dict(dataset="fashion_mnist", epochs=3, batch_size=128, learning_rate=1e-3,
                              optimizer="adam")


def get_sweep():
    return config.product(config.sweep("seed", [0, 1, 2]),
                          config.sweep("model", ["padded_cnn", "separable_cnn", "dilated_cnn", "grouped_cnn"]))
