r"""Course claim (3): max pooling vs average pooling.

  python -m launch.claim_max_vs_avg_pool --out=results/claims/max_vs_avg_pool --parallel=1
                                         [--base=num_train=0,epochs=15] [--dry_run]

padded_cnn (ReLU, 28,938 params, pooling has none) with pool max vs avg (both 2x2 stride 2),
x seeds 0,1,2: 6 runs; only the pooling changes.  Writes OUT/results.{md,csv,png} and
OUT/curves.png.

SMALL BY DEFAULT, to fit a shared 2-core CPU: the first 10,000 Fashion-MNIST training images
(num_train=10000; the full 10,000-image test set), 3 epochs.  ``--base=num_train=0,epochs=15``
gives the full-size study (~30x longer).

Runtime: MEASURED 3.3 min (196 s wall, 6 runs) with --parallel=1 on the shared 2-core dev VM
(load average 5-7 from other jobs, CPU conv fast path of cnnjax.fastconv), 2026-11-23.
"""
from launch import sweep

GRID = "pool=max,avg"
SEEDS = "0,1,2"
BASE = ("model=padded_cnn,dataset=fashion_mnist,num_train=10000,epochs=3,batch_size=128,"
        "learning_rate=1e-3,optimizer=adam")


def stages(base: str = "") -> list[sweep.Stage]:
    """The study's sweep stages (``base`` merged over BASE, as --base does)."""
    return [sweep.make_stage(GRID, base, SEEDS, BASE)]


if __name__ == "__main__":
    sweep.study("claim_max_vs_avg_pool", GRID, SEEDS, BASE, curves=True)
