r"""Issue 37's studies: robustness scores of a finished sweep's runs, grouped by configuration, with
95% confidence intervals over seeds.

  python -m launch.robustness --out=OUT     # also launch.sweep's last step (the study's REPORT)

The study file's ``SCORE`` says what is scored on each run's validation-selected checkpoint, on the
first ``test_images`` test images:

* ``{"kind": "shift", "max_shift": 4, ...}`` (experiments/configs/antialias_shift.py): accuracy
  and consistency with the unshifted prediction at 0..max_shift px (mean over the four
  directions, zero fill) and Zhang's consistency (two random shifts in [-max_shift, max_shift]^2
  per image, ``seed``) -- :mod:`cnnjax.interpret.shift`;
* ``{"kind": "robust", "eps": [...], "steps": 10, ...}`` (experiments/configs/robustness_course.py):
  clean accuracy, accuracy under the 15 MNIST-C corruptions at MNIST-C's severities (their mean),
  against PGD at each eps (pixel units of 255; on the first ``attack_images`` of those test images
  when given), ECE and NLL before and after temperature scaling
  fitted on the run's validation split -- :mod:`cnnjax.interpret`.

A run's scores are kept in ``OUT/runs/<name>/robustness.json`` (a rerun with the same SCORE reuses
them).  Writes launch.report's ``OUT/results.{md,csv,png}`` and ``OUT/robustness.{md,csv,png}``:
per configuration and metric the mean, sample std and 95% t-interval over seeds, and for the
metrics marked paired the difference to the study's BASELINE configuration, paired by seed.
"""
from __future__ import annotations

import os
import statistics

from cnnjax.train import workdir as workdir_lib
from experiments import common
from launch import report as report_lib

RESULTS = "robustness.json"


def score_run(workdir: str, score: dict, datasets: dict) -> dict:
    """The scores of one finished run (module docstring), cached in its robustness.json."""
    cached = workdir_lib.read_json(os.path.join(workdir, RESULTS))
    if isinstance(cached, dict) and cached.get("score") == score:
        return cached["result"]
    from cnnjax.train import evaluation, experiment, runs
    from cnnjax.interpret import shift
    from cnnjax.interpret import attacks, calibration, corruptions
    model, variables, cfg, epoch = runs.load_trained(workdir, "best")
    key = (cfg.dataset, cfg.data_dir, cfg.num_train, cfg.num_test, cfg.validation_size, cfg.seed, cfg.image_size,
           cfg.channels)
    if key not in datasets:
        ds = experiment.load_data(cfg)  # the run's own data and validation split (held out by its seed)
        datasets[key] = ds.subset(None, score["test_images"]) if score.get("test_images") else ds
    ds = datasets[key]
    info = workdir_lib.Workdir(workdir).data_info()
    norm = {"compute_dtype": cfg.compute_dtype, "tta": cfg.tta, "mean": info["mean"], "std": info["std"]}
    step = evaluation.make_eval_step(model, info["mean"], info["std"], ds.num_classes, cfg.compute_dtype, cfg.tta)
    clean = evaluation.evaluate(model, variables, ds, eval_step=step)["accuracy"]
    result = {"epoch": epoch, "clean": clean}
    if score["kind"] == "shift":
        rows = shift.shift_evaluation(model, variables, ds, score["max_shift"], **norm)
        acc, cons = shift.by_distance(rows), shift.by_distance(rows, "consistency")
        zhang = shift.random_shift_consistency(model, variables, ds, score["max_shift"], score.get("seed", 0), **norm)
        result.update({f"acc_{k}px": acc[k] for k in acc}, **{f"cons_{k}px": cons[k] for k in cons if k},
                      drop=acc[0] - acc[score["max_shift"]], zhang=zhang["consistency"])
    elif score["kind"] == "robust":
        corr = corruptions.corruption_evaluation(model, variables, ds, None, (None,), score.get("seed", 0), **norm)
        attacked = ds.subset(None, score["attack_images"]) if score.get("attack_images") else ds
        pgd = attacks.attack_evaluation(model, variables, attacked, "pgd", score["eps"], steps=score["steps"],
                                        seed=score.get("seed", 0), **norm)
        cal = calibration.calibration_evaluation(model, variables, ds, **norm)
        result.update(corruption=corr["mean_accuracy"], corruption_drop=clean - corr["mean_accuracy"],
                      **{f"c_{n}": a for n, a in corr["per_corruption"].items()},
                      **{f"pgd_{r['eps']:g}": r["accuracy"] for r in pgd},
                      ece=cal["before"]["ece"], ece_ts=cal["after"]["ece"], nll=cal["before"]["nll"],
                      nll_ts=cal["after"]["nll"], temperature=cal["temperature"])
    else:
        raise ValueError(f"SCORE kind must be 'shift' or 'robust', got {score['kind']!r}")
    workdir_lib.write_json(os.path.join(workdir, RESULTS), {"score": score, "result": result})
    return result


