"""launch.sweep / launch.study / launch.report: run names, flag values that round-trip through
ml_collections, shards, skip/resume/failure with a fake trainer, refusal of a changed sweep,
one-line errors that write nothing, and report aggregation on fabricated workdirs."""
import csv
import dataclasses
import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from cnnjax import config
from cnnjax.workdir import Workdir
from launch import report as report_lib
from launch import study as study_lib
from launch import sweep

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A stand-in for experiments.train honouring its contract: --config=FILE --config.KEY=VALUE
# --workdir=DIR, config.json/metrics.jsonl/summary.json through Workdir, resumes from
# metrics.jsonl.  FAKE_CONTROL (JSON) maps behaviours to run names:
#   fail: exit 3 after printing 'boom'; die: SIGKILL itself after epoch 1 on the first attempt;
#   nosummary: exit 0 without summary.json.  FAKE_SLEEP: seconds per epoch.
FAKE_TRAIN = r'''
import json, os, signal, sys, time
from absl import flags
from ml_collections import config_flags
from cnnjax import config, workdir
config_flags.DEFINE_config_file("config", lock_config=False, accept_new_attributes=True)
flags.DEFINE_string("workdir", None, "")
flags.FLAGS(sys.argv)
cfg = config.from_dict(flags.FLAGS.config, check_model=False)
wd = workdir.Workdir(flags.FLAGS.workdir)
name = os.path.basename(wd.path)
os.makedirs(wd.path, exist_ok=True)
control = json.loads(os.environ.get("FAKE_CONTROL", "{}"))
first = not os.path.exists(wd.file("attempts.txt"))
with open(wd.file("attempts.txt"), "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\n")
print("fake training", name, flush=True)
if name in control.get("fail", []):
    print("boom: train loss is nan", flush=True)
    sys.exit(3)
wd.write_config(cfg, {"source": "fake"})
for e in range(len(wd.metrics()) + 1, cfg.epochs + 1):
    time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
    wd.append_metrics({"epoch": e, "test_accuracy": 0.5 + 0.1 * e + 0.01 * cfg.seed})
    if e == 1 and first and name in control.get("die", []):
        os.kill(os.getpid(), signal.SIGKILL)
if name in control.get("nosummary", []):
    sys.exit(0)
acc = round(0.8 + 0.01 * cfg.seed + cfg.learning_rate, 6)
wd.write_summary({"params": 1000, "flops": 20000, "receptive_field": 9, "final_test_accuracy": acc,
                  "best_test_accuracy": acc, "train_images_per_sec": 100.0, "wall_seconds": 1.0})
'''

# A study over learning rates (3) x seeds (2), 3 epochs of padded_cnn.
STUDY = '''
from cnnjax import config

def get_config():
    return config.config_dict(epochs=3)

def get_sweep():
    return config.product(config.sweep("seed", [0, 1]), config.sweep("learning_rate", [1e-3, 3e-3, 1e-2]))
'''


@pytest.fixture
def fake(tmp_path):
    path = tmp_path / "fake_train.py"
    path.write_text(FAKE_TRAIN)
    return [sys.executable, str(path)]


