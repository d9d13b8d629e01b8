"""Orbax checkpoints of a :class:`cnnjax.train.TrainState`, one per epoch.

Layout: ``<workdir>/checkpoints/<epoch>/{state,meta}`` (Orbax ``CheckpointManager``: atomic
writes, so a process killed mid-save leaves only an ignored temporary directory).  Kept:
the latest ``keep`` checkpoints plus the best by test accuracy.  A checkpoint that cannot
be read is moved to ``<workdir>/corrupt_checkpoints/`` (never deleted) and the previous
one is used instead.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from typing import Any, Callable, Optional

import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from cnnjax import models, train


class Checkpoints:
    """Save / restore TrainStates keyed by epoch."""

    def __init__(self, workdir: str, keep: int = 3, log: Callable[[str], None] = print):
        self.workdir = os.path.abspath(workdir)
        self.directory = os.path.join(self.workdir, "checkpoints")
        self.log = log
        policy = pp.AnyPreservationPolicy([
            pp.LatestN(n=keep),
            pp.BestN(get_metric_fn=lambda m: m["test_accuracy"], n=1, keep_checkpoints_without_metrics=False),
        ])
        self.manager = ocp.CheckpointManager(
            self.directory, item_names=("state", "meta"),
            options=ocp.CheckpointManagerOptions(preservation_policy=policy, create=True,
                                                 cleanup_tmp_directories=True))

    def epochs(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, epoch: int, state: train.TrainState, meta: dict, metrics: Optional[dict] = None) -> None:
        """Asynchronous: call :meth:`wait` before reading it back or exiting."""
        self.manager.save(epoch, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                         meta=ocp.args.JsonSave(meta)), metrics=metrics)

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def restore(self, epoch: int, target: train.TrainState) -> tuple[train.TrainState, dict]:
        out = self.manager.restore(epoch, args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                                                  meta=ocp.args.JsonRestore()))
        return train.TrainState(*out["state"]), dict(out["meta"])

    def restore_latest(self, target: train.TrainState) -> Optional[tuple[int, train.TrainState, dict]]:
        """(epoch, state, meta) of the newest readable checkpoint, or None if there is none."""
        for epoch in reversed(self.epochs()):
            try:
                state, meta = self.restore(epoch, target)
                return epoch, state, meta
            except Exception as e:  # noqa: BLE001 - any unreadable checkpoint: set it aside, try older
                self._set_aside(epoch, e)
        return None

    def _set_aside(self, epoch: int, error: Exception) -> None:
        dest = os.path.join(self.workdir, "corrupt_checkpoints", str(epoch))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.exists(dest):
            dest = f"{dest}.{len(os.listdir(os.path.dirname(dest)))}"
        shutil.move(os.path.join(self.directory, str(epoch)), dest)
        self.manager.reload()
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:200]
        self.log(f"checkpoint of epoch {epoch} is unreadable ({reason}); moved it to {dest} and "
                 f"falling back to the previous one")

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def read_config(workdir: str) -> dict:
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: is {workdir} a cnnjax training workdir?")
    with open(path) as f:
        return json.load(f)


def config_from_dict(flags: dict) -> train.TrainConfig:
    """The TrainConfig fields of a config.json dict."""
    names = {f.name for f in dataclasses.fields(train.TrainConfig)}
    return train.TrainConfig(**{k: v for k, v in flags.items() if k in names})


def best_epoch(workdir: str, available: list[int]) -> Optional[int]:
    """The epoch among ``available`` with the highest test accuracy in metrics.jsonl."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    scored = [(r["test_accuracy"], -r["epoch"], r["epoch"]) for r in rows
              if r.get("test_accuracy") is not None and r["epoch"] in available]
    return max(scored)[2] if scored else None


def load_trained(workdir: str, which: str = "best") -> tuple[Any, dict, dict]:
    """(model, variables, config) of a training workdir; ``which`` is 'best' or 'latest'.

    Raises FileNotFoundError when the workdir has no config.json or no checkpoint.
    """
    config = read_config(workdir)
    cfg = config_from_dict(config)
    info = config["data"]
    model = models.create(cfg.model, info["num_classes"], **cfg.model_options)
    tx = train.make_optimizer(cfg, steps_per_epoch=1)  # the schedule does not change the state's structure
    target = train.abstract_state(model, tx, cfg.seed, info["image_shape"])
    ckpt = Checkpoints(workdir, keep=max(1, int(config.get("keep_checkpoints", 3))))
    try:
        epochs = ckpt.epochs()
        if not epochs:
            raise FileNotFoundError(f"no checkpoint in {ckpt.directory}")
        if which == "best":
            epoch = best_epoch(workdir, epochs) or epochs[-1]
            state, _ = ckpt.restore(epoch, target)
        elif which == "latest":
            restored = ckpt.restore_latest(target)
            if restored is None:
                raise FileNotFoundError(f"no readable checkpoint in {ckpt.directory}")
            epoch, state, _ = restored
        else:
            raise ValueError(f"which must be 'best' or 'latest', got {which!r}")
    finally:
        ckpt.close()
    config = {**config, "restored_epoch": epoch}
    return model, state.variables(), config
