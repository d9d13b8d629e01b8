r"""Search a study's ranges with Ray Tune: random or Optuna sampling, ASHA stopping weak trials early.

  python -m launch.search --config=experiments/configs/search_lr_wd.py --out=results/search_lr_wd

A search study is a config file with ``get_config()`` (the base run, as for launch.sweep) and
``get_search()``::

    {"space": {"learning_rate": ("log", 1e-4, 1e-2), "weight_decay": ("log", 1e-6, 1e-3)},
     "num_samples": 12, "algorithm": "optuna",        # or "random" (both seeded by "seed")
     "metric": "val_accuracy", "mode": "max", "grace_period": 1, "reduction_factor": 2, "seed": 0}

``metric``: val_accuracy (the default), val_loss, train_accuracy or train_loss -- never a test
metric: the test set is measured once per trial, at its end, and selects nothing.

A range is ``("log", lo, hi)``, ``("uniform", lo, hi)``, ``("int", lo, hi)`` or ``("choice", [..])``;
keys are settings of cnnjax/train/config.py (dotted for model options).  Sampled floats are rounded to
3 significant digits, so a trial's name (``learning_rate=0.00123,weight_decay=4.5e-05``) is its
config.  Each trial is a Tune trial declaring ``--cpus_per_run`` CPUs (and running that many XLA
threads, ``config.threads``: :func:`launch.sweep.trial_threads`) that trains in
``OUT/runs/<name>`` with :func:`cnnjax.train.experiment.train_and_evaluate`, reporting every epoch's
metrics to Tune; ASHA (``max_t`` = the config's epochs) stops the weak ones after 1, 2, 4, ...
epochs (grace_period x reduction_factor^k).  A trial whose worker dies is restarted up to
``--max_retries`` times and resumes from its checkpoint.  At the end ``launch.report`` writes the
same OUT/results.{md,csv,png} as a sweep (stopped trials listed under the table with their
epochs), and results.md says how many epochs ASHA trained against ``num_samples x epochs``.
Ctrl-C / SIGTERM end the search with status 130 and no report; the same command then resumes it
(``tune.Tuner.restore`` of OUT/tune/search: finished trials stay, the others resume their
checkpoints); another study or other settings in that OUT are refused in one line, and so is
another ``--max_retries`` (Tune keeps the search's first one).
Ray: as for launch.sweep (``--ray_address``, ``--num_cpus``).
"""
from __future__ import annotations

import json
import os
import time

from absl import flags

from cnnjax.train import config as config_lib
from cnnjax.train import workdir as workdir_lib
from experiments import common
from launch import report
from launch import study as study_lib
from launch import sweep

UsageError = common.UsageError
KINDS = ("log", "uniform", "int", "choice")


#: Tune's experiment in OUT, and beside it what the started search was (base config and search):
#: a rerun resumes only the same one
EXPERIMENT = os.path.join("tune", "search")
STARTED = os.path.join("tune", "cnnjax_search.json")
#: what a search may select on: metrics of the epochs that evaluate the validation split
METRICS = ("val_accuracy", "val_loss", "train_accuracy", "train_loss")


def get_search(file: str) -> dict:
    path = file.split(":", 1)[0]
    module = common.config_module(file)
    if not hasattr(module, "get_search"):
        raise UsageError(f"{path} has no get_search(): not a search study (run a grid with launch.sweep)")
    search = {"num_samples": 8, "algorithm": "optuna", "metric": "val_accuracy", "mode": "max",
              "grace_period": 1, "reduction_factor": 2, "seed": 0, **module.get_search()}
    space = search.get("space")
    if not isinstance(space, dict) or not space:
        raise UsageError(f"{path}: get_search() needs a non-empty 'space' of ranges")
    for key, rng in space.items():
        if not (isinstance(rng, tuple) and rng and rng[0] in KINDS and len(rng) == (2 if rng[0] == "choice" else 3)):
            raise UsageError(f"{path}: space[{key!r}] must be ('log'|'uniform'|'int', lo, hi) or ('choice', [...]), "
                             f"got {rng!r}")
    if search["algorithm"] not in ("optuna", "random"):
        raise UsageError(f"{path}: algorithm must be 'optuna' or 'random', got {search['algorithm']!r}")
    if search["metric"] not in METRICS:  # test_* too: a search that picks on the test set reports no test score
        raise UsageError(f"{path}: metric must be one of {', '.join(METRICS)} (what every evaluated epoch "
                         f"reports; the test set is never selected on), got {search['metric']!r}")
    if search["mode"] not in ("max", "min"):
        raise UsageError(f"{path}: mode must be 'max' or 'min', got {search['mode']!r}")
    return search


def round3(value):
    return float(f"{value:.3g}") if isinstance(value, float) else value


