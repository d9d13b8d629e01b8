"""Reading a training run's work directory without changing it: the trained variables of its
best or latest checkpoint, and which epoch validation selected.

Used by training (``config.init_from`` of a finished run) and by the commands that only read a
run (``experiments.evaluate``, ``predict``, ``explain``, ``export``, the studies).  Nothing here
creates, moves, cleans up or writes a file: checkpoints are opened read-only
(:class:`cnnjax.train.checkpoint.Checkpoints` with ``read_only``), a damaged one is named in one line
(``log``, stderr by default, so that a command's stdout stays its output) and left where it is,
and a checkpoint of another model (:class:`cnnjax.train.checkpoint.CheckpointMismatch`) is an error that
says so -- it is never called damaged.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable

from cnnjax.train import checkpoint as ckpt_lib
from cnnjax.train import config as config_lib
from cnnjax import models
from cnnjax.train import optim
from cnnjax.train.state import abstract_state
from cnnjax.train.workdir import Workdir


def stderr_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def selected_epoch(rows: list[dict], available: list[int] | None = None) -> int | None:
    """The epoch with the highest validation accuracy (the earliest of equals) among ``available``
    (default: all); None without validation metrics.  Test metrics are never consulted."""
    scored = [r for r in rows if r.get("val_accuracy") is not None and (available is None or r["epoch"] in available)]
    return max(scored, key=lambda r: (r["val_accuracy"], -r["epoch"]))["epoch"] if scored else None


def mismatch_message(error: ckpt_lib.CheckpointMismatch, num_classes: int | None = None) -> str:
    """One line for a checkpoint of another model: "checkpoint of epoch 3 holds a model with 2
    classes; this config builds 3" when only the classifier's width differs, else the first
    variable that differs with both shapes."""
    have, want = error.stored, error.wanted
    if (num_classes is not None and have and want and len(have) == len(want) and have[:-1] == want[:-1]
            and want[-1] == num_classes and have[-1] != num_classes and error.path.startswith("params/")):
        return (f"checkpoint of epoch {error.epoch} holds a model with {have[-1]} classes; this config builds "
                f"{want[-1]} ({error.path}): another run's checkpoint, not damage")
    return str(error)


def load_trained(workdir: str, which: str = "best", log: Callable[[str], None] = stderr_line
                 ) -> tuple[Any, dict, config_lib.TrainConfig, int]:
    """(model, variables, config, restored epoch) of a training workdir (the variables its
    evaluations used: the moving average with config.ema_decay); ``which`` is 'best'
    (highest validation accuracy in metrics.jsonl; the latest without a validation split) or
    'latest' (newest readable checkpoint: a damaged newer one is named through ``log`` and
    skipped, left in place).  Reads only.

    Raises FileNotFoundError when the workdir has no config.json or no checkpoint, ValueError (one
    line) when the best checkpoint is damaged or a checkpoint holds another model."""
    if which not in ("best", "latest"):
        raise ValueError(f"which must be 'best' or 'latest', got {which!r}")
    wd = Workdir(workdir)
    cfg = wd.require_config()
    info = wd.data_info()
    model = models.create(cfg.model, info["num_classes"], **cfg.model_options)
    tx = optim.make_optimizer(cfg, steps_per_epoch=1)  # the schedule does not change the state's structure
    target = abstract_state(model, tx, cfg.seed, info["image_shape"], ema=cfg.ema_decay > 0)
    if not os.path.isdir(wd.checkpoint_dir):
        raise FileNotFoundError(f"no checkpoint in {wd.path} (no {os.path.basename(wd.checkpoint_dir)}/)")
    ckpt = ckpt_lib.Checkpoints(wd.checkpoint_dir, keep=cfg.keep_checkpoints, log=log, read_only=True)
    try:
        epochs = ckpt.epochs()
        if not epochs:
            raise FileNotFoundError(f"no checkpoint in {wd.checkpoint_dir}")
        try:
            if which == "best":
                epoch = selected_epoch(wd.metrics(), epochs) or epochs[-1]
                try:
                    state, _ = ckpt.restore(epoch, target)
                except ckpt_lib.CheckpointMismatch:
                    raise
                except Exception as e:  # noqa: BLE001 - Orbax/tensorstore raise many kinds: one line instead
                    reason = " ".join(f"{type(e).__name__}: {e}".split())[:200]
                    raise ValueError(f"the best checkpoint (epoch {epoch}) in {wd.checkpoint_dir} is unreadable "
                                     f"({reason}); use which='latest' (--which=latest), which falls back to older "
                                     f"ones") from None
            else:
                restored = ckpt.restore_latest(target)
                if restored is None:
                    raise FileNotFoundError(f"no readable checkpoint in {wd.checkpoint_dir}")
                epoch, state, _ = restored
        except ckpt_lib.CheckpointMismatch as e:
            raise ValueError(f"{wd.path}: {mismatch_message(e, info['num_classes'])}") from None
    finally:
        ckpt.close()
    return model, state.eval_variables(), cfg, epoch
