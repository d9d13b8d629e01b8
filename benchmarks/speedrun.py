r"""Time-to-accuracy records (issue 15): train a recipe from scratch for several seeds, one run at a
time, each stopping at its target, and tabulate the wall time to it.

  python -m benchmarks.speedrun --target=0.93 --seeds=5                     # experiments/configs/speedrun.py:0.93
  python -m benchmarks.speedrun --target=0.915 --seeds=5 --torch --out=results/speedrun/0.915
  python -m benchmarks.speedrun --config=experiments/configs/speedrun.py:0.94 --config.epochs=40

``--target`` picks the variant of experiments/configs/speedrun.py; with another ``--config`` it
sets that config's ``target_accuracy``.  ``--config.KEY=VALUE`` changes any setting.  Seeds
``--first_seed`` .. ``--first_seed + --seeds - 1`` run sequentially, each with the whole machine
and (``--isolate``, the default) in a fresh process, so every run pays its own JAX start-up and
compilation (``--compile_cache=cold``, the default: an empty compilation cache per run;
``--compile_cache=warm``: an untimed warm-up run fills OUT/compile_cache first and every timed
run loads its executables from it, as airbench's records exclude compilation by a warm-up run);
with ``--torch`` the PyTorch eager mirror of the same recipe
(:mod:`benchmarks.speedrun_torch`) runs right after each cnnjax run, on the same data split.

A cnnjax run is :func:`cnnjax.train.experiment.train_and_evaluate` in ``OUT/runs/seed=N`` (resumable;
a finished one is not repeated, its record is reused).  Time to target: from the start of
training (compilation included) to the end of the evaluation whose validation accuracy reached
the target; dataset loading is reported separately (details: cnnjax.train.experiment._target_record).
The test set is measured once, after the stop.  Writes ``OUT/results.md`` and
``OUT/results.json``; prints the table and the load average.  Bad flags or config: one line
``error: ...``, exit status 2, nothing written.  Like every benchmark, it runs from the
repository root (benchmarks/ is not an installed package; it writes under results/).
"""
from __future__ import annotations

import dataclasses
import os
import shlex
import statistics
import sys
import time
from typing import Optional

from absl import flags

from benchmarks import machine, speedrun_torch
from experiments import common

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEEDRUN = os.path.join(REPO_ROOT, "experiments", "configs", "speedrun.py")


def _config_from_target(argv: list[str]) -> list[str]:
    """``argv`` with ``--config=experiments/configs/speedrun.py:TARGET`` added when it has
    ``--target=TARGET`` and no ``--config`` (so a target without a recipe fails as a bad --config)."""
    if any(a == "--config" or a.startswith("--config=") for a in argv):
        return argv
    target = next((a.split("=", 1)[1] for a in argv if a.startswith("--target=")), None)
    if target is None and "--target" in argv[1:-1]:
        target = argv[argv.index("--target") + 1]
    return argv if target is None else [argv[0], f"--config={SPEEDRUN}:{target}", *argv[1:]]


_GIVEN = sys.argv[1:]  # the command as typed, for the results
if __name__ == "__main__":  # before --config is defined: config_flags reads sys.argv when it is
    sys.argv = _config_from_target(sys.argv)
_CONFIG = common.define_config_flag(SPEEDRUN)
_TARGET = flags.DEFINE_string("target", None, "Target test accuracy as a fraction, e.g. 0.93: picks the variant "
                              "of experiments/configs/speedrun.py, or sets --config's target_accuracy (over "
                              "--config.target_accuracy).")
_SEEDS = flags.DEFINE_integer("seeds", 5, "Number of seeds (runs per implementation).")
_FIRST_SEED = flags.DEFINE_integer("first_seed", 0, "The first seed.")
_OUT = flags.DEFINE_string("out", None, "Output directory (default results/speedrun/<target>).")
_TORCH = flags.DEFINE_bool("torch", False, "Also time the PyTorch eager mirror (benchmarks/speedrun_torch.py) "
                           "of each run, interleaved.")
