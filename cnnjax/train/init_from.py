"""Start a run from trained weights: ``config.init_from`` (and ``config.reinit``).

The source is one of

* a cnnjax work directory of a finished run: the variables its evaluations used (the moving
  average with ema_decay) at its validation-selected checkpoint (the latest without a validation
  split), read without changing it (:func:`cnnjax.train.runs.load_trained`); its model must be the new
  run's model;
* a weights file: ``.safetensors`` or ``.npz`` in cnnjax's layout (keys ``params/conv1/kernel``,
  ``batch_stats/bn1/mean``: :func:`write_weights`), or a PyTorch ``state_dict`` as ``.pth`` /
  ``.pt`` / ``.bin`` (needs torch) or ``.safetensors`` (torch's key names), in any key order,
  nested or prefixed as training scripts save them, converted by :mod:`cnnjax.weights.pytorch`.

Matching is by path in the variable tree (``params`` and ``batch_stats``, paths as in
:mod:`cnnjax.train.freeze`).  Each variable of the new model is *new* (not in the source, or listed by
a ``config.reinit`` pattern, e.g. the head ``fc`` for new classes: it keeps its fresh
initialisation), *loaded* (same path and shape), or an error (a shape mismatch not listed).  Source variables the model
does not have are *skipped*.  :attr:`Prepared.table` says which is which.  Errors
(:class:`InitFromError`, a ValueError: one line, raised while the run is built, before anything
is written): a missing, unfinished or damaged work directory or file, another architecture
(another model, or no variable in common), an unlisted shape mismatch, a reinit pattern that
matches nothing.

The new run records the source (path, epoch, and a work directory's normalisation ``mean`` / ``std``
and ``class_names``) in its data.json under ``init_from``; it normalises its images with its own
training set's statistics.  Only a fresh run loads: a resumed run continues from its checkpoint.
"""
from __future__ import annotations

import json
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.train import runs
from cnnjax.train.workdir import Workdir
from cnnjax.weights import pytorch as torch_weights
from cnnjax.weights.variables import COLLECTIONS, check_patterns, describe, fill, flatten, selected, variable_shapes
WEIGHT_SUFFIXES = (".safetensors", ".npz", *torch_weights.TORCH_SUFFIXES)


class InitFromError(ValueError):
    """config.init_from cannot be used; the message names the path and what is wrong."""


class Prepared(NamedTuple):
    """What :func:`prepare` found: the variables to load and what to record and print."""
    loaded: dict        # {collection: {path: np.ndarray}} -- only the variables that are loaded
    table: str          # the printed table: loaded / new / skipped, with reasons
    record: dict        # what the new run writes into its data.json under "init_from"


# --------------------------------------------------------------------------- reading a source


def _from_workdir(path: str, model_name: str) -> tuple[dict, dict]:
    wd = Workdir(path)
    try:
        cfg = wd.config()
    except Exception as e:  # noqa: BLE001 - damaged config.json: one line
        raise InitFromError(f"config.init_from: {path} is damaged ({' '.join(str(e).split())[:200]})") from None
    if cfg is None:
        raise InitFromError(f"config.init_from: {path} is not a cnnjax work directory (no config.json)")
    if wd.summary() is None:
        raise InitFromError(f"config.init_from: {path} is unfinished (no summary.json): finish it (rerun its "
                            f"command) or start from a finished run")
    if cfg.model != model_name:
        raise InitFromError(f"config.init_from: {path} trained {cfg.model}, another architecture than this "
                            f"run's {model_name}")
    try:
        _, variables, _, epoch = runs.load_trained(path, "best")
        info = wd.data_info()
    except Exception as e:  # noqa: BLE001 - missing / damaged checkpoints raise many kinds: one line
        raise InitFromError(f"config.init_from: {path} cannot be read ({' '.join(str(e).split())[:300]})") from None
    record = {"path": os.path.abspath(path), "kind": "workdir", "model": cfg.model, "epoch": epoch,
              "mean": info.get("mean"), "std": info.get("std"), "class_names": info.get("class_names")}
    return flatten(jax.device_get(variables), np.asarray), record


def _from_file(path: str, model_name: str, model, image_shape) -> tuple[dict, dict]:
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise InitFromError(f"config.init_from: {path} is neither a work directory nor a weights file "
                            f"({', '.join(WEIGHT_SUFFIXES)})")
    record = {"path": os.path.abspath(path), "kind": suffix.lstrip(".")}
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                flat = {k: f[k] for k in f.files}
        else:
            if suffix == ".safetensors":  # cnnjax's own files carry the source's normalisation and classes
                from safetensors import safe_open
                with safe_open(path, "numpy") as f:
                    meta = f.metadata() or {}
                record.update({k: json.loads(v) for k, v in meta.items() if k in ("mean", "std", "class_names")})
            flat = torch_weights.read_state_dict(path)
    except torch_weights.ConversionError as e:
        raise InitFromError(f"config.init_from: {e}") from None
    except Exception as e:  # noqa: BLE001 - truncated / foreign files raise many kinds: one line
        raise InitFromError(f"config.init_from: {path} cannot be read ({type(e).__name__}: "
                            f"{' '.join(str(e).split())[:200]})") from None
    if flat and all(k.split("/", 1)[0] in COLLECTIONS for k in flat):  # cnnjax's layout
        out = {c: {} for c in COLLECTIONS}
        for k, v in flat.items():
            c, rest = k.split("/", 1)
            out[c][rest] = v
        return out, record
    try:
        return (torch_weights.to_cnnjax(flat, model_name, model, image_shape),
                {**record, "layout": "torch"})
    except torch_weights.ConversionError as e:
        raise InitFromError(f"config.init_from: {path}: {e}") from None