def trial_overrides(sampled: dict) -> dict:
    return {k: round3(v) for k, v in sampled.items()}


def _validate(base: dict, search: dict, where: str) -> None:
    """Every corner of the space must make a valid run, with a validation split to select on:
    one error line before anything starts."""
    corners = {k: (r[1][0] if r[0] == "choice" else r[1]) for k, r in search["space"].items()}
    for overrides in (corners, {k: (r[1][-1] if r[0] == "choice" else r[2]) for k, r in search["space"].items()}):
        try:
            cfg = config_lib.from_dict(config_lib.apply(base, overrides))
        except config_lib.ConfigError as e:
            raise UsageError(f"{where}: {e}") from None
        if not cfg.validation_size:
            raise UsageError(f"{where}: a search selects on the validation split; config.validation_size is 0")


def _trainable(sampled: dict, base: dict, out: str, cpus_per_run: float = 1) -> None:
    """One Tune trial (in its own worker process): train in OUT/runs/<name>, report each epoch's
    metrics (the last one once summary.json is written: ASHA stops a trial at max_t)."""
    from ray import tune
    overrides = trial_overrides(sampled)
    workdir = os.path.join(out, "runs", study_lib.run_name(overrides))
    cfg = config_lib.apply(base, overrides) | {"progress": "plain"}
    cfg["threads"] = sweep.trial_threads(cfg, workdir, cpus_per_run)  # its CPUs' worth of XLA threads
    numbers = lambda row: {k: v for k, v in row.items() if isinstance(v, (int, float))}
    last = []

    def on_epoch(row):  # only evaluated epochs (eval_every, eval_delay): Tune refuses a result without the metric
        if row["epoch"] < cfg["epochs"] and row["val_accuracy"] is not None:
            tune.report(numbers(row))
        last[:] = [row]
    res = sweep._train(cfg, workdir, f"trial {os.path.basename(workdir)}", on_epoch=on_epoch)
    if not res["ok"]:
        raise RuntimeError(res["reason"])
    tune.report(numbers(last[0]) if last else {"epoch": cfg["epochs"],
                                               "val_accuracy": res["summary"]["final_val_accuracy"]})


def _space(search: dict):
    from ray import tune
    make = {"log": lambda r: tune.loguniform(r[1], r[2]), "uniform": lambda r: tune.uniform(r[1], r[2]),
            "int": lambda r: tune.randint(r[1], r[2] + 1), "choice": lambda r: tune.choice(list(r[1]))}
    return {k: make[r[0]](r) for k, r in search["space"].items()}


def _new_tuner(trainable, search: dict, experiment: str, epochs: int, max_retries: int):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    if search["algorithm"] == "optuna":
        from ray.tune.search.optuna import OptunaSearch
        algorithm = OptunaSearch(seed=search["seed"])
    else:  # Tune's default sampler, seeded (unseeded it draws from numpy's global state)
        from ray.tune.search.basic_variant import BasicVariantGenerator
        algorithm = BasicVariantGenerator(random_state=search["seed"])
    return tune.Tuner(
        trainable,
        param_space=_space(search),
        tune_config=tune.TuneConfig(
            metric=search["metric"], mode=search["mode"], num_samples=search["num_samples"],
            search_alg=algorithm, max_concurrent_trials=None,
            scheduler=ASHAScheduler(time_attr="epoch", max_t=epochs, grace_period=search["grace_period"],
                                    reduction_factor=search["reduction_factor"])),
        run_config=tune.RunConfig(storage_path=os.path.dirname(experiment), name=os.path.basename(experiment),
                                  verbose=1, failure_config=tune.FailureConfig(max_failures=max_retries)))


def _ended(experiment: str, num_samples: int) -> bool:
    """Whether Tune's saved state has every trial ended.  fit() also returns after a Ctrl-C (Tune
    catches it to save its state); the trials it interrupted are saved as pending, and in memory,
    where Tune has stopped them, they look terminated."""
    from ray.tune import ExperimentAnalysis
    statuses = [t.status for t in ExperimentAnalysis(experiment).trials]
    return len(statuses) >= num_samples and all(s in ("TERMINATED", "ERROR") for s in statuses)


