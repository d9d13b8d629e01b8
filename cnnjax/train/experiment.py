"""One training run in a work directory: ``train_and_evaluate(config, workdir)``.

The work directory (files: :mod:`cnnjax.train.workdir`) holds everything a researcher needs to
trust, resume and re-make the run.  Rerunning with the same config resumes from the latest
readable checkpoint and ends with bit-identical parameters and metrics to an uninterrupted
run; a finished run is not repeated; a config whose numbers would differ is refused; one
process trains in a directory at a time.  With ``target_accuracy`` the run stops after the
first evaluation whose validation accuracy reaches it (plus ``target_margin``), and is then
finished (time-to-target fields of summary.json: :func:`_target_record`).  Every check of the
config, the data and the model happens before anything is written.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import math
import os
import statistics
import sys
import time
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple

import jax

from cnnjax.train import checkpoint as ckpt_lib
from cnnjax import compile_cache
from cnnjax.train import config as config_lib
from cnnjax import data as data_lib
from cnnjax import models, plots, summary
from cnnjax.train import evaluation, init_from, optim, sharding, streaming, loop, whitening
from cnnjax.data import subsets
from cnnjax.train import freeze as freeze_lib
from cnnjax.train.runs import mismatch_message, selected_epoch
from cnnjax.train.state import abstract_state, init_state
from cnnjax.train.step import StepSpec, resolve_compute_dtype
from cnnjax.data import checks as data_checks, fingerprint
from cnnjax.data.stream import available_memory
from cnnjax.weights.variables import variable_shapes
from cnnjax.train.workdir import METRICS, DiskFull, Workdir, WorkdirError


class NonFiniteLoss(RuntimeError):
    """Training produced a NaN/inf loss; the checkpoints before it are kept."""


class Setup(NamedTuple):
    """What a run is made of, built (and so checked) before its work directory is touched."""
    cfg: config_lib.TrainConfig
    data: data_lib.Dataset
    model: Any
    arch: summary.Summary
    steps_per_epoch: int
    tx: Any
    schedule: Any
    mesh: Any
    load_seconds: float = 0.0  # wall time of reading the data and splitting off the validation set
    init: Any = None  # config.init_from's variables to load (cnnjax.train.init_from.Prepared), or None

    def data_info(self) -> dict:
        ds = self.data
        return {"source": ds.source, "num_classes": ds.num_classes, "image_shape": list(ds.image_shape),
                "mean": ds.mean, "std": ds.std, "num_train": len(ds.train_labels), "num_test": len(ds.test_labels),
                "num_val": len(ds.val_labels) if ds.has_validation else 0, "class_names": list(ds.class_names),
                **ds.info,  # source-specific facts, e.g. an image folder's skipped files and prepared copy
                **({"init_from": self.init.record} if self.init is not None else {})}

    def step_spec(self) -> StepSpec:
        """The training step's spec of this run (:mod:`cnnjax.train.step`)."""
        ds = self.data
        return StepSpec.from_config(self.cfg, self.model, self.tx, num_classes=ds.num_classes, mean=ds.mean, std=ds.std,
                                    mesh=self.mesh)


def as_config(config: config_lib.TrainConfig | Mapping) -> config_lib.TrainConfig:
    """A validated TrainConfig from a TrainConfig, a ConfigDict or a plain mapping."""
    if not isinstance(config, config_lib.TrainConfig):
        return config_lib.from_dict(config)  # types, values and the model's options
    config.validate()
    config_lib.check_model_options(config)
    return config


def load_data(cfg: config_lib.TrainConfig, workdir: str | None = None) -> data_lib.Dataset:
    """``cfg``'s dataset: its first num_train / num_test images, the validation split held out
    of the training set by ``cfg.seed``, then ``cfg.classes`` / ``cfg.train_per_class``
    (:func:`cnnjax.data.subsets.restrict`) (uint8 NHWC, as :class:`cnnjax.data.Dataset`).

    With ``workdir`` (a run's directory): a flat image folder keeps the split recorded there
    (:func:`cnnjax.data.fingerprint.pinned_split`), and the dataset's ``provenance`` describes
    the data as loaded (for :mod:`cnnjax.data.fingerprint`); nothing is compared here."""
    record = fingerprint.read(workdir) if workdir else None
    ds = data_lib.load(cfg.dataset, cfg.data_dir, image_size=cfg.image_size, channels=cfg.channels,
                       cache_dir=cfg.data_cache_dir, split=fingerprint.pinned_split(record))
    if workdir and ds.provenance is None:  # arrays: their digest before subset and hold-out
        ds = dataclasses.replace(ds, provenance=fingerprint.describe(ds))
    ds = ds.subset(cfg.num_train or None, cfg.num_test or None)
    ds = ds.hold_out(cfg.validation_size, cfg.seed)
    return subsets.restrict(ds, cfg.classes, cfg.train_per_class, cfg.seed)


