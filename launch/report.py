r"""Aggregate a sweep directory into tables and plots.

  python -m launch.report DIR [--curves]

Reads every run directory ``DIR/runs/*/`` through :class:`cnnjax.train.workdir.Workdir` (config,
metrics, summary) plus the sweep's ``status.json`` and ``DIR/sweep.json`` (:mod:`launch.sweep`
writes both), and groups the runs by configuration: the run's config without ``seed`` and
without the settings that do not change the numbers (:func:`cnnjax.train.config.run_fields`).  A
configuration is labelled by the settings that vary across the sweep's runs, e.g.
``model=separable_cnn`` or ``model_options.activation=sigmoid`` (in the order of the study's
overrides).  Writes

* ``DIR/results.csv`` and ``DIR/results.md``: one row per configuration with the number of
  seeds, params, FLOPs per example, receptive field, the validation accuracy of the epoch it
  selects, the test accuracy of that epoch and of the final one (the test set selects nothing)
  as mean ± sample std (ddof=1; "(n=1)" for a single seed) with the 95% confidence interval of
  the final one, the paired difference to the baseline row (the study's ``BASELINE``, or
  ``--baseline=KEY=VALUE,...``) with its 95% interval, mean training images/s and wall time;
  runs that did not finish (failed, interrupted, running, never started) are listed under
  the table and not averaged in;
* ``DIR/results.png``: final test accuracy vs params and vs FLOPs (log x), one labelled marker
  per configuration, error bars = std over seeds (:func:`cnnjax.plots.plot_scatter`);
* with ``--curves`` (or ``report(dir, curves=True)``): ``DIR/curves.png``, validation accuracy
  vs epoch per configuration (mean over seeds, shaded ± std), from metrics.jsonl.

``report(dir)`` returns the rows (dicts) without needing the command line.
"""
from __future__ import annotations

import csv
import json
import math
import os
import statistics
from typing import Optional

from cnnjax.train import workdir as workdir_lib
from launch import study as study_lib

STATUS = "status.json"  # the sweep's record of a run's state, in the run's directory
COLUMNS = ("config", "n_seeds", "seeds", "params", "flops", "receptive_field", "val_acc_mean", "val_acc_std",
           "selected_acc_mean", "selected_acc_std", "final_acc_mean", "final_acc_std", "final_acc_ci95",
           "delta_mean", "delta_ci95", "train_images_per_sec", "wall_seconds")


def sweep_record(directory: str) -> Optional[dict]:
    """DIR/sweep.json, or None when there is none; WorkdirError when it is not a sweep record."""
    path = os.path.join(directory, study_lib.RECORD)
    record = workdir_lib.read_json(path)
    if record is not None and not (isinstance(record, dict) and isinstance(record.get("runs"), list)
                                   and record.get("version") == study_lib.RECORD_VERSION):
        raise workdir_lib.WorkdirError(f"{path} is not a sweep record (written by an older launch.sweep?); "
                                       f"use another --out")
    return record


def run_status(workdir: str) -> dict:
    """The sweep's status.json of a run ({} when there is none or it is unreadable)."""
    try:
        status = workdir_lib.read_json(os.path.join(workdir, STATUS))
    except workdir_lib.WorkdirError:
        return {}
    return status if isinstance(status, dict) else {}


def _mean_std(values):
    values = [float(v) for v in values if isinstance(v, (int, float))]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def ci95(std, n):
    """Half-width of the 95% confidence interval of a mean of ``n`` samples with sample std ``std``
    (Student's t, n - 1 degrees of freedom); None for one sample."""
    if std is None or n < 2:
        return None
    from scipy import stats  # a dependency of jax
    return float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)


def _settings(cfg) -> dict:
    """What defines a run's configuration: its config without the seed and the run fields, flat."""
    return {k: v for k, v in study_lib.flatten(study_lib.numbers_config(cfg)).items() if k != "seed"}


def _status(workdir: str, cfg, metrics: list[dict]) -> str:
    st = run_status(workdir)
    progress = f"{len(metrics)}/{cfg.epochs} epochs" if cfg else f"{len(metrics)} epochs"
    if st.get("status") == "failed":
        tail = st.get("log_tail") or []
        last = f": {tail[-1][:120]}" if tail else ""
        return f"failed ({st.get('reason') or 'exit ' + str(st.get('exit_code'))}) after {progress}{last}"
    if st.get("status") == "stopped":
        return st.get("reason") or f"stopped early after {progress}"
    if st.get("status") == "running":
        return f"running or killed ({progress} logged)"
    return f"unfinished ({progress} logged)"


