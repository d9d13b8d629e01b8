"""experiments.evaluate's robustness options on tiny finished runs: a greyscale run, a colour
image-folder run, and a run without a validation split.  Results in evaluation.json, the run's own
files untouched, bad input one ``error:`` line with exit 2 and nothing written."""
import json
import os

import numpy as np
import pytest

from tests import datafiles
from tests.commands import cli, hashes

TRAIN = ("--config.epochs=1", "--config.batch_size=32", "--config.progress=none")


@pytest.fixture(scope="module")
def grey_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("grey")
    proc = cli("train", "--config.dataset=synthetic", "--config.num_train=160", "--config.num_test=40", *TRAIN,
               f"--workdir={workdir}")
    assert proc.returncode == 0, proc.stderr
    return workdir


@pytest.fixture(scope="module")
def colour_folder_run(tmp_path_factory):
    """A colour image folder (train/test PNGs of synthetic_color at 16x16), trained with a validation split."""
    from cnnjax import data
    root = tmp_path_factory.mktemp("folder")
    ds = data.synthetic_color(num_train=120, num_test=30, image_size=16, seed=0)
    classes = [f"c{k}" for k in range(10)]
    datafiles.write_image_folder(root / "f", {"train": (ds.train_images, ds.train_labels),
                                              "test": (ds.test_images, ds.test_labels)}, classes)
    workdir = root / "run"
    proc = cli("train", "--config.dataset=folder", f"--config.data_dir={root / 'f'}", "--config.image_size=16",
               "--config.channels=3", f"--config.data_cache_dir={root / 'cache'}", *TRAIN, f"--workdir={workdir}")
    assert proc.returncode == 0, proc.stderr
    return workdir


def test_every_option_on_a_greyscale_run(grey_run, tmp_path):
    before = hashes(grey_run)
    proc = cli("evaluate", f"--workdir={grey_run}", f"--out={tmp_path}", "--shifts=1", "--corruptions=fog,stripe",
               "--severities=1,5", "--attack=pgd", "--eps=0,4,64", "--steps=3", "--calibration")
    assert proc.returncode == 0, proc.stderr
    assert hashes(grey_run) == before, "evaluate changed the run's directory"
    assert sorted(os.listdir(tmp_path)) == ["confusion.png", "evaluation.json", "reliability.png"]
    result = json.loads((tmp_path / "evaluation.json").read_text())
    # shifts: consistency 1 at offset 0, Zhang's consistency in [0, 1]
    assert result["shifts"][0]["consistency"] == 1.0 and 0 <= result["shift_consistency"]["consistency"] <= 1
    assert "Zhang's consistency" in proc.stdout and "consistency with the unshifted prediction:" in proc.stdout
    # corruptions: fog at 1 and 5, stripe once; the mean is over corruptions
    rows = result["corruptions"]["rows"]
    assert [(r["corruption"], r["severity"]) for r in rows] == [("fog", 1), ("fog", 5), ("stripe", None)]
    per = result["corruptions"]["per_corruption"]
    assert per["fog"] == pytest.approx((rows[0]["accuracy"] + rows[1]["accuracy"]) / 2)
    assert result["corruptions"]["mean_accuracy"] == pytest.approx((per["fog"] + per["stripe"]) / 2)
    assert result["corruptions"]["clean"]["accuracy"] == result["accuracy"]
    # the attack: eps 0 is the clean accuracy exactly, and accuracy falls
    acc = [r["accuracy"] for r in result["attack"]]
    assert acc[0] == result["accuracy"] and acc[2] <= acc[1] <= acc[0]
    # calibration: the temperature came from the validation split, the accuracy is unchanged
    cal = result["calibration"]
    assert cal["val_images"] == 16 and cal["temperature"] > 0
    assert cal["before"]["accuracy"] == cal["after"]["accuracy"] == result["accuracy"]
    assert proc.stdout.strip().splitlines()[-1] == f"wrote {tmp_path / 'confusion.png'}, {tmp_path / 'reliability.png'}"