def load_run_data(cfg: config_lib.TrainConfig, workdir: str, doing: str) -> data_lib.Dataset:
    """:func:`load_data` for a command on the run in ``workdir`` (evaluate, explain): the run's
    split, then :class:`cnnjax.data.fingerprint.DataChanged` (one line, ``doing`` first) when the
    data differs from what the run recorded when it started."""
    ds = load_data(cfg, workdir)
    fingerprint.check(workdir, ds, doing=doing, remedy=_READ_ONLY_REMEDY)
    return ds


_READ_ONLY_REMEDY = ("its numbers would be of other data: restore the data the run trained on, or train a new run "
                     "(another --workdir) on the data as it is now")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def check_run_data(workdir: str, doing: str, log: Callable[[str], None] = _stderr) -> None:
    """For commands that use a finished run without its data (predict, explain of files):
    DataChanged (one line) when the run's data changed since it started; when the data cannot be
    read any more (moved, deleted) one ``log`` line says it was not compared.  An image folder
    is only listed, not decoded."""
    wd = Workdir(workdir)
    record = fingerprint.read(wd.path)
    cfg = wd.config()
    if record is None or cfg is None:
        return
    try:
        if record["kind"] == "folder":
            listing = data_lib.folder.scan(cfg.data_dir, fingerprint.pinned_split(record))
            ds_record = data_lib.folder.listing_provenance(listing)
        else:
            ds_record = fingerprint.describe(load_data(cfg, wd.path))
    except data_lib.DataError as e:
        log(f"note: the data {record.get('root') or record.get('source')} of {wd.path} could not be compared "
            f"with its record ({e}); going on with the run as trained")
        return
    changes, _ = fingerprint.compare(record, fingerprint.with_digest(ds_record))
    if changes:
        raise fingerprint.DataChanged(f"{doing}: the data of {wd.path} changed since the run started "
                                      f"({fingerprint.where(record)}: {changes}); {_READ_ONLY_REMEDY}", changes, False)


def build(cfg: config_lib.TrainConfig, workdir: str | None = None) -> Setup:
    """Load the data and build model and optimizer for ``cfg``; ValueError for anything that
    does not fit (no batch fits the training set, batch not divisible by the devices, ...).
    ``workdir``: the run's directory, whose recorded split the data keeps (:func:`load_data`)."""
    t0 = time.perf_counter()
    ds = load_data(cfg, workdir)
    load_seconds = time.perf_counter() - t0
    data_checks.check(ds, validation=cfg.validation_size > 0,
                      flat_test_fraction=data_lib.folder.FLAT_TEST_FRACTION
                      if (ds.provenance or {}).get("layout") == "flat" else None)
    model = models.create(cfg.model, ds.num_classes, **cfg.model_options)
    arch = _summarize(cfg, model, ds)
    if tuple(arch.rows[-1].output_shape) != (ds.num_classes,):
        raise ValueError(f"config.model {cfg.model} outputs {'x'.join(map(str, arch.rows[-1].output_shape))} per "
                         f"image, not {ds.num_classes} class scores: experiments.train trains classifiers (an "
                         f"autoencoder is trained from Python with a reconstruction loss)")
    steps = loop.steps_per_epoch(len(ds.train_labels), cfg.batch_size)
    if cfg.epoch_loop == "scan" and streaming.streams(cfg, ds):
        raise ValueError(f"config.epoch_loop='scan' cannot apply: this run streams its training batches "
                         f"(config.data_in_memory={cfg.data_in_memory!r}); use epoch_loop 'steps' or 'auto', or "
                         f"data_in_memory 'true'")
    _check_memory(cfg, arch)
    if cfg.whiten_init and (problem := whitening.whitening_problem(model, ds.image_shape)):
        raise ValueError(problem)
    if cfg.freeze or cfg.lr_multipliers:  # patterns that match nothing / freeze everything: before anything is written
        freeze_lib.check(variable_shapes(model, ds.image_shape), cfg.freeze, cfg.lr_multipliers)
    mesh = sharding.data_parallel_mesh()  # data-parallel over every device there is
    if mesh is not None and cfg.batch_size % mesh.size:
        raise ValueError(f"config.batch_size {cfg.batch_size} must be a multiple of the number of devices "
                         f"({mesh.size})")
    init = init_from.prepare(cfg, model, ds.image_shape) if cfg.init_from else None  # read and matched: errors now
    return Setup(cfg, ds, model, arch, steps, optim.make_optimizer(cfg, steps), optim.make_schedule(cfg, steps), mesh,
                 load_seconds, init)


