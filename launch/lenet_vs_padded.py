r"""LeNet-5 (sigmoid, avg pool) vs the seed tutorial's net vs the padded CNN.

  python -m launch.lenet_vs_padded [--out=sweeps/lenet_vs_padded] [--parallel=N] [--shard=i/n]
                                   [--base=epochs=1,...] [--dry_run]

Models lenet5 (61,706 params), seed_net (8,490), padded_cnn (28,938) x seeds 0,1,2 on
Fashion-MNIST, 5 epochs, Adam 1e-3, batch 128: 9 runs.

Runtime on a 2-core CPU: ESTIMATE ~25 min, not measured at full size. Measured throughput
(epoch 2 of a 7,680-image Fashion-MNIST run, two single-threaded runs in parallel on the shared
2-core dev VM, load average 4-6): lenet5 3,349 img/s, seed_net 1,814, padded_cnn 503 -> ~19 /
35 / 126 s per 60k epoch; 3 seeds x 5 epochs x 180 s / 2 in parallel ~ 23 min plus start-up.

Small version (course claim (5), docs/experiments.md): ``--base=num_train=10000,epochs=3
--parallel=1`` (first 10,000 training images, 3 epochs): MEASURED 6.8 min (409 s wall) on the
shared 2-core dev VM, load average 5-7, 2026-11-23.

Every flag of launch.sweep works here (--out, --parallel, --shard, --dry_run, ...); --base
keys are merged over the study's base.
"""
from launch import sweep

GRID = "model=lenet5,seed_net,padded_cnn"
SEEDS = "0,1,2"
BASE = "dataset=fashion_mnist,epochs=5,batch_size=128,learning_rate=1e-3,optimizer=adam"

if __name__ == "__main__":
    sweep.study("lenet_vs_padded", GRID, SEEDS, BASE, curves=True)
