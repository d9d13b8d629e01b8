"""The sweep's grammar: which ``experiments.train`` flags a sweep may set, how ``--grid``,
``--base``, ``--seeds`` and ``--shard`` are parsed and normalised, and how a grid expands into
named runs (:class:`Run`, :class:`Stage`).  Pure functions, no files or processes: those are in
:mod:`launch.sweep`, whose docstring is the user-facing description of the syntax."""
from __future__ import annotations

import dataclasses
import itertools
import math
import os
from typing import Optional, Sequence

from experiments import common

UsageError = common.UsageError


# --------------------------------------------------------------------------- train contract

_INT, _FLOAT, _STR = "int", "float", "str"
TRAIN_FLAGS: dict[str, object] = {
    "model": _STR,
    "model_options": _STR,
    "dataset": _STR,
    "data_dir": _STR,
    "num_train": _INT,
    "num_test": _INT,
    "epochs": _INT,
    "batch_size": _INT,
    "learning_rate": _FLOAT,
    "optimizer": ("adam", "adamw", "sgd"),
    "schedule": ("constant", "cosine", "onecycle"),
    "weight_decay": _FLOAT,
    "label_smoothing": _FLOAT,
    "seed": _INT,
    "workdir": _STR,
    "eval_every": _INT,
    "checkpoint_every": _INT,
    "keep_checkpoints": _INT,
    "progress": ("auto", "bar", "plain", "none"),
    # Beyond the written contract, present in experiments/train.py:
    "momentum": _FLOAT,
    "warmup_epochs": _FLOAT,
    "augment": ("none", "flip", "crop", "flip_crop"),
    "compute_dtype": ("float32", "bfloat16"),
    "epoch_loop": ("auto", "steps", "scan"),
}
# Set by the sweep itself, never by --grid / --base.
_RESERVED = {
    "seed": "give seeds with --seeds",
    "workdir": "each run's workdir is OUT/runs/<name>",
    "model_options": "write model options as their own keys, e.g. activation=relu,sigmoid",
    # experiments.train's multi-host flags: one run spanning hosts is launched per host, not swept
    "coordinator_address": "multi-host runs are launched on each host, not by the sweep",
    "num_processes": "multi-host runs are launched on each host, not by the sweep",
    "process_id": "multi-host runs are launched on each host, not by the sweep",
}
# Flags that manage a run but do not define it (ignored when grouping runs in reports).
MANAGEMENT_FLAGS = ("seed", "workdir", "data_dir", "progress", "eval_every", "checkpoint_every",
                    "keep_checkpoints", "epoch_loop")
DEFAULT_PROGRESS = "plain"
DEFAULT_TRAIN_MODULE = "experiments.train"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FINISHED = "finished"

# --------------------------------------------------------------------------- parsing