def _label_keys(record: dict, settings: list[dict]) -> list[str]:
    """The settings that differ between runs: the study's override keys first, in their order."""
    keys = list(dict.fromkeys(k for s in settings for k in s))
    varying = [k for k in keys if len({json.dumps(s.get(k), sort_keys=True) for s in settings}) > 1]
    order = list(dict.fromkeys(k for r in record.get("runs", []) if isinstance(r, dict)
                               for k in study_lib.flatten(r.get("overrides") or {})))
    return sorted(varying, key=lambda k: order.index(k) if k in order else len(order))


def _paired(rows: list[dict], baseline: Optional[dict]) -> None:
    """Set each row's ``delta_mean`` / ``delta_ci95``: final test accuracy minus its baseline row's,
    seed by seed (the seeds both have), and the 95% interval of that mean difference.  Baseline
    rows are those with ``baseline``'s settings; a row's own is the one that shares the most of
    its other settings (so a baseline of one setting is compared within each value of the others,
    e.g. per training-set size).  Baseline rows get ``delta_mean = 0`` and ``is_baseline``."""
    if not baseline:
        return
    wanted = {k: study_lib.value_text(v) for k, v in baseline.items()}
    candidates = [r for r in rows if all(r["all_settings"].get(k) == v for k, v in wanted.items())]
    for r in rows:
        shared = lambda b: sum(r["all_settings"].get(k) == v for k, v in b["all_settings"].items())
        best = max((shared(b) for b in candidates), default=None)
        closest = [b for b in candidates if shared(b) == best]
        ref = closest[0] if len(closest) == 1 else None
        r["is_baseline"] = ref is r
        if ref is None or ref is r:
            r["delta_mean"], r["delta_ci95"] = (0.0, None) if ref is r else (None, None)
            continue
        mine, theirs = dict(zip(r["seeds"], r["finals"])), dict(zip(ref["seeds"], ref["finals"]))
        diffs = [mine[s] - theirs[s] for s in mine if s in theirs and None not in (mine[s], theirs[s])]
        mean, std = _mean_std(diffs)
        r["delta_mean"], r["delta_ci95"], r["delta_n"] = mean, ci95(std, len(diffs)), len(diffs)


