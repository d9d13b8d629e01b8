"""launch.sweep on a real local Ray cluster (one ``ray.init(num_cpus=2)`` for the module): a
2 models x 2 learning rates x 2 seeds synthetic sweep ends in results.csv/md/png; a run whose
worker is SIGKILLed mid-epoch is retried by Ray, resumes from its checkpoint and ends with the
undisturbed sweep's metrics; a rerun trains nothing; a failing run is recorded and the sweep
goes on; a run trained as a two-process jax.distributed gang equals the one-process run."""
import dataclasses
import json
import os
import re
import signal
import threading
import time

import pytest

ray = pytest.importorskip("ray")

from cnnjax.train.workdir import Workdir  # noqa: E402
from launch import report as report_lib  # noqa: E402
from launch import study as study_lib  # noqa: E402
from launch import sweep  # noqa: E402

BASE = dict(model="padded_cnn", dataset="synthetic", num_train=512, num_test=128, epochs=3, batch_size=64)
STUDY = f'''
from cnnjax.train import config

def get_config():
    return config.config_dict(**{BASE!r})

def get_sweep():
    return config.product(config.sweep("seed", [0, 1]), config.sweep("model", ["padded_cnn", "seed_net"]),
                          config.sweep("learning_rate", [1e-3, 3e-3]))
'''
NUMBERS = ("epoch", "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    # the workers inherit this environment: a persistent compilation cache shared by the runs
    # (same executables, so the same numbers) halves a run's ~14 s here
    env = {"RAY_DEDUP_LOGS": "0", "JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("jax_cache")),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    t0 = time.time()
    sweep.init_ray(num_cpus=2, echo=lambda line: None)
    print(f"ray.init: {time.time() - t0:.1f}s")
    yield
    ray.shutdown()
    for k, v in saved.items():
        os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def load(tmp_path, text=STUDY, **overrides):
    path = tmp_path / "study.py"
    path.write_text(text)
    return study_lib.load(str(path), {**BASE, **overrides}, [], [])


def numbers(workdir):
    return [{k: row[k] for k in NUMBERS} for row in Workdir(workdir).metrics()]


@pytest.fixture(scope="module")
def grid(cluster, tmp_path_factory):
    """The undisturbed 8-run sweep: (OUT, printed lines, status, study)."""
    tmp = tmp_path_factory.mktemp("grid")
    lines, st = [], load(tmp)
    t0 = time.time()
    code = sweep.run_sweep(str(tmp / "out"), st, echo=lines.append)
    print(f"8-run sweep: {time.time() - t0:.1f}s")
    return str(tmp / "out"), lines, code, st


def test_grid_sweep_ends_in_the_report(grid):
    out, lines, code, _ = grid
    assert code == 0, lines
    runs = sorted(os.listdir(os.path.join(out, "runs")))
    assert len(runs) == 8 and "model=padded_cnn,learning_rate=0.001,seed=0" in runs
    for name in runs:
        assert Workdir(os.path.join(out, "runs", name)).summary()["epochs"] == 3
        # one CPU per trial (launch.sweep's default): one XLA thread, recorded as a setting of the run
        assert Workdir(os.path.join(out, "runs", name)).config().threads == 1
        assert Workdir(os.path.join(out, "runs", name)).summary()["threads"] == 1
        assert json.load(open(os.path.join(out, "runs", name, "status.json")))["status"] == "finished"
        assert "==== " in open(os.path.join(out, "runs", name, "log.txt")).read()
    for f in ("results.csv", "results.md", "results.png", "curves.png"):
        assert os.path.getsize(os.path.join(out, f)) > 0
    rows = report_lib.report(out, write=False)
    assert len(rows) == 4 and all(r["n_seeds"] == 2 for r in rows)
    assert sum(1 for l in lines if "] done " in l) == 8


def test_workers_are_reused_and_each_run_logs_only_its_own_lines(grid):
    """A worker trains one run after another (its JAX and executables already loaded) instead of
    one process per run; each run's log.txt holds its own header and lines only: the worker's
    output goes back where it went once the run is done.  (A reused worker gives the same numbers
    as a fresh one: test_killed_worker_is_retried_... compares a run resumed in a new worker with
    the grid's.)"""
    out, *_ = grid
    pids = {}
    for name in os.listdir(os.path.join(out, "runs")):
        log = open(os.path.join(out, "runs", name, "log.txt")).read()
        assert log.count("==== ") == 1 and f"run {name}" in log.splitlines()[0], log[:500]
        assert log.rstrip().splitlines()[-1].startswith("test accuracy"), log[-500:]
        pids[name] = re.search(r" pid (\d+): ", log).group(1)
    assert len(set(pids.values())) < len(pids), pids


def test_rerun_starts_no_run(grid):
    out, _, _, st = grid
    lines = []
    assert sweep.run_sweep(out, st, echo=lines.append, make_report=False) == 0
    assert sum(1 for l in lines if "] skip " in l) == 8
    assert not any("] done " in l or l.startswith("sweep: 8 runs to train") for l in lines), lines


def test_killed_worker_is_retried_and_a_failed_run_is_recorded(grid, tmp_path):
    """Run A (the grid's padded_cnn lr=1e-3 seed 0, with another keep_checkpoints: a setting that
    does not change the numbers) has its worker SIGKILLed once epoch 1's checkpoint exists: Ray
    retries it, it resumes and ends with the undisturbed grid run's metrics.  Run B's directory
    holds another run, so the trainer refuses it: recorded, not retried, and the sweep goes on."""
    ref_out, *_ = grid
    ref = os.path.join(ref_out, "runs", "model=padded_cnn,learning_rate=0.001,seed=0")
    path = tmp_path / "study.py"
    path.write_text(STUDY.split("def get_sweep")[0] + "def get_sweep():\n"
                    "    return [{'keep_checkpoints': 2}, {'learning_rate': 3e-3}]\n")
    st = study_lib.load(str(path), BASE, [], [])
    out = str(tmp_path / "out")
    wd, bad = (os.path.join(out, "runs", r.name) for r in st.runs)
    Workdir(bad).write_config(dataclasses.replace(st.runs[1].config, epochs=2), {})
    killed = {}

    def killer():
        deadline = time.time() + 180
        while time.time() < deadline and not killed:
            try:
                ckpt = Workdir(wd).checkpoint_dir
                if "1" in (os.listdir(ckpt) if os.path.isdir(ckpt) else []) and len(Workdir(wd).metrics()) < 3:
                    pid = json.load(open(os.path.join(wd, "status.json")))["pid"]  # the running attempt's
                    os.kill(pid, signal.SIGKILL)
                    killed["pid"], killed["epochs"] = pid, len(Workdir(wd).metrics())
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.02)
    t = threading.Thread(target=killer)
    t.start()
    lines = []
    code = sweep.run_sweep(out, st, echo=lines.append)
    t.join()
    assert killed, "the run finished before it could be killed"
    assert code == 1, lines  # B failed
    log = open(os.path.join(wd, "log.txt")).read()
    assert log.count("==== ") == 2 and f"pid {killed['pid']}:" in log, log[-2000:]  # a second attempt ...
    assert "resuming" in log                                                      # ... from the checkpoint
    assert numbers(wd) == numbers(ref)
    assert Workdir(wd).summary()["final_test_accuracy"] == Workdir(ref).summary()["final_test_accuracy"]

    fails = [json.loads(l) for l in open(os.path.join(out, "failures.jsonl"))]
    assert [f["name"] for f in fails] == [st.runs[1].name] and "epochs" in fails[0]["reason"], fails
    assert open(os.path.join(bad, "log.txt")).read().count("==== ") == 1
    assert json.load(open(os.path.join(bad, "status.json")))["status"] == "failed"
    assert f"`{st.runs[1].name}`: failed" in open(os.path.join(out, "results.md")).read()
    assert any(f"FAILED {st.runs[1].name}" in l for l in lines)


def test_two_process_gang_equals_one_process(grid, tmp_path):
    ref_out, *_ = grid
    text = STUDY.replace('["padded_cnn", "seed_net"]', '["padded_cnn"]').replace("[1e-3, 3e-3]", "[1e-3]") \
        .replace("[0, 1]", "[0]")
    st = load(tmp_path, text)
    out = str(tmp_path / "out")
    lines = []
    assert sweep.run_sweep(out, st, processes_per_run=2, echo=lines.append, make_report=False) == 0, lines
    wd = os.path.join(out, "runs", st.runs[0].name)
    assert "data-parallel over 2 devices (2 processes)" in open(os.path.join(wd, "log.txt")).read()
    got, want = numbers(wd), numbers(os.path.join(ref_out, "runs", st.runs[0].name))
    assert [r["step"] for r in got] == [r["step"] for r in want]
    for g, w in zip(got, want):
        for k in NUMBERS:
            assert g[k] == pytest.approx(w[k], rel=1e-4, abs=1e-5), (k, g, w)
    ckpts = lambda d: sorted(os.listdir(Workdir(d).checkpoint_dir))  # one set of checkpoints, as one process
    assert ckpts(wd) == ckpts(os.path.join(ref_out, "runs", st.runs[0].name))


@pytest.mark.slow
@pytest.mark.parametrize("evaluation", [{}, {"eval_delay": 1}])  # epoch 1 without a val_accuracy to report
def test_asha_search_ends_in_the_report(cluster, tmp_path, evaluation):
    from launch import search
    path = tmp_path / "search.py"
    path.write_text(STUDY.split("def get_sweep")[0].replace("padded_cnn", "seed_net") + '''
def get_search():
    return {"space": {"learning_rate": ("log", 1e-4, 1e-1)}, "num_samples": 4, "algorithm": "optuna"}
''')
    out = str(tmp_path / "out")
    assert search.run_search(out, str(path), {**BASE, "model": "seed_net", **evaluation}, echo=lambda line: None) == 0
    record = json.load(open(os.path.join(out, "sweep.json")))
    assert record["tool"] == "launch.search" and len(record["runs"]) == 4
    assert 4 <= record["search"]["epochs_trained"] <= 12 == record["search"]["epochs_full"]
    finished = [r for r in record["runs"] if Workdir(os.path.join(out, "runs", r["name"])).summary()]
    assert finished and len(report_lib.report(out, write=False)) == len(finished)
    assert "without early stopping" in open(os.path.join(out, "results.md")).read()


@pytest.mark.slow
def test_random_search_draws_the_same_trials_for_the_same_seed(cluster, tmp_path):
    from launch import search

    def trials(seed, out):
        path = tmp_path / f"search{seed}.py"
        path.write_text(STUDY.split("def get_sweep")[0].replace("padded_cnn", "seed_net") + f'''
def get_search():
    return {{"space": {{"learning_rate": ("log", 1e-4, 1e-1)}}, "num_samples": 3, "algorithm": "random",
            "seed": {seed}}}
''')
        base = {**BASE, "model": "seed_net", "epochs": 1}
        assert search.run_search(str(tmp_path / out), str(path), base, echo=lambda line: None) == 0
        return sorted(r["name"] for r in json.load(open(tmp_path / out / "sweep.json"))["runs"])

    first = trials(0, "a")
    assert len(set(first)) == 3 and trials(0, "b") == first and trials(1, "c") != first


def test_a_two_trial_search_runs_and_reports(cluster, tmp_path):
    """launch.search end to end in the fast suite (ASHA and resume: the tests below; the seeds: slow):
    2 random trials of 1 epoch on a few synthetic images, each a finished run trained with the
    drawn learning rate, inside the space, named after it; sweep.json and the report list both."""
    from launch import search
    path = tmp_path / "search.py"
    path.write_text(STUDY.split("def get_sweep")[0].replace("padded_cnn", "seed_net") + '''
def get_search():
    return {"space": {"learning_rate": ("log", 1e-4, 1e-1)}, "num_samples": 2, "algorithm": "random", "seed": 0}
''')
    out = tmp_path / "out"
    base = {**BASE, "model": "seed_net", "epochs": 1, "num_train": 256, "num_test": 64}
    assert search.run_search(str(out), str(path), base, echo=lambda line: None) == 0
    record = json.load(open(out / "sweep.json"))
    assert record["tool"] == "launch.search" and len(record["runs"]) == 2
    rates = []
    for run in record["runs"]:
        wd = Workdir(str(out / "runs" / run["name"]))
        assert wd.summary() is not None and wd.summary()["epochs_trained"] == 1
        lr = wd.config().learning_rate
        assert 1e-4 <= lr <= 1e-1 and run["name"] == study_lib.run_name(search.trial_overrides({"learning_rate": lr}))
        rates.append(lr)
    assert len(set(rates)) == 2
    assert len(report_lib.report(str(out), write=False)) == 2
    assert all(run["name"] in (out / "results.md").read_text() for run in record["runs"])


def _search_file(tmp_path, search: str):
    path = tmp_path / "search.py"
    path.write_text(STUDY.split("def get_sweep")[0].replace("padded_cnn", "seed_net") +
                    f"\ndef get_search():\n    return {search}\n")
    return str(path)


def test_asha_stops_a_weak_trial_early(cluster, tmp_path):
    """The fast version of test_asha_search_ends_in_the_report: 3 random trials of 3 epochs over a
    learning-rate range from hopeless (1e-6) to good (1e-1), one at a time (2 CPUs per trial on the
    2-CPU cluster), so each is judged against the ones before it.  ASHA (grace 1, factor 2) stops
    at least one after 1 or 2 of its 3 epochs: its run is 'stopped' with that many logged epochs,
    its validation accuracy at that rung below an earlier trial's there; the search trains fewer
    epochs than 3 x 3 and says so."""
    from launch import search
    file = _search_file(tmp_path, '{"space": {"learning_rate": ("log", 1e-6, 1e-1)}, "num_samples": 3, '
                                  '"algorithm": "random", "seed": 0}')  # draws 1.5e-3, then 2.2e-5 and 1.6e-6
    out = tmp_path / "out"
    base = {**BASE, "model": "seed_net", "epochs": 3, "num_train": 256, "num_test": 64, "batch_size": 32}
    assert search.run_search(str(out), file, base, cpus_per_run=2, echo=lambda line: None) == 0
    record = json.load(open(out / "sweep.json"))
    rows = {r["name"]: Workdir(str(out / "runs" / r["name"])).metrics() for r in record["runs"]}
    status = {n: json.load(open(out / "runs" / n / "status.json")) for n in rows}
    stopped = [n for n in rows if status[n]["status"] == "stopped"]
    assert stopped, status
    for name in stopped:
        epochs = len(rows[name])
        assert 1 <= epochs < 3 and status[name]["reason"] == f"stopped by ASHA after {epochs} of 3 epochs"
        rung = {1: 0, 2: 1}[epochs]
        assert any(len(m) > epochs and m[rung]["val_accuracy"] > rows[name][rung]["val_accuracy"]
                   for other, m in rows.items() if other != name), rows
    assert record["search"]["epochs_trained"] == sum(len(m) for m in rows.values()) < 9
    assert record["search"]["epochs_full"] == 9
    md = (out / "results.md").read_text()
    assert all(f"`{n}`: stopped by ASHA after {len(rows[n])} of 3 epochs" in md for n in stopped), md


def test_an_interrupted_search_resumes_without_training_finished_trials_again(cluster, tmp_path):
    """The fast version of test_ray_cluster's slow Ctrl-C test, in this process: 3 trials of 2
    epochs one at a time; SIGINT (Ctrl-C) once the first trial has finished ends the search as
    interrupted (130, no results); the same call resumes it ("resuming the interrupted search"),
    ends with all 3 trials, and the finished trial is not trained again (its log holds one
    attempt, its summary.json is the same file)."""
    from launch import search
    file = _search_file(tmp_path, '{"space": {"learning_rate": ("log", 1e-4, 1e-2)}, "num_samples": 3, '
                                  '"algorithm": "random", "seed": 1}')
    out = tmp_path / "out"
    base = {**BASE, "model": "seed_net", "epochs": 2, "num_train": 256, "num_test": 64}
    summaries = lambda: {p.parent.name: p.stat().st_mtime_ns for p in out.glob("runs/*/summary.json")}
    running, sent = threading.Event(), threading.Event()

    def interrupt_after_the_first_trial():
        deadline = time.time() + 240
        while running.is_set() and time.time() < deadline:
            if summaries():
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: Tune saves its state and fit() returns
                sent.set()
                return
            time.sleep(0.05)
    lines = []
    running.set()
    t = threading.Thread(target=interrupt_after_the_first_trial)
    t.start()
    try:
        code = search.run_search(str(out), file, base, cpus_per_run=2, echo=lines.append)
    finally:
        running.clear()
        t.join()
    assert sent.is_set() and code == 130, lines
    assert any("search interrupted; rerun the same command to resume it" in l for l in lines), lines
    assert not (out / "sweep.json").exists() and not (out / "results.md").exists()
    finished = summaries()
    assert len(finished) in (1, 2), finished

    lines = []
    assert search.run_search(str(out), file, base, cpus_per_run=2, echo=lines.append) == 0, lines
    assert any("search: resuming the interrupted search" in l for l in lines), lines
    runs = json.load(open(out / "sweep.json"))["runs"]
    assert len(runs) == 3 and (out / "results.md").exists()
    assert {n: t for n, t in summaries().items() if n in finished} == finished
    for name in finished:  # trained once: a finished trial trained again would log its epochs twice
        log = open(out / "runs" / name / "log.txt").read().splitlines()
        assert [l.split()[:2] for l in log if l.startswith("epoch ")] == [["epoch", "1"], ["epoch", "2"]], log
        # Tune may start a trial again that wrote summary.json just before the Ctrl-C but was not yet
        # recorded as finished: the trainer then only says so (a second attempt header, no epochs)
        attempts = sum(l.startswith("==== ") for l in log)
        assert attempts == 1 or (attempts == 2 and sum("nothing to do" in l for l in log) == 1), log
    for r in runs:
        assert json.load(open(out / "runs" / r["name"] / "status.json"))["status"] in ("finished", "stopped")