def write_study(tmp_path, text=STUDY, name="study.py"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def load(file, *cli_args, **base_overrides):
    """The study in ``file``, as launch.sweep loads it with ``--config.KEY=VALUE`` args ``cli_args``."""
    mod = {}
    exec(open(file.split(":")[0]).read(), mod)
    keys = [a[len("--config."):].split("=", 1)[0] for a in cli_args]
    base = config.apply(mod["get_config"](), {k: eval(a.split("=", 1)[1]) for k, a in zip(keys, cli_args)})
    return study_lib.load(file, config.apply(base, base_overrides), list(cli_args), keys)


def control(monkeypatch, **kw):
    monkeypatch.setenv("FAKE_CONTROL", json.dumps(kw))


def attempts(out, name):
    p = os.path.join(out, "runs", name, "attempts.txt")
    return len(open(p).read().splitlines()) if os.path.exists(p) else 0


def cli(*args, env=None, timeout=120):
    e = {**os.environ, **(env or {})}
    e["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, e.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=e, cwd=REPO,
                          timeout=timeout)


# --------------------------------------------------------------------------- names and values


def test_run_names_are_readable_stable_and_safe():
    assert study_lib.run_name({"seed": 1, "model": "separable_cnn"}) == "model=separable_cnn,seed=1"
    assert study_lib.run_name({"seed": 0, "learning_rate": 3e-3}) == "learning_rate=0.003,seed=0"
    assert study_lib.run_name({"model_options.hidden": (35, 35), "seed": 2}) == "model_options.hidden=35x35,seed=2"
    assert study_lib.run_name({"model_options": {"pool": "avg"}}) == "model_options.pool=avg"
    assert study_lib.run_name({}) == "base"
    odd = study_lib.run_name({"data_dir": "/x y/a=b,c", "seed": 0})
    assert odd == "data_dir=%2Fx%20y%2Fa%3Db%2Cc,seed=0"
    long = study_lib.run_name({"dataset": "x" * 300})
    assert len(long) == 200 and long != study_lib.run_name({"dataset": "x" * 301})


def test_study_runs_and_commands(tmp_path):
    st = load(write_study(tmp_path), "--config.epochs=2")
    assert [r.name for r in st.runs] == [f"learning_rate={lr},seed={s}" for s in (0, 1)
                                         for lr in ("0.001", "0.003", "0.01")]
    assert all(r.config.epochs == 2 for r in st.runs) and st.runs[4].config.seed == 1
    assert st.command(st.runs[1], "/w") == [
        f"--config={st.file}", "--config.epochs=2", "--config.seed=0", "--config.learning_rate=0.003",
        "--config.progress=plain", "--workdir=/w"]


@pytest.mark.parametrize("text, message", [
    ("[dict(lerning_rate=1e-3)]", "config.lerning_rate is not a setting (did you mean learning_rate?)"),
    ("[{'model_options.activaton': 'relu'}]", "model_options"),
    ("[dict(optimizer='rmsprop')]", "must be one of adam, adamw, sgd"),
    ("[dict(epochs=1.5)]", "config.epochs must be an integer"),
    ("[dict(seed=0), dict(seed=0)]", "lists run seed=0 twice"),
    ("[]", "non-empty list"),
])
def test_bad_sweeps_are_usage_errors(tmp_path, text, message):
    file = write_study(tmp_path, STUDY.split("def get_sweep")[0] + f"def get_sweep():\n    return {text}\n")
    with pytest.raises(sweep.UsageError, match=re.escape(message)):
        load(file)


def test_command_line_cannot_set_a_swept_key(tmp_path):
    with pytest.raises(sweep.UsageError, match="sweeps that setting"):
        load(write_study(tmp_path), "--config.learning_rate=0.1")


ROUND_TRIP = '''
from cnnjax import config

def get_config():
    return config.config_dict(model="mlp", model_options={"activation": "relu"})

def get_sweep():
    return [{"dataset": "1e-3", "epochs": 7, "learning_rate": 0.0003, "label_smoothing": 1e-05,
             "model_options.hidden": (35, 35), "model_options.activation": "sigmoid",
             "model_options.note": "1", "model_options.tag": "true", "model_options.name": "wide net",
             "model_options.scale": 0.5, "model_options.depth": 3}]
'''

PARSE = r'''
import json, sys
from absl import flags
from ml_collections import config_flags
config_flags.DEFINE_config_file("config", lock_config=False, accept_new_attributes=True)
flags.DEFINE_string("workdir", None, "")
flags.FLAGS(sys.argv)
print(json.dumps(flags.FLAGS.config.to_dict()))
'''


def test_flag_values_round_trip_through_ml_collections(tmp_path):
    """Strings (also ones that look like numbers or booleans), ints, floats, tuples and new model
    options come back as the same values when the trainer parses the run's command line."""
    file = write_study(tmp_path, ROUND_TRIP)
    mod = {}
    exec(ROUND_TRIP, mod)
    base, overrides = config.apply(mod["get_config"](), {}), mod["get_sweep"]()[0]
    run = study_lib.Run("r", overrides, config.from_dict(config.apply(base, overrides), check_model=False))
    st = study_lib.Study(file, (), base, (run,))  # not load(): mlp has no options note, tag, ...
    (tmp_path / "parse.py").write_text(PARSE)
    r = subprocess.run([sys.executable, str(tmp_path / "parse.py"), *st.command(run, "/w")],
                       capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": REPO})
    assert r.returncode == 0, r.stderr
    parsed = json.loads(r.stdout.strip().splitlines()[-1])
    assert config.from_dict(parsed, check_model=False) == dataclasses.replace(run.config, progress="plain")
    options = parsed["model_options"]
    assert options["note"] == "1" and options["tag"] == "true" and options["hidden"] == [35, 35]
    assert parsed["dataset"] == "1e-3" and parsed["epochs"] == 7 and parsed["label_smoothing"] == 1e-05


# --------------------------------------------------------------------------- shards


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 24, 30])
def test_shards_partition_the_run_list(n):
    runs = list(range(24))
    slices = [sweep.shard(runs, i, n) for i in range(1, n + 1)]
    assert sorted(r for s in slices for r in s) == runs
    assert max(map(len, slices)) - min(map(len, slices)) <= 1


