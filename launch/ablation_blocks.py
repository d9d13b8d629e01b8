r"""Ablation of PaddedCNN's second conv block: plain 5x5, separable, dilated, grouped.

  python -m launch.ablation_blocks [--out=sweeps/ablation_blocks] [--parallel=N] [--shard=i/n]
                                   [--base=epochs=1,...] [--dry_run]

Models padded_cnn, separable_cnn, dilated_cnn, grouped_cnn (28,938 / 17,050 / 20,746 / 19,338
params) x seeds 0,1,2 on Fashion-MNIST, 5 epochs, Adam 1e-3, batch 128: 12 runs.
Results: OUT/results.md (accuracy vs params/FLOPs, mean ± std over seeds) and OUT/curves.png.

Runtime on a 2-core CPU: ESTIMATE ~35 min (12 runs x 5 epochs x 60k images at ~2,000 img/s
per run with two single-threaded runs in parallel, ~30 s per epoch; not yet measured at
full size).  Any flag of launch.sweep works here; --base keys override the study's base.
"""
from launch import sweep

GRID = "model=padded_cnn,separable_cnn,dilated_cnn,grouped_cnn"
SEEDS = "0,1,2"
BASE = "dataset=fashion_mnist,epochs=5,batch_size=128,learning_rate=1e-3,optimizer=adam"

if __name__ == "__main__":
    sweep.study("ablation_blocks", GRID, SEEDS, BASE, curves=True)
