r"""Receptive field at a fixed parameter count: dilation of the second conv block.

  python -m launch.padding_stride [--out=sweeps/padding_stride] [--parallel=N] [--shard=i/n]
                                  [--base=epochs=1,...] [--dry_run]

dilated_cnn (3x3 conv2, 'same' padding, 20,746 params whatever the dilation) with dilation
1, 2, 3 -> the block sees a 3x3, 5x5, 7x7 extent; x pool max / avg (the stride-2 downsampling
layers) x seeds 0,1,2 on Fashion-MNIST, 5 epochs: 18 runs.  results.md lists each
configuration's receptive field next to its accuracy.

What exists limits the study: padding and stride are fixed inside the models (conv 'same'
padding, downsampling only by 2x2 pools).  To cover them I would add PaddedCNN options
``padding`` ('same' | 'valid' | int, for both convs) and ``conv2_stride`` (a stride-2 conv2
replacing pool2), then cross padding x stride x dilation here.

Runtime on a 2-core CPU: ESTIMATE ~50 min (18 runs x 5 epochs x 60k images, ~30 s per epoch
per run with two runs in parallel; not yet measured at full size).
"""
from launch import sweep

GRID = "dilation=1,2,3;pool=max,avg"
SEEDS = "0,1,2"
BASE = "model=dilated_cnn,dataset=fashion_mnist,epochs=5,batch_size=128,learning_rate=1e-3,optimizer=adam"

if __name__ == "__main__":
    sweep.study("padding_stride", GRID, SEEDS, BASE, curves=True)