def _study_score(out: str) -> tuple[dict, dict | None]:
    """(SCORE, BASELINE) of the study that made OUT (its file, recorded in sweep.json)."""
    record = report_lib.sweep_record(out) or {}
    study = record.get("study")
    if not study:
        raise common.UsageError(f"--out {out} has no sweep.json naming its study")
    module = common.config_module(study)
    if not isinstance(getattr(module, "SCORE", None), dict):
        raise common.UsageError(f"{study} has no SCORE dict (what launch.robustness scores)")
    return module.SCORE, record.get("baseline")


def collect(out: str, score: dict, log=print) -> tuple[list[dict], list[str]]:
    """(launch.report's rows, each with ``"scores"``: one result dict per seed in the row's seed
    order, unfinished run names)."""
    rows, unfinished = report_lib.collect(out)
    datasets: dict = {}
    for row in rows:
        row["scores"] = []
        for name in row["runs"]:
            log(f"robustness: {name}")
            row["scores"].append(score_run(os.path.join(out, "runs", name), score, datasets))
    return rows, [name for name, _ in unfinished]


def metrics(score: dict) -> list[tuple[str, str]]:
    """(key, column title) of the table, in order."""
    if score["kind"] == "shift":
        k = score["max_shift"]
        return ([("clean", "clean acc")] + [(f"acc_{i}px", f"acc {i} px") for i in range(1, k + 1)]
                + [("drop", f"drop at {k} px"), (f"cons_{k}px", f"consistency at {k} px"),
                   ("zhang", f"Zhang consistency (±{k} px)")])
    return ([("clean", "clean acc"), ("corruption", "mean corruption acc"), ("corruption_drop", "clean − corruption")]
            + [(f"pgd_{e:g}", f"PGD ε={e:g}") for e in score["eps"]]
            + [("ece", "ECE"), ("ece_ts", "ECE after TS"), ("nll", "NLL"), ("nll_ts", "NLL after TS"),
               ("temperature", "T")])


def summarize(rows: list[dict], score: dict, baseline: dict | None) -> list[dict]:
    """One flat dict per configuration: params, FLOPs and per metric mean / std / ci95 over seeds and,
    against the baseline row (paired by seed), delta / delta_ci95."""
    base = next((r for r in rows if r.get("is_baseline")), None)
    out = []
    for r in rows:
        flat = {"config": r["config"], "n_seeds": r["n_seeds"], "params": r["params"], "flops": r["flops"]}
        for key, _ in metrics(score):
            vals = [s[key] for s in r["scores"]]
            std = statistics.stdev(vals) if len(vals) > 1 else None
            flat.update({f"{key}_mean": statistics.fmean(vals), f"{key}_std": std, f"{key}_ci95": report_lib.ci95(std, len(vals))})
            flat.update({f"{key}_delta": None, f"{key}_delta_ci95": None})  # every row has every column
            if base is not None and base is not r:
                theirs = dict(zip(base["seeds"], (s[key] for s in base["scores"])))
                diffs = [v - theirs[seed] for seed, v in zip(r["seeds"], vals) if seed in theirs]
                dstd = statistics.stdev(diffs) if len(diffs) > 1 else None
                flat.update({f"{key}_delta": statistics.fmean(diffs) if diffs else None,
                             f"{key}_delta_ci95": report_lib.ci95(dstd, len(diffs))})
        out.append(flat)
    return out


def main_effects(rows: list[dict], score: dict, baseline: dict | None) -> list[dict]:
    """For each setting of the baseline and each other value of it: the metrics' difference between
    runs that differ only in that setting (same seed, same other settings), value minus baseline
    value, mean and 95% CI over all such pairs -- the factor's effect averaged over the others."""
    if not baseline:
        return []
    cells = {}
    for r in rows:
        for seed, sc in zip(r["seeds"], r["scores"]):
            cells[(tuple(sorted(r["settings"].items())), seed)] = sc
    out = []
    for key, ref in baseline.items():
        ref = str(ref)
        values = sorted({dict(k)[key] for k, _ in cells if key in dict(k)} - {ref})
        for value in values:
            pairs = []
            for (settings, seed), sc in cells.items():
                d = dict(settings)
                if d.get(key) != value:
                    continue
                other = tuple(sorted({**d, key: ref}.items()))
                if (other, seed) in cells:
                    pairs.append((sc, cells[(other, seed)]))
            flat = {"setting": key, "value": value, "versus": ref, "pairs": len(pairs)}
            for k, _ in metrics(score):
                diffs = [a[k] - b[k] for a, b in pairs]
                std = statistics.stdev(diffs) if len(diffs) > 1 else None
                flat.update({f"{k}_delta": statistics.fmean(diffs) if diffs else None,
                             f"{k}_delta_ci95": report_lib.ci95(std, len(diffs))})
            out.append(flat)
    return out


def _cell(m, h, digits=3):
    return "-" if m is None else f"{m:.{digits}f}" + (f" ± {h:.{digits}f}" if h is not None else "")


