r"""The transfer study's tables: test accuracy by model, images per class and way, each way
paired with training from scratch.

  python -m launch.transfer --out=results/transfer/transfer

Reads the finished runs in ``OUT/runs`` (the sweep of experiments/configs/transfer.py). A run's
way comes from its config: ``scratch`` (no ``init_from``), ``probe`` (``init_from`` and a
``freeze``) or ``finetune`` (``init_from``, nothing frozen). Its accuracy is the test accuracy of
its validation-selected epoch (summary.json's ``selected_test_accuracy``; the test set is
measured once and selects nothing). For each model, images per class and way: mean ± 95% CI
(Student's t) over seeds; for probe and finetune also the difference to scratch paired by seed
(one seed draws the same N images per class for all three ways), mean ± 95% CI. Writes

* ``OUT/transfer.csv``: one row per model, images per class and way;
* ``OUT/transfer.md``: the table, and per row whether starting from the pretrained network wins
  (the paired interval lies above 0), loses (below 0) or cannot be told apart (it contains 0);
* ``OUT/transfer.png``: accuracy versus images per class (log x), one panel per model, one line
  per way, 95% CI shaded.

Unfinished runs are listed and left out. Exit 2 with one error line for an OUT without runs/
or without finished runs. launch.sweep calls :func:`report` at the end of the study (the study
file names this module as its ``REPORT``).
"""
from __future__ import annotations

import os
import statistics

from cnnjax.train import workdir as workdir_lib
from experiments import common
from launch import report as launch_report

WAYS = ("scratch", "probe", "finetune")


def way_of(cfg) -> str:
    """'scratch', 'probe' or 'finetune' for a run's TrainConfig."""
    if not cfg.init_from:
        return "scratch"
    return "probe" if cfg.freeze else "finetune"


def collect(out: str) -> tuple[list[dict], list[str]]:
    """([{model, per_class, way, seed, accuracy}] of the finished runs, names of the unfinished)."""
    records, unfinished = [], []
    for name in sorted(os.listdir(os.path.join(out, "runs"))):
        wd = workdir_lib.Workdir(os.path.join(out, "runs", name))
        try:
            cfg, summary = wd.config(), wd.summary()
        except workdir_lib.WorkdirError:
            cfg = summary = None
        if cfg is None or summary is None or summary.get("selected_test_accuracy") is None:
            unfinished.append(name)
            continue
        records.append({"model": cfg.model, "per_class": cfg.train_per_class, "way": way_of(cfg), "seed": cfg.seed,
                        "accuracy": float(summary["selected_test_accuracy"])})
    return records, unfinished


def _mean_ci(values: list[float]) -> tuple[float, float | None]:
    std = statistics.stdev(values) if len(values) > 1 else None
    return statistics.fmean(values), launch_report.ci95(std, len(values))


def verdict(delta: float | None, ci: float | None) -> str:
    """'wins' / 'loses' when the paired 95% interval lies above / below 0, else 'no difference'."""
    if delta is None or ci is None:
        return ""
    if delta - ci > 0:
        return "wins"
    return "loses" if delta + ci < 0 else "no difference"


def summarize(records: list[dict]) -> list[dict]:
    """One row per (model, per_class, way): n, accuracy mean and 95% CI; the paired difference to
    scratch over the seeds both have (mean, 95% CI, verdict); ordered model, per_class, WAYS."""
    by = {}
    for r in records:
        by.setdefault((r["model"], r["per_class"], r["way"]), {})[r["seed"]] = r["accuracy"]
    rows = []
    for model, per_class, way in sorted(by, key=lambda k: (k[0], k[1], WAYS.index(k[2]))):
        acc = by[(model, per_class, way)]
        mean, ci = _mean_ci(list(acc.values()))
        row = {"model": model, "per_class": per_class, "way": way, "n_seeds": len(acc), "acc_mean": mean,
               "acc_ci95": ci, "delta_mean": None, "delta_ci95": None, "n_pairs": 0, "verdict": ""}
        scratch = by.get((model, per_class, "scratch"), {})
        pairs = [acc[s] - scratch[s] for s in sorted(acc) if s in scratch]
        if way != "scratch" and pairs:
            row["delta_mean"], row["delta_ci95"] = _mean_ci(pairs)
            row["n_pairs"] = len(pairs)
            row["verdict"] = verdict(row["delta_mean"], row["delta_ci95"])
        rows.append(row)
    return rows


def write(out: str, rows: list[dict], unfinished: list[str]) -> list[str]:
    from cnnjax import plots
    csv_path, md_path = os.path.join(out, "transfer.csv"), os.path.join(out, "transfer.md")
    pct = lambda m, h: f"{100 * m:.1f}" + (f" ± {100 * h:.1f}" if h is not None else "")
    signed = lambda m, h: f"{100 * m:+.1f}" + (f" ± {100 * h:.1f}" if h is not None else "")
    lines = [f"# Transfer study: {os.path.basename(os.path.abspath(out))}", "",
             "Test accuracy (%) on Fashion-MNIST classes 5-9 of the validation-selected epoch, mean ± 95% CI "
             "(Student's t) over seeds; Δ = the way minus scratch, paired by seed (same images), mean ± 95% CI, in "
             "percentage points; 'wins' / 'loses' when that interval lies above / below 0. "
             f"`python -m launch.transfer --out={out}`", "",
             "| model | images per class | way | seeds | test accuracy | Δ vs scratch | verdict |",
             "|---|---:|---|---:|---:|---:|---|"]
    for r in rows:
        delta = signed(r["delta_mean"], r["delta_ci95"]) if r["delta_mean"] is not None else ""
        lines.append(f"| {r['model']} | {r['per_class']:,} | {r['way']} | {r['n_seeds']} | "
                     f"{pct(r['acc_mean'], r['acc_ci95'])} | {delta} | {r['verdict']} |")
    launch_report.write_study_tables(csv_path, md_path, rows, lines, unfinished)
    png = plots.plot_transfer(rows, os.path.join(out, "transfer.png"))
    return [csv_path, md_path, png]


def report(out: str) -> list[str]:
    """Write OUT's transfer.{csv,md,png} (the study's REPORT, called by launch.sweep at the end);
    returns their paths.  UsageError when OUT has no finished run."""
    records, unfinished = collect(out)
    if not records:
        raise common.UsageError(f"--out {out}: no finished run")
    return write(out, summarize(records), unfinished)


def main(argv):
    from absl import flags
    out = flags.FLAGS.out
    if not out:
        raise common.UsageError("--out is required")
    if not os.path.isdir(os.path.join(out, "runs")):
        raise common.UsageError(f"--out {out} has no runs/ (run python -m launch.sweep "
                                f"--config=experiments/configs/transfer.py --out={out} first)")
    for path in report(out):
        print(f"wrote {path}")


if __name__ == "__main__":  # flags only for the command: the module's functions import without them
    from absl import flags
    flags.DEFINE_string("out", None, "Sweep directory of the transfer study (OUT of launch.sweep).")
    common.run(main)