_ISOLATE = flags.DEFINE_bool("isolate", True, "Each run in a fresh process (its own start-up and compilation).")
_CACHE = flags.DEFINE_enum("compile_cache", "cold", ["cold", "warm"],
                           "cold: every cnnjax run starts with an empty compilation cache (its time includes "
                           "compiling every step); warm: an untimed warm-up run of the first seed fills OUT's cache "
                           "and the timed runs load their executables from it (airbench's records exclude "
                           "compilation the same way).")


# --------------------------------------------------------------------------- one run of each kind


def run_cnnjax(config: dict, workdir: str) -> dict:
    """One cnnjax run of ``config`` in ``workdir``; its record (benchmarks.speedrun_torch.record),
    or :func:`diverged` when the loss became NaN/inf (the seed did not reach the target)."""
    from cnnjax import xla_cpu
    xla_cpu.configure()  # before JAX starts its backend in this process
    from cnnjax.train import config as config_lib
    from cnnjax.train import experiment
    cfg = config_lib.from_dict(config)
    try:
        s = experiment.train_and_evaluate(cfg, workdir, log=lambda line: print(line, flush=True))
    except experiment.NonFiniteLoss as e:
        print(f"seed {cfg.seed}: {e}", flush=True)
        return diverged("cnnjax", cfg, str(e))
    return speedrun_torch.record("cnnjax", cfg, reached=s["target_epoch"], seconds=s["time_to_target_seconds"],
                                 epochs_trained=s["epochs_trained"], val_accuracy=s["final_val_accuracy"],
                                 test_accuracy=s["final_test_accuracy"], load_seconds=s["data_load_seconds"],
                                 images_per_sec=s["train_images_per_sec"], train_seconds=s["wall_seconds"])


def diverged(impl: str, cfg, error: str) -> dict:
    """The record of a run whose training diverged: not reached, no accuracies or times, ``error`` why."""
    return {**speedrun_torch.record(impl, cfg, reached=None, seconds=None, epochs_trained=None, val_accuracy=None,
                                    test_accuracy=None, load_seconds=None, images_per_sec=None, train_seconds=None),
            "error": " ".join(error.split())}


def run_torch(config: dict) -> dict:
    return speedrun_torch.run(config, log=lambda line: print(line, flush=True))


def _end_with(parent: int) -> None:
    """In a spawned run: terminate this process once ``parent`` (the launcher) is gone.  A killed
    launcher does not take its worker with it, and the worker would train on unseen for minutes,
    sharing the cores with whatever is timed next (a run killed mid-epoch resumes from its last
    checkpoint)."""
    import signal
    import threading

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="end-with-launcher", daemon=True).start()


class _Runner:
    """Calls a run function here, or in a fresh spawned process per call (``isolate``) that ends
    with the launcher."""

    def __init__(self, isolate: bool):
        self.pool = None
        if isolate:
            import concurrent.futures
            import multiprocessing
            self.pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                                               max_tasks_per_child=1, initializer=_end_with,
                                                               initargs=(os.getpid(),))

    def __call__(self, fn, *args):
        sys.stdout.flush()
        return fn(*args) if self.pool is None else self.pool.submit(fn, *args).result()

    def close(self):
        if self.pool is not None:
            self.pool.shutdown()


# --------------------------------------------------------------------------- the table


def _fmt_s(s: Optional[float], reached: bool = False, error: Optional[str] = None) -> str:
    return f"{s:.1f}" if s is not None else "untimed (resumed)" if reached else "diverged" if error else "not reached"


