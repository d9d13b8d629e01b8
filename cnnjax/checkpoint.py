"""Orbax checkpoints of a :class:`cnnjax.train_state.TrainState`, one per epoch.

Layout: ``<directory>/<epoch>/{state,meta}`` (Orbax ``CheckpointManager``: atomic
writes, so a process killed mid-save leaves only an ignored temporary directory).  Kept:
the latest ``keep`` checkpoints plus the best by validation accuracy (the ``metrics`` given to
:meth:`Checkpoints.save`; never the test set).  Each checkpoint's meta
records a digest of the state's bytes, checked on restore, so a damaged checkpoint is caught
even where Orbax would read it.  A checkpoint that cannot be read or fails its digest is moved
to ``corrupt_checkpoints/`` beside ``<directory>`` (never deleted) and the previous one is used
instead (:meth:`Checkpoints.set_aside`).
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import shutil
from typing import Callable, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from cnnjax.train_state import TrainState


@contextlib.contextmanager
def _quiet_asyncio():
    """Within: asyncio's own error log is off.  When Orbax fails to read a damaged checkpoint, its
    other reads are cancelled and asyncio logs each of them at shutdown -- many lines on stderr for
    the one failure the restore raises, which the caller reports (in one line, for the CLIs)."""
    logger = logging.getLogger("asyncio")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


class CorruptCheckpoint(ValueError):
    """A checkpoint whose restored bytes do not match the digest recorded when it was saved."""


def digest(state) -> str:
    """BLAKE2b of every leaf's dtype, shape and bytes (this process's copy of each array)."""
    h = hashlib.blake2b(digest_size=16)
    for leaf in jax.tree.leaves(state):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:  # replicated over hosts
            leaf = leaf.addressable_data(0)
        a = np.ascontiguousarray(jax.device_get(leaf))
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _on_disk(state: TrainState) -> dict:
    """What a checkpoint stores: the state's fields by name, without ``ema`` when no moving
    average is kept -- the layout of checkpoints written before ``ema`` existed, so they restore."""
    fields = state._asdict()
    if fields["ema"] is None:
        del fields["ema"]
    return fields


class Checkpoints:
    """Save / restore TrainStates keyed by epoch."""

    def __init__(self, directory: str, keep: int = 3, log: Callable[[str], None] = print):
        self.directory = os.path.abspath(directory)
        self.log = log
        self.set_aside_epochs: list[int] = []  # moved to corrupt_checkpoints/ by this object, in order
        policy = pp.AnyPreservationPolicy([
            pp.LatestN(n=keep),
            pp.BestN(get_metric_fn=lambda m: m["val_accuracy"], n=1, keep_checkpoints_without_metrics=False),
        ])
        self.manager = ocp.CheckpointManager(
            self.directory, item_names=("state", "meta"),
            options=ocp.CheckpointManagerOptions(preservation_policy=policy, create=True,
                                                 cleanup_tmp_directories=True))

    def epochs(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, epoch: int, state: TrainState, meta: dict, metrics: Optional[dict] = None) -> None:
        """Asynchronous: call :meth:`wait` before reading it back or exiting.  Raises OSError
        (ENOSPC) before writing anything when the disk has less room than the state needs (Orbax's
        own failure on a full disk leaves its writer threads printing tracebacks)."""
        need = sum(np.dtype(a.dtype).itemsize * int(np.prod(a.shape)) for a in jax.tree.leaves(state)) + (1 << 20)
        free = shutil.disk_usage(self.directory).free
        if free < need:
            raise OSError(errno.ENOSPC, f"No space left on device: a checkpoint needs about {need:,} bytes, "
                                        f"{free:,} are free", self.directory)
        meta = {**meta, "digest": digest(state)}
        self.manager.save(epoch, args=ocp.args.Composite(state=ocp.args.StandardSave(_on_disk(state)),
                                                         meta=ocp.args.JsonSave(meta)), metrics=metrics)

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def restore(self, epoch: int, target: TrainState) -> tuple[TrainState, dict]:
        """(state, meta) of ``epoch``; CorruptCheckpoint when its bytes fail the recorded digest
        (checkpoints from before digests were recorded are not checked)."""
        with _quiet_asyncio():
            out = self.manager.restore(epoch, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(_on_disk(target)), meta=ocp.args.JsonRestore()))
        state, meta = TrainState(**out["state"]), dict(out["meta"])
        if "digest" in meta and digest(state) != meta["digest"]:
            raise CorruptCheckpoint(f"checkpoint of epoch {epoch} in {self.directory} does not match its "
                                    f"digest: its data is damaged")
        return state, meta

    def restore_latest(self, target: TrainState) -> Optional[tuple[int, TrainState, dict]]:
        """(epoch, state, meta) of the newest readable checkpoint, or None if there is none."""
        for epoch in reversed(self.epochs()):
            try:
                state, meta = self.restore(epoch, target)
                return epoch, state, meta
            except Exception as e:  # noqa: BLE001 - any unreadable checkpoint: set it aside, try older
                self.set_aside(epoch, e)
        return None

    def set_aside(self, epoch: int, error: Exception, instead: str = "falling back to the previous one") -> None:
        """Move the checkpoint of ``epoch`` (unreadable or damaged: ``error``) to
        ``corrupt_checkpoints/<epoch>`` beside the directory and say so in one log line ending with
        ``instead`` (what the caller does now)."""
        dest = os.path.join(os.path.dirname(self.directory), "corrupt_checkpoints", str(epoch))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.exists(dest):
            dest = f"{dest}.{len(os.listdir(os.path.dirname(dest)))}"
        shutil.move(os.path.join(self.directory, str(epoch)), dest)
        self.manager.reload()
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:200]
        self.set_aside_epochs.append(epoch)
        self.log(f"checkpoint of epoch {epoch} is unreadable or damaged ({reason}); moved it to {dest} and {instead}")

    def close(self) -> None:
        """Finish pending saves, then release the manager.  A failed save (e.g. a full disk)
        raises here, after the manager has been closed."""
        try:
            self.manager.wait_until_finished()
        finally:
            self.manager.close()
