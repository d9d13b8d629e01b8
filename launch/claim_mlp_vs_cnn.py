r"""Course claim (1): a fully connected network needs far more parameters than a CNN for the
same job, and generalises worse on images.

  python -m launch.claim_mlp_vs_cnn --out=results/claims/mlp_vs_cnn --parallel=1
                                    [--base=num_train=0,epochs=15] [--dry_run]

Four models x seeds 0,1,2 (12 runs), same training (Adam 1e-3, batch 128):

  seed_net                 conv-pool-conv-pool-dense              8,490 params
  padded_cnn               padded convs, dense 1568->10          28,938
  mlp hidden=35:35         784-35-35-10, as many params as the CNN 29,095
  mlp hidden=256:128       784-256-128-10 (the default mlp)      235,146

Writes OUT/results.{md,csv,png} (results.png: final test accuracy vs parameters, log x) and
OUT/curves.png.  metrics.jsonl of each run has train_accuracy next to test_accuracy for the
generalisation gap.

The grid is not a product (``hidden`` is an mlp option only), so the study is two sweep stages
in one OUT, as ``launch.sweep --extend`` would make them: ``model=seed_net,padded_cnn`` then
``model=mlp;hidden=35:35,256:128``.  --grid is refused; every other launch.sweep flag works
(--base keys are merged over the study's base).

SMALL BY DEFAULT, to fit a shared 2-core CPU: the first 10,000 Fashion-MNIST training images
(num_train=10000; the full 10,000-image test set), 3 epochs.  ``--base=num_train=0,epochs=15``
gives the full-size study (~30x longer).

Runtime: MEASURED 3.3 min (200 s wall, 12 runs) with --parallel=1 on the shared 2-core dev VM
(load average 5-7 from other jobs, CPU conv fast path of cnnjax.fastconv), 2026-11-23.
"""
import os
import shlex
import sys

from absl import flags

from experiments import common
from launch import claims, sweep

GRIDS = ("model=seed_net,padded_cnn", "model=mlp;hidden=35:35,256:128")
SEEDS = claims.SEEDS
BASE = claims.SMALL_BASE


def stages(base: str = "", seeds: str = SEEDS) -> list[sweep.Stage]:
    """The study's sweep stages (``base`` merged over BASE, as --base does)."""
    return [sweep.make_stage(grid, base, seeds, BASE) for grid in GRIDS]


def main(argv):
    f = flags.FLAGS
    if f["grid"].present:
        raise sweep.UsageError("this study's grids are fixed (see its docstring); use launch.sweep for others")
    if f.threads_per_run < 1 or f.parallel < 0:
        raise sweep.UsageError("--threads_per_run must be >= 1 and --parallel >= 0")
    out = os.path.abspath(f.out)
    todo = stages(f.base, f.seeds)
    shard_spec = sweep.parse_shard(f.shard)
    train_cmd = [sys.executable, "-m", f.train_module]
    if f.dry_run:  # the whole two-stage list, as the sweep will run it; writes nothing
        runs_all = sweep.expand(todo)
        runs = sweep.shard(runs_all, *shard_spec)
        print(f"{len(runs)} runs" + (f" (shard {shard_spec[0]}/{shard_spec[1]} of {len(runs_all)})"
                                     if shard_spec[1] > 1 else "") + f" in {out}")
        for r in runs:
            print(f"  {sweep.state(os.path.join(out, 'runs', r.name)):<28} {r.name}")
        if runs:
            print("first command: " + shlex.join(train_cmd + runs[0].argv(os.path.join(out, "runs", runs[0].name))))
        return 0
    # Stage by stage, like `launch.sweep --extend`: the combined run list starts with the first
    # stage's list, so a --shard slice of it holds the same first-stage runs as before.
    status = 0
    for i, stage in enumerate(todo):
        last = i == len(todo) - 1
        code = sweep.run_sweep(out, stage, extend=f.extend or i > 0, shard_spec=shard_spec,
                               parallel=f.parallel or sweep.default_parallel(f.threads_per_run),
                               threads_per_run=f.threads_per_run, limit_threads=f.limit_threads,
                               train_cmd=train_cmd, make_report=f.report and last, curves=f.curves)
        if code not in (0, 1):  # interrupted: stop here (rerun to resume)
            return code
        status = max(status, code)
    return status


if __name__ == "__main__":
    sweep.define_flags()
    flags.FLAGS.set_default("seeds", SEEDS)
    flags.FLAGS.set_default("out", os.path.join("sweeps", "claim_mlp_vs_cnn"))
    flags.FLAGS.set_default("curves", True)
    common.run(main)
