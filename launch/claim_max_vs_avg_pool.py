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
from launch import claims

GRID = "pool=max,avg"
stages, main = claims.padded_cnn_study("claim_max_vs_avg_pool", GRID)

if __name__ == "__main__":
    main()
