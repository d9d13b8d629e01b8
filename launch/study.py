"""A study is a config file (``experiments/configs/ablation_blocks.py``, ...) with two functions:

  get_config()  the study's base run, a ConfigDict (:func:`cnnjax.train.config.config_dict`), so
                ``python -m experiments.train --config=FILE --workdir=DIR`` trains the base run;
  get_sweep()   one dict of overrides per run, built with :func:`cnnjax.train.config.sweep`,
                :func:`~cnnjax.train.config.product` and :func:`~cnnjax.train.config.zipped`; dotted keys set
                model options (``"model_options.activation"``).  Seeds are an axis like any other,
                by convention the first: ``product(sweep("seed", [0, 1, 2]), sweep("model", [...]))``
                runs seed 0 of every configuration first, so an interrupted sweep already has one
                seed of everything.

:func:`load` validates every run (:func:`cnnjax.train.config.from_dict`) and names it from its
overrides.  Pure: no files written, no processes (those are :mod:`launch.sweep`'s).
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import os
from collections.abc import Mapping
from typing import Any, Optional, Sequence

from cnnjax.train import config as config_lib
from experiments import common

RECORD, RECORD_VERSION = "sweep.json", 2  # OUT/sweep.json: Study.record()
_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-")
_MAX_NAME = 200


# --------------------------------------------------------------------------- names and values


def flatten(overrides: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys: ``{"model_options": {"pool": "avg"}}`` -> ``{"model_options.pool": "avg"}``."""
    out = {}
    for key, value in overrides.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def value_text(value) -> str:
    """A setting's value in a run name or a report label: ``0.001``, ``sigmoid``, ``35x35`` for (35, 35)."""
    if isinstance(value, (list, tuple)):
        return "x".join(value_text(v) for v in value)
    return value if isinstance(value, str) else repr(value)


def _escape(text: str) -> str:
    return "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in text)


def run_name(overrides: Mapping[str, Any]) -> str:
    """``{"seed": 1, "model": "a"}`` -> ``model=a,seed=1``: the overrides in their order, seed last.
    Characters other than letters, digits and ``._+-`` are %-escaped (filesystem-safe); a name
    over 200 characters is cut and ends in a hash of the whole."""
    items = sorted(flatten(overrides).items(), key=lambda kv: kv[0] == "seed")
    name = ",".join(f"{_escape(k)}={_escape(value_text(v))}" for k, v in items) or "base"
    if len(name) > _MAX_NAME:
        name = name[:_MAX_NAME - 12] + "~" + hashlib.sha1(name.encode()).hexdigest()[:11]
    return name


# --------------------------------------------------------------------------- studies


@dataclasses.dataclass(frozen=True)
class Run:
    name: str
    overrides: dict                   # as get_sweep() gave them
    config: config_lib.TrainConfig    # the validated config it trains


@dataclasses.dataclass(frozen=True)
class Study:
    file: str                         # --config's value, FILE[:ARG]
    cli_args: tuple[str, ...]         # the command's --config.KEY=VALUE overrides, verbatim
    base: dict                        # get_config() with those overrides
    runs: tuple[Run, ...]
    baseline: Optional[dict] = None   # the study's BASELINE settings, compared against in the report
    report: Optional[str] = None      # the study's REPORT: a module whose report(out) writes its tables

    def record(self) -> dict:
        """What OUT/sweep.json holds: the study, the command's overrides, every run's overrides and
        config (without the settings that do not change the numbers, which may differ on a rerun)."""
        return {"version": RECORD_VERSION, "study": self.file, "overrides": list(self.cli_args),
                "baseline": self.baseline,
                "runs": [{"name": r.name, "overrides": r.overrides, "config": numbers_config(r.config)}
                         for r in self.runs]}


def numbers_config(cfg: config_lib.TrainConfig) -> dict:
    """``cfg``'s JSON form without :func:`cnnjax.train.config.run_fields` (what makes its numbers)."""
    return {k: v for k, v in config_lib.to_dict(cfg).items() if k not in config_lib.run_fields()}


def get_sweep(file: str) -> list[dict]:
    """The override dicts of study file ``file`` (FILE[:ARG]; the ARG goes to get_config only)."""
    return _study_module(file)[0]


def _study_module(file: str) -> tuple[list[dict], Optional[dict], Optional[str]]:
    """(get_sweep(), BASELINE, REPORT) of a study file; BASELINE (optional) names the settings of
    the row every other row is compared with, e.g. ``{"model_options.activation": "relu"}``;
    REPORT (optional) a module whose ``report(out)`` writes the study's own tables."""
    path = file.split(":", 1)[0]
    module = common.config_module(file)
    if not hasattr(module, "get_sweep"):
        raise common.UsageError(f"{path} has no get_sweep(): it is one run's config, not a study "
                                f"(train it with python -m experiments.train --config={path})")
    overrides = module.get_sweep()
    if not isinstance(overrides, (list, tuple)) or not overrides \
            or not all(isinstance(o, Mapping) and all(isinstance(k, str) for k in o) for o in overrides):
        raise common.UsageError(f"{path}: get_sweep() must return a non-empty list of dicts of overrides")
    baseline = getattr(module, "BASELINE", None)
    if baseline is not None and not (isinstance(baseline, Mapping) and baseline):
        raise common.UsageError(f"{path}: BASELINE must be a non-empty dict of settings")
    return [dict(o) for o in overrides], (flatten(baseline) if baseline else None), getattr(module, "REPORT", None)


def load(file: str, base: Mapping, cli_args: Sequence[str], cli_keys: Sequence[str]) -> Study:
    """The study in ``file`` applied to ``base`` (its get_config() with the command line's
    overrides ``cli_args``, of keys ``cli_keys``).  Every run is validated before anything runs:
    UsageError naming the file, the run and the key otherwise."""
    sweep, baseline, report = _study_module(file)
    where = os.path.relpath(file.split(":", 1)[0])
    base = config_lib.apply(base, {})  # a plain dict
    try:
        config_lib.from_dict(base, check_model=False)  # a bad key of the file or the command line
    except config_lib.ConfigError as e:
        raise common.UsageError(f"{where}: {e}") from None
    runs, names = [], set()
    for overrides in sweep:
        name = run_name(overrides)
        keys = flatten(overrides)
        clash = [c for c in cli_keys for k in keys if c == k or c.startswith(k + ".") or k.startswith(c + ".")]
        if clash:
            raise common.UsageError(f"--config.{clash[0]}: {where} sweeps that setting (run {name}); "
                                    f"change it in the study file or leave it out")
        if name in names:
            raise common.UsageError(f"{where}: get_sweep() lists run {name} twice")
        names.add(name)
        try:
            cfg = config_lib.from_dict(config_lib.apply(base, overrides))
        except config_lib.ConfigError as e:
            raise common.UsageError(f"{where}: run {name}: {e}") from None
        runs.append(Run(name, overrides, cfg))
    if baseline and not any(all(flatten(r.overrides).get(k) == v for k, v in baseline.items()) for r in runs):
        raise common.UsageError(f"{where}: BASELINE {baseline} matches none of the runs")
    if report is not None:
        try:
            if not callable(getattr(importlib.import_module(report), "report", None)):
                raise ImportError(f"{report} has no report(out)")
        except ImportError as e:
            raise common.UsageError(f"{where}: REPORT {report!r} is not a module with report(out): {e}") from None
    return Study(file, tuple(cli_args), base, tuple(runs), baseline, report)
