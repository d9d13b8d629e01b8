r"""Shift invariance of a finished sweep's runs: accuracy versus shift, per configuration.

  python -m launch.invariance --out=OUT [--shifts=4] [--test_images=N]

For every finished run ``OUT/runs/<name>`` (the sweep of experiments/configs/claim_shift_invariance.py,
or any other), its validation-selected checkpoint is scored on the test set shifted by 0..N pixels
up, down, left and right (zero fill; :func:`cnnjax.interpret.shift.shift_evaluation`).  A run's rows are
kept in ``OUT/runs/<name>/shifts.json`` (a rerun reuses them).  Runs are grouped by configuration
as :mod:`launch.report` groups them (seeds averaged) and written to

* ``OUT/invariance.csv``: one row per configuration and shift distance: accuracy (mean over the
  four directions) mean, sample std and 95% t-interval half-width over seeds, and the same for the
  drop from the unshifted accuracy;
* ``OUT/invariance.md``: the table of mean accuracy ± 95% CI per distance;
* ``OUT/invariance.png``: accuracy versus shift, one line per configuration, shaded 95% CI.

Unfinished runs are skipped (listed).  Exit 2 with one error line for an OUT without finished runs.
"""
from __future__ import annotations

import os
import statistics

from cnnjax.train import workdir as workdir_lib
from experiments import common
from launch import report

RESULTS = "shifts.json"


def run_shifts(workdir: str, max_shift: int, datasets: dict, num_test: int = 0) -> list[dict]:
    """The shift rows of one finished run on its first ``num_test`` test images (0: all), cached
    in its ``shifts.json`` for this ``max_shift`` and ``num_test``."""
    from cnnjax.train import experiment, runs
    from cnnjax.interpret import shift
    cached = workdir_lib.read_json(os.path.join(workdir, RESULTS))
    if isinstance(cached, dict) and (cached.get("max_shift"), cached.get("num_test")) == (max_shift, num_test):
        return cached["rows"]
    model, variables, cfg, epoch = runs.load_trained(workdir, "best")
    key = (cfg.dataset, cfg.data_dir, cfg.num_train, cfg.num_test, cfg.classes, cfg.image_size, cfg.channels)
    if key not in datasets:
        ds = experiment.load_data(cfg)  # the run's own data (classes, image size, folder options)
        datasets[key] = ds.subset(None, num_test) if num_test else ds
    info = workdir_lib.Workdir(workdir).data_info()  # the statistics it trained with (after the validation hold-out)
    rows = shift.shift_evaluation(model, variables, datasets[key], max_shift, compute_dtype=cfg.compute_dtype,
                                  tta=cfg.tta, mean=info["mean"], std=info["std"])
    workdir_lib.write_json(os.path.join(workdir, RESULTS), {"max_shift": max_shift, "num_test": num_test,
                                                            "epoch": epoch, "rows": rows})
    return rows


def _label(overrides: dict) -> str:
    flat = {k: v for k, v in report.study_lib.flatten(overrides).items() if k != "seed"}
    return ",".join(f"{k}={report.study_lib.value_text(v)}" for k, v in flat.items()) or "base"


def collect(out: str, max_shift: int, num_test: int = 0, log=print) -> tuple[dict[str, list[dict[int, float]]], list[str]]:
    """({configuration label: one {distance: accuracy} per seed}, unfinished run names)."""
    from cnnjax.interpret import shift
    record = report.sweep_record(out) or {}
    runs = record.get("runs") or [{"name": n, "overrides": {}} for n in sorted(os.listdir(os.path.join(out, "runs")))]
    groups, unfinished, datasets = {}, [], {}
    for run in runs:
        workdir = os.path.join(out, "runs", run["name"])
        try:
            finished = os.path.isdir(workdir) and workdir_lib.Workdir(workdir).summary() is not None
        except workdir_lib.WorkdirError:
            finished = False
        if not finished:
            unfinished.append(run["name"])
            continue
        log(f"shifts: {run['name']}")
        rows = run_shifts(workdir, max_shift, datasets, num_test)
        groups.setdefault(_label(run["overrides"]), []).append(shift.by_distance(rows))
    return groups, unfinished