def read(path: str, model_name: str, model, image_shape) -> tuple[dict, dict]:
    """({collection: {path: array}}, record) of a source (module docstring) for the new run's
    ``model`` (registry name ``model_name``) on (H, W, C) ``image_shape`` images."""
    if not os.path.exists(path):
        raise InitFromError(f"config.init_from: {path} does not exist")
    if os.path.isdir(path):
        return _from_workdir(path, model_name)
    return _from_file(path, model_name, model, image_shape)


# --------------------------------------------------------------------------- matching


def match(source: dict, target: dict, reinit=(), where: str = "the source") -> tuple[dict, list[tuple]]:
    """(loaded {collection: {path: array}}, table rows (variable, shape, status)) of ``source``
    against the new model's ``target`` variables (arrays or shapes)."""
    target = flatten(target)
    check_patterns(reinit, [p for c in COLLECTIONS for p in target[c]], "config.reinit")
    loaded, rows = {c: {} for c in COLLECTIONS}, []
    for c in COLLECTIONS:
        for path, t in target[c].items():
            shape = tuple(t.shape)
            name = path if c == "params" else f"{path} ({c})"
            if path not in source.get(c, {}):
                rows.append((name, shape, "new: not in the source"))
                continue
            s = tuple(np.shape(source[c][path]))
            if selected(reinit, path):
                rows.append((name, shape, f"new: config.reinit (source shape {s})"))
            elif s == shape:
                loaded[c][path] = np.asarray(source[c][path]).astype(t.dtype)
                rows.append((name, shape, "loaded"))
            else:
                raise InitFromError(f"config.init_from: {path} has shape {s} in {where} and {shape} in this model; "
                                    f"list it in config.reinit to start it fresh")
        for path, v in source.get(c, {}).items():
            if path not in target[c]:
                name = path if c == "params" else f"{path} ({c})"
                rows.append((name, tuple(np.shape(v)), "skipped: not in this model"))
    if not any(loaded[c] for c in COLLECTIONS):
        raise InitFromError(f"config.init_from: no variable of {where} matches this model by path and shape: "
                            f"another architecture (its paths: {describe(list(source.get('params', {})))})")
    return loaded, rows


def format_table(rows: list[tuple], header: str) -> str:
    width = max([len(r[0]) for r in rows] + [8])
    shapes = [("x".join(map(str, r[1])) or "scalar") for r in rows]
    swidth = max([len(s) for s in shapes] + [5])
    counts = {k: sum(r[2].startswith(k) for r in rows) for k in ("loaded", "new", "skipped")}
    lines = [f"{header}: {counts['loaded']} loaded, {counts['new']} new, {counts['skipped']} skipped",
             f"  {'variable':<{width}}  {'shape':<{swidth}}  status"]
    lines += [f"  {r[0]:<{width}}  {s:<{swidth}}  {r[2]}" for r, s in zip(rows, shapes)]
    return "\n".join(lines)


def prepare(cfg, model, image_shape) -> Prepared:
    """Read and match ``cfg.init_from`` for ``model`` on (H, W, C) images; InitFromError when it
    does not fit (nothing is written by this)."""
    target = variable_shapes(model, image_shape)
    source, record = read(cfg.init_from, cfg.model, model, image_shape)
    loaded, rows = match(source, target, cfg.reinit, where=cfg.init_from)
    where = f"{cfg.init_from}" + (f" (epoch {record['epoch']})" if "epoch" in record else "")
    return Prepared(loaded, format_table(rows, f"init_from {where}"), record)


def apply(state, prepared: Prepared, tx):
    """``state`` (a fresh :class:`cnnjax.train.state.TrainState`) with the loaded variables in place, its
    optimizer state initialised for them and its moving average (if any) restarted from them."""
    params = fill(state.params, prepared.loaded["params"], jnp.asarray)
    state = state._replace(params=params, batch_stats=fill(state.batch_stats, prepared.loaded["batch_stats"], jnp.asarray),
                           opt_state=tx.init(params))
    if state.ema is not None:
        state = state._replace(ema=jax.tree.map(jnp.copy, state.variables()))
    return state


# --------------------------------------------------------------------------- writing


def write_weights(variables: dict, path: str, *, mean=None, std=None, class_names=None) -> None:
    """Save ``variables`` (params, batch_stats) in cnnjax's layout as ``.safetensors`` (with the
    normalisation and class names as metadata) or ``.npz``: a file ``config.init_from`` reads."""
    flat = {f"{c}/{p}": np.ascontiguousarray(v) for c, tree in flatten(jax.device_get(variables), np.asarray).items()
            for p, v in tree.items()}
    if path.endswith(".safetensors"):
        from safetensors.numpy import save_file
        meta = {k: json.dumps(v) for k, v in (("mean", mean), ("std", std), ("class_names", class_names))
                if v is not None}
        save_file(flat, path, metadata=meta or None)
    elif path.endswith(".npz"):
        np.savez(path, **flat)
    else:
        raise ValueError(f"{path}: weights are written as .safetensors or .npz")

