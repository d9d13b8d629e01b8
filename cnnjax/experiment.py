"""One training run in a work directory: ``train_and_evaluate(config, workdir)``.

The work directory holds everything a researcher needs to trust and resume the run:

  config.json      all flags, plus "data": classes, image shape, normalisation
  metrics.jsonl    one JSON object per epoch (losses, accuracies, img/s, seconds, lr)
  checkpoints/     Orbax, latest N + best by test accuracy
  events.out.*     TensorBoard scalars
  curves.png       loss and accuracy per epoch
  summary.json     written once the run has finished (the sweep runner looks for it)

Rerunning with the same config resumes from the latest readable checkpoint and ends with
bit-identical parameters and metrics to an uninterrupted run; a finished run is not
repeated; a different config in the same directory is refused.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import sys
import time
from typing import Callable, Optional

import jax
import numpy as np

from cnnjax import checkpoint as ckpt_lib
from cnnjax import data as data_lib
from cnnjax import models, summary, train

# Flags that may differ between a run and its resumption (they do not change the numbers).
RESUMABLE_CHANGES = frozenset({"workdir", "data_dir", "progress", "checkpoint_every", "keep_checkpoints",
                               "epoch_loop"})


class NonFiniteLoss(RuntimeError):
    """Training produced a NaN/inf loss; the last good checkpoint is kept."""


def _write_json(path: str, obj) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=_jsonable)
        f.write("\n")
    os.replace(tmp, path)


def _jsonable(v):
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def read_metrics(workdir: str) -> list[dict]:
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _check_same_run(workdir: str, config: dict) -> None:
    """Refuse to mix runs: an existing config.json must agree on every number-changing flag."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return
    old = ckpt_lib.read_config(workdir)
    defaults = dataclasses.asdict(train.TrainConfig())  # a field added since the workdir was made has its default
    was = lambda k: old.get(k, defaults.get(k))
    diffs = [f"{k}={was(k)!r} (now {config.get(k)!r})" for k in sorted(set(old) | set(config))
             if k not in RESUMABLE_CHANGES and k != "data" and was(k) != config.get(k)]
    if diffs:
        raise ValueError(f"workdir {workdir} holds a different run: {', '.join(diffs)}; "
                         f"use another --workdir or the same flags to resume")


class _Progress:
    """tqdm bar on a terminal, plain epoch lines otherwise."""

    def __init__(self, mode: str, log: Callable[[str], None]):
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "plain"
        self.mode, self.log, self.bar = mode, log, None

    def start_epoch(self, epoch: int, epochs: int, steps: int, batch: int):
        self.t0, self.batch = time.perf_counter(), batch
        if self.mode == "bar":
            from tqdm import tqdm
            self.bar = tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", unit="step", leave=True, file=sys.stderr)

    def on_step(self, i: int, steps: int, metrics) -> None:
        if self.bar is None:
            return
        self.bar.update(i + 1 - self.bar.n)
        if metrics is not None and (i % 20 == 0 or i == steps - 1):
            rate = (i + 1) * self.batch / max(time.perf_counter() - self.t0, 1e-9)
            self.bar.set_postfix(loss=f"{float(metrics['loss']):.4f}", img_s=f"{rate:,.0f}", refresh=False)

    def end_epoch(self, row: dict) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.mode != "none":
            test = (f" test_loss {row['test_loss']:.4f} test_acc {row['test_accuracy']:.4f}"
                    if row.get("test_accuracy") is not None else "")
            self.log(f"epoch {row['epoch']} step {row['step']} train_loss {row['train_loss']:.4f} "
                     f"train_acc {row['train_accuracy']:.4f}{test} {row['images_per_sec']:,.0f} img/s "
                     f"{row['seconds']:.1f}s")


def _tensorboard(workdir: str):
    try:
        from tensorboardX import SummaryWriter
    except ImportError:  # optional: the run goes on without event files
        return None
    return SummaryWriter(workdir)


