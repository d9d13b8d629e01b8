r"""LeNet-5 (sigmoid, avg pool) vs the seed tutorial's net vs the padded CNN.

  python -m launch.lenet_vs_padded [--out=sweeps/lenet_vs_padded] [--parallel=N] [--shard=i/n]
                                   [--base=epochs=1,...] [--dry_run]

Models lenet5 (61,706 params), seed_net (8,490), padded_cnn (28,938) x seeds 0,1,2 on
Fashion-MNIST, 5 epochs, Adam 1e-3, batch 128: 9 runs.

Runtime on a 2-core CPU: ESTIMATE ~25 min (9 runs x 5 epochs x 60k images, ~30 s per epoch
per run with two runs in parallel; not yet measured at full size).
"""
from launch import sweep

GRID = "model=lenet5,seed_net,padded_cnn"
SEEDS = "0,1,2"
BASE = "dataset=fashion_mnist,epochs=5,batch_size=128,learning_rate=1e-3,optimizer=adam"

if __name__ == "__main__":
    sweep.study("lenet_vs_padded", GRID, SEEDS, BASE, curves=True)