@pytest.mark.parametrize("text", ["0/3", "4/3", "1", "a/b", "1/0"])
def test_bad_shard(text):
    with pytest.raises(sweep.UsageError):
        sweep.parse_shard(text)


# --------------------------------------------------------------------------- running (fake trainer)


def test_skip_resume_and_failures(tmp_path, fake, monkeypatch):
    out = str(tmp_path / "sw")
    st = load(write_study(tmp_path))
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
    assert "NaN" in by_name[fail]["reason"]
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
    assert [m["epoch"] for m in Workdir(os.path.join(out, "runs", die)).metrics()] == [1, 2, 3]
    assert sweep.finished_summary(os.path.join(out, "runs", die))

    # the cause is fixed: everything finishes, same command each time
    control(monkeypatch)
    code = sweep.run_sweep(out, st, parallel=1, train_cmd=fake, poll=0.02, echo=lines.append)
    assert code == 0
    for r in st.runs:  # each run trained exactly the config the sweep validated
        assert Workdir(os.path.join(out, "runs", r.name)).config() == dataclasses.replace(r.config, progress="plain")
    cmds = open(os.path.join(out, "runs", fail, "attempts.txt")).read().splitlines()
    assert len(cmds) == 3 and len(set(cmds)) == 1
    assert os.path.exists(os.path.join(out, "results.md")) and os.path.exists(os.path.join(out, "curves.png"))


def test_exit_0_without_summary_is_a_failure(tmp_path, fake, monkeypatch):
    out = str(tmp_path / "sw")
    control(monkeypatch, nosummary=["base"])
    file = write_study(tmp_path, STUDY.split("def get_sweep")[0] + "def get_sweep():\n    return [{}]\n")
    assert sweep.run_sweep(out, load(file), train_cmd=fake, poll=0.02, echo=lambda s: None, make_report=False) == 1
    rec = json.loads(open(os.path.join(out, "failures.jsonl")).readline())
    assert rec["exit_code"] == 0 and "summary.json" in rec["reason"]


def test_changed_sweep_is_refused(tmp_path, fake, monkeypatch):
    out = str(tmp_path / "sw")
    control(monkeypatch)
    quiet = dict(train_cmd=fake, poll=0.02, echo=lambda s: None, make_report=False)
    file = write_study(tmp_path)
    assert sweep.run_sweep(out, load(file, "--config.epochs=1"), **quiet) == 0
    record = open(os.path.join(out, "sweep.json")).read()
    other = write_study(tmp_path, STUDY.replace("[0, 1]", "[0, 1, 2]"), "other.py")
    for st, why in [(load(file, "--config.epochs=2"), "epochs was 1, now 2"),
                    (load(file), "epochs was 1, now 3"),
                    (load(other, "--config.epochs=1"), "adds run learning_rate=0.001,seed=2")]:
        with pytest.raises(sweep.UsageError, match=f"holds a different sweep .*{why}"):
            sweep.run_sweep(out, st, **quiet)
    assert open(os.path.join(out, "sweep.json")).read() == record
    assert len(os.listdir(os.path.join(out, "runs"))) == 6
    # settings that do not change the numbers may differ: the same sweep, nothing reruns
    assert sweep.run_sweep(out, load(file, "--config.epochs=1", keep_checkpoints=1), **quiet) == 0
    assert attempts(out, "learning_rate=0.001,seed=0") == 1
    # the CLI says so in one line, exit 2
    r = cli("launch.sweep", f"--config={file}", f"--out={out}")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "holds a different sweep" in r.stderr