def collect(directory: str, baseline: Optional[dict] = None) -> tuple[list[dict], list[tuple[str, str]]]:
    """(rows, unfinished) where unfinished is [(run name, why)]; ``baseline`` (default: the
    study's) picks the rows the others are compared with."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"no sweep directory {directory}")
    runs_dir = os.path.join(directory, "runs")
    names = sorted(n for n in os.listdir(runs_dir) if os.path.isdir(os.path.join(runs_dir, n))) \
        if os.path.isdir(runs_dir) else []
    record = sweep_record(directory) or {}
    expected = [r["name"] for r in record["runs"] if isinstance(r, dict) and isinstance(r.get("name"), str)] \
        if record else []
    order = {n: i for i, n in enumerate(expected)}
    names.sort(key=lambda n: (order.get(n, len(order)), n))

    finished, unfinished, configured = [], [], []
    for name in names:
        path = os.path.join(runs_dir, name)
        wd = workdir_lib.Workdir(path)
        try:
            cfg, metrics, summary = wd.config(), wd.metrics(), wd.summary()
        except workdir_lib.WorkdirError as e:
            unfinished.append((name, f"unreadable: {e}"))
            continue
        if cfg is not None:
            configured.append(_settings(cfg))
        if summary is None or cfg is None:
            unfinished.append((name, _status(path, cfg, metrics)))
        else:
            finished.append({"name": name, "cfg": cfg, "summary": summary, "metrics": metrics})
    unfinished += [(name, "not started") for name in expected if name not in names]

    label_keys = _label_keys(record, configured)
    groups: dict[str, list[dict]] = {}
    for run in finished:
        groups.setdefault(json.dumps(_settings(run["cfg"]), sort_keys=True), []).append(run)
    rows = []
    for runs in groups.values():
        settings = _settings(runs[0]["cfg"])
        items = {k: study_lib.value_text(settings[k]) for k in label_keys if k in settings}
        sums = [r["summary"] for r in runs]
        first = sums[0]
        finals = [s.get("final_test_accuracy") for s in sums]
        final_m, final_s = _mean_std(finals)
        # Test accuracy of the epoch validation selected; summaries from before validation splits
        # have none, and their test-selected "best" is not used.
        sel_m, sel_s = _mean_std([s.get("selected_test_accuracy") for s in sums])
        val_m, val_s = _mean_std([s.get("selected_val_accuracy") for s in sums])
        ips, _ = _mean_std([s.get("train_images_per_sec") for s in sums])
        wall, _ = _mean_std([s.get("wall_seconds") for s in sums])
        rows.append({
            "config": ",".join(f"{k}={v}" for k, v in items.items()) or "(base)",
            "settings": items,
            "all_settings": {k: study_lib.value_text(v) for k, v in settings.items()},
            "finals": finals,
            "n_seeds": len(sums),
            "seeds": [r["cfg"].seed for r in runs],
            "runs": [r["name"] for r in runs],
            "model": runs[0]["cfg"].model,
            "params": first.get("params"),
            "flops": first.get("flops"),
            "receptive_field": first.get("receptive_field"),
            "final_acc_mean": final_m, "final_acc_std": final_s, "final_acc_ci95": ci95(final_s, len(sums)),
            "val_acc_mean": val_m, "val_acc_std": val_s, "selected_acc_mean": sel_m, "selected_acc_std": sel_s,
            "delta_mean": None, "delta_ci95": None, "is_baseline": False,
            "train_images_per_sec": ips, "wall_seconds": wall,
            "curves": [r["metrics"] for r in runs],
        })
    _paired(rows, baseline if baseline is not None else record.get("baseline"))
    return rows, unfinished


# --------------------------------------------------------------------------- formatting

def human(n) -> str:
    if not isinstance(n, (int, float)):
        return "-"
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:g}"


def pm(mean, std, n) -> str:
    if mean is None:
        return "-"
    return f"{mean:.4f} (n=1)" if n == 1 or std is None else f"{mean:.4f} ± {std:.4f}"


def ci(row) -> str:
    h, m = row.get("final_acc_ci95"), row.get("final_acc_mean")
    return "-" if h is None or m is None else f"[{m - h:.4f}, {m + h:.4f}]"


def delta(row) -> str:
    if row.get("is_baseline"):
        return "baseline"
    m, h = row.get("delta_mean"), row.get("delta_ci95")
    if m is None:
        return "-"
    return f"{m:+.4f}" + (f" [{m - h:+.4f}, {m + h:+.4f}]" if h is not None else f" (n={row.get('delta_n', 1)})")


def _num(v, fmt="{:.1f}") -> str:
    return fmt.format(v) if isinstance(v, (int, float)) else "-"


def markdown(directory: str, rows, unfinished) -> str:
    record = sweep_record(directory) or {}
    out = [f"# Sweep results: {os.path.basename(os.path.abspath(directory))}", ""]
    if record:
        command = " ".join([f"--config={record.get('study')}", *record.get("overrides", [])])
        out.append(f"- {len(record['runs'])} runs: `python -m {record.get('tool', 'launch.sweep')} {command}`")
        out += [f"- {note}" for note in record.get("notes", [])]
    baseline = record.get("baseline")
    if baseline:
        out.append(f"- baseline: {', '.join(f'{k}={study_lib.value_text(v)}' for k, v in baseline.items())}")
    out += ["", "| config | seeds | params | FLOPs/example | RF | val acc (selected) | test acc (selected) | "
                "final test acc | 95% CI | Δ final vs baseline [95% CI] | train img/s | wall s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        rf = r["receptive_field"]
        params = f"{r['params']:,}" if isinstance(r["params"], int) else "-"
        out.append(f"| {r['config']} | {r['n_seeds']} | {params} | {human(r['flops'])} | "
                   f"{rf if rf is not None else '-'} | "
                   f"{pm(r['val_acc_mean'], r['val_acc_std'], r['n_seeds'])} | "
                   f"{pm(r['selected_acc_mean'], r['selected_acc_std'], r['n_seeds'])} | "
                   f"{pm(r['final_acc_mean'], r['final_acc_std'], r['n_seeds'])} | {ci(r)} | {delta(r)} | "
                   f"{_num(r['train_images_per_sec'], '{:.0f}')} | {_num(r['wall_seconds'])} |")
    out += ["", "Accuracy: mean ± sample std (ddof=1) over seeds. Selected: the epoch with the best validation "
                "accuracy (held out of the training set); its test accuracy is reported, never used to choose. "
                "95% CI: the mean's 95% confidence interval (Student's t). Δ: final test accuracy minus the "
                "baseline row's, paired by seed, with the 95% interval of the mean difference (an interval "
                "excluding 0 is a difference beyond seed noise). FLOPs per example, forward pass (multiply-add = 2)."]
    if unfinished:
        out += ["", f"## Not included ({len(unfinished)} unfinished or failed runs)", ""]
        out += [f"- `{name}`: {why}" for name, why in unfinished]
    return "\n".join(out) + "\n"


def write_csv(path: str, rows) -> None:
    keys = []
    for r in rows:
        keys += [k for k in r["settings"] if k not in keys]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(list(COLUMNS[:1]) + keys + list(COLUMNS[1:]))
        for r in rows:
            cells = [r["config"]] + [r["settings"].get(k, "") for k in keys]
            for c in COLUMNS[1:]:
                v = r[c]
                cells.append(" ".join(map(str, v)) if isinstance(v, list) else ("" if v is None else v))
            w.writerow(cells)


def write_study_tables(csv_path: str, md_path: str, rows: list[dict], lines: list[str], unfinished: list[str]) -> None:
    """A study's own report (launch.invariance, launch.transfer): ``rows`` (flat dicts, one
    column per key) as CSV, and the Markdown ``lines`` with the unfinished runs listed under them."""
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    if unfinished:
        lines = [*lines, "", "Not finished (not included): " + ", ".join(unfinished)]
    with open(md_path, "w") as f:
        f.write("\n".join(lines) + "\n")


def report(directory: str, curves: bool = False, write: bool = True, baseline: Optional[dict] = None) -> list[dict]:
    """Aggregate ``directory``; write results.{csv,md,png} (and curves.png) unless ``write=False``.

    Returns one dict per configuration (keys: config, settings, n_seeds, seeds, runs, model,
    params, flops, receptive_field, val_acc_mean/std, selected_acc_mean/std, final_acc_mean/std/ci95,
    delta_mean/ci95, train_images_per_sec,
    wall_seconds, curves)."""
    rows, unfinished = collect(directory, baseline)
    if write:
        _write(directory, rows, unfinished, curves)
    return rows


def _write(directory: str, rows, unfinished, curves: bool) -> list[str]:
    """Write the report files; returns their names."""
    write_csv(os.path.join(directory, "results.csv"), rows)
    with open(os.path.join(directory, "results.md"), "w") as f:
        f.write(markdown(directory, rows, unfinished))
    made = ["results.csv", "results.md"]
    from cnnjax import plots  # matplotlib only when a report is written
    if plots.plot_scatter(rows, os.path.join(directory, "results.png")):
        made.append("results.png")
    if curves and plots.plot_sweep_curves(rows, os.path.join(directory, "curves.png")):
        made.append("curves.png")
    return made


def main(argv):
    from absl import flags

    from experiments import common
    if len(argv) != 2:
        common.fail("usage: python -m launch.report DIR [--curves] [--baseline=KEY=VALUE,...]")
    directory = argv[1]
    if not os.path.isdir(os.path.join(directory, "runs")):
        common.fail(f"{directory} is not a sweep directory (no runs/ in it)")
    baseline = None
    if flags.FLAGS.baseline:
        items = [item.split("=", 1) for item in flags.FLAGS.baseline]
        if any(len(kv) != 2 for kv in items):
            common.fail(f"--baseline must be KEY=VALUE items, got {','.join(flags.FLAGS.baseline)}")
        baseline = dict(items)
    try:
        rows, unfinished = collect(directory, baseline)
    except ValueError as e:  # an unreadable sweep.json
        common.fail(str(e))
    made = _write(directory, rows, unfinished, flags.FLAGS.curves)
    print(markdown(directory, rows, unfinished), end="")
    print(f"wrote {', '.join(os.path.join(directory, m) for m in made)}")


if __name__ == "__main__":
    from absl import app, flags

    from experiments import common
    flags.DEFINE_bool("curves", False, "Also plot validation accuracy vs epoch per configuration into DIR/curves.png.")
    flags.DEFINE_list("baseline", [], "Settings of the row to compare the others with (paired by seed), e.g. "
                                      "model_options.activation=relu; default: the study's BASELINE.")

    def _main(argv):
        common.quiet()
        return main(argv)

    app.run(_main)
