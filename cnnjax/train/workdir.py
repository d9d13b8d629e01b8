"""The work directory of one training run: the only code that reads or writes its files.

  config.json      the run's full config (:func:`cnnjax.train.config.to_dict`): re-run it with
                   ``--config=experiments/configs/rerun.py:WORKDIR``
  data.json        what the data turned out to be: source, classes, image shape, normalisation
  metrics.jsonl    one JSON object per epoch (and one ``{"event": ...}`` line per accepted data change,
                   which :meth:`Workdir.metrics` skips: :meth:`Workdir.events`)
  data_fingerprint.json  what the run trains on (:mod:`cnnjax.data.fingerprint`)
  summary.json     written once the run has finished
  checkpoints/     Orbax (:mod:`cnnjax.train.checkpoint`)
  .lock            held (``flock``) by the process training in the directory

Every JSON file is written atomically (temporary file + ``os.replace``); metrics.jsonl is
appended a line at a time, and a last line cut short by a crash is dropped when read (the
resumed epoch writes it again; the rows up to a checkpointed epoch also travel in that
checkpoint's meta, so a resume restores rows a crash kept from reaching this file).  A file that cannot be parsed raises :class:`WorkdirError`
naming it.
"""
from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from typing import Optional

import numpy as np

from cnnjax.train import config as config_lib

CONFIG, DATA, METRICS, SUMMARY, LOCK = "config.json", "data.json", "metrics.jsonl", "summary.json", ".lock"
FINISHED = "finished"
# Keys that config.json files written before cnnjax.train.config existed carry besides the settings.
_LEGACY_KEYS = ("workdir", "data")


class WorkdirError(ValueError):
    """A work directory that cannot be used as asked; the message names the file."""


def _jsonable(v):
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def write_json(path: str, obj) -> None:
    """Write ``obj`` to ``path`` atomically (a reader sees the old file or the new one)."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True, default=_jsonable)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_json(path: str):
    """The parsed file, or None when it does not exist; WorkdirError naming it when unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise WorkdirError(f"{path} is unreadable ({' '.join(str(e).split())}); "
                           f"move it away or use another --workdir") from None


def read_config(path: str) -> Optional[config_lib.TrainConfig]:
    """The TrainConfig in a config.json file, or None when there is none; WorkdirError naming
    the file otherwise.  Settings added to the schema since it was written take the value that
    reproduces the older run (e.g. no validation split); the extra keys of files written before
    cnnjax.train.config existed are ignored."""
    return _parse_config(read_json(path), path)


def _parse_config(raw, path: str) -> Optional[config_lib.TrainConfig]:
    """:func:`read_config` of ``raw``, the parsed contents of ``path`` (None: no file)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise WorkdirError(f"{path} is not a JSON object of settings")
    try:
        return config_lib.from_dict({k: v for k, v in raw.items() if k not in _LEGACY_KEYS}, check_model=False,
                                    older_run=True)
    except config_lib.ConfigError as e:
        raise WorkdirError(f"{path}: {e}") from None


class DiskFull(WorkdirError):
    """The work directory's disk filled up while the run wrote to it (what was written stands)."""


