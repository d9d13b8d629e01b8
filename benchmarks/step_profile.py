"""Where one training step's time goes: the XLA operations of a config's jitted training step,
by time per step, with their output shapes and the model code they come from; and what a run
pays once (parameter init, whitening init, compiling the training and evaluation steps).

    python -m benchmarks.step_profile --config=experiments/configs/speedrun.py:0.915
    python -m benchmarks.step_profile --config=experiments/configs/default.py --set batch_size=256 --top=40

The step is cnnjax's own (:func:`cnnjax.train.experiment.build`, :func:`cnnjax.train.loop.make_indexed_step`:
gather, augmentation, normalisation, forward, backward, optimizer, EMA) on the config's training
images, after ``xla_cpu.configure()`` as the trainer runs it.  It prints the step's median wall
time over ``--rounds`` rounds of ``--steps`` steps, then runs ``--steps`` more under
``jax.profiler`` and lists the operations (XLA fusions, YNNPACK calls) by time per step.  Not
attributed: convolutions XLA hands to Eigen's thread pool (the default with ``xla_cpu.FLAGS``)
-- their events end when the work is queued (a 3x3 conv at batch 256 shows 0.5 ms of its ~3) --
so wall time minus the listed sum is mostly convolutions, plus dispatch.  Shapes and op names
come from the optimised HLO, dumped to a temporary directory (``--xla_dump_to``).  Under the
profiler the step runs slower than it does alone; read the list for shares, not for absolute
times.  The config's dataset is loaded as the trainer loads it (:func:`cnnjax.train.experiment.build`:
its shape, statistics and, with ``whiten_init``, the whitening images); the timed steps gather
from its first 16 batches of training images and labels (XLA's kernels take the same time on
noise; PyTorch's would not: benchmarks/RESULTS.md).
"""
from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import statistics
import sys
import tempfile
import time

from benchmarks import machine

#: profiler events that are bookkeeping, not XLA operations
_NOT_OPS = ("ThunkExecutor", "ThreadpoolListener", "SlinkyThreadPool", "CommonPjRtLoadedExecutable", "ParseArguments",
            "PjitFunction", "$", "end: ")


def hlo_ops(dump_dir: str) -> dict[str, tuple[str, str]]:
    """{instruction name: (output shape, op_name metadata)} of the dumped optimised training step."""
    files = sorted(glob.glob(os.path.join(dump_dir, "*jit_indexed_train_step*after_optimizations.txt")))
    if not files:
        return {}
    text = open(files[-1]).read()
    ops = {}
    for line in text.splitlines():
        m = re.match(r"\s+(?:ROOT )?%?([\w.\-]+) = (\S+) ", line)
        if m:
            op = re.search(r'op_name="([^"]*)"', line)
            ops[m.group(1)] = (m.group(2), op.group(1) if op else "")
    return ops


