"""Orbax checkpoints of a :class:`cnnjax.train.state.TrainState`, one per epoch.

Layout: ``<directory>/<epoch>/{state,meta}`` (Orbax ``CheckpointManager``: atomic
writes, so a process killed mid-save leaves only an ignored temporary directory).  Kept:
the latest ``keep`` checkpoints plus the best by validation accuracy (the ``metrics`` given to
:meth:`Checkpoints.save`; never the test set).  Each checkpoint's meta
records a digest of the state's bytes, checked on restore, so a damaged checkpoint is caught
even where Orbax would read it.

Damaged and mismatched are different things:

* *damaged* (:class:`CorruptCheckpoint`, or any failure to read it): in training, the checkpoint is
  moved to ``corrupt_checkpoints/`` beside ``<directory>`` (never deleted) and the previous one is
  used instead (:meth:`Checkpoints.set_aside`); opened ``read_only`` (the commands that only read a
  run), it is left where it is, named in one log line, and skipped;
* *mismatched* (:class:`CheckpointMismatch`): it reads, but holds variables of other shapes or
  names than the state it is restored into -- another model, another number of classes: another
  run's checkpoint, not damage.  It is raised, never set aside (an older checkpoint of the same
  run would not fit either).
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

from cnnjax.train.state import TrainState


@contextlib.contextmanager
def _quiet(name: str, level: int):
    """Within: records of the logger ``name`` below ``level`` are not printed."""
    logger = logging.getLogger(name)
    old = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(old)


def _quiet_absl():
    """absl's WARNING records off (Orbax's notes on a read-only manager, which is the point)."""
    return _quiet("absl", logging.ERROR)


def _quiet_asyncio():
    """asyncio's own error log off.  When Orbax fails to read a damaged checkpoint, its other
    reads are cancelled and asyncio logs each of them at shutdown -- many lines on stderr for the
    one failure the restore raises, which the caller reports (in one line, for the CLIs)."""
    return _quiet("asyncio", logging.CRITICAL)


class CorruptCheckpoint(ValueError):
    """A checkpoint whose restored bytes do not match the digest recorded when it was saved."""


class CheckpointMismatch(ValueError):
    """A readable checkpoint that holds another model than the state restored into: ``path`` (the
    first variable that differs, e.g. 'params/fc/kernel'), ``stored`` and ``wanted`` its shapes
    (None: absent on that side)."""

    def __init__(self, message: str, epoch: int, path: str, stored, wanted):
        super().__init__(message)
        self.epoch, self.path, self.stored, self.wanted = epoch, path, stored, wanted


def _shapes(tree) -> dict:
    """{'params/fc/kernel': shape} of a tree of arrays, ShapeDtypeStructs or Orbax metadata."""
    leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))[0]
    return {"/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path):
            tuple(int(d) for d in leaf.shape) for path, leaf in leaves if hasattr(leaf, "shape")}


def _first_difference(stored: dict, wanted: dict):
    """(path, stored shape, wanted shape) of the first variable that differs (the model's own
    variables before the optimizer's copies of them), or None."""
    order = lambda p: (not p.startswith("params/"), not p.startswith("batch_stats/"), p)
    for path in sorted(set(stored) | set(wanted), key=order):
        if stored.get(path) != wanted.get(path):
            return path, stored.get(path), wanted.get(path)
    return None


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

    def __init__(self, directory: str, keep: int = 3, log: Callable[[str], None] = print, read_only: bool = False):
        """``read_only``: nothing in ``directory`` is created, moved, cleaned up or written (for
        the commands that only read a run); saving is an error, damaged checkpoints are skipped
        in place."""
        self.directory = os.path.abspath(directory)
        self.log, self.read_only = log, read_only
        self.set_aside_epochs: list[int] = []  # moved to corrupt_checkpoints/ by this object, in order
        self.skipped_epochs: list[int] = []  # damaged, left in place (read_only), in order
        policy = pp.AnyPreservationPolicy([
            pp.LatestN(n=keep),
            pp.BestN(get_metric_fn=lambda m: m["val_accuracy"], n=1, keep_checkpoints_without_metrics=False),
        ])
        if read_only:
            with _quiet_absl():  # Orbax warns that a read-only manager does not save: that is the point
                options = ocp.CheckpointManagerOptions(read_only=True, create=False, cleanup_tmp_directories=False,
                                                       save_root_metadata=False, save_interval_steps=0)
                self.manager = ocp.CheckpointManager(self.directory, item_names=("state", "meta"), options=options)
        else:
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
        if self.read_only:
            raise RuntimeError(f"{self.directory} was opened read-only: nothing is saved there")
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

    def check_fits(self, epoch: int, target: TrainState) -> None:
        """CheckpointMismatch when the checkpoint of ``epoch`` holds variables of other names or
        shapes than ``target`` (read from its metadata, before any array); a checkpoint whose
        metadata cannot be read is left to :meth:`restore` (damage)."""
        try:
            with _quiet_asyncio(), _quiet_absl(), ocp.StandardCheckpointer() as reader:
                stored = reader.metadata(os.path.join(self.directory, str(epoch), "state"))
            stored = _shapes(stored.item_metadata.tree)
        except Exception:  # noqa: BLE001 - unreadable metadata is damage: restore() reports it
            return
        diff = _first_difference(stored, _shapes(_on_disk(target)))
        if diff is not None:
            path, have, want = diff
            show = lambda shape: "absent" if shape is None else ("x".join(map(str, shape)) or "a scalar")
            raise CheckpointMismatch(
                f"checkpoint of epoch {epoch} in {self.directory} holds another model than this config builds "
                f"({path}: {show(have)} there, {show(want)} here): another run's checkpoint, not damage",
                epoch, path, have, want)

    def restore(self, epoch: int, target: TrainState) -> tuple[TrainState, dict]:
        """(state, meta) of ``epoch``; CheckpointMismatch when it holds another model than
        ``target`` (:meth:`check_fits`), CorruptCheckpoint when its bytes fail the recorded digest
        (checkpoints from before digests were recorded are not checked)."""
        self.check_fits(epoch, target)
        with _quiet_asyncio():
            out = self.manager.restore(epoch, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(_on_disk(target)), meta=ocp.args.JsonRestore()))
        state, meta = TrainState(**out["state"]), dict(out["meta"])
        if "digest" in meta and digest(state) != meta["digest"]:
            raise CorruptCheckpoint(f"checkpoint of epoch {epoch} in {self.directory} does not match its "
                                    f"digest: its data is damaged")
        return state, meta

    def restore_latest(self, target: TrainState) -> Optional[tuple[int, TrainState, dict]]:
        """(epoch, state, meta) of the newest readable checkpoint, or None if there is none.  A
        damaged one is set aside (read-only: skipped in place) and the previous one tried; a
        mismatched one raises CheckpointMismatch (module docstring)."""
        for epoch in reversed(self.epochs()):
            try:
                state, meta = self.restore(epoch, target)
                return epoch, state, meta
            except CheckpointMismatch:
                raise
            except Exception as e:  # noqa: BLE001 - any unreadable checkpoint: set it aside, try older
                self.set_aside(epoch, e)
        return None

    def set_aside(self, epoch: int, error: Exception, instead: str = "falling back to the previous one") -> None:
        """Move the checkpoint of ``epoch`` (unreadable or damaged: ``error``) to
        ``corrupt_checkpoints/<epoch>`` beside the directory and say so in one log line ending with
        ``instead`` (what the caller does now).  Read-only: nothing moves; the line says it was
        skipped and left in place."""
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:200]
        if self.read_only:
            self.skipped_epochs.append(epoch)
            self.log(f"checkpoint of epoch {epoch} in {self.directory} is unreadable or damaged ({reason}); "
                     f"left it in place and skipped it, {instead}")
            return
        dest = os.path.join(os.path.dirname(self.directory), "corrupt_checkpoints", str(epoch))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.exists(dest):
            dest = f"{dest}.{len(os.listdir(os.path.dirname(dest)))}"
        shutil.move(os.path.join(self.directory, str(epoch)), dest)
        self.manager.reload()
        self.set_aside_epochs.append(epoch)
        self.log(f"checkpoint of epoch {epoch} is unreadable or damaged ({reason}); moved it to {dest} and {instead}")

    def close(self) -> None:
        """Finish pending saves, then release the manager.  A failed save (e.g. a full disk)
        raises here, after the manager has been closed."""
        try:
            self.manager.wait_until_finished()
        finally:
            self.manager.close()
