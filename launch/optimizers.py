r"""Optimizer x learning rate on the padded CNN.

  python -m launch.optimizers [--out=sweeps/optimizers] [--parallel=N] [--shard=i/n]
                              [--base=epochs=1,...] [--dry_run]

optimizer sgd (momentum 0.9), adam, adamw (weight decay 1e-4) x learning rate 1e-3, 3e-3,
1e-2, 3e-2 x seeds 0,1, padded_cnn on Fashion-MNIST, 3 epochs, constant schedule, batch
128: 24 runs.  OUT/curves.png shows test accuracy per epoch for every configuration.

Runtime on a 2-core CPU: ESTIMATE ~40 min (24 runs x 3 epochs x 60k images, ~30 s per epoch
per run with two runs in parallel; not yet measured at full size).
"""
from launch import sweep

GRID = "optimizer=sgd,adam,adamw;learning_rate=1e-3,3e-3,1e-2,3e-2"
SEEDS = "0,1"
BASE = "model=padded_cnn,dataset=fashion_mnist,epochs=3,batch_size=128,schedule=constant,weight_decay=1e-4"

if __name__ == "__main__":
    sweep.study("optimizers", GRID, SEEDS, BASE, curves=True)