def _summarize(cfg: config_lib.TrainConfig, model, ds: data_lib.Dataset) -> summary.Summary:
    """summary.summarize of ``model`` on ``ds``'s images; ValueError naming the setting (and, for
    an image folder sized by its first image, that file) when the images are too small for it."""
    try:
        return summary.summarize(model, ds.image_shape, cfg.model)
    except Exception as e:  # noqa: BLE001 - a kernel larger than the image, an empty pooling output, ...
        side = min(ds.image_shape[:2])
        fits = next((n for n in (*range(side + 1, 65), 128, 224, 256) if n > side and _builds(model, n, ds, cfg)),
                    None)  # the smallest side that works
        if fits is None:
            raise
        source = ds.info.get("image_size_from")
        raise ValueError(
            f"{ds.image_shape[0]}x{ds.image_shape[1]} images are too small for config.model {cfg.model} (it needs "
            f"at least {fits}x{fits}; {' '.join(str(e).split())[:160]})"
            + (f"; the size comes from the first training image {source}" if source and not cfg.image_size else "")
            + f": set --config.image_size={fits} or larger") from None


def _builds(model, side: int, ds: data_lib.Dataset, cfg: config_lib.TrainConfig) -> bool:
    try:
        summary.summarize(model, (side, side, ds.image_shape[2]), cfg.model)
    except Exception:  # noqa: BLE001
        return False
    return True