def run_search(out: str, file: str, base: dict, cli_args=(), *, ray_address=None, num_cpus=None,
               cpus_per_run: float = 1, gpus_per_run: float = 0, max_retries: int = 3, echo=sweep._print) -> int:
    from ray import tune
    search = get_search(file)
    where = os.path.relpath(file.split(":", 1)[0])
    base = config_lib.apply(base, {})
    _validate(base, search, where)
    epochs = config_lib.from_dict(base).epochs
    out = os.path.abspath(out)
    if report.sweep_record(out) is not None:
        raise UsageError(f"{out} already holds a sweep or search; use another --out")
    experiment = os.path.join(out, EXPERIMENT)
    started = json.loads(json.dumps({"base": base, "search": search}))  # as it reads back
    resume = tune.Tuner.can_restore(experiment)
    if resume:
        record = workdir_lib.read_json(os.path.join(out, STARTED)) or {}
        if {k: record.get(k) for k in started} != started:
            raise UsageError(f"{out} holds an interrupted search of another study or other settings: rerun "
                             f"that command to resume it, or use another --out")
        if record.get("max_retries", max_retries) != max_retries:  # Tune restores its own FailureConfig
            raise UsageError(f"--max_retries={max_retries}: the interrupted search in {out} was started with "
                             f"--max_retries={record['max_retries']}, which Tune keeps when it resumes; rerun "
                             f"with --max_retries={record['max_retries']}")
    owns = sweep.init_ray(ray_address, num_cpus, echo)
    t0 = time.time()
    try:
        with sweep.sigterm_as_ctrl_c():
            resources = {"cpu": cpus_per_run, **({"gpu": gpus_per_run} if gpus_per_run else {})}
            trainable = tune.with_resources(
                tune.with_parameters(_trainable, base=base, out=out, cpus_per_run=cpus_per_run), resources)
            if resume:  # trials and sampler as Tune saved them (not ASHA's rungs); each run resumes its checkpoint
                echo(f"search: resuming the interrupted search in {experiment}")
                tuner = tune.Tuner.restore(experiment, trainable)
            else:
                os.makedirs(os.path.dirname(experiment), exist_ok=True)
                workdir_lib.write_json(os.path.join(out, STARTED), started | {"max_retries": max_retries})
                tuner = _new_tuner(trainable, search, experiment, epochs, max_retries)
            results = tuner.fit()
            if not _ended(experiment, search["num_samples"]):
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        echo(f"search interrupted; rerun the same command to resume it ({experiment})")
        return 130
    finally:
        if owns:
            import ray
            ray.shutdown()
    runs, trained = [], 0
    for result in results:
        overrides = trial_overrides(result.config)
        name = study_lib.run_name(overrides)
        wd = os.path.join(out, "runs", name)
        done = int((result.metrics or {}).get("epoch", 0))
        trained += done
        runs.append({"name": name, "overrides": overrides,
                     "config": study_lib.numbers_config(config_lib.from_dict(config_lib.apply(base, overrides)))})
        if result.error is not None:
            status = {"status": "failed", "reason": " ".join(str(result.error).split())[:300]}
        elif sweep.finished_summary(wd):
            status = {"status": workdir_lib.FINISHED}
        else:
            status = {"status": "stopped", "reason": f"stopped by ASHA after {done} of {epochs} epochs"}
        workdir_lib.write_json(os.path.join(wd, report.STATUS), status)
    grid = search["num_samples"] * epochs
    best = results.get_best_result()
    note = (f"{search['algorithm']} search, ASHA (grace {search['grace_period']}, reduction factor "
            f"{search['reduction_factor']}): {len(runs)} trials trained {trained} epochs, against "
            f"{search['num_samples']} x {epochs} = {grid} without early stopping: {1 - trained / grid:.0%} of the "
            f"epochs saved; {time.time() - t0:.0f}s wall.  Best: {study_lib.run_name(trial_overrides(best.config))} "
            f"({search['metric']} {best.metrics.get(search['metric']):.4f}).")
    workdir_lib.write_json(os.path.join(out, study_lib.RECORD),
                           {"version": study_lib.RECORD_VERSION, "study": file, "overrides": list(cli_args),
                            "tool": "launch.search", "notes": [note], "runs": runs,
                            "search": {k: (list(v) if isinstance(v, tuple) else v) for k, v in search.items()
                                       if k != "space"} | {"space": {k: list(v) for k, v in search["space"].items()},
                                                           "epochs_trained": trained, "epochs_full": grid}})
    rows = report.report(out, curves=True)
    echo(note)
    echo(f"report: {len(rows)} configurations -> {os.path.join(out, 'results.md')}")
    return 0


def main(argv):
    from ml_collections import config_flags
    f = flags.FLAGS
    if f.config is None:
        raise UsageError("--config=SEARCH_FILE is required, e.g. --config=experiments/configs/search_lr_wd.py")
    file = config_flags.get_config_filename(f["config"])
    cli_args, _ = sweep.command_overrides(__import__("sys").argv, f["config"])
    out = f.out or os.path.join("sweeps", os.path.splitext(os.path.basename(file.split(":", 1)[0]))[0])
    return run_search(out, file, f.config, cli_args, ray_address=f.ray_address, num_cpus=f.num_cpus,
                      cpus_per_run=f.cpus_per_run, gpus_per_run=f.gpus_per_run, max_retries=f.max_retries)


if __name__ == "__main__":
    sweep.define_flags()
    common.run(main)