def canonical_value(key: str, value: str) -> str:
    """The normalised text of ``value`` for flag/option ``key`` (raises UsageError if malformed)."""
    value = value.strip()
    if not value:
        raise UsageError(f"{key} has an empty value")
    kind = TRAIN_FLAGS.get(key, _STR)
    if kind == _INT:
        try:
            return str(int(value))
        except ValueError:
            raise UsageError(f"{key} must be an integer, got {value!r}") from None
    if kind == _FLOAT:
        try:
            number = float(value)
        except ValueError:
            raise UsageError(f"{key} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise UsageError(f"{key} must be finite, got {value!r}")
        return repr(number)
    if isinstance(kind, tuple) and value not in kind:
        raise UsageError(f"{key} must be one of {', '.join(kind)}, got {value!r}")
    return value


def _check_key(key: str, where: str) -> str:
    key = key.strip()
    if not key:
        raise UsageError(f"{where}: empty flag name")
    if key in _RESERVED:
        raise UsageError(f"{where}: {key!r} cannot be set here ({_RESERVED[key]})")
    if key not in TRAIN_FLAGS and not key.isidentifier():
        raise UsageError(f"{where}: {key!r} is not a flag or option name")
    return key


def parse_grid(text: str) -> list[tuple[str, list[str]]]:
    """``'model=a,b;learning_rate=1e-3'`` -> ``[('model', ['a', 'b']), ('learning_rate', ['0.001'])]``.

    Checks syntax and value types; names that are not train flags are kept (as model options)
    and checked by :func:`check_model_options`."""
    text = text.strip()
    if not text:
        return []
    axes: list[tuple[str, list[str]]] = []
    for i, part in enumerate(text.split(";"), 1):
        part = part.strip()
        if not part:
            raise UsageError(f"--grid: axis {i} is empty (stray ';' in {text!r})")
        if "=" not in part:
            raise UsageError(f"--grid: axis {part!r} has no '=' (write name=value1,value2)")
        key, raw = part.split("=", 1)
        key = _check_key(key, "--grid")
        if any(key == k for k, _ in axes):
            raise UsageError(f"--grid: duplicate axis {key!r}")
        if not raw.strip():
            raise UsageError(f"--grid: axis {key!r} has no values")
        values = []
        for v in raw.split(","):
            if not v.strip():
                raise UsageError(f"--grid: axis {key!r} has an empty value in {raw!r}")
            v = canonical_value(key, v)
            if v in values:
                raise UsageError(f"--grid: axis {key!r} lists {v!r} twice")
            values.append(v)
        axes.append((key, values))
    return axes


def parse_base(text: str) -> dict[str, str]:
    """``'epochs=3,batch_size=128'`` -> ``{'epochs': '3', 'batch_size': '128'}`` (normalised)."""
    out: dict[str, str] = {}
    text = text.strip()
    if not text:
        return out
    for item in text.split(","):
        if not item.strip():
            raise UsageError(f"--base: empty item in {text!r}")
        if "=" not in item:
            raise UsageError(f"--base: {item.strip()!r} has no '=' (write name=value,name2=value2)")
        key, value = item.split("=", 1)
        key = _check_key(key, "--base")
        if key in out:
            raise UsageError(f"--base: {key!r} given twice")
        out[key] = canonical_value(key, value)
    return out


def parse_seeds(text: str) -> list[int]:
    seeds = []
    for s in text.split(","):
        try:
            seed = int(s.strip())
        except ValueError:
            raise UsageError(f"--seeds must be a comma list of integers, got {text!r}") from None
        if seed < 0 or seed in seeds:
            raise UsageError(f"--seeds: {seed} is negative or repeated in {text!r}")
        seeds.append(seed)
    return seeds


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must be i/n (e.g. 2/4), got {text!r}") from None
    if not 1 <= i <= n:
        raise UsageError(f"--shard={text}: need 1 <= i <= n (i is 1-based)")
    return i, n


def check_model_options(grid, base) -> None:
    """Every non-flag key must be an option of every model the sweep uses; model names must exist."""
    models_used = dict(grid).get("model") or ([base["model"]] if "model" in base else None)
    option_keys = [k for k, _ in grid if k not in TRAIN_FLAGS] + [k for k in base if k not in TRAIN_FLAGS]
    if not option_keys and not models_used:
        return
    from cnnjax import models  # jax import: only when needed

    available = models.available()
    for m in models_used or ():
        if m not in available:
            raise UsageError(f"unknown model {m!r}; available: {', '.join(available)}")
    if not option_keys:
        return
    candidates = models_used or available  # model not set: the trainer's default, one of these
    for key in option_keys:
        ok = []
        for m in candidates:
            try:
                models.create(m, **{key: None})
                ok.append(m)
            except ValueError:
                pass
            except Exception:  # noqa: BLE001 - constructing with a placeholder may fail: option exists
                ok.append(m)
        if models_used and len(ok) < len(candidates):
            missing = [m for m in candidates if m not in ok]
            raise UsageError(f"unknown flag name {key!r}: not a train flag, nor an option of model "
                             f"{', '.join(missing)}")
        if not ok:
            raise UsageError(f"unknown flag name {key!r}: not a train flag, nor an option of any model")


# --------------------------------------------------------------------------- runs and names

_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-")
_MAX_NAME = 200


def escape(text: str) -> str:
    return "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in text)


def unescape(text: str) -> str:
    from urllib.parse import unquote
    return unquote(text)


def run_name(items: Sequence[tuple[str, str]]) -> str:
    """``[('model', 'a'), ('seed', '1')]`` -> ``'model=a,seed=1'`` (filesystem-safe, decodable)."""
    name = ",".join(f"{escape(k)}={escape(str(v))}" for k, v in items)
    if len(name) > _MAX_NAME:
        import hashlib
        name = name[:_MAX_NAME - 12] + "~" + hashlib.sha1(name.encode()).hexdigest()[:11]
    return name


def parse_name(name: str) -> Optional[list[tuple[str, str]]]:
    """Inverse of :func:`run_name`; None if ``name`` is not of that form."""
    items = []
    for part in name.split(","):
        if part.count("=") != 1:
            return None
        k, v = part.split("=")
        items.append((unescape(k), unescape(v)))
    return items


@dataclasses.dataclass(frozen=True)
class Run:
    name: str
    settings: tuple[tuple[str, str], ...]   # flag/option -> value (no seed/workdir), base then grid
    seed: int

    def argv(self, workdir: str) -> list[str]:
        """The trainer's flags for this run, in a fixed order (so a rerun is the same command)."""
        s = dict(self.settings)
        options = sorted((k, v) for k, v in s.items() if k not in TRAIN_FLAGS)
        s.setdefault("progress", DEFAULT_PROGRESS)
        args = [f"--{k}={v}" for k, v in sorted(s.items()) if k in TRAIN_FLAGS]
        if options:
            args.append("--model_options=" + ",".join(f"{k}={v}" for k, v in options))
        return args + [f"--seed={self.seed}", f"--workdir={workdir}"]


@dataclasses.dataclass
class Stage:
    grid: list[tuple[str, list[str]]]
    base: dict[str, str]
    seeds: list[int]

    def to_json(self) -> dict:
        return {"grid": [[k, list(v)] for k, v in self.grid], "base": dict(self.base), "seeds": list(self.seeds)}

    @classmethod
    def from_json(cls, d) -> "Stage":
        return cls([(k, list(v)) for k, v in d["grid"]], dict(d["base"]), [int(s) for s in d["seeds"]])

    def same_as(self, other: "Stage") -> bool:
        """Equal up to the order of values and seeds (axis order matters: it orders run names)."""
        return ([k for k, _ in self.grid] == [k for k, _ in other.grid]
                and all(sorted(a) == sorted(b) for (_, a), (_, b) in zip(self.grid, other.grid))
                and self.base == other.base and sorted(self.seeds) == sorted(other.seeds))

    def describe(self) -> str:
        grid = ";".join(f"{k}={','.join(v)}" for k, v in self.grid) or "(none)"
        base = ",".join(f"{k}={v}" for k, v in self.base.items()) or "(none)"
        return f"grid {grid} base {base} seeds {','.join(map(str, self.seeds))}"


def make_stage(grid: str, base: str, seeds: str, study_base: str = "") -> Stage:
    g = parse_grid(grid)
    b = {**parse_base(study_base), **parse_base(base)}
    b = {k: v for k, v in b.items() if k not in dict(g)}  # grid axes override base keys
    check_model_options(g, b)
    return Stage(g, b, parse_seeds(seeds))


def expand(stages: Sequence[Stage]) -> list[Run]:
    """All runs of a sweep, in a stable order: stage by stage, seed-major, then the grid's product.

    Names use the stage's grid values, plus (for later stages) base keys that differ from the
    first stage's base, plus the seed.  Runs with identical settings appear once."""
    runs, seen, names = [], set(), {}
    ref = stages[0].base if stages else {}
    for stage in stages:
        keys = [k for k, _ in stage.grid]
        dropped = [k for k in ref if k not in stage.base and k not in keys]
        if dropped:
            raise UsageError(f"--extend cannot drop --base key(s) {', '.join(dropped)} of the first "
                             f"stage (run names would become ambiguous); set them explicitly")
        extra = [k for k, v in stage.base.items() if k not in keys and ref.get(k) != v]
        for seed in stage.seeds:
            for values in itertools.product(*(v for _, v in stage.grid)):
                point = list(zip(keys, values))
                settings = tuple({**stage.base, **dict(point)}.items())
                identity = (tuple(sorted(settings)), seed)
                if identity in seen:
                    continue
                seen.add(identity)
                name = run_name(point + [(k, stage.base[k]) for k in extra] + [("seed", str(seed))])
                if name in names:
                    raise UsageError(f"two different runs would be named {name!r}; use a new --out")
                names[name] = identity
                runs.append(Run(name, settings, seed))
    return runs


def shard(runs: Sequence, i: int, n: int) -> list:
    """The i-th (1-based) of n disjoint slices: elements k with k % n == i - 1."""
    return [r for k, r in enumerate(runs) if k % n == i - 1]