def _check_memory(cfg: config_lib.TrainConfig, arch: summary.Summary, fraction: float = 0.8) -> None:
    """ValueError, before anything is allocated, when a training or evaluation batch would not fit
    in ``fraction`` of the available memory (by :meth:`summary.Summary.bytes_per_example`; CPU
    only: an accelerator's memory is its own)."""
    free = available_memory()
    if free is None or jax.default_backend() != "cpu":
        return
    budget = fraction * free
    layer = arch.largest_layer()
    for name, batch, is_train in (("batch_size", cfg.batch_size, True), ("eval_batch_size", cfg.eval_batch_size, False)):
        need = batch * arch.bytes_per_example(is_train)
        if need > budget:
            fits = int(budget // arch.bytes_per_example(is_train))
            raise ValueError(
                f"config.{name}={batch} needs about {need / 2**30:.1f} GiB for {cfg.model} "
                f"(largest layer {layer.name}: {'x'.join(map(str, layer.output_shape))} per image), "
                f"{free / 2**30:.1f} GiB are available; use config.{name} <= {fits}"
                + ("" if fits else " (not even one image fits: make the model smaller)"))


def train_and_evaluate(config: config_lib.TrainConfig | Mapping, workdir: str, *,
                       log: Callable[[str], None] = print,
                       on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train per ``config`` in ``workdir`` (created if needed); returns the summary dict (also
    summary.json).  ``on_epoch(row)`` is called with each epoch's metrics row once it is logged
    and checkpointed (e.g. to report to a scheduler that may stop the run by raising).  Raises
    ValueError for bad input or a refused directory (nothing is written then) and
    NonFiniteLoss on a NaN/inf loss."""
    cfg = as_config(config)
    wd = Workdir(workdir)
    if os.path.exists(wd.path) and not os.path.isdir(wd.path):
        raise WorkdirError(f"--workdir {wd.path} exists and is not a directory")
    cfg, predates = wd.resume_config(cfg)
    if predates:
        log(f"{wd.path} was made before the settings {', '.join(predates)} existed: resuming it as it was made "
            f"({', '.join(f'{k}={getattr(cfg, k)!r}' for k in predates)})")
    if (done := _finished(wd, log)) is not None:
        return done
    compile_cache.start(cfg)  # before the first computation: the compilation cache, the XLA CPU threads
    setup = build(cfg, wd.path)
    # One lock per job: the processes of a multi-process job share the directory (process 0 writes).
    with wd.lock() if jax.process_index() == 0 else contextlib.nullcontext():
        wd.resume_config(cfg)  # again, now that no other trainer can change the directory
        if (done := _finished(wd, log)) is not None:
            return done
        if wd.config() is None and jax.process_index() == 0:
            record = fingerprint.describe(setup.data)
            fingerprint.write(wd.path, record)  # before config.json: a run with a config has a record
            wd.write_config(cfg, {**setup.data_info(), "fingerprint": fingerprint.summary(record)})
        elif jax.process_index() == 0:
            _check_data(setup, wd, log)
        try:
            return _train(setup, wd, log, on_epoch)
        except Exception as e:
            if "No space left on device" in str(e) or getattr(e, "errno", None) == errno.ENOSPC:
                raise DiskFull(f"the disk of {wd.path} is full (while writing {_written_file(e)}); "
                                   f"free some space and rerun the same command to resume") from None
            raise


def _check_data(s: Setup, wd: Workdir, log) -> None:
    """Before a run resumes: its data must be what it recorded when it started
    (:mod:`cnnjax.data.fingerprint`).  Changed data raises DataChanged (nothing is written, no
    checkpoint is touched) unless ``config.data_changed=accept`` and the classes and image shape
    are the run's: then the change is recorded -- the new record, data.json with the new counts
    and a ``data_changes`` list, a ``{"event": "data_changed"}`` line in metrics.jsonl -- and the
    run continues from its last checkpoint on the data as it is now.  A run made before records
    existed gets its record now."""
    new = fingerprint.describe(s.data)
    old = fingerprint.read(wd.path)
    if old is None:
        fingerprint.write(wd.path, new)
        log(f"{wd.path} has no record of its data (made before cnnjax recorded it): recorded the data as it is now")
        return
    changes, classes_changed = fingerprint.compare(old, new)
    if not changes:
        return
    info = wd.data_info()
    shape_changed = list(info.get("image_shape", s.data.image_shape)) != list(s.data.image_shape)
    head = f"the data of {wd.path} changed since the run started ({fingerprint.where(new)}: {changes})"
    if classes_changed or shape_changed:
        raise fingerprint.DataChanged(
            f"{head}; its checkpoints are kept, but a run cannot continue on other "
            f"{'classes' if classes_changed else 'image shapes'}: restore the data, or train on it in a new --workdir",
            changes, classes_changed)
    if s.cfg.data_changed != "accept":
        raise fingerprint.DataChanged(
            f"{head}; its checkpoints are kept. To go on: train on the data as it is now in a new --workdir, or "
            f"continue this run from its last checkpoint on it with --config.data_changed=accept (recorded in "
            f"data.json and metrics.jsonl)", changes, classes_changed)
    logged = wd.metrics()
    event = {"event": fingerprint.EVENT, "after_epoch": logged[-1]["epoch"] if logged else 0, "changes": changes,
             "old_digest": old["digest"], "digest": new["digest"], "num_train": len(s.data.train_labels),
             "num_val": len(s.data.val_labels) if s.data.has_validation else 0, "num_test": len(s.data.test_labels),
             "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    wd.append_event(event)
    wd.write_data_info({**s.data_info(), "fingerprint": fingerprint.summary(new),
                        "data_changes": [*info.get("data_changes", []), event]})
    fingerprint.write(wd.path, new)
    log(f"{head}: accepted (config.data_changed=accept); continuing from the last checkpoint with "
        f"{event['num_train']} training and {event['num_test']} test images")


def _written_file(e: Exception) -> str:
    name = getattr(e, "filename", None)
    return name if name else ("a checkpoint" if "OCDBT" in str(e) else "a file")


def _finished(wd: Workdir, log) -> dict | None:
    done = wd.summary()
    if done is not None:
        log(f"{wd.path} already finished ({done.get('epochs_trained', done['epochs'])} epochs, final test accuracy "
            f"{done['final_test_accuracy']:.4f}); nothing to do")
    return done


def _train(s: Setup, wd: Workdir, log, on_epoch) -> dict:
    """resume -> (epoch -> evaluate -> log -> checkpoint)* -> test once -> summary.json."""
    cfg, ds = s.cfg, s.data
    primary = jax.process_index() == 0  # with several hosts only process 0 writes files (Orbax coordinates itself)
    board = _TensorBoard.open_class() if primary else None  # imports before the clock, like JAX's own
    clock = _TargetClock(cfg)  # the clock of time_to_target_seconds (see _target_record)
    probe = compile_cache.Probe()  # first_step_seconds and the compile cache's hits (summary.json)
    checkpoints = ckpt_lib.Checkpoints(wd.checkpoint_dir, keep=cfg.keep_checkpoints, log=log)
    state, start, rows = _resume(s, wd, checkpoints, log)
    if not ds.has_validation:
        log("no validation split (config.validation_size is 0, as in work directories made before it existed): "
            "nothing is selected; the final epoch is reported")
    if primary:
        wd.write_metrics(rows)
    if s.mesh is not None:
        log(f"data-parallel over {s.mesh.size} devices ({jax.process_count()} processes)")
    state = sharding.replicate(state, s.mesh)
    spec = s.step_spec()
    if streaming.streams(cfg, ds):  # batches from a Grain pipeline instead of a device copy (cnnjax.train.streaming)
        log(f"streaming the training batches (config.data_in_memory={cfg.data_in_memory})")
        if jax.process_count() > 1:
            index, count = streaming.process_rows(s.mesh, cfg.batch_size)
            part = cfg.batch_size // count
            log(f"process {jax.process_index()} of {jax.process_count()} reads rows {index * part}-{(index + 1) * part} "
                f"of each batch of {cfg.batch_size}")
        source = streaming.StreamedBatches(spec, ds, cfg.epochs, None if cfg.data_workers < 0 else cfg.data_workers)
    else:
        images, labels = sharding.replicate((ds.train_images, ds.train_labels), s.mesh)
        source = loop.make_epoch_runner(spec, fused=None if cfg.epoch_loop == "auto" else cfg.epoch_loop == "scan"
                                         ).source(images, labels)
    eval_fn = evaluation.make_eval_step(s.model, ds.mean, ds.std, ds.num_classes, cfg.compute_dtype, cfg.tta)
    progress = _Progress(cfg.progress, log)
    tensorboard = _TensorBoard(board(wd.path, purge_step=start + 1 if start else None) if board else None)
    curves = _Curves(plots, rows, wd, cfg) if primary else None
    after_epoch = [c for c in (curves and curves.after_epoch, progress.end_epoch, on_epoch) if c]
    reached = clock.check(rows, start)
    last = cfg.epochs if reached is None else start  # a resumed run that had stopped trains no further
    try:
        for epoch in range(start + 1, last + 1):
            progress.start_epoch(epoch, cfg.epochs, s.steps_per_epoch, cfg.batch_size)
            t0 = time.perf_counter()
            state, m = loop.run_epoch(state, source, epoch, probe.on_step_then(progress.on_step))
            _check_finite(m["train_loss"], epoch, checkpoints)
            row = _epoch_row(s, state, epoch, m, time.perf_counter() - t0, eval_fn)
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)
            reached = clock.check(rows, start)
            if primary:
                wd.append_metrics(row)
                tensorboard.write(row)
            if epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs or reached is not None:
                _save(checkpoints, epoch, state, rows)
            for callback in after_epoch:
                callback(row)
            if reached is not None:
                log(f"validation accuracy {row['val_accuracy']:.4f} >= {_stop_rule(cfg)} in epoch {epoch}: stopped"
                    + (f" after {clock.seconds:.1f}s" if clock.seconds is not None else ""))
                break
        if curves is not None:
            curves.after_training()
        checkpoints.wait()
        tests = _test_once(s, state, rows, checkpoints, eval_fn)
        tensorboard.write({"epoch": rows[-1]["epoch"], **{f"test_{m}_{k}": v for k, ev in tests.items()
                                                          for m, v in ev.items() if m in ("loss", "accuracy")}})
    finally:
        checkpoints.close()
        tensorboard.close()
    log(f"test accuracy {tests['final']['accuracy']:.4f} (final epoch), {tests['selected']['accuracy']:.4f} "
        f"(epoch {tests['selected']['epoch']}, selected by validation accuracy)" if ds.has_validation else
        f"test accuracy {tests['final']['accuracy']:.4f} (final epoch)")
    result = {**_summary(s, rows, tests, int(state.step), time.perf_counter() - clock.wall0),
              **_target_record(cfg, rows, reached, clock.seconds, s.load_seconds),
              "checkpoints_set_aside": list(checkpoints.set_aside_epochs), **probe.record()}
    if primary:
        wd.write_summary(result)
    return {"status": "finished", **result}


def _epoch_row(s: Setup, state, epoch: int, m: dict, train_seconds: float, eval_fn) -> dict:
    """metrics.jsonl's row of ``epoch`` (all but "seconds"): training metrics, then the validation
    ones when this epoch evaluates."""
    cfg, ds = s.cfg, s.data
    row = {"epoch": epoch, "step": int(state.step), **m, "val_loss": None, "val_accuracy": None,
           "learning_rate": float(s.schedule(int(state.step) - 1)),
           "images_per_sec": s.steps_per_epoch * cfg.batch_size / train_seconds}
    if ds.has_validation and cfg.evaluates_after(epoch):
        ev = evaluation.evaluate(s.model, state.eval_variables(), ds, cfg.eval_batch_size, "val", eval_step=eval_fn)
        row.update(val_loss=ev["loss"], val_accuracy=ev["accuracy"])
    return row


def _save(checkpoints: ckpt_lib.Checkpoints, epoch: int, state, rows: list[dict]) -> None:
    """Checkpoint ``epoch`` with every metrics row so far in its meta: a row that a crash kept
    from reaching metrics.jsonl is restored with the state (:func:`_resume`)."""
    row = rows[-1]
    metrics = {"val_accuracy": row["val_accuracy"]} if row["val_accuracy"] is not None else None
    checkpoints.save(epoch, state, {"epoch": epoch, "step": row["step"], "rows": rows}, metrics)


def _check_finite(loss: float, epoch: int, checkpoints: ckpt_lib.Checkpoints) -> None:
    """The NaN guard: NonFiniteLoss when an epoch's mean training loss is NaN or infinite."""
    if not math.isfinite(loss):
        raise NonFiniteLoss(
            f"train loss is {loss} in epoch {epoch}; stopped with the checkpoints of epochs "
            f"{checkpoints.epochs() or 'none'} kept. To retry with e.g. a lower config.learning_rate, "
            f"use another --workdir (this one holds the run as configured)")


class _TargetClock:
    """Whether and when the run reached ``cfg``'s target: ``check(rows, start)`` after each epoch
    returns the target epoch (None: not reached) and, the first time it is reached in a run that
    started from scratch, stops the clock (``seconds``, from construction; see :func:`_target_record`)."""

    def __init__(self, cfg: config_lib.TrainConfig):
        self.cfg, self.wall0, self.seconds = cfg, time.perf_counter(), None

    def check(self, rows: list[dict], start: int) -> int | None:
        reached = _reached_target(self.cfg, rows)
        if reached is not None and self.seconds is None and start == 0:
            self.seconds = time.perf_counter() - self.wall0  # timed from scratch only
        return reached


def _reached_target(cfg: config_lib.TrainConfig, rows: list[dict]) -> int | None:
    """The first epoch of ``rows`` whose validation accuracy is >= ``cfg.stop_accuracy`` (the
    target plus its margin; None: no target, or not reached).  Test metrics are never consulted."""
    return next((r["epoch"] for r in rows if cfg.stop_accuracy and r.get("val_accuracy") is not None
                 and r["val_accuracy"] >= cfg.stop_accuracy), None)


def _stop_rule(cfg: config_lib.TrainConfig) -> str:
    """'target 0.93' or 'target 0.94 + margin 0.003', for log lines."""
    return f"target {cfg.target_accuracy:g}" + (f" + margin {cfg.target_margin:g}" if cfg.target_margin else "")


def _target_record(cfg: config_lib.TrainConfig, rows: list[dict], reached: int | None, seconds: float | None,
                   load_seconds: float) -> dict:
    """summary.json's time-to-target fields.  ``time_to_target_seconds`` (wall seconds, None when
    the target was not reached or the run resumed from a checkpoint) runs from the start of
    training -- state initialisation, the training set placed on the device, every jit
    compilation, the training epochs, their validation evaluations, metrics lines and the
    checkpoints of earlier epochs -- to the end of the evaluation that reached the target.  Out
    of it: importing tensorboardX and matplotlib, reading the data and splitting off the validation
    set (``data_load_seconds``, this session's), building and checking the model, the work
    directory's config, the checkpoint of the target epoch, the test evaluation and this summary."""
    return {"target_accuracy": cfg.target_accuracy, "target_reached": reached is not None, "target_epoch": reached,
            "time_to_target_seconds": seconds, "epochs_trained": rows[-1]["epoch"],
            "data_load_seconds": load_seconds}


def _resume(s: Setup, wd: Workdir, checkpoints: ckpt_lib.Checkpoints, log):
    """(state, last finished epoch, its metrics rows): from the newest readable checkpoint, or fresh.
    The rows come from the checkpoint's meta where it has them (checkpoints written since they
    carry them), so rows that a crash kept from reaching metrics.jsonl are restored."""
    cfg = s.cfg
    logged = wd.metrics()
    try:
        restored = checkpoints.restore_latest(_abstract_state(s))
    except ckpt_lib.CheckpointMismatch as e:  # another run's checkpoint: refused, never set aside
        raise WorkdirError(f"{wd.path}: {mismatch_message(e, s.data.num_classes)}; nothing was moved: use another "
                           f"--workdir, or the config that made this run") from None
    if not restored:
        state = init_state(s.model, s.tx, cfg.seed, s.data.image_shape, ema=cfg.ema_decay > 0)
        if cfg.whiten_init:
            state = whitening.init_whitening(state, s.data.train_images, s.data.mean, s.data.std)
        if s.init is not None:  # config.init_from: a fresh run starts from the source's variables
            state = init_from.apply(state, s.init, s.tx)
            log(s.init.table)
        if logged:
            log(f"no readable checkpoint in {wd.checkpoint_dir}: starting {wd.path} again from epoch 1 "
                f"({len(logged)} logged epochs are redone)")
        return state, 0, []
    start, state, meta = restored  # (a whitening init is in the checkpoint: never redone)
    log(f"resuming {wd.path} from the checkpoint of epoch {start}")
    rows = [r for r in logged if r["epoch"] <= start]
    kept = meta.get("rows")
    if kept is not None:
        missing = sorted({r["epoch"] for r in kept} - {r["epoch"] for r in rows})
        if missing:
            log(f"{wd.file(METRICS)} lacks the rows of epochs {', '.join(map(str, missing))} (cut short by "
                f"a crash); restored them from the checkpoint of epoch {start}")
        rows = [dict(r) for r in kept]
    return state, start, rows


def _test_once(s: Setup, state, rows, checkpoints: ckpt_lib.Checkpoints, eval_fn) -> dict:
    """Test metrics, measured once at the end: of the final state and of the checkpoint that
    validation selected (the same when it is the last epoch or there is no validation split).  A
    selected checkpoint that is unreadable or damaged is set aside (``corrupt_checkpoints/``) and
    the selection repeated among the others."""
    ev = lambda variables: evaluation.evaluate(s.model, variables, s.data, s.cfg.eval_batch_size, "test",
                                               eval_step=eval_fn)
    final = {"epoch": rows[-1]["epoch"], **ev(state.eval_variables())}
    while (epoch := selected_epoch(rows, checkpoints.epochs())) not in (None, final["epoch"]):
        try:
            best, _ = checkpoints.restore(epoch, _abstract_state(s))
        except ckpt_lib.CheckpointMismatch:
            raise
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint: set it aside, select again
            checkpoints.set_aside(epoch, e, "selecting among the intact checkpoints")
            continue
        return {"final": final, "selected": {"epoch": epoch, **ev(sharding.replicate(best, s.mesh).eval_variables())}}
    return {"final": final, "selected": final}


def _abstract_state(s: Setup):
    return abstract_state(s.model, s.tx, s.cfg.seed, s.data.image_shape, ema=s.cfg.ema_decay > 0)


def _summary(s: Setup, rows: list[dict], tests: dict, steps: int, session_seconds: float) -> dict:
    cfg, arch = s.cfg, s.arch
    selected = tests["selected"]
    best_row = next(r for r in rows if r["epoch"] == selected["epoch"])
    return {
        "model": cfg.model, "model_options": config_lib.to_dict(cfg)["model_options"], "dataset": cfg.dataset,
        "params": arch.total_params, "flops": arch.total_flops,
        "receptive_field": None if arch.receptive_field is None else int(max(arch.receptive_field)),
        "epochs": cfg.epochs, "steps": steps, "compute_dtype": resolve_compute_dtype(cfg.compute_dtype),
        "final_test_accuracy": tests["final"]["accuracy"], "final_test_loss": tests["final"]["loss"],
        "final_val_accuracy": rows[-1].get("val_accuracy"),
        "selected_epoch": selected["epoch"], "selected_val_accuracy": best_row.get("val_accuracy"),
        "selected_test_accuracy": selected["accuracy"], "selected_test_loss": selected["loss"],
        "num_val": len(s.data.val_labels) if s.data.has_validation else 0,
        "train_images_per_sec": statistics.median(r["images_per_sec"] for r in rows),
        "wall_seconds": sum(r["seconds"] for r in rows), "this_session_seconds": session_seconds,
    }


# --------------------------------------------------------------------------- display and logging


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
            val = (f" val_loss {row['val_loss']:.4f} val_acc {row['val_accuracy']:.4f}"
                   if row.get("val_accuracy") is not None else "")
            self.log(f"epoch {row['epoch']} step {row['step']} train_loss {row['train_loss']:.4f} "
                     f"train_acc {row['train_accuracy']:.4f}{val} {row['images_per_sec']:,.0f} img/s "
                     f"{row['seconds']:.1f}s")


class _TensorBoard:
    """Each row's numbers as TensorBoard scalars at step = epoch (no-op without a writer).  A
    resumed run opens its writer with ``purge_step`` = the first epoch it trains again, so
    TensorBoard shows each epoch once."""

    def __init__(self, writer):
        self.writer = writer

    @staticmethod
    def open_class():
        """tensorboardX's SummaryWriter, or None when it is not installed (the run goes on without
        event files)."""
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            return None
        return SummaryWriter

    def write(self, row: dict) -> None:
        if self.writer is None:
            return
        for k, v in row.items():
            if k not in ("epoch", "step") and v is not None:
                self.writer.add_scalar(k, v, row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class _Curves:
    """curves.png, redrawn as training goes and always once after training.  A drawing (a
    matplotlib figure saved as PNG) takes ~0.3-0.5 s here, as long as a whole epoch of a small run:
    the transfer study's 100-epoch runs spent two thirds of their time redrawing it after every
    epoch.  So after an epoch it is redrawn only when at least ``SPACING`` times what the last
    drawing took has passed since it ended, and the first time only when ``SPACING`` times
    ``FIRST_DRAWING`` (a guess at a drawing's time) has passed since training started: plotting
    is then at most about 1/(1 + SPACING) of a run's time, and a run shorter than that (a study's
    3-epoch trial) draws once, after training.  A timed run (a target clock) draws only after
    training, which its clock must not time.  ``clock``: seconds, monotonic (time.perf_counter;
    a test's own)."""

    SPACING = 20.0
    FIRST_DRAWING = 0.5  # seconds

    def __init__(self, plots, rows: list[dict], wd: Workdir, cfg: config_lib.TrainConfig, clock=time.perf_counter):
        self.plots, self.rows, self.path, self.timed = plots, rows, wd.file("curves.png"), bool(cfg.target_accuracy)
        self.title = f"{os.path.basename(wd.path)}: {cfg.model}"
        self.clock, self.drawn_rows = clock, None
        self.next_due = clock() + self.SPACING * self.FIRST_DRAWING

    def draw(self) -> None:
        t0 = self.clock()
        self.plots.plot_curves(self.rows, self.path, title=self.title)
        t1 = self.clock()
        self.drawn_rows, self.next_due = len(self.rows), t1 + self.SPACING * (t1 - t0)

    def after_epoch(self, row: dict) -> None:
        if not self.timed and self.clock() >= self.next_due:
            self.draw()

    def after_training(self) -> None:
        if self.drawn_rows != len(self.rows):
            self.draw()
