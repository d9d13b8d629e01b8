"""experiments.evaluate's CLI on a tiny trained run: results, and an unwritable workdir."""
import json
import os
import subprocess
import sys

import pytest

from tests import fsfaults
from tests.commands import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A one-epoch run on a few synthetic images (seconds, not minutes)."""
    workdir = tmp_path_factory.mktemp("run")
    proc = cli("train", "--config.dataset=synthetic", "--config.num_train=128", "--config.num_test=64",
               "--config.batch_size=64", "--config.epochs=1", f"--workdir={workdir}", "--config.progress=none")
    assert proc.returncode == 0, proc.stderr
    return workdir


def test_unwritable_output_is_one_error_line_after_the_results(run_dir):
    os.mkdir(run_dir / "confusion.png")  # cannot be written as a file, even by root
    try:
        proc = cli("evaluate", f"--workdir={run_dir}")
    finally:
        os.rmdir(run_dir / "confusion.png")
    assert proc.returncode == 2, proc.stderr
    assert "test accuracy" in proc.stdout and "bar_0deg" in proc.stdout  # the results came first
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"error: cannot write {run_dir / 'confusion.png'}: Is a directory"
    assert not (run_dir / "evaluation.json").exists()


@pytest.mark.parametrize("how,reason", [("permissions", "Operation not permitted" if os.geteuid() == 0
                                         else "Permission denied"),  # chattr +i as root, chmod a-w otherwise
                                        ("read-only mount", "Read-only file system")])
def test_read_only_workdir(run_dir, how, reason):
    argv = [sys.executable, "-m", "experiments.evaluate", f"--workdir={run_dir}"]
    if how == "permissions":
        with fsfaults.read_only(run_dir):
            proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    else:
        proc = fsfaults.run_in_mount_namespace(argv, fsfaults.read_only_mount(run_dir), cwd=REPO,
                                               capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "test accuracy" in proc.stdout, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"error: cannot write {run_dir / 'confusion.png'}: {reason}"
    assert not (run_dir / "confusion.png").exists() and not (run_dir / "evaluation.json").exists()


def test_writes_confusion_and_evaluation(run_dir):
    proc = cli("evaluate", f"--workdir={run_dir}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f"wrote {run_dir / 'confusion.png'}"
    assert sum(map(sum, json.loads((run_dir / "evaluation.json").read_text())["confusion"])) == 64


def test_shifts_table_and_json_start_at_the_plain_accuracy(run_dir):
    proc = cli("evaluate", f"--workdir={run_dir}", "--shifts=2")
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy on images shifted by 0..2 px (zero fill):" in proc.stdout
    table = proc.stdout.split("(zero fill):\n")[1].splitlines()
    assert table[0].split() == ["shift", "px", "up", "down", "left", "right", "mean"] and len(table) >= 4
    with open(run_dir / "evaluation.json") as f:
        result = json.load(f)
    assert [(r["direction"], r["pixels"]) for r in result["shifts"]][:2] == [("none", 0), ("up", 1)]
    assert len(result["shifts"]) == 9 and result["shifts"][0]["accuracy"] == result["accuracy"]
    assert float(table[1].split()[1]) == pytest.approx(result["accuracy"], abs=5e-5)
    bad = cli("evaluate", f"--workdir={run_dir}", "--shifts=-1")
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --shifts must be >= 0, got -1"