def train_and_evaluate(config: dict, workdir: str, *, data_dir: Optional[str] = None, progress: str = "auto",
                       eval_every: int = 1, checkpoint_every: int = 1, keep_checkpoints: int = 3,
                       epoch_loop: str = "auto", log: Callable[[str], None] = print) -> dict:
    """Train per ``config`` (the fields of :class:`cnnjax.train.TrainConfig` plus I/O flags) in ``workdir``.

    ``epoch_loop``: "steps" (one jitted step per batch), "scan" (the whole epoch in one
    ``lax.scan``) or "auto" (scan on GPU/TPU, steps on the CPU); the numbers are the same.

    Returns the summary dict (also written to summary.json).  Raises ValueError for bad
    input (nothing in ``workdir`` is changed then) and NonFiniteLoss on NaN/inf.
    """
    cfg = ckpt_lib.config_from_dict(config)
    cfg.validate()
    config = {**dataclasses.asdict(cfg), **config}  # config.json records every value, defaults included
    for name, value in (("eval_every", eval_every), ("checkpoint_every", checkpoint_every),
                        ("keep_checkpoints", keep_checkpoints)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if epoch_loop not in train.EPOCH_LOOPS:
        raise ValueError(f"epoch_loop must be one of {train.EPOCH_LOOPS}, got {epoch_loop!r}")
    workdir = os.path.abspath(workdir)
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ValueError(f"--workdir {workdir} exists and is not a directory")
    _check_same_run(workdir, config)
    done = os.path.join(workdir, "summary.json")
    if os.path.exists(done):
        with open(done) as f:
            result = json.load(f)
        log(f"{workdir} already finished ({cfg.epochs} epochs, test accuracy "
            f"{result['final_test_accuracy']:.4f}); nothing to do")
        return result

    ds = data_lib.load(cfg.dataset, data_dir).subset(cfg.num_train or None, cfg.num_test or None)
    model = models.create(cfg.model, ds.num_classes, **cfg.model_options)
    arch = summary.summarize(model, ds.image_shape, cfg.model)
    mesh = train.data_parallel_mesh()  # data-parallel over every device there is
    if mesh is not None and cfg.batch_size % mesh.size:
        raise ValueError(f"batch_size {cfg.batch_size} must be a multiple of the number of devices ({mesh.size})")
    os.makedirs(workdir, exist_ok=True)
    data_info = {"source": ds.source, "num_classes": ds.num_classes, "image_shape": list(ds.image_shape),
                 "mean": ds.mean, "std": ds.std, "num_train": len(ds.train_labels), "num_test": len(ds.test_labels),
                 "class_names": list(ds.class_names)}
    primary = jax.process_index() == 0  # with several hosts only process 0 writes files (Orbax coordinates itself)
    if primary and not os.path.exists(os.path.join(workdir, "config.json")):
        _write_json(os.path.join(workdir, "config.json"), {**config, "data": data_info})

    steps_per_epoch = len(ds.train_labels) // cfg.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size {cfg.batch_size} is larger than the training set ({len(ds.train_labels)})")
    tx = train.make_optimizer(cfg, steps_per_epoch)
    schedule = train.make_schedule(cfg, steps_per_epoch)
    checkpoints = ckpt_lib.Checkpoints(workdir, keep=keep_checkpoints, log=log)
    restored = checkpoints.restore_latest(train.abstract_state(model, tx, cfg.seed, ds.image_shape))
    if restored:
        start, state, _ = restored
        log(f"resuming {workdir} from the checkpoint of epoch {start}")
    else:
        start, state = 0, train.init_state(model, tx, cfg.seed, ds.image_shape)
    rows = [r for r in read_metrics(workdir) if r["epoch"] <= start]
    if primary:
        with open(os.path.join(workdir, "metrics.jsonl.tmp"), "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        os.replace(os.path.join(workdir, "metrics.jsonl.tmp"), os.path.join(workdir, "metrics.jsonl"))

    if mesh is not None:
        log(f"data-parallel over {mesh.size} devices ({jax.process_count()} processes)")
    state = train.replicate(state, mesh)
    images, labels = train.replicate((ds.train_images, ds.train_labels), mesh)
    run_epoch = train.make_epoch_runner(model, tx, cfg, ds.mean, ds.std, ds.num_classes, mesh,
                                        fused=None if epoch_loop == "auto" else epoch_loop == "scan")
    eval_fn = train.make_eval_step(model, ds.mean, ds.std, ds.num_classes, cfg.compute_dtype)
    bar = _Progress(progress, log)
    writer = _tensorboard(workdir) if primary else None
    from cnnjax import plots  # matplotlib only when a run actually trains
    wall0 = time.perf_counter()
    try:
        for epoch in range(start + 1, cfg.epochs + 1):
            bar.start_epoch(epoch, cfg.epochs, steps_per_epoch, cfg.batch_size)
            t0 = time.perf_counter()
            state, m = run_epoch(state, images, labels, epoch, bar.on_step)
            train_seconds = time.perf_counter() - t0
            if not math.isfinite(m["train_loss"]):
                raise NonFiniteLoss(f"train loss is {m['train_loss']} in epoch {epoch}; stopped, the last good "
                                    f"checkpoint (epoch {checkpoints.epochs()[-1] if checkpoints.epochs() else 'none'}) "
                                    f"is kept; try a lower --learning_rate")
            row = {"epoch": epoch, "step": int(state.step), **m, "test_loss": None, "test_accuracy": None,
                   "learning_rate": float(schedule(int(state.step) - 1)),
                   "images_per_sec": steps_per_epoch * cfg.batch_size / train_seconds}
            if epoch % eval_every == 0 or epoch == cfg.epochs:
                ev = train.evaluate(model, state.variables(), ds, eval_step=eval_fn)
                row.update(test_loss=ev["loss"], test_accuracy=ev["accuracy"])
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)
            if primary:
                with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
                    f.write(json.dumps(row) + "\n")
            if writer is not None:
                for k, v in row.items():
                    if k not in ("epoch", "step") and v is not None:
                        writer.add_scalar(k, v, epoch)
                writer.flush()
            if epoch % checkpoint_every == 0 or epoch == cfg.epochs:
                metrics = {"test_accuracy": row["test_accuracy"]} if row["test_accuracy"] is not None else None
                checkpoints.save(epoch, state, {"epoch": epoch, "step": row["step"]}, metrics)
            if primary:
                plots.plot_curves(rows, os.path.join(workdir, "curves.png"))
            bar.end_epoch(row)
        checkpoints.wait()
    finally:
        checkpoints.close()
        if writer is not None:
            writer.close()

    evaluated = [r for r in rows if r["test_accuracy"] is not None]
    best = max(evaluated, key=lambda r: (r["test_accuracy"], -r["epoch"]))
    result = {
        "status": "finished", "model": cfg.model, "model_options": cfg.model_options, "dataset": cfg.dataset,
        "params": arch.total_params, "flops": arch.total_flops,
        "receptive_field": None if arch.receptive_field is None else int(max(arch.receptive_field)),
        "epochs": cfg.epochs, "steps": int(state.step),
        "final_test_accuracy": rows[-1]["test_accuracy"], "final_test_loss": rows[-1]["test_loss"],
        "best_test_accuracy": best["test_accuracy"], "best_epoch": best["epoch"],
        "train_images_per_sec": statistics.median(r["images_per_sec"] for r in rows),
        "wall_seconds": sum(r["seconds"] for r in rows), "this_session_seconds": time.perf_counter() - wall0,
    }
    if primary:
        _write_json(done, result)
    return result


def config_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(train.TrainConfig)]
