"""launch.sweep / launch.study / launch.report without a Ray cluster: run names, study
validation, refusal of a changed sweep, one-line errors that write nothing, the dry run, and
report aggregation on fabricated workdirs (the runs themselves: tests/test_ray_sweep.py)."""
import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from cnnjax import plots
from cnnjax.train import config
from cnnjax.train.workdir import Workdir
from launch import report as report_lib
from launch import study as study_lib
from launch import sweep

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A study over learning rates (3) x seeds (2), 3 epochs of padded_cnn.
STUDY = '''
from cnnjax.train import config

def get_config():
    return config.config_dict(epochs=3)

def get_sweep():
    return config.product(config.sweep("seed", [0, 1]), config.sweep("learning_rate", [1e-3, 3e-3, 1e-2]))
'''


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
    assert st.runs[1].config.learning_rate == 0.003 and st.record()["overrides"] == ["--config.epochs=2"]


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


def test_changed_sweep_is_refused(tmp_path):
    out = str(tmp_path / "sw")
    quiet = dict(echo=lambda s: None, dry_run=True)
    file = write_study(tmp_path)
    os.makedirs(out)
    st = load(file, "--config.epochs=1")
    json.dump(st.record(), open(os.path.join(out, "sweep.json"), "w"))  # as run_sweep writes it
    record = open(os.path.join(out, "sweep.json")).read()
    other = write_study(tmp_path, STUDY.replace("[0, 1]", "[0, 1, 2]"), "other.py")
    for st, why in [(load(file, "--config.epochs=2"), "epochs was 1, now 2"),
                    (load(file), "epochs was 1, now 3"),
                    (load(other, "--config.epochs=2"), "epochs was 1, now 2")]:
        with pytest.raises(sweep.UsageError, match=f"holds a different sweep .*{why}"):
            sweep.run_sweep(out, st, **quiet)
    assert open(os.path.join(out, "sweep.json")).read() == record
    # more runs beside the recorded ones, those unchanged (e.g. a third seed): the same sweep grown,
    # its record rewritten; a command lacking a recorded run is a different sweep
    assert sweep.check_record(out, load(other, "--config.epochs=1")) is True
    fewer = write_study(tmp_path, STUDY.replace("[0, 1]", "[0]"), "fewer.py")
    with pytest.raises(sweep.UsageError, match="holds a different sweep .*lacks run"):
        sweep.check_record(out, load(fewer, "--config.epochs=1"))
    # settings that do not change the numbers may differ: the same sweep
    assert sweep.check_record(out, load(file, "--config.epochs=1", keep_checkpoints=1)) is False
    # a record made before a setting existed (its configs lack the key): still the same sweep
    older = json.loads(record)
    for run in older["runs"]:
        del run["config"]["tta"]
    json.dump(older, open(os.path.join(out, "sweep.json"), "w"))
    assert sweep.check_record(out, load(file, "--config.epochs=1")) is False
    json.dump(json.loads(record), open(os.path.join(out, "sweep.json"), "w"))
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


def test_dry_run_lists_the_runs_and_writes_nothing(tmp_path):
    r = cli("launch.sweep", "--config=experiments/configs/optimizers.py", "--config.epochs=1",
            f"--out={tmp_path / 'o'}", "--dry_run")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"18 runs in {tmp_path / 'o'} [sweep.json would be created]")
    assert "new                          optimizer=sgd,learning_rate=0.01,seed=0" in r.stdout
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- study files

