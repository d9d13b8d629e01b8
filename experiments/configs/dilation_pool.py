r"""Study: receptive field at a fixed parameter count: dilation of the second conv block.

  python -m launch.sweep --config=experiments/configs/dilation_pool.py --out=sweeps/dilation_pool

dilated_cnn (3x3 conv2, 'same' padding, 20,746 params whatever the dilation) with dilation
1, 2, 3 -> the block sees a 3x3, 5x5, 7x7 extent; x pool max / avg (the stride-2 downsampling
layers) x seeds 0,1,2 on Fashion-MNIST, 3 epochs: 18 runs.  results.md lists each
configuration's receptive field next to its accuracy.

Padding and stride (PaddedCNN's ``padding`` and ``stride`` options) are crossed in
claim_padding_stride.py; this study varies dilation and the pooling type.

Runtime on a 2-core CPU: ESTIMATE ~55 min, not measured at full size. Measured throughput
(epoch 2 of a 7,680-image Fashion-MNIST run, two single-threaded runs in parallel on the shared
2-core dev VM, load average 4-6): dilated_cnn 543 img/s -> ~117 s per 60k epoch; 18 runs x 3
epochs x 117 s / 2 in parallel ~ 53 min.
"""
from cnnjax.train import config


def get_config():
    return config.config_dict(model="dilated_cnn", dataset="fashion_mnist", epochs=3, batch_size=128,
                              learning_rate=1e-3, optimizer="adam")


BASELINE = {"model_options.pool": "max"}  # results.md compares every row with it, paired by seed


def get_sweep():
    return config.product(config.sweep("seed", [0, 1, 2]),
                          config.sweep("model_options.dilation", [1, 2, 3]),
                          config.sweep("model_options.pool", ["max", "avg"]))