class Workdir:
    """``Workdir(path)``: typed access to a run's files (see the module docstring)."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def checkpoint_dir(self) -> str:
        return self.file("checkpoints")

    # ------------------------------------------------------------------ config and data

    def config(self) -> Optional[config_lib.TrainConfig]:
        """The run's config, or None when the directory has no config.json."""
        return read_config(self.file(CONFIG))

    def require_config(self) -> config_lib.TrainConfig:
        cfg = self.config()
        if cfg is None:
            raise FileNotFoundError(f"{self.file(CONFIG)} not found: is {self.path} a cnnjax training workdir?")
        return cfg

    def resume_config(self, cfg: config_lib.TrainConfig) -> tuple[config_lib.TrainConfig, list[str]]:
        """(the config to train with, the settings config.json predates) for ``cfg`` in this
        directory.  Settings added to cnnjax since config.json was written keep the values that
        reproduce the older run (e.g. no validation split), so its usual command resumes it.
        WorkdirError when config.json holds a run whose numbers would differ from ``cfg``'s."""
        raw = read_json(self.file(CONFIG))  # read once: its keys and its config
        old = _parse_config(raw, self.file(CONFIG))
        if old is None:
            return cfg, []
        predates = [k for k in config_lib.to_dict(cfg) if k not in raw]
        cfg = dataclasses.replace(cfg, **{k: getattr(old, k) for k in predates})
        run = config_lib.run_fields()
        diffs = [f"{k}={getattr(old, k)!r} (now {getattr(cfg, k)!r})" for k in config_lib.to_dict(cfg)
                 if k not in run and getattr(old, k) != getattr(cfg, k)]
        if diffs:
            raise WorkdirError(f"workdir {self.path} holds a different run: {', '.join(diffs)}; "
                               f"use another --workdir, or the same config to resume")
        return cfg, predates

    def write_config(self, cfg: config_lib.TrainConfig, data_info: dict) -> None:
        os.makedirs(self.path, exist_ok=True)
        write_json(self.file(DATA), data_info)
        write_json(self.file(CONFIG), config_lib.to_dict(cfg))

    def write_data_info(self, data_info: dict) -> None:
        """Replace data.json (e.g. after an accepted data change)."""
        write_json(self.file(DATA), data_info)

    def data_info(self) -> dict:
        """data.json (or the "data" entry of an older config.json)."""
        info = read_json(self.file(DATA))
        if info is None:
            info = (read_json(self.file(CONFIG)) or {}).get("data")
        if not isinstance(info, dict):
            raise FileNotFoundError(f"{self.file(DATA)} not found: has {self.path} started training?")
        return info

    # ------------------------------------------------------------------ metrics

    def metrics(self) -> list[dict]:
        """metrics.jsonl's rows; a last line cut short by a crash is dropped, damage elsewhere
        raises WorkdirError naming the line."""
        try:
            with open(self.file(METRICS)) as f:
                lines = f.read().split("\n")
        except FileNotFoundError:
            return []
        return [r for r in self._lines(lines) if "event" not in r]

    def events(self) -> list[dict]:
        """metrics.jsonl's event lines (e.g. an accepted data change), in order."""
        try:
            with open(self.file(METRICS)) as f:
                lines = f.read().split("\n")
        except FileNotFoundError:
            return []
        return [r for r in self._lines(lines) if "event" in r]

    def _lines(self, lines: list[str]) -> list[dict]:
        rows = []
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict) or ("epoch" not in row and "event" not in row):
                    raise ValueError("not an epoch record")
            except ValueError as e:
                if i == len(lines) - 1:  # no newline after it: the write was interrupted
                    break
                raise WorkdirError(f"{self.file(METRICS)} line {i + 1} is damaged ({e}); "
                                   f"delete that line to resume from the checkpoints") from None
            rows.append(row)
        return rows

    def write_metrics(self, rows: list[dict]) -> None:
        """Replace the epoch rows by ``rows``; event lines stay, each after the row of its
        ``after_epoch``."""
        events = self.events()
        lines = [e for e in events if e.get("after_epoch", 0) < (rows[0]["epoch"] if rows else 1)]
        for r in rows:
            lines.append(r)
            lines += [e for e in events if e.get("after_epoch") == r["epoch"]]
        lines += [e for e in events if e not in lines]
        tmp = f"{self.file(METRICS)}.tmp.{os.getpid()}"
        with open(tmp, "w") as f:
            f.writelines(json.dumps(r, default=_jsonable) + "\n" for r in lines)
        os.replace(tmp, self.file(METRICS))

    def append_event(self, event: dict) -> None:
        """Append an ``{"event": ...}`` line to metrics.jsonl (kept by :meth:`write_metrics`)."""
        os.makedirs(self.path, exist_ok=True)
        self.append_metrics(event)

    def append_metrics(self, row: dict) -> None:
        with open(self.file(METRICS), "a") as f:
            f.write(json.dumps(row, default=_jsonable) + "\n")

    # ------------------------------------------------------------------ summary

    def summary(self) -> Optional[dict]:
        """summary.json of a finished run, or None."""
        s = read_json(self.file(SUMMARY))
        if s is None:
            return None
        if not isinstance(s, dict) or s.get("status") != FINISHED:
            raise WorkdirError(f"{self.file(SUMMARY)} is not a finished run's summary; "
                               f"delete it to finish the run again")
        return s

    def write_summary(self, summary: dict) -> None:
        write_json(self.file(SUMMARY), {"status": FINISHED, **summary})

    # ------------------------------------------------------------------ one trainer at a time

    def lock(self) -> "WorkdirLock":
        """Hold the directory for this process (``with wd.lock(): ...``); WorkdirError naming
        the holder when another process trains in it.  The kernel releases it when the holder
        dies, so a SIGKILL leaves nothing that blocks a rerun."""
        return WorkdirLock(self.file(LOCK))


class WorkdirLock:
    def __init__(self, path: str):
        self.path, self._f = path, None

    def __enter__(self):
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            f = open(self.path, "a+")
        except OSError as e:
            raise WorkdirError(f"cannot write in {os.path.dirname(self.path)}: {e.strerror}") from None
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise WorkdirError(f"{os.path.dirname(self.path)} is in use by {holder}; "
                               f"wait for it or use another --workdir") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
        f.flush()
        self._f = f
        return self

    def __exit__(self, *exc):
        if self._f is not None:
            self._f.close()
            self._f = None