def _fmt_num(x: Optional[float], spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _fmt_acc(a: Optional[float]) -> str:
    return "-" if a is None else f"{100 * a:.2f}"


def aggregate(runs: list[dict], target: float) -> dict:
    """Over seeds: median wall seconds to target (a seed that did not reach it counts as
    infinite, so the median is None when half or more did not), median epochs of those that
    reached it, mean and sample std of the test accuracy at the stop (percent), the fraction of
    seeds whose test accuracy reached the target, median data load seconds.  A diverged seed
    (no test accuracy) counts as not reached and is left out of the means and medians of the rest."""
    seconds = [r["time_to_target_seconds"] if r["time_to_target_seconds"] is not None else float("inf")
               for r in runs]  # a run resumed from a checkpoint is not timed: it counts as not reached
    median = statistics.median(seconds) if seconds else float("inf")
    tests = [100 * r["final_test_accuracy"] for r in runs if r["final_test_accuracy"] is not None]
    reached = [r for r in runs if r["target_reached"]]
    median_of = lambda key: statistics.median(xs) if (xs := [r[key] for r in runs if r[key] is not None]) else None
    return {"seeds": len(runs), "median_seconds": None if median == float("inf") else median,
            "reached_val": len(reached),
            "median_epochs": statistics.median(r["target_epoch"] for r in reached) if reached else None,
            "test_mean": statistics.fmean(tests) if tests else None,
            "test_std": statistics.stdev(tests) if len(tests) > 1 else None,
            "test_reached_fraction": sum(t >= 100 * target for t in tests) / max(len(runs), 1),
            "diverged": sum(r.get("error") is not None for r in runs),
            "median_load_seconds": median_of("data_load_seconds"),
            "median_images_per_sec": median_of("train_images_per_sec")}


def ratio(cnnjax: dict, torch: dict) -> Optional[float]:
    """cnnjax time to target / torch time to target (None unless both reached it)."""
    a, b = cnnjax["time_to_target_seconds"], torch["time_to_target_seconds"]
    return a / b if a is not None and b else None


def table(result: dict) -> str:
    """results.md's body: one row per seed, then one per implementation (and the ratio)."""
    target, runs = result["target"], result["runs"]
    has_torch = any("torch" in r for r in runs)
    head = ["seed", "cnnjax s to target", "epoch", "val %", "test %"]
    head += ["torch s to target", "epoch", "test %", "cnnjax / torch"] if has_torch else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        j = r["cnnjax"]
        row = [str(r["seed"]), _fmt_s(j["time_to_target_seconds"], j["target_reached"], j.get("error")),
               str(j["target_epoch"] or "-"),
               _fmt_acc(j["final_val_accuracy"]), _fmt_acc(j["final_test_accuracy"])]
        if has_torch:
            t, x = r["torch"], ratio(j, r["torch"])
            row += [_fmt_s(t["time_to_target_seconds"]), str(t["target_epoch"] or "-"),
                    _fmt_acc(t["final_test_accuracy"]), "-" if x is None else f"{x:.2f}x"]
        lines.append("| " + " | ".join(row) + " |")
    lines += [f"\nseed {r['seed']} ({impl}): {r[impl]['error']}" for r in runs for impl in ("cnnjax", "torch")
              if r.get(impl, {}).get("error")]
    head = ["impl", "median s to target", "seeds reaching target (val)", "median epochs", "test % mean ± std",
            f"seeds with test >= {100 * target:g}%", "median data load s", "median train img/s"]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for impl, a in result["summary"].items():
        if impl == "ratio":
            continue
        std = "" if a["test_std"] is None else f" ± {a['test_std']:.2f}"
        lines.append("| " + " | ".join([
            impl, _fmt_s(a["median_seconds"]), f"{a['reached_val']}/{a['seeds']}" + (
                f" ({a['diverged']} diverged)" if a.get("diverged") else ""),
            "-" if a["median_epochs"] is None else f"{a['median_epochs']:g}",
            "-" if a["test_mean"] is None else f"{a['test_mean']:.2f}{std}",
            f"{a['test_reached_fraction']:.0%}", _fmt_num(a["median_load_seconds"], ".1f"),
            _fmt_num(a["median_images_per_sec"], ",.0f")]) + " |")
    if "ratio" in result["summary"]:
        x = result["summary"]["ratio"]
        lines += ["", "cnnjax time / torch time to target: " + (
            "-" if x["median_of_medians"] is None else f"**{x['median_of_medians']:.2f}x** (median / median)")
            + ("" if x["median_per_seed"] is None else f", {x['median_per_seed']:.2f}x (median of per-seed ratios)")]
    return "\n".join(lines)


# --------------------------------------------------------------------------- driver


def speedrun(cfg, seeds: list[int], out: str, *, with_torch: bool = False, isolate: bool = True,
             command: str = "", echo=print, compile_cache: str = "cold") -> dict:
    """Time ``cfg`` (a TrainConfig with target_accuracy) for every seed; writes OUT/results.{md,json}
    and returns the results dict.  ``compile_cache``: ``cold`` gives every cnnjax run an empty
    compilation cache (removed after it); ``warm`` first runs the first seed untimed in
    OUT/warmup (removed after) to fill OUT/compile_cache, which every timed run then loads from."""
    import shutil
    import tempfile

    from cnnjax.train import config as config_lib
    loads, runs, runner = [machine.loadavg()], [], _Runner(isolate)
    t0 = time.time()
    warm = os.path.abspath(os.path.join(out, "compile_cache"))
    try:
        if compile_cache == "warm":
            config = config_lib.to_dict(dataclasses.replace(cfg, seed=seeds[0], compile_cache_dir=warm))
            runner(run_cnnjax, config, os.path.join(out, "warmup"))
            shutil.rmtree(os.path.join(out, "warmup"), ignore_errors=True)
            echo(f"warm-up run done: compilation cache {warm}")
        for seed in seeds:
            os.makedirs(out, exist_ok=True)
            cache = warm if compile_cache == "warm" else tempfile.mkdtemp(prefix="cold-compile-cache-", dir=out)
            config = config_lib.to_dict(dataclasses.replace(cfg, seed=seed, compile_cache_dir=cache))
            try:
                row = {"seed": seed, "cnnjax": runner(run_cnnjax, config, os.path.join(out, "runs", f"seed={seed}"))}
            finally:
                if cache != warm:
                    shutil.rmtree(cache, ignore_errors=True)
            if with_torch:
                row["torch"] = runner(run_torch, config)
            runs.append(row)
            loads.append(machine.loadavg())
            echo(f"seed {seed}: cnnjax {_fmt_s(row['cnnjax']['time_to_target_seconds'], error=row['cnnjax'].get('error'))} s" +
                 (f", torch {_fmt_s(row['torch']['time_to_target_seconds'])} s" if with_torch else "") +
                 f" (load average {'/'.join(map(str, loads[-1]))})")
    finally:
        runner.close()
    summary = {impl: aggregate([r[impl] for r in runs], cfg.target_accuracy)
               for impl in ("cnnjax", "torch") if impl == "cnnjax" or with_torch}
    if with_torch:
        per_seed = [x for r in runs if (x := ratio(r["cnnjax"], r["torch"])) is not None]
        a, b = summary["cnnjax"]["median_seconds"], summary["torch"]["median_seconds"]
        summary["ratio"] = {"median_of_medians": a / b if a is not None and b else None,
                            "median_per_seed": statistics.median(per_seed) if per_seed else None}
    result = {"target": cfg.target_accuracy, "command": command, "config": config_lib.to_dict(cfg),
              "compile_cache": compile_cache,
              "seeds": seeds, "runs": runs, "summary": summary, "machine": machine.machine_info(),
              "software": machine.versions(("jax", "jaxlib", "flax", "optax", "numpy")
                                          + (("torch",) if with_torch else ())),
              "load_average": loads, "total_seconds": time.time() - t0,
              "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    _write(out, result)
    return result


_CACHE_WORDS = {"cold": "cold compilation cache: compiling every step included",
                "warm": "warm compilation cache: executables loaded from the cache an untimed warm-up run filled"}


def _write(out: str, result: dict) -> None:
    from cnnjax.train import workdir as workdir_lib
    os.makedirs(out, exist_ok=True)
    workdir_lib.write_json(os.path.join(out, "results.json"), result)
    m, loads = result["machine"], result["load_average"]
    text = (f"# Speedrun: {100 * result['target']:g}% Fashion-MNIST test accuracy\n\n"
            f"`{result['command']}`\n\n{table(result)}\n\n"
            f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}; "
            f"{', '.join(f'{k} {v}' for k, v in result['software'].items())}; {result['date']}.  "
            f"Load average (1/5/15 min) before the first run and after each seed: "
            f"{'; '.join('/'.join(f'{x:.2f}' for x in l) for l in loads)}.  Time to target: wall seconds from the "
            f"start of training ({_CACHE_WORDS[result.get('compile_cache', 'cold')]}) to the end of the evaluation "
            f"whose validation accuracy "
            f"reached the target; data loading excluded (its own column).  Test accuracy measured once, after "
            f"the stop.\n")
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text)


