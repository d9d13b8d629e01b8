"""launch.sweep / launch.report: grid syntax, run names, shards, skip/resume/failure with a fake
trainer, refusal of a changed sweep, and report aggregation on fabricated workdirs."""
import csv
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from launch import report as report_lib
from launch import sweep

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A stand-in for experiments.train honouring its contract: resumes from metrics.jsonl, writes
# summary.json when finished.  FAKE_CONTROL (JSON) maps behaviours to run names:
#   fail: exit 3 after printing 'boom'; die: SIGKILL itself after epoch 1 on the first attempt;
#   nosummary: exit 0 without summary.json.  FAKE_SLEEP: seconds per epoch.
FAKE_TRAIN = r'''
import json, os, signal, sys, time
args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
wd = args["workdir"]; name = os.path.basename(wd)
os.makedirs(wd, exist_ok=True)
control = json.loads(os.environ.get("FAKE_CONTROL", "{}"))
first = not os.path.exists(os.path.join(wd, "attempts.txt"))
with open(os.path.join(wd, "attempts.txt"), "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\n")
print("fake training", name, flush=True)
if name in control.get("fail", []):
    print("boom: train loss is nan", flush=True)
    sys.exit(3)
json.dump(args, open(os.path.join(wd, "config.json"), "w"))
epochs = int(args.get("epochs", 2))
path = os.path.join(wd, "metrics.jsonl")
done = sum(1 for _ in open(path)) if os.path.exists(path) else 0
seed, lr = int(args["seed"]), float(args.get("learning_rate", 0.001))
for e in range(done + 1, epochs + 1):
    time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
    with open(path, "a") as f:
        f.write(json.dumps({"epoch": e, "test_accuracy": 0.5 + 0.1 * e + 0.01 * seed}) + "\n")
    if e == 1 and first and name in control.get("die", []):
        os.kill(os.getpid(), signal.SIGKILL)
if name in control.get("nosummary", []):
    sys.exit(0)
acc = round(0.8 + 0.01 * seed + lr, 6)
json.dump({"status": "finished", "model": args.get("model"), "params": 1000, "flops": 20000,
           "receptive_field": 9, "epochs": epochs, "final_test_accuracy": acc, "best_test_accuracy": acc,
           "train_images_per_sec": 100.0, "wall_seconds": 1.0}, open(os.path.join(wd, "summary.json"), "w"))
'''


@pytest.fixture
def fake(tmp_path):
    path = tmp_path / "fake_train.py"
    path.write_text(FAKE_TRAIN)
    return [sys.executable, str(path)]


def control(monkeypatch, **kw):
    monkeypatch.setenv("FAKE_CONTROL", json.dumps(kw))


def attempts(out, name):
    p = os.path.join(out, "runs", name, "attempts.txt")
    return len(open(p).read().splitlines()) if os.path.exists(p) else 0


def cli(*args, env=None, timeout=60):
    e = {**os.environ, **(env or {})}
    e["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, e.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=e, cwd=REPO,
                          timeout=timeout)


# --------------------------------------------------------------------------- grid syntax


def test_parse_grid_normalises_and_keeps_order():
    g = sweep.parse_grid("model=padded_cnn,separable_cnn; learning_rate=1e-3,3e-3 ;epochs=03")
    assert g == [("model", ["padded_cnn", "separable_cnn"]), ("learning_rate", ["0.001", "0.003"]),
                 ("epochs", ["3"])]
    assert sweep.parse_grid("") == []
    assert sweep.parse_base("epochs=3,batch_size=128,dataset=fashion_mnist") == {
        "epochs": "3", "batch_size": "128", "dataset": "fashion_mnist"}
    # model options: keys that are not train flags, checked against the models
    st = sweep.make_stage("model=padded_cnn,lenet5;activation=relu,sigmoid", "pool=avg", "0")
    assert st.grid[1] == ("activation", ["relu", "sigmoid"]) and st.base == {"pool": "avg"}
    # a grid axis overrides the same --base key
    assert sweep.make_stage("epochs=1,2", "epochs=5,batch_size=64", "0").base == {"batch_size": "64"}