def test_typo_in_a_study_is_one_line_exit_2_and_writes_nothing(tmp_path):
    file = write_study(tmp_path, STUDY.replace('sweep("learning_rate"', 'sweep("lerning_rate"'))
    out = tmp_path / "o"
    r = cli("launch.sweep", f"--config={file}", f"--out={out}")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert r.stderr.startswith("error: ") and "config.lerning_rate is not a setting" in r.stderr
    assert not out.exists()
    r = cli("launch.sweep", f"--config={write_study(tmp_path, name='ok.py')}", "--config.epoch=1", f"--out={out}")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "config.epoch is not a setting" in r.stderr
    assert not out.exists()


def test_cli_with_train_module_and_kill(tmp_path):
    """The real entry point: --train_module, --config.* forwarded, report; SIGKILL of the sweep
    kills its trainer, and the rerun resumes it."""
    (tmp_path / "fake_train.py").write_text(FAKE_TRAIN)
    file = write_study(tmp_path, STUDY.replace("[0, 1]", "[0]").replace(", 3e-3, 1e-2", ", 3e-3"))
    out = str(tmp_path / "sw")
    env = {"FAKE_SLEEP": "0.4"}
    args = ["launch.sweep", f"--config={file}", "--config.batch_size=64", f"--out={out}",
            "--train_module=fake_train", "--parallel=1"]
    e = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([REPO, str(tmp_path)])}
    proc = subprocess.Popen([sys.executable, "-m", *args], env=e, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    first = os.path.join(out, "runs", "learning_rate=0.001,seed=0")
    deadline = time.time() + 60
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

    r = cli(*args, env={**env, "PYTHONPATH": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert f"resuming after {logged} logged epochs" in r.stdout
    assert "[2/2] done learning_rate=0.003,seed=0 acc=0.8030" in r.stdout
    assert [m["epoch"] for m in Workdir(first).metrics()] == [1, 2, 3]
    assert Workdir(first).config().batch_size == 64
    assert os.path.exists(os.path.join(out, "results.csv"))
    r = cli(*args, "--dry_run", env={"PYTHONPATH": str(tmp_path)})
    assert r.returncode == 0 and r.stdout.count("finished") == 2


def test_sigterm_stops_the_sweep_with_130(tmp_path):
    (tmp_path / "fake_train.py").write_text(FAKE_TRAIN)
    out = str(tmp_path / "sw")
    e = {**os.environ, "FAKE_SLEEP": "0.5", "PYTHONPATH": os.pathsep.join([REPO, str(tmp_path)])}
    proc = subprocess.Popen([sys.executable, "-m", "launch.sweep", f"--config={write_study(tmp_path)}",
                             f"--out={out}", "--train_module=fake_train", "--parallel=2"],
                            env=e, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first = os.path.join(out, "runs", "learning_rate=0.001,seed=0")
    deadline = time.time() + 60
    while time.time() < deadline and sweep.epochs_done(first) < 1:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout
    assert "sweep interrupted" in stdout
    assert json.load(open(os.path.join(first, "status.json")))["status"] == "interrupted"


def test_dry_run_of_a_study_file_merges_overrides_and_shards(tmp_path):
    r = cli("launch.sweep", "--config=experiments/configs/optimizers.py", "--config.epochs=1",
            f"--out={tmp_path / 'o'}", "--shard=2/3", "--dry_run")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("6 runs (shard 2/3 of 18)")
    cmd = r.stdout.splitlines()[-1]
    assert "--config=experiments/configs/optimizers.py --config.epochs=1 --config.seed=0" in cmd
    assert "--config.optimizer=sgd --config.learning_rate=0.01 --config.progress=plain" in cmd
    assert not (tmp_path / "o").exists()


def test_real_trainer_end_to_end(tmp_path):
    """Two 1-epoch runs of experiments.train on synthetic data: each trains the config the sweep
    validated, the report labels them by the option that varies, a rerun trains nothing."""
    file = write_study(tmp_path, """
from cnnjax import config

def get_config():
    return config.config_dict(dataset="synthetic", num_train=256, num_test=128, epochs=1, batch_size=64)

def get_sweep():
    return config.product(config.sweep("seed", [0]), config.sweep("model_options.activation", ["relu", "sigmoid"]))
""")
    out = tmp_path / "sw"
    args = ["launch.sweep", f"--config={file}", "--config.learning_rate=0.003", f"--out={out}", "--parallel=2"]
    r = cli(*args, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    for act in ("relu", "sigmoid"):
        cfg = Workdir(str(out / "runs" / f"model_options.activation={act},seed=0")).config()
        assert cfg.model_options == {"activation": act} and cfg.learning_rate == 0.003 and cfg.epochs == 1
    md = (out / "results.md").read_text()
    assert "| model_options.activation=relu | 1 |" in md and "| model_options.activation=sigmoid | 1 |" in md
    r = cli(*args, timeout=600)
    assert r.returncode == 0 and r.stdout.count(" skip ") == 2, r.stdout + r.stderr


# --------------------------------------------------------------------------- study files

STUDIES = {  # every study in experiments/configs and its number of runs
    "ablation_blocks": 12, "optimizers": 18, "dilation_pool": 18, "lenet_vs_padded": 9,
    "claim_mlp_vs_cnn": 12, "claim_relu_vs_sigmoid": 9, "claim_max_vs_avg_pool": 6, "claim_padding_stride": 12,
}


def test_every_study_file_is_listed_here():
    configs = os.path.join(REPO, "experiments", "configs")
    found = {f[:-3] for f in os.listdir(configs) if f.endswith(".py") and "def get_sweep" in open(
        os.path.join(configs, f)).read()}
    assert found == set(STUDIES)


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_study_files_load_and_every_run_validates(name):
    st = load(os.path.join(REPO, "experiments", "configs", f"{name}.py"))
    assert len(st.runs) == STUDIES[name] and len({r.name for r in st.runs}) == STUDIES[name]
    for r in st.runs:
        assert config.from_dict(config.to_dict(r.config)) == r.config
    assert [r.config.seed for r in st.runs][:2] == [0, 0]  # seed-major: one seed of everything first


# --------------------------------------------------------------------------- report


def fabricate(out, seed, final=None, best=None, curve=(), params=1000, flops=20000, status=None, epochs=3,
              **settings):
    cfg = config.from_dict({"epochs": epochs, "seed": seed, **settings}, check_model=False)
    name = study_lib.run_name({**{k: v for k, v in settings.items() if k != "progress"}, "seed": seed})
    wd = Workdir(os.path.join(out, "runs", name))
    wd.write_config(cfg, {})
    for e, acc in enumerate(curve, 1):
        wd.append_metrics({"epoch": e, "test_accuracy": acc})
    with open(wd.file("metrics.jsonl"), "a") as f:
        f.write('{"epoch": 9, "test_acc')  # a line cut short by a kill is ignored
    if final is not None:
        wd.write_summary({"params": params, "flops": flops, "receptive_field": 16, "final_test_accuracy": final,
                          "best_test_accuracy": best, "train_images_per_sec": 100.0 * final, "wall_seconds": 10.0})
    if status:
        json.dump(status, open(wd.file("status.json"), "w"))
    return name


def test_report_mean_std_and_unfinished(tmp_path):
    out = str(tmp_path)
    for seed, final, best in [(0, 0.80, 0.85), (1, 0.82, 0.85), (2, 0.84, 0.88)]:
        fabricate(out, seed, final, best, curve=[0.5, final], model="lenet5", learning_rate=0.001,
                  progress="plain" if seed else "none")  # a run field: same configuration
    b0 = fabricate(out, 0, 0.70, 0.75, curve=[0.6, 0.7], params=5000, flops=1e6, model="mlp", learning_rate=0.001,
                   model_options={"hidden": (35, 35)})
    fabricate(out, 1, status={"status": "failed", "exit_code": 3, "reason": "exit 3", "log_tail": ["nan loss"]},
              curve=[0.1], model="mlp", learning_rate=0.001, model_options={"hidden": (35, 35)})
    fabricate(out, 2, curve=[0.6], model="mlp", learning_rate=0.001, model_options={"hidden": (35, 35)})
    runs = [{"name": b0, "overrides": {"model": "mlp", "model_options.hidden": [35, 35], "seed": 0}},
            {"name": "model=lenet5,learning_rate=0.001,seed=0", "overrides": {"model": "lenet5", "seed": 0}},
            {"name": "model=c,seed=0", "overrides": {"model": "c", "seed": 0}}]
    json.dump({"version": 2, "study": "s.py", "overrides": ["--config.epochs=3"], "runs": runs},
              open(os.path.join(out, "sweep.json"), "w"))

    rows = report_lib.report(out, curves=True)
    assert [r["config"] for r in rows] == ["model=mlp,model_options.hidden=35x35", "model=lenet5"]
    b, a = rows
    assert a["n_seeds"] == 3 and a["seeds"] == [0, 1, 2] and a["model"] == "lenet5"
    assert a["final_acc_mean"] == pytest.approx(0.82) and a["final_acc_std"] == pytest.approx(0.02)
    assert a["best_acc_mean"] == pytest.approx(0.86) and a["best_acc_std"] == pytest.approx(math.sqrt(0.0003))
    assert a["train_images_per_sec"] == pytest.approx(82.0) and a["wall_seconds"] == 10.0
    assert b["n_seeds"] == 1 and b["final_acc_mean"] == pytest.approx(0.70) and b["final_acc_std"] is None

    md = open(os.path.join(out, "results.md")).read()
    assert "`python -m launch.sweep --config=s.py --config.epochs=3`" in md
    assert "| model=lenet5 | 3 | 1,000 | 20.00K | 16 | 0.8200 ± 0.0200 | 0.8600 ± 0.0173 | 82 | 10.0 |" in md
    assert "0.7000 (n=1)" in md
    below = md.split("## Not included", 1)[1]
    assert "35x35,seed=1`: failed (exit 3) after 1/3 epochs: nan loss" in below
    assert "35x35,seed=2`: unfinished (1/3 epochs logged)" in below
    assert "model=c,seed=0`: not started" in below
    with open(os.path.join(out, "results.csv"), newline="") as f:
        header, row_b, row_a = list(csv.reader(f))
    assert header[:4] == ["config", "model", "model_options.hidden", "n_seeds"]
    assert dict(zip(header, row_b))["final_acc_std"] == ""
    assert dict(zip(header, row_b))["model_options.hidden"] == "35x35"
    assert float(dict(zip(header, row_a))["final_acc_std"]) == pytest.approx(0.02)
    for png in ("results.png", "curves.png"):
        assert os.path.getsize(os.path.join(out, png)) > 1000

    epochs, mean, std = report_lib.curve_stats(a["curves"])
    assert epochs == [1, 2] and mean == pytest.approx([0.5, 0.82]) and std == pytest.approx([0.0, 0.02])


def test_report_cli(tmp_path):
    fabricate(str(tmp_path), 0, 0.9, 0.9, curve=[0.9], model="lenet5")
    r = cli("launch.report", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "| (base) | 1 |" in r.stdout and (tmp_path / "results.md").exists()
    r = cli("launch.report", str(tmp_path / "nothing"))
    assert r.returncode == 2 and r.stderr.startswith("error:")


def test_launch_lists_no_train_settings():
    """The settings, their types and enum values live in cnnjax.config only."""
    for name in os.listdir(os.path.join(REPO, "launch")):
        text = open(os.path.join(REPO, "launch", name)).read() if name.endswith(".py") else ""
        for word in ('"adamw"', '"onecycle"', '"flip_crop"', '"bfloat16"', "TRAIN_FLAGS", "MANAGEMENT_FLAGS"):
            assert word not in text, (name, word)
