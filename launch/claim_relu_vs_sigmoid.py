r"""Course claim (2): ReLU trains much faster than sigmoid.

  python -m launch.claim_relu_vs_sigmoid --out=results/claims/relu_vs_sigmoid --parallel=1
                                         [--base=num_train=0,epochs=15] [--dry_run]

padded_cnn (28,938 params whatever the activation) with activation relu vs sigmoid, and tanh
as a third point, x seeds 0,1,2: 9 runs.  Only the activation changes (Adam 1e-3, batch 128,
max pooling).  Writes OUT/results.{md,csv,png} and OUT/curves.png (test accuracy vs epoch,
mean ± std over seeds: the chart for this claim).

SMALL BY DEFAULT, to fit a shared 2-core CPU: the first 10,000 Fashion-MNIST training images
(num_train=10000; the full 10,000-image test set), 3 epochs.  ``--base=num_train=0,epochs=15``
gives the full-size study (~30x longer).

Runtime: MEASURED 5.4 min (327 s wall, 9 runs) with --parallel=1 on the shared 2-core dev VM
(load average 5-7 from other jobs, CPU conv fast path of cnnjax.fastconv), 2026-11-23.
"""
from launch import claims

GRID = "activation=relu,sigmoid,tanh"
stages, main = claims.padded_cnn_study("claim_relu_vs_sigmoid", GRID)

if __name__ == "__main__":
    main()