@pytest.mark.parametrize("grid, message", [
    ("model=padded_cnn;;learning_rate=1e-3", "empty"),
    (";", "empty"),
    ("model=", "no values"),
    ("model= , ", "empty value"),
    ("model=padded_cnn,,lenet5", "empty value"),
    ("model", "no '='"),
    ("model=padded_cnn;model=lenet5", "duplicate axis"),
    ("learning_rate=1e-3,0.001", "twice"),
    ("lerning_rate=1e-3", "unknown flag name 'lerning_rate'"),
    ("model=lenet5;conv2=conv,dilated", "lenet5"),
    ("model=no_such_model", "unknown model"),
    ("seed=0,1", "--seeds"),
    ("workdir=a,b", "workdir"),
    ("model_options=activation=relu", "own keys"),
    ("learning_rate=fast", "number"),
    ("epochs=1.5", "integer"),
    ("optimizer=rmsprop", "one of"),
    ("=1,2", "empty flag name"),
])
def test_bad_grids_are_usage_errors(grid, message):
    with pytest.raises(sweep.UsageError, match=message.replace("(", r"\(")):
        sweep.make_stage(grid, "", "0")


@pytest.mark.parametrize("base, seeds", [("epochs", "0"), ("epochs=1,,x=2", "0"), ("epochs=1,epochs=2", "0"),
                                          ("", "0,0"), ("", "a"), ("", "")])
def test_bad_base_and_seeds(base, seeds):
    with pytest.raises(sweep.UsageError):
        sweep.make_stage("learning_rate=1e-3", base, seeds)


def test_cli_bad_grid_is_one_line_exit_2(tmp_path):
    r = cli("launch.sweep", f"--out={tmp_path / 'o'}", "--grid=learning_rate=1e-3;;epochs=1")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: --grid: axis 2 is empty")
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- names and shards


def test_run_names_are_readable_stable_and_safe():
    st = sweep.make_stage("model=separable_cnn,padded_cnn;learning_rate=3e-3", "epochs=3", "1")
    runs = sweep.expand([st])
    assert runs[0].name == "model=separable_cnn,learning_rate=0.003,seed=1"
    assert [r.name for r in sweep.expand([st])] == [r.name for r in runs]  # stable
    odd = [("data_dir", "/x y/a=b,c"), ("widths", "8:16"), ("seed", "0")]
    name = sweep.run_name(odd)
    assert "/" not in name and " " not in name and ":" not in name
    assert sweep.parse_name(name) == odd
    # the trainer command is fixed-order; model options are merged into one sorted flag
    run = sweep.expand([sweep.make_stage("pool=avg;activation=sigmoid", "epochs=2,model=lenet5", "4")])[0]
    assert run.argv("/w") == ["--epochs=2", "--model=lenet5", "--progress=plain",
                              "--model_options=activation=sigmoid,pool=avg", "--seed=4", "--workdir=/w"]


def test_runs_are_seed_major():
    runs = sweep.expand([sweep.make_stage("learning_rate=1e-3,1e-2;batch_size=32,64", "", "0,1")])
    assert [r.seed for r in runs] == [0] * 4 + [1] * 4
    assert len({r.name for r in runs}) == 8


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 24, 30])
def test_shards_partition_the_run_list(n):
    runs = sweep.expand([sweep.make_stage("learning_rate=1e-3,3e-3,1e-2;batch_size=32,64,128,256", "", "0,1")])
    assert len(runs) == 24
    slices = [sweep.shard(runs, i, n) for i in range(1, n + 1)]
    names = [r.name for s in slices for r in s]
    assert sorted(names) == sorted(r.name for r in runs) and len(names) == len(set(names))
    assert max(map(len, slices)) - min(map(len, slices)) <= 1


@pytest.mark.parametrize("text", ["0/3", "4/3", "1", "a/b", "1/0"])
def test_bad_shard(text):
    with pytest.raises(sweep.UsageError):
        sweep.parse_shard(text)


# --------------------------------------------------------------------------- running (fake trainer)