def main(argv):
    from cnnjax.train import config as config_lib
    cfg = common.train_config(_CONFIG)
    if _TARGET.value is not None:
        try:
            target = float(_TARGET.value)
        except ValueError:
            target = -1.0
        if not 0 < target <= 1:
            raise common.UsageError(f"--target must be a fraction in (0, 1], e.g. 0.93; got {_TARGET.value!r}")
        try:
            cfg = config_lib.from_dict({**config_lib.to_dict(cfg), "target_accuracy": target})
        except config_lib.ConfigError as e:
            raise common.UsageError(f"--target: {e}") from None
    if not cfg.target_accuracy:
        raise common.UsageError("no target: give --target=FRACTION or a config with target_accuracy > 0")
    if _SEEDS.value < 1 or _FIRST_SEED.value < 0:
        raise common.UsageError(f"--seeds must be >= 1 and --first_seed >= 0, got {_SEEDS.value}, "
                                f"{_FIRST_SEED.value}")
    if _TORCH.value:
        import importlib.util
        if importlib.util.find_spec("torch") is None:
            raise common.UsageError("--torch needs PyTorch: pip install -e '.[bench]'")
        speedrun_torch.check(cfg)  # ValueError naming the setting: one error line, nothing written
    out = _OUT.value or os.path.join("results", "speedrun", f"{cfg.target_accuracy:g}"
                                     + ("-warm" if _CACHE.value == "warm" else ""))
    if os.path.exists(out) and not os.path.isdir(out):
        raise common.UsageError(f"--out {out} exists and is not a directory")
    seeds = list(range(_FIRST_SEED.value, _FIRST_SEED.value + _SEEDS.value))
    from cnnjax.train import workdir as workdir_lib
    for seed in seeds:  # a run directory holding another recipe: refused before anything runs
        run_dir = workdir_lib.Workdir(os.path.join(out, "runs", f"seed={seed}"))
        run_dir.resume_config(dataclasses.replace(cfg, seed=seed))
    command = "python -m benchmarks.speedrun " + " ".join(shlex.quote(a) for a in _GIVEN)
    result = speedrun(cfg, seeds, out, with_torch=_TORCH.value, isolate=_ISOLATE.value, command=command,
                      compile_cache=_CACHE.value)
    print(f"\n{table(result)}\n\nload average before / after each seed: "
          f"{', '.join(f'{l[0]:.2f}' for l in result['load_average'] if l)}\n"
          f"results: {os.path.join(out, 'results.md')}, {os.path.join(out, 'results.json')}")


if __name__ == "__main__":
    common.run(main)