def profile_ops(trace_dir: str, steps: int) -> dict[str, float]:
    """{operation: milliseconds per step} from the Perfetto trace ``jax.profiler`` wrote."""
    path = glob.glob(os.path.join(trace_dir, "plugins", "profile", "*", "perfetto_trace.json.gz"))[0]
    events = json.load(gzip.open(path))
    events = events["traceEvents"] if isinstance(events, dict) else events
    per_op = collections.defaultdict(float)
    for e in events:
        if e.get("ph") == "X" and not e["name"].startswith(_NOT_OPS):
            per_op[e["name"]] += e.get("dur", 0) / 1e3 / steps
    return per_op


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="experiments/configs/speedrun.py:0.915", help="config file FILE[:ARG]")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="override a setting")
    ap.add_argument("--steps", type=int, default=10, help="steps per timed round and under the profiler")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--top", type=int, default=25, help="operations listed")
    args = ap.parse_args(argv)
    dump = tempfile.mkdtemp(prefix="cnnjax_hlo_")
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_dump_to={dump}".strip()
    from cnnjax import xla_cpu
    xla_cpu.configure()
    import jax
    import numpy as np

    from benchmarks import speedrun_torch
    from cnnjax.train import evaluation, experiment, loop, state as train_state, whitening
    from experiments import common
    try:
        cfg = speedrun_torch.load_config(args.config, args.set)
        s = experiment.build(cfg)  # its ValueErrors: e.g. a batch larger than the training set
    except (common.UsageError, ValueError, json.JSONDecodeError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        sys.exit(2)
    ds, batch = s.data, cfg.batch_size
    fixed = {}  # seconds of what a run does once, inside a speedrun's clock
    t0 = time.perf_counter()
    state = jax.block_until_ready(train_state.init_state(s.model, s.tx, cfg.seed, ds.image_shape, ema=cfg.ema_decay > 0))
    fixed["init_state"] = time.perf_counter() - t0
    if cfg.whiten_init:
        t0 = time.perf_counter()
        state = jax.block_until_ready(whitening.init_whitening(state, ds.train_images, ds.mean, ds.std))
        fixed["init_whitening"] = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    batches = min(16, s.steps_per_epoch)
    n = batches * batch
    images = jax.device_put(ds.train_images[:n])
    labels = jax.device_put(ds.train_labels[:n].astype(np.int32))
    order = jax.device_put(rng.permutation(n).astype(np.int32))
    step = loop.make_indexed_step(s.step_spec())
    t0 = time.perf_counter()
    state, m = step(state, images, labels, order, 0)
    jax.block_until_ready(m)
    fixed["first training step (compiles)"] = time.perf_counter() - t0
    evaluate = evaluation.make_eval_step(s.model, ds.mean, ds.std, ds.num_classes, cfg.compute_dtype, cfg.tta)
    e = min(cfg.eval_batch_size, len(ds.test_labels))
    eval_batch = (ds.test_images[:e], ds.test_labels[:e].astype(np.int32), np.ones(e, np.float32))
    for name in ("first evaluation batch (compiles)", "next evaluation batch"):
        t0 = time.perf_counter()
        jax.block_until_ready(evaluate(state.eval_variables(), *eval_batch))
        fixed[name] = time.perf_counter() - t0
    times = []
    for r in range(args.rounds):
        t0 = time.perf_counter()
        for i in range(args.steps):
            state, m = step(state, images, labels, order, i % batches)
        jax.block_until_ready(m)
        times.append((time.perf_counter() - t0) / args.steps * 1e3)
    wall = statistics.median(times)
    trace = tempfile.mkdtemp(prefix="cnnjax_trace_")
    with jax.profiler.trace(trace, create_perfetto_trace=True):
        for i in range(args.steps):
            state, m = step(state, images, labels, order, i % batches)
        jax.block_until_ready(m)
    per_op, shapes = profile_ops(trace, args.steps), hlo_ops(dump)
    total = sum(per_op.values())
    print(f"{cfg.model}, batch {batch}: {wall:.1f} ms/step median of {args.rounds} rounds "
          f"({batch / wall * 1e3:,.0f} img/s; load average {machine.load_text()})")
    print(f"once per run: " + ", ".join(f"{k} {v:.2f} s" for k, v in fixed.items())
          + f" (evaluation: {cfg.eval_batch_size} images, tta {cfg.tta})")
    print(f"under the profiler: operations {total:.1f} ms/step in {len(per_op)} kinds (Eigen convolutions are "
          f"not attributed: most of the rest of the wall time); top {args.top}:")
    print(f"{'ms/step':>8} {'share':>6}  {'operation':<34} {'output shape':<28} source")
    for name, ms in sorted(per_op.items(), key=lambda kv: -kv[1])[:args.top]:
        shape, source = shapes.get(name, ("", ""))
        print(f"{ms:8.2f} {ms / total:6.1%}  {name[:34]:<34} {shape[:28]:<28} {source[-60:]}")


if __name__ == "__main__":
    main()
