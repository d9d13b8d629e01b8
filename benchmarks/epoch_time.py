"""Seconds per Fashion-MNIST epoch of one model, per epoch loop and compute dtype, on whatever
backend JAX starts (the GPU path when a GPU is there).

    python -m benchmarks.epoch_time                                   # padded_cnn, batch 50 and 256
    python -m benchmarks.epoch_time --batch_sizes=256,1024 --accuracy_epochs=5
    python -m benchmarks.epoch_time --num_train=6000 --loops=steps,scan  # quick, on the CPU

For each (batch size, epoch loop, dtype) cell: compile time (first epoch call), then
``--epochs`` timed epochs (median reported): 60k training images through
:func:`cnnjax.train.loop.make_epoch_runner` ("steps": one jitted step per batch, or
"scan": the epoch in one ``lax.scan``), then 10k test
images through :func:`cnnjax.train.evaluation.evaluate` (batch 1000).  The data are the real
Fashion-MNIST IDX files when ``cnnjax.data.load`` finds them, otherwise uniform random uint8
images of the same shape (timing does not depend on pixel values); the table says which.

``--accuracy_epochs=N`` also trains N epochs per dtype with the TrainConfig defaults
(cosine schedule, Adam 1e-3) in the fastest loop, and reports final test accuracy, to show
whether bfloat16 keeps accuracy (needs the real data).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

from benchmarks.train_throughput import random_dataset


def _dataset(num_train: int, num_test: int, data_dir: str | None = None):
    from cnnjax import data as data_lib
    try:
        ds = data_lib.load("fashion_mnist", data_dir)
        source = ds.source
    except Exception as e:  # noqa: BLE001 -- any reason the real data is missing: fall back, and say so
        if data_dir is not None:  # a named directory must hold the data
            raise SystemExit(f"error: --data_dir: {e}")
        ds = random_dataset(60000, 10000, seed=0)
        source = f"random uint8 ({type(e).__name__}: real data not found)"
    return ds.subset(num_train or None, num_test or None), source


def _trainer(ds, model_name: str, batch: int, loop: str, dtype: str, epochs: int):
    """(model, fresh state, device images, device labels, run_epoch) for one cell."""
    import jax
    from cnnjax import models
    from cnnjax.train import config, optim, loop as train_loop, state as train_state
    from cnnjax.train.step import StepSpec
    cfg = config.TrainConfig(model=model_name, batch_size=batch, epochs=epochs, compute_dtype=dtype)
    model = models.create(model_name, ds.num_classes)
    tx = optim.make_optimizer(cfg, len(ds.train_labels) // batch)
    state = train_state.init_state(model, tx, cfg.seed, ds.image_shape)
    images, labels = jax.device_put((ds.train_images, ds.train_labels))
    spec = StepSpec.from_config(cfg, model, tx, num_classes=ds.num_classes, mean=ds.mean, std=ds.std)
    run = train_loop.make_epoch_runner(spec, fused=loop == "scan")
    return model, state, images, labels, run


def time_cell(ds, model_name: str, batch: int, loop: str, dtype: str, epochs: int) -> dict:
    from cnnjax.train import evaluation
    model, state, images, labels, run = _trainer(ds, model_name, batch, loop, dtype, epochs + 1)
    steps = len(ds.train_labels) // batch
    ev = evaluation.make_eval_step(model, ds.mean, ds.std, ds.num_classes, dtype)

    t0 = time.perf_counter()
    state, _ = run(state, images, labels, 0)  # compile + one epoch (reads the metrics: synced)
    evaluation.evaluate(model, state.variables(), ds, eval_step=ev)
    first = time.perf_counter() - t0
    train_s, eval_s = [], []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        state, m = run(state, images, labels, epoch)
        t1 = time.perf_counter()
        result = evaluation.evaluate(model, state.variables(), ds, eval_step=ev)
        t2 = time.perf_counter()
        train_s.append(t1 - t0)
        eval_s.append(t2 - t1)
    train_med, eval_med = statistics.median(train_s), statistics.median(eval_s)
    return {"batch": batch, "loop": loop, "dtype": dtype, "steps": steps,
            "compile_s": max(first - train_med - eval_med, 0.0), "train_s": train_med, "eval_s": eval_med,
            "epoch_s": train_med + eval_med, "train_img_s": steps * batch / train_med,
            "train_loss": m["train_loss"], "test_accuracy": result["accuracy"]}


def accuracy_run(ds, model_name: str, batch: int, loop: str, dtype: str, epochs: int) -> dict:
    from cnnjax.train import evaluation
    model, state, images, labels, run = _trainer(ds, model_name, batch, loop, dtype, epochs)
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        state, _ = run(state, images, labels, epoch)
    ev = evaluation.evaluate(model, state.variables(), ds, compute_dtype=dtype)
    return {"dtype": dtype, "epochs": epochs, "batch": batch, "test_accuracy": ev["accuracy"],
            "wall_s": time.perf_counter() - t0}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="padded_cnn")
    p.add_argument("--batch_sizes", default="50,256")
    p.add_argument("--loops", default="steps,scan", help="comma list of steps, scan")
    p.add_argument("--dtypes", default="float32,bfloat16", help="comma list of float32, bfloat16")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per cell (median reported)")
    p.add_argument("--data_dir", default=None, help="directory of Fashion-MNIST IDX files (default: Debian's)")
    p.add_argument("--num_train", type=int, default=0, help="0 = all 60k")
    p.add_argument("--num_test", type=int, default=0, help="0 = all 10k")
    p.add_argument("--accuracy_epochs", type=int, default=0, help="also train N epochs per dtype")
    p.add_argument("--json", default=None, help="write the raw figures here")
    args = p.parse_args(argv)

    from cnnjax import xla_cpu
    xla_cpu.configure()  # what experiments.train does (CPU only; no effect on a GPU)
    import jax
    from cnnjax.train import config, loop as train_loop
    loops, dtypes = args.loops.split(","), args.dtypes.split(",")
    for loop in loops:
        if loop not in ("steps", "scan"):
            p.error(f"--loops: unknown loop {loop!r} (steps, scan)")
    for dtype in dtypes:
        if dtype not in config.COMPUTE_DTYPES:
            p.error(f"--dtypes: unknown dtype {dtype!r} {config.COMPUTE_DTYPES}")
    batches = [int(b) for b in args.batch_sizes.split(",")]
    ds, source = _dataset(args.num_train, args.num_test, args.data_dir)
    device = jax.devices()[0]
    print(f"# {args.model} epoch time on {jax.default_backend()} ({device.device_kind}, {jax.device_count()} "
          f"device(s)); jax {jax.__version__}, python {platform.python_version()}")
    print(f"# data: {source}; {len(ds.train_labels)} train + {len(ds.test_labels)} test images; "
          f"default loop here: {'scan' if train_loop.fused_epoch_default() else 'steps'}")
    rows = []
    print("| batch | loop | dtype | compile s | train s | eval s | epoch s | train img/s | test acc |")
    print("|---|---|---|---|---|---|---|---|---|")
    for batch in batches:
        for loop in loops:
            for dtype in dtypes:
                r = time_cell(ds, args.model, batch, loop, dtype, args.epochs)
                rows.append(r)
                print(f"| {batch} | {loop} | {dtype} | {r['compile_s']:.2f} | {r['train_s']:.3f} | "
                      f"{r['eval_s']:.3f} | **{r['epoch_s']:.3f}** | {r['train_img_s']:,.0f} | "
                      f"{r['test_accuracy']:.4f} |", flush=True)
    accuracy = []
    if args.accuracy_epochs:
        best = min(rows, key=lambda r: r["epoch_s"])
        print(f"\n# accuracy after {args.accuracy_epochs} epochs (batch {best['batch']}, loop {best['loop']}):")
        for dtype in dtypes:
            a = accuracy_run(ds, args.model, best["batch"], best["loop"], dtype, args.accuracy_epochs)
            accuracy.append(a)
            print(f"{dtype}: test accuracy {a['test_accuracy']:.4f} ({a['wall_s']:.1f} s)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"backend": jax.default_backend(), "device": device.device_kind, "data": source,
                       "model": args.model, "cells": rows, "accuracy": accuracy}, f, indent=1)


if __name__ == "__main__":
    main()