def write(out: str, summary: list[dict], score: dict, baseline: dict | None, unfinished: list[str],
          rows: list[dict] | None = None) -> list[str]:
    csv_path, md_path = os.path.join(out, "robustness.csv"), os.path.join(out, "robustness.md")
    cols = metrics(score)
    what = (f"the first {score['test_images']:,} test images" if score.get("test_images") else "the test set")
    lines = [f"# Robustness: {os.path.basename(os.path.abspath(out))}", "",
             f"Each run's validation-selected checkpoint scored on {what}; mean ± 95% CI (Student's t) over "
             f"seeds. `python -m launch.robustness --out={out}`; SCORE = `{score}`.", "",
             "| config | seeds | params | FLOPs | " + " | ".join(t for _, t in cols) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(cols)]
    for r in summary:
        params = f"{r['params']:,}" if isinstance(r["params"], int) else "-"
        lines.append(f"| {r['config']} | {r['n_seeds']} | {params} | {report_lib.human(r['flops'])} | "
                     + " | ".join(_cell(r[f"{k}_mean"], r[f"{k}_ci95"], 2 if k == "temperature" else 3)
                                  for k, _ in cols) + " |")
    if baseline and any(r[f"{cols[0][0]}_delta"] is not None for r in summary):
        base = ", ".join(f"{k}={v}" for k, v in baseline.items())
        lines += ["", f"Difference to the baseline ({base}), paired by seed, mean [95% CI]:", "",
                  "| config | " + " | ".join(t for _, t in cols) + " |", "|---|" + "---:|" * len(cols)]
        for r in summary:
            if r[f"{cols[0][0]}_delta"] is None:
                continue
            cells = []
            for k, _ in cols:
                m, h = r[f"{k}_delta"], r[f"{k}_delta_ci95"]
                cells.append("-" if m is None else f"{m:+.3f}" + (f" [{m - h:+.3f}, {m + h:+.3f}]" if h else ""))
            lines.append(f"| {r['config']} | " + " | ".join(cells) + " |")
    effects = main_effects(rows, score, baseline) if rows is not None else []
    if effects:
        lines += ["", "Each setting's effect averaged over the others: runs that differ only in that setting (same "
                      "seed, same other settings), value minus baseline value, mean [95% CI] over those pairs:", "",
                  "| setting | pairs | " + " | ".join(t for _, t in cols) + " |", "|---|---:|" + "---:|" * len(cols)]
        for e in effects:
            cells = []
            for k, _ in cols:
                m, h = e[f"{k}_delta"], e[f"{k}_delta_ci95"]
                cells.append("-" if m is None else f"{m:+.3f}" + (f" [{m - h:+.3f}, {m + h:+.3f}]" if h else ""))
            lines.append(f"| {e['setting']}={e['value']} vs {e['versus']} | {e['pairs']} | " + " | ".join(cells) + " |")
    report_lib.write_study_tables(csv_path, md_path, summary, lines, unfinished)
    return [csv_path, md_path, _plot(out, summary, score)]


def _plot(out: str, summary: list[dict], score: dict) -> str:
    from cnnjax import plots
    plt = plots.plt
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    if score["kind"] == "shift":
        xs = list(range(score["max_shift"] + 1))
        keys, xlabel, title = [("clean" if i == 0 else f"acc_{i}px") for i in xs], "shift (px, zero fill)", \
            "test accuracy vs shift (mean, 95% CI over seeds)"
    else:
        xs = [0] + list(score["eps"])
        keys, xlabel, title = ["clean"] + [f"pgd_{e:g}" for e in score["eps"]], "PGD ε (pixel units of 255)", \
            "test accuracy vs PGD ε (mean, 95% CI over seeds)"
    for r in summary:
        m = [r[f"{k}_mean"] for k in keys]
        h = [r[f"{k}_ci95"] or 0.0 for k in keys]
        line, = ax.plot(xs, m, marker="o", markersize=3, label=r["config"])
        ax.fill_between(xs, [a - b for a, b in zip(m, h)], [a + b for a, b in zip(m, h)], color=line.get_color(),
                        alpha=0.15)
    ax.set_xlabel(xlabel), ax.set_ylabel("test accuracy"), ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    return plots._save(fig, os.path.join(out, "robustness.png"), plots.DPI)


def report_robustness(out: str, log=print) -> list[str]:
    score, baseline = _study_score(out)
    rows, unfinished = collect(out, score, log)
    if not rows:
        raise common.UsageError(f"--out {out}: no finished run")
    return write(out, summarize(rows, score, baseline), score, baseline, unfinished, rows)


def report(out: str) -> list[str]:
    """launch.sweep's last step (the study's REPORT): launch.report's tables, then the robustness ones."""
    made = [os.path.join(out, m) for m in report_lib._write(out, *report_lib.collect(out), curves=True)]
    return made + report_robustness(out)


def main(argv):
    from absl import flags
    out = flags.FLAGS.out
    if not out:
        raise common.UsageError("--out is required")
    if not os.path.isdir(os.path.join(out, "runs")):
        raise common.UsageError(f"--out {out} has no runs/ (run python -m launch.sweep --out={out} first)")
    for path in report(out):
        print(f"wrote {path}")


if __name__ == "__main__":
    from absl import flags
    flags.DEFINE_string("out", None, "Sweep directory (OUT of launch.sweep).")
    common.run(main)