def test_skip_resume_and_failures(tmp_path, fake, monkeypatch):
    out = str(tmp_path / "sw")
    st = sweep.make_stage("learning_rate=1e-3,3e-3,1e-2", "epochs=3", "0,1")
    fail, die = "learning_rate=0.01,seed=1", "learning_rate=0.003,seed=0"
    control(monkeypatch, fail=[fail], die=[die])
    lines = []
    code = sweep.run_sweep(out, st, parallel=2, train_cmd=fake, poll=0.02, echo=lines.append, make_report=False)
    assert code == 1
    done = [l for l in lines if " done " in l]
    assert len(done) == 4 and done[0].startswith("[") and "/6] done " in done[0] and "acc=0.8" in done[0]
    failures = [json.loads(l) for l in open(os.path.join(out, "failures.jsonl"))]
    by_name = {f["name"]: f for f in failures}
    assert by_name[fail]["exit_code"] == 3 and any("boom" in l for l in by_name[fail]["log_tail"])
    assert by_name[die]["exit_code"] == -signal.SIGKILL
    status = json.load(open(os.path.join(out, "runs", fail, "status.json")))
    assert status["status"] == "failed" and status["exit_code"] == 3
    assert "boom" in open(os.path.join(out, "runs", fail, "log.txt")).read()

    # rerun: finished runs are skipped, the killed run resumes, the failing one fails again
    lines.clear()
    code = sweep.run_sweep(out, st, parallel=2, train_cmd=fake, poll=0.02, echo=lines.append, make_report=False)
    assert code == 1
    assert sum(" skip " in l for l in lines) == 4
    assert attempts(out, "learning_rate=0.001,seed=0") == 1
    assert attempts(out, die) == 2
    assert [json.loads(l)["epoch"] for l in open(os.path.join(out, "runs", die, "metrics.jsonl"))] == [1, 2, 3]
    assert sweep.finished_summary(os.path.join(out, "runs", die))

    # the cause is fixed: everything finishes, same command each time
    control(monkeypatch)
    code = sweep.run_sweep(out, st, parallel=1, train_cmd=fake, poll=0.02, echo=lines.append)
    assert code == 0
    assert all(sweep.finished_summary(os.path.join(out, "runs", r.name)) for r in sweep.expand([st]))
    cmds = open(os.path.join(out, "runs", fail, "attempts.txt")).read().splitlines()
    assert len(cmds) == 3 and len(set(cmds)) == 1
    assert os.path.exists(os.path.join(out, "results.md"))


def test_exit_0_without_summary_is_a_failure(tmp_path, fake, monkeypatch):
    out = str(tmp_path / "sw")
    control(monkeypatch, nosummary=["learning_rate=0.001,seed=0"])
    st = sweep.make_stage("learning_rate=1e-3", "epochs=1", "0")
    assert sweep.run_sweep(out, st, train_cmd=fake, poll=0.02, echo=lambda s: None, make_report=False) == 1
    rec = json.loads(open(os.path.join(out, "failures.jsonl")).readline())
    assert rec["exit_code"] == 0 and "summary.json" in rec["reason"]


def test_changed_sweep_is_refused_unless_extend(tmp_path, fake, monkeypatch):
    out = str(tmp_path / "sw")
    control(monkeypatch)
    quiet = dict(train_cmd=fake, poll=0.02, echo=lambda s: None, make_report=False)
    st = sweep.make_stage("learning_rate=1e-3,3e-3", "epochs=1", "0")
    assert sweep.run_sweep(out, st, **quiet) == 0
    record = open(os.path.join(out, "sweep.json")).read()
    for grid, base, seeds in [("learning_rate=1e-3,1e-2", "epochs=1", "0"), ("learning_rate=1e-3,3e-3", "epochs=2", "0"),
                              ("learning_rate=1e-3,3e-3", "epochs=1", "0,1"), ("batch_size=32", "epochs=1", "0")]:
        with pytest.raises(sweep.UsageError, match="holds a different sweep"):
            sweep.run_sweep(out, sweep.make_stage(grid, base, seeds), **quiet)
    assert open(os.path.join(out, "sweep.json")).read() == record
    assert len(os.listdir(os.path.join(out, "runs"))) == 2
    # the same sweep with values listed in another order is the same sweep
    assert sweep.run_sweep(out, sweep.make_stage("learning_rate=3e-3,1e-3", "epochs=1", "0"), **quiet) == 0
    # --extend adds runs; a changed base value names the new runs; identical runs are not repeated
    ext = sweep.make_stage("learning_rate=1e-3,1e-2", "epochs=2", "0")
    assert sweep.run_sweep(out, ext, extend=True, **quiet) == 0
    assert len(json.load(open(os.path.join(out, "sweep.json")))["stages"]) == 2
    assert sorted(os.listdir(os.path.join(out, "runs"))) == [
        "learning_rate=0.001,epochs=2,seed=0", "learning_rate=0.001,seed=0",
        "learning_rate=0.003,seed=0", "learning_rate=0.01,epochs=2,seed=0"]
    assert attempts(out, "learning_rate=0.001,seed=0") == 1
    # the CLI says so in one line, exit 2
    r = cli("launch.sweep", f"--out={out}", "--grid=learning_rate=0.1", "--base=epochs=1")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "holds a different sweep" in r.stderr