def summarize(groups: dict) -> list[dict]:
    """One row per configuration and distance: accuracy and drop, mean / std / 95% CI over seeds."""
    rows = []
    for label, seeds in groups.items():
        for k in sorted(seeds[0]):
            acc = [s[k] for s in seeds]
            drop = [s[0] - s[k] for s in seeds]
            std = statistics.stdev(acc) if len(acc) > 1 else None
            dstd = statistics.stdev(drop) if len(drop) > 1 else None
            rows.append({"config": label, "shift_px": k, "n_seeds": len(acc), "acc_mean": statistics.fmean(acc),
                         "acc_std": std, "acc_ci95": report.ci95(std, len(acc)), "drop_mean": statistics.fmean(drop),
                         "drop_std": dstd, "drop_ci95": report.ci95(dstd, len(drop))})
    return rows


def write(out: str, rows: list[dict], unfinished: list[str], max_shift: int, num_test: int = 0) -> list[str]:
    from cnnjax.interpret import attribution_plots as explain_plots
    csv_path, md_path = os.path.join(out, "invariance.csv"), os.path.join(out, "invariance.md")
    fmt = lambda m, h: f"{m:.4f}" + (f" ± {h:.4f}" if h is not None else "")
    configs = list(dict.fromkeys(r["config"] for r in rows))
    lines = [f"# Test accuracy on shifted images: {os.path.basename(os.path.abspath(out))}", "",
             f"Accuracy on {f'the first {num_test:,} images of ' if num_test else ''}the test set shifted by k pixels, mean over the four directions (up, down, left, "
             f"right; zero fill), mean ± 95% CI (Student's t) over seeds; drop = unshifted minus shifted, paired "
             f"by seed. `python -m launch.invariance --out={out} --shifts={max_shift}"
             f"{f' --test_images={num_test}' if num_test else ''}`", "",
             "| config | seeds | " + " | ".join(f"{k} px" for k in range(max_shift + 1)) + f" | drop at {max_shift} px |",
             "|---|---:|" + "---:|" * (max_shift + 2)]
    for c in configs:
        rs = [r for r in rows if r["config"] == c]
        lines.append(f"| {c} | {rs[0]['n_seeds']} | " + " | ".join(fmt(r["acc_mean"], r["acc_ci95"]) for r in rs)
                     + f" | {fmt(rs[-1]['drop_mean'], rs[-1]['drop_ci95'])} |")
    report.write_study_tables(csv_path, md_path, rows, lines, unfinished)
    png = explain_plots.plot_shift_curves(rows, os.path.join(out, "invariance.png"))
    return [csv_path, md_path, png]


def main(argv):
    from absl import flags
    out, shifts, test_images = flags.FLAGS.out, flags.FLAGS.shifts, flags.FLAGS.test_images
    if not out:
        raise common.UsageError("--out is required")
    if test_images < 0:
        raise common.UsageError(f"--test_images must be >= 0, got {test_images}")
    if shifts < 1:
        raise common.UsageError(f"--shifts must be >= 1, got {shifts}")
    if not os.path.isdir(os.path.join(out, "runs")):
        raise common.UsageError(f"--out {out} has no runs/ (run python -m launch.sweep --out={out} first)")
    groups, unfinished = collect(out, shifts, test_images)
    if not groups:
        raise common.UsageError(f"--out {out}: no finished run")
    for path in write(out, summarize(groups), unfinished, shifts, test_images):
        print(f"wrote {path}")


if __name__ == "__main__":  # flags only for the command: the module's functions import without them
    from absl import flags
    flags.DEFINE_string("out", None, "Sweep directory (OUT of launch.sweep).")
    flags.DEFINE_integer("shifts", 4, "Largest shift in pixels.")
    flags.DEFINE_integer("test_images", 0, "Score the first N test images of each run's test set (0: all).")
    common.run(main)