def test_colour_image_folder_run(colour_folder_run, tmp_path):
    before = hashes(colour_folder_run)
    proc = cli("evaluate", f"--workdir={colour_folder_run}", f"--out={tmp_path}", "--corruptions=all",
               "--severities=3", "--attack=fgsm", "--eps=0,8", "--calibration", "--shifts=1")
    assert proc.returncode == 0, proc.stderr
    assert hashes(colour_folder_run) == before
    result = json.loads((tmp_path / "evaluation.json").read_text())
    assert len(result["corruptions"]["rows"]) == 15 and result["attack"][0]["accuracy"] == result["accuracy"]
    assert np.isfinite(result["calibration"]["after"]["nll"])


@pytest.mark.parametrize("args,message", [
    (("--corruptions=fog,smoke",), "error: --corruptions: unknown corruption 'smoke'; choose from shot_noise, "),
    (("--attack=pgd", "--eps=2,-1"), "error: --eps must be >= 0 (pixel units of 255), got -1.0"),
    (("--attack=cw",), "error: --attack: unknown attack 'cw'; choose from fgsm, pgd"),
    (("--eps=2",), "error: --eps needs --attack=fgsm|pgd"),
    (("--corruptions=all", "--severities=0"), "error: --severities must be integers 1..5 or 'default' (MNIST-C's own), got 0"),
])
def test_bad_input_is_one_error_line_and_nothing_written(grey_run, tmp_path, args, message):
    before = hashes(grey_run)
    proc = cli("evaluate", f"--workdir={grey_run}", f"--out={tmp_path}", *args)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and proc.stderr.startswith(message), proc.stderr
    assert os.listdir(tmp_path) == [] and hashes(grey_run) == before


def test_calibration_needs_a_validation_split(tmp_path):
    workdir = tmp_path / "noval"
    proc = cli("train", "--config.dataset=synthetic", "--config.num_train=64", "--config.num_test=16",
               "--config.validation_size=0", *TRAIN, f"--workdir={workdir}")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    out.mkdir()
    bad = cli("evaluate", f"--workdir={workdir}", f"--out={out}", "--calibration")
    assert bad.returncode == 2 and bad.stdout == "" and os.listdir(out) == []
    assert bad.stderr.strip() == (f"error: --calibration: {workdir} trained without a validation split "
                                  f"(validation_size=0); temperature scaling is fitted on validation data, never on "
                                  f"the test set")


def test_study_tables_have_cis_and_paired_differences(tmp_path):
    """launch.robustness's summary of two configurations x 3 seeds, by hand: mean, t-interval, and the
    difference to the baseline paired by seed."""
    from launch import robustness
    score = {"kind": "shift", "max_shift": 1, "test_images": 10}
    mk = lambda clean, acc1, zhang: {"clean": clean, "acc_1px": acc1, "drop": clean - acc1, "cons_1px": acc1,
                                     "zhang": zhang}
    rows = [{"config": "pool=max", "n_seeds": 3, "params": 10, "flops": 20, "seeds": [0, 1, 2], "is_baseline": True,
             "scores": [mk(0.8, 0.5, 0.6), mk(0.8, 0.6, 0.6), mk(0.8, 0.7, 0.6)]},
            {"config": "pool=blurmax", "n_seeds": 3, "params": 10, "flops": 25, "seeds": [2, 0, 1],
             "scores": [mk(0.8, 0.8, 0.9), mk(0.8, 0.7, 0.8), mk(0.8, 0.6, 0.7)]}]
    summary = robustness.summarize(rows, score, {"pool": "max"})
    base, blur = summary
    assert base["acc_1px_mean"] == pytest.approx(0.6) and base["acc_1px_std"] == pytest.approx(0.1)
    assert base["acc_1px_ci95"] == pytest.approx(4.302653 * 0.1 / np.sqrt(3), rel=1e-5)  # t(0.975, 2)
    # paired by seed: seed 0: 0.7 - 0.5, seed 1: 0.6 - 0.6, seed 2: 0.8 - 0.7
    assert blur["acc_1px_delta"] == pytest.approx(0.1) and base["acc_1px_delta"] is None
    assert blur["zhang_delta"] == pytest.approx(0.2) and blur["zhang_delta_ci95"] == pytest.approx(base["acc_1px_ci95"])
    paths = robustness.write(str(tmp_path), summary, score, {"pool": "max"}, ["pool=avg,seed=0"])
    md = (tmp_path / "robustness.md").read_text()
    assert "| pool=blurmax | 3 | 10 | 25 | 0.800 ± 0.000 | 0.700 ± 0.248 |" in md
    assert "Not finished (not included): pool=avg,seed=0" in md and len(paths) == 3