STUDIES = {  # every study in experiments/configs and its number of runs
    "ablation_blocks": 12, "optimizers": 18, "dilation_pool": 18, "lenet_vs_padded": 9,
    "claim_mlp_vs_cnn": 12, "claim_relu_vs_sigmoid": 9, "claim_max_vs_avg_pool": 6, "claim_padding_stride": 12,
    "small_data_defaults": 48, "label_smoothing_seeds": 40, "speedrun_ablation": 35,
    "claim_shift_invariance": 15, "transfer_pretrain": 10, "transfer": 120,
    "antialias_shift": 36, "robustness_course": 15, "augmentation": 126, "augmentation_small": 42, "augmentation_vgg_small": 42, "augmentation_padded_full": 21, "augmentation_vgg_full": 21,
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
        wd.append_metrics({"epoch": e, "val_accuracy": acc})
    with open(wd.file("metrics.jsonl"), "a") as f:
        f.write('{"epoch": 9, "test_acc')  # a line cut short by a kill is ignored
    if final is not None:
        wd.write_summary({"params": params, "flops": flops, "receptive_field": 16, "final_test_accuracy": final,
                          "selected_test_accuracy": best, "selected_val_accuracy": best - 0.01,
                          "train_images_per_sec": 100.0 * final, "wall_seconds": 10.0})
    if status:
        json.dump(status, open(wd.file("status.json"), "w"))
    return name


def test_report_paired_difference_to_the_baseline_by_seed(tmp_path):
    """relu vs sigmoid over seeds 0..2: differences 0.02, 0.03, 0.04 -> mean 0.03, sd 0.01,
    95% half-width t(0.975, 2) * 0.01 / sqrt(3) = 4.3027 * 0.005774 = 0.024841."""
    out = str(tmp_path)
    for seed, (relu, sigmoid) in enumerate([(0.82, 0.80), (0.83, 0.80), (0.85, 0.81)]):
        fabricate(out, seed, relu, relu, model_options={"activation": "relu"})
        fabricate(out, seed, sigmoid, sigmoid, model_options={"activation": "sigmoid"})
    fabricate(out, 3, 0.5, 0.5, model_options={"activation": "sigmoid"})  # no relu partner: not paired
    json.dump({"version": 2, "study": "s.py", "overrides": [], "runs": [],
               "baseline": {"model_options.activation": "sigmoid"}}, open(os.path.join(out, "sweep.json"), "w"))
    rows = {r["config"]: r for r in report_lib.report(out)}
    relu, sigmoid = rows["model_options.activation=relu"], rows["model_options.activation=sigmoid"]
    assert sigmoid["is_baseline"] and sigmoid["delta_mean"] == 0.0
    assert relu["delta_mean"] == pytest.approx(0.03) and relu["delta_ci95"] == pytest.approx(0.024841, abs=1e-6)
    assert "| +0.0300 [+0.0052, +0.0548] |" in open(os.path.join(out, "results.md")).read()
    # the command line's --baseline wins over the study's
    flipped = {r["config"]: r for r in report_lib.report(out, write=False,
                                                          baseline={"model_options.activation": "relu"})}
    assert flipped["model_options.activation=sigmoid"]["delta_mean"] == pytest.approx(-0.03)


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
    assert a["selected_acc_mean"] == pytest.approx(0.86) and a["selected_acc_std"] == pytest.approx(math.sqrt(0.0003))
    assert a["val_acc_mean"] == pytest.approx(0.85)
    assert a["train_images_per_sec"] == pytest.approx(82.0) and a["wall_seconds"] == 10.0
    assert b["n_seeds"] == 1 and b["final_acc_mean"] == pytest.approx(0.70) and b["final_acc_std"] is None

    md = open(os.path.join(out, "results.md")).read()
    assert "`python -m launch.sweep --config=s.py --config.epochs=3`" in md
    assert ("| model=lenet5 | 3 | 1,000 | 20.00K | 16 | 0.8500 ± 0.0173 | 0.8600 ± 0.0173 | 0.8200 ± 0.0200 | "
            "[0.7703, 0.8697] | - | 82 | 10.0 |") in md
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

    assert a["final_acc_ci95"] == pytest.approx(4.302653 * 0.02 / math.sqrt(3), rel=1e-5)
    epochs, mean, std = plots.curve_stats(a["curves"])
    assert epochs == [1, 2] and mean == pytest.approx([0.5, 0.82]) and std == pytest.approx([0.0, 0.02])


def test_report_cli(tmp_path):
    fabricate(str(tmp_path), 0, 0.9, 0.9, curve=[0.9], model="lenet5")
    r = cli("launch.report", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "| (base) | 1 |" in r.stdout and (tmp_path / "results.md").exists()
    r = cli("launch.report", str(tmp_path / "nothing"))
    assert r.returncode == 2 and r.stderr.startswith("error:")


def test_launch_lists_no_train_settings():
    """The settings, their types and enum values live in cnnjax.train.config only."""
    for name in os.listdir(os.path.join(REPO, "launch")):
        text = open(os.path.join(REPO, "launch", name)).read() if name.endswith(".py") else ""
        for word in ('"adamw"', '"onecycle"', '"flip_crop"', '"bfloat16"', "TRAIN_FLAGS", "MANAGEMENT_FLAGS"):
            assert word not in text, (name, word)


# --------------------------------------------------------------------------- search studies (launch.search)

SEARCH = '''
from cnnjax.train import config

def get_config():
    return config.config_dict(model="seed_net", dataset="synthetic", num_train=512, num_test=128, epochs=3,
                              batch_size=64)

def get_search():
    return {"space": {"learning_rate": ("log", 1e-4, 1e-1)}, "num_samples": 4, "algorithm": "random"}
'''


def test_search_study_ranges_defaults_and_names(tmp_path):
    from launch import search
    s = search.get_search(write_study(tmp_path, SEARCH))
    assert s["space"] == {"learning_rate": ("log", 1e-4, 1e-1)} and s["metric"] == "val_accuracy"
    assert s["grace_period"] == 1 and s["mode"] == "max"
    assert search.trial_overrides({"learning_rate": 0.0012345678, "model": "x"}) == {"learning_rate": 0.00123,
                                                                                      "model": "x"}
    assert study_lib.run_name(search.trial_overrides({"learning_rate": 3.14159e-5})) == "learning_rate=3.14e-05"
    for bad, message in [('("log", 1e-4)', "must be"), ('("normal", 0, 1)', "must be")]:
        with pytest.raises(sweep.UsageError, match=message):
            search.get_search(write_study(tmp_path, SEARCH.replace('("log", 1e-4, 1e-1)', bad), "bad.py"))


def test_search_typo_is_one_line_exit_2_and_starts_nothing(tmp_path):
    file = write_study(tmp_path, SEARCH.replace('"learning_rate"', '"lerning_rate"'))
    r = cli("launch.search", f"--config={file}", f"--out={tmp_path / 'o'}")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "lerning_rate is not a setting" in r.stderr
    assert not (tmp_path / "o").exists() and "ray:" not in r.stdout


@pytest.mark.parametrize("extra, message", [
    ('"metric": "test_accuracy"', "metric must be one of val_accuracy, val_loss, train_accuracy, train_loss"),
    ('"metric": "accuracy"', "metric must be one of"),
    ('"mode": "up"', "mode must be 'max' or 'min', got 'up'")])
def test_search_selects_on_validation_never_on_test(tmp_path, extra, message):
    from launch import search
    with_ = lambda text: SEARCH.replace('"algorithm": "random"}', f'"algorithm": "random", {text}}}')
    assert search.get_search(write_study(tmp_path, with_('"metric": "val_loss", "mode": "min"')))["metric"] == "val_loss"
    with pytest.raises(sweep.UsageError, match=message):
        search.get_search(write_study(tmp_path, with_(extra), "bad.py"))


def test_search_without_a_validation_split_is_one_line_and_starts_nothing(tmp_path):
    file = write_study(tmp_path, SEARCH.replace("batch_size=64)", "batch_size=64, validation_size=0)"))
    r = cli("launch.search", f"--config={file}", f"--out={tmp_path / 'o'}")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "selects on the validation split; config.validation_size is 0" in r.stderr
    assert not (tmp_path / "o").exists() and "ray:" not in r.stdout


def test_search_refuses_to_resume_another_studys_interrupted_search(tmp_path):
    """An OUT holding an interrupted search (Tune's tuner.pkl and the started search's record) resumes
    only the same search: another one is one line, exit 2, starting nothing and writing nothing."""
    file = write_study(tmp_path, SEARCH)
    experiment = tmp_path / "o" / "tune" / "search"
    experiment.mkdir(parents=True)
    (experiment / "tuner.pkl").write_bytes(b"saved by Tune")
    record = tmp_path / "o" / "tune" / "cnnjax_search.json"
    record.write_text(json.dumps({"base": {"epochs": 3}, "search": {}}))
    before = sorted(p.name for p in (tmp_path / "o").rglob("*"))
    r = cli("launch.search", f"--config={file}", f"--out={tmp_path / 'o'}")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "holds an interrupted search of another study or other settings" in r.stderr
    assert sorted(p.name for p in (tmp_path / "o").rglob("*")) == before and "ray:" not in r.stdout
    assert json.loads(record.read_text()) == {"base": {"epochs": 3}, "search": {}}


def test_search_resumes_only_with_the_max_retries_it_started_with(tmp_path):
    """Tune keeps an interrupted search's own failure settings when it resumes, so another
    --max_retries on the rerun would be silently ignored: it is refused, naming the flag, before
    Ray starts or anything is written."""
    from experiments.common import UsageError
    from launch import search as search_lib
    file = write_study(tmp_path, SEARCH)
    mod = {}
    exec(open(file).read(), mod)
    base = mod["get_config"]()
    experiment = tmp_path / "o" / "tune" / "search"
    experiment.mkdir(parents=True)
    (experiment / "tuner.pkl").write_bytes(b"saved by Tune")
    record = tmp_path / "o" / "tune" / "cnnjax_search.json"
    started = {"base": config.apply(base, {}), "search": search_lib.get_search(file), "max_retries": 1}
    record.write_text(json.dumps(started))
    before = sorted(p.name for p in (tmp_path / "o").rglob("*"))
    with pytest.raises(UsageError, match=r"^--max_retries=3: the interrupted search in .* was started with "
                                         r"--max_retries=1, which Tune keeps when it resumes"):
        search_lib.run_search(str(tmp_path / "o"), file, base, max_retries=3, echo=lambda line: None)
    assert sorted(p.name for p in (tmp_path / "o").rglob("*")) == before


def test_ctrl_c_interrupts_a_sweep_that_inherited_sigint_ignored():
    """A parent that ignores SIGINT (or a script's background job) passes SIG_IGN on, and Python
    keeps it: the block still turns Ctrl-C into KeyboardInterrupt, and restores SIG_IGN after.
    (Found when the full suite's Ray Ctrl-C test ran the sweep under such a parent.)"""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(KeyboardInterrupt):
            with sweep.sigterm_as_ctrl_c():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)

def test_sigterm_as_ctrl_c_raises_keyboard_interrupt_inside_and_restores_the_handler_after():
    """What makes a terminated sweep or search end as an interrupted one (exit 130, resumable)."""
    import threading
    calls = []
    handler = lambda signum, frame: calls.append(signum)
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with sweep.sigterm_as_ctrl_c():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handler runs between bytecodes, long before this ends
        assert signal.getsignal(signal.SIGTERM) is handler
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)
        assert calls == [signal.SIGTERM]
        seen = []  # in another thread Python cannot set handlers: the block changes nothing there

        def in_thread():
            with sweep.sigterm_as_ctrl_c():
                seen.append(signal.getsignal(signal.SIGTERM))
        thread = threading.Thread(target=in_thread)
        thread.start()
        thread.join()
        assert seen == [handler]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_trial_runs_its_cpus_worth_of_threads_unless_its_study_or_its_record_says_otherwise(tmp_path):
    new, made, older = (str(tmp_path / n) for n in ("new", "made", "older"))
    assert sweep.trial_threads({"threads": 0}, new, cpus_per_run=1) == 1
    assert sweep.trial_threads({"threads": 0}, new, cpus_per_run=2) == 2
    assert sweep.trial_threads({"threads": 0}, new, cpus_per_run=0.5) == 1
    assert sweep.trial_threads({"threads": 3}, new, cpus_per_run=1) == 3  # the study's own value
    Workdir(made).write_config(config.from_dict({"threads": 2}), {})
    assert sweep.trial_threads({"threads": 0}, made, cpus_per_run=1) == 2  # a started run resumes as made
    os.makedirs(older)
    with open(os.path.join(older, "config.json"), "w") as f:  # made before config.threads existed
        json.dump({k: v for k, v in config.to_dict(config.TrainConfig()).items() if k != "threads"}, f)
    assert sweep.trial_threads({"threads": 0}, older, cpus_per_run=1) == 0