def test_cli_with_train_module_and_kill(tmp_path):
    """The real entry point: --train_module, parallel runs, report; SIGKILL of the sweep kills
    its trainer, and the rerun resumes it."""
    (tmp_path / "fake_train.py").write_text(FAKE_TRAIN)
    out = str(tmp_path / "sw")
    env = {"PYTHONPATH": str(tmp_path), "FAKE_SLEEP": "0.4"}
    args = ["launch.sweep", f"--out={out}", "--grid=learning_rate=1e-3,3e-3", "--base=epochs=3", "--seeds=0",
            "--train_module=fake_train", "--parallel=1"]
    e = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([REPO, str(tmp_path)])}
    proc = subprocess.Popen([sys.executable, "-m", *args], env=e, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    first = os.path.join(out, "runs", "learning_rate=0.001,seed=0")
    deadline = time.time() + 30
    while time.time() < deadline and sweep.epochs_done(first) < 1:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    pid = json.load(open(os.path.join(first, "status.json")))["pid"]
    for _ in range(100):  # the trainer dies with the sweep (PR_SET_PDEATHSIG)
        try:
            os.kill(pid, 0)
            time.sleep(0.05)
        except ProcessLookupError:
            break
    else:
        pytest.fail("trainer outlived the sweep")
    logged = sweep.epochs_done(first)
    assert 1 <= logged < 3 and not sweep.finished_summary(first)

    r = cli(*args, env=env)
    assert r.returncode == 0, r.stderr
    assert f"resuming after {logged} logged epochs" in r.stdout
    assert "[2/2] done learning_rate=0.003,seed=0 acc=0.8030" in r.stdout
    assert [json.loads(l)["epoch"] for l in open(os.path.join(first, "metrics.jsonl"))] == [1, 2, 3]
    assert os.path.exists(os.path.join(out, "results.csv"))
    r = cli(*args, "--dry_run", env=env)
    assert r.returncode == 0 and r.stdout.count("finished") == 2


def test_study_script_merges_base_and_shards(tmp_path):
    r = cli("launch.optimizers", f"--out={tmp_path / 'o'}", "--base=epochs=1", "--shard=2/3", "--dry_run")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("6 runs (shard 2/3 of 18)")
    cmd = r.stdout.splitlines()[-1]
    assert "--epochs=1" in cmd and "--model=padded_cnn" in cmd and "--optimizer=sgd" in cmd
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- report


def fabricate(out, name, final=None, best=None, curve=(), params=1000, flops=20000, status=None, epochs=3):
    wd = os.path.join(out, "runs", name)
    os.makedirs(wd, exist_ok=True)
    json.dump({"epochs": epochs, "seed": int(name.rsplit("seed=", 1)[1])}, open(os.path.join(wd, "config.json"), "w"))
    with open(os.path.join(wd, "metrics.jsonl"), "w") as f:
        for e, acc in enumerate(curve, 1):
            f.write(json.dumps({"epoch": e, "test_accuracy": acc}) + "\n")
        f.write('{"epoch": 9, "test_acc')  # a line cut short by a kill is ignored
    if final is not None:
        json.dump({"status": "finished", "params": params, "flops": flops, "receptive_field": 16,
                   "final_test_accuracy": final, "best_test_accuracy": best, "train_images_per_sec": 100.0 * final,
                   "wall_seconds": 10.0}, open(os.path.join(wd, "summary.json"), "w"))
    if status:
        json.dump(status, open(os.path.join(wd, "status.json"), "w"))


def test_report_mean_std_and_unfinished(tmp_path):
    out = str(tmp_path)
    for seed, final, best in [(0, 0.80, 0.85), (1, 0.82, 0.85), (2, 0.84, 0.88)]:
        fabricate(out, f"model=a,learning_rate=0.001,seed={seed}", final, best, curve=[0.5, final])
    fabricate(out, "model=b,learning_rate=0.001,seed=0", 0.70, 0.75, curve=[0.6, 0.7], params=5000, flops=1e6)
    fabricate(out, "model=b,learning_rate=0.001,seed=1", status={"status": "failed", "exit_code": 3,
                                                                  "reason": "exit 3", "log_tail": ["nan loss"]},
              curve=[0.1])
    fabricate(out, "model=b,learning_rate=0.001,seed=2", curve=[0.6])  # interrupted
    json.dump({"runs": ["model=b,learning_rate=0.001,seed=0", "model=a,learning_rate=0.001,seed=0",
                        "model=c,learning_rate=0.001,seed=0"]}, open(os.path.join(out, "sweep.json"), "w"))

    rows = report_lib.report(out, curves=True)
    assert [r["config"] for r in rows] == ["model=b,learning_rate=0.001", "model=a,learning_rate=0.001"]
    b, a = rows
    assert a["n_seeds"] == 3 and a["seeds"] == [0, 1, 2]
    assert a["final_acc_mean"] == pytest.approx(0.82) and a["final_acc_std"] == pytest.approx(0.02)
    assert a["best_acc_mean"] == pytest.approx(0.86) and a["best_acc_std"] == pytest.approx(math.sqrt(0.0003))
    assert a["train_images_per_sec"] == pytest.approx(82.0) and a["wall_seconds"] == 10.0
    assert b["n_seeds"] == 1 and b["final_acc_mean"] == pytest.approx(0.70) and b["final_acc_std"] is None

    md = open(os.path.join(out, "results.md")).read()
    assert "| model=a,learning_rate=0.001 | 3 | 1,000 | 20.00K | 16 | 0.8200 ± 0.0200 | 0.8600 ± 0.0173 | 82 | 10.0 |" in md
    assert "0.7000 (n=1)" in md
    below = md.split("## Not included", 1)[1]
    assert "seed=1`: failed (exit 3) after 1/3 epochs: nan loss" in below
    assert "seed=2`: unfinished (1/3 epochs logged)" in below
    assert "model=c,learning_rate=0.001,seed=0`: not started" in below
    with open(os.path.join(out, "results.csv"), newline="") as f:
        header, row_b, row_a = list(csv.reader(f))
    assert header[:3] == ["config", "model", "learning_rate"]
    assert dict(zip(header, row_b))["final_acc_std"] == ""
    assert float(dict(zip(header, row_a))["final_acc_std"]) == pytest.approx(0.02)
    for png in ("results.png", "curves.png"):
        assert os.path.getsize(os.path.join(out, png)) > 1000

    epochs, mean, std = report_lib.curve_stats(a["curves"])
    assert epochs == [1, 2] and mean == pytest.approx([0.5, 0.82]) and std == pytest.approx([0.0, 0.02])


def test_report_cli(tmp_path):
    fabricate(str(tmp_path), "model=a,seed=0", 0.9, 0.9, curve=[0.9])
    r = cli("launch.report", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "| model=a | 1 |" in r.stdout and (tmp_path / "results.md").exists()
    r = cli("launch.report", str(tmp_path / "nothing"))
    assert r.returncode == 2 and r.stderr.startswith("error:")


def test_sweep_flag_contract_matches_experiments_train():
    """launch.grid lists experiments.train's flags without importing JAX; it must not drift.
    (A subprocess: the demos define some of the same flag names in this process.)"""
    code = ("import json; from absl import flags; import experiments.train\n"
            "print(json.dumps({name: getattr(flags.FLAGS[name].parser, 'enum_values', None)\n"
            "                  for name in flags.FLAGS}))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=sweep.REPO_ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    defined = json.loads(proc.stdout.strip().splitlines()[-1])
    for key, kind in sweep.TRAIN_FLAGS.items():
        assert key in defined, key
        if isinstance(kind, tuple):
            assert tuple(defined[key]) == kind, key
