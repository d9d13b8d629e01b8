"""The transfer study's two config files expand to the runs the claim needs, and they validate."""
import collections
import os

from experiments import common
from launch import study

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRETRAIN = os.path.join(REPO, "experiments", "configs", "transfer_pretrain.py")
TRANSFER = os.path.join(REPO, "experiments", "configs", "transfer.py")


def _load(path):
    return study.load(path, common.config_module(path).get_config(), [], [])


def test_pretraining_is_classes_0_to_4_per_model_and_seed():
    runs = _load(PRETRAIN).runs
    assert sorted((r.config.model, r.config.seed) for r in runs) == \
        [(m, s) for m in ("padded_cnn", "vgg_bn") for s in range(5)]
    assert {r.config.classes for r in runs} == {(0, 1, 2, 3, 4)} and {r.config.train_per_class for r in runs} == {0}


def test_transfer_runs_scratch_probe_and_finetune_from_the_same_seed_s_pretrained_run():
    pretrained = {(r.config.model, r.config.seed): os.path.join("results", "transfer", "pretrain", "runs", r.name)
                  for r in _load(PRETRAIN).runs}
    runs = _load(TRANSFER).runs
    assert len(runs) == 2 * 4 * 3 * 5
    groups = collections.defaultdict(list)
    for r in runs:
        c = r.config
        assert c.classes == (5, 6, 7, 8, 9) and c.validation_size == 0.1
        groups[(c.model, c.seed, c.train_per_class)].append(c)
    assert sorted({k[2] for k in groups}) == [10, 50, 100, 1000]
    for (model, seed, _), cfgs in groups.items():
        scratch, probe, finetune = cfgs
        assert scratch.init_from is None and not scratch.freeze
        assert probe.init_from == finetune.init_from == pretrained[(model, seed)]
        assert probe.freeze == ("*", "!fc") and probe.reinit == finetune.reinit == ("fc",) and not finetune.freeze
        assert len({(c.epochs, c.batch_size) for c in cfgs}) == 1  # the three ways train alike


# ---------------------------------------------------------------- launch.transfer, the study's tables

def test_way_is_read_from_the_config():
    from cnnjax.train import config
    from launch import transfer
    assert transfer.way_of(config.TrainConfig()) == "scratch"
    assert transfer.way_of(config.TrainConfig(init_from="src", reinit=("fc",), freeze=("*", "!fc"))) == "probe"
    assert transfer.way_of(config.TrainConfig(init_from="src", reinit=("fc",))) == "finetune"


def _records(model, per_class, way, accs, seeds=None):
    return [{"model": model, "per_class": per_class, "way": way, "seed": s, "accuracy": a}
            for s, a in zip(seeds or range(len(accs)), accs)]


def test_summary_pairs_each_way_with_scratch_by_seed():
    import pytest
    from launch import transfer
    records = (_records("m", 10, "finetune", [0.4, 0.7, 0.7]) + _records("m", 10, "scratch", [0.5, 0.6, 0.7])
               + _records("m", 10, "probe", [0.7, 0.8, 0.9, 0.1], seeds=[0, 1, 2, 9])  # seed 9 has no scratch run
               + _records("m", 100, "scratch", [0.9, 0.9]) + _records("m", 100, "probe", [0.8, 0.8]))
    rows = {(r["per_class"], r["way"]): r for r in transfer.summarize(records)}
    assert [(r["per_class"], r["way"]) for r in transfer.summarize(records)] == \
        [(10, "scratch"), (10, "probe"), (10, "finetune"), (100, "scratch"), (100, "probe")]
    scratch = rows[(10, "scratch")]
    assert scratch["acc_mean"] == pytest.approx(0.6)
    assert scratch["acc_ci95"] == pytest.approx(4.302653 * 0.1 / 3 ** 0.5, rel=1e-5)  # t(0.975, 2) * std / sqrt(n)
    assert scratch["delta_mean"] is None and scratch["verdict"] == ""
    probe = rows[(10, "probe")]
    assert probe["n_seeds"] == 4 and probe["n_pairs"] == 3  # the unpaired seed counts in the mean, not the Δ
    assert probe["delta_mean"] == pytest.approx(0.2) and probe["delta_ci95"] == pytest.approx(0, abs=1e-12)
    assert probe["verdict"] == "wins"
    finetune = rows[(10, "finetune")]  # Δ = -0.1, +0.1, 0.0
    assert finetune["delta_mean"] == pytest.approx(0, abs=1e-12)
    assert finetune["delta_ci95"] == pytest.approx(4.302653 * 0.1 / 3 ** 0.5, rel=1e-5)
    assert finetune["verdict"] == "no difference"
    assert rows[(100, "probe")]["verdict"] == "loses"


