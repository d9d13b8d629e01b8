r"""Receptive field at a fixed parameter count: dilation of the second conv block.

  python -m launch.dilation_pool [--out=sweeps/dilation_pool] [--parallel=N] [--shard=i/n]
                                 [--base=epochs=1,...] [--dry_run]

dilated_cnn (3x3 conv2, 'same' padding, 20,746 params whatever the dilation) with dilation
1, 2, 3 -> the block sees a 3x3, 5x5, 7x7 extent; x pool max / avg (the stride-2 downsampling
layers) x seeds 0,1,2 on Fashion-MNIST, 3 epochs: 18 runs.  results.md lists each
configuration's receptive field next to its accuracy.

Padding and stride (PaddedCNN's ``padding`` and ``stride`` options) are crossed in
``launch.claim_padding_stride``; this study varies dilation and the pooling type.

Runtime on a 2-core CPU: ESTIMATE ~55 min, not measured at full size. Measured throughput
(epoch 2 of a 7,680-image Fashion-MNIST run, two single-threaded runs in parallel on the shared
2-core dev VM, load average 4-6): dilated_cnn 543 img/s -> ~117 s per 60k epoch; 18 runs x 3
epochs x 117 s / 2 in parallel ~ 53 min.

Every flag of launch.sweep works here (--out, --parallel, --shard, --dry_run, ...); --base
keys are merged over the study's base.
"""
from launch import sweep

GRID = "dilation=1,2,3;pool=max,avg"
SEEDS = "0,1,2"
BASE = "model=dilated_cnn,dataset=fashion_mnist,epochs=3,batch_size=128,learning_rate=1e-3,optimizer=adam"

if __name__ == "__main__":
    sweep.study("dilation_pool", GRID, SEEDS, BASE, curves=True)