def test_transfer_report_cli_writes_the_tables(tmp_path):
    import subprocess
    import sys
    from cnnjax.train import config
    from cnnjax.train.workdir import Workdir
    accs = {"scratch": [0.50, 0.55, 0.60], "probe": [0.70, 0.75, 0.80], "finetune": [0.40, 0.60, 0.65]}
    for way, values in accs.items():
        extra = {"scratch": {}, "probe": {"init_from": "src", "freeze": ("*", "!fc")}, "finetune": {"init_from": "src"}}
        for seed, acc in enumerate(values):
            wd = Workdir(str(tmp_path / "runs" / f"{way}_{seed}"))
            wd.write_config(config.TrainConfig(seed=seed, train_per_class=10, **extra[way]), {})
            wd.write_summary({"selected_test_accuracy": acc})
    os.makedirs(tmp_path / "runs" / "unfinished")
    r = subprocess.run([sys.executable, "-m", "launch.transfer", f"--out={tmp_path}"], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    table = (tmp_path / "transfer.md").read_text()
    assert "| padded_cnn | 10 | probe | 3 | 75.0 ± 12.4 | +20.0 ± 0.0 | wins |" in table  # Δ = 0.2 for each seed
    assert "| padded_cnn | 10 | finetune | 3 | 55.0 ± 32.9 | +0.0 ± 21.5 | no difference |" in table  # Δ -0.1, .05, .05
    assert "Not finished (not included): unfinished" in table
    assert (tmp_path / "transfer.png").stat().st_size > 0 and (tmp_path / "transfer.csv").exists()


def test_transfer_report_without_runs_is_one_error_line(tmp_path):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "launch.transfer", f"--out={tmp_path}"], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().startswith("error: --out") and len(r.stderr.strip().splitlines()) == 1
    assert not os.listdir(tmp_path)


def test_the_sweep_writes_the_transfer_tables_not_the_generic_report(tmp_path, monkeypatch):
    """experiments/configs/transfer.py names REPORT = launch.transfer: the sweep's last step
    calls launch.transfer.report(out) instead of launch.report, whose grouping by config
    without the seed would split the probe/finetune runs (their init_from names the seed)."""
    from launch import sweep, transfer
    st = _load(TRANSFER)
    assert st.report == "launch.transfer" and st.baseline is None
    called, echoed = [], []
    monkeypatch.setattr(transfer, "report", lambda out: called.append(out) or [os.path.join(out, "transfer.md")])
    monkeypatch.setattr(sweep.report, "report", lambda *a, **k: called.append("generic") or [])
    sweep.write_report(str(tmp_path), st, curves=True, echo=echoed.append)
    assert called == [str(tmp_path)] and echoed == [f"report (launch.transfer): {tmp_path / 'transfer.md'}"]
    sweep.write_report(str(tmp_path), _load(PRETRAIN), curves=True, echo=echoed.append)  # no REPORT: launch.report
    assert called[-1] == "generic"


def test_a_report_that_is_not_a_module_with_report_is_one_usage_error(tmp_path):
    import pytest
    study_file = tmp_path / "study.py"
    study_file.write_text("from cnnjax.train import config\nREPORT = 'launch.no_such_module'\n"
                          "def get_config():\n    return config.config_dict()\n"
                          "def get_sweep():\n    return [{'seed': 0}]\n")
    with pytest.raises(common.UsageError, match="REPORT 'launch.no_such_module' is not a module with report"):
        _load(str(study_file))
