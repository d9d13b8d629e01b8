"""launch.invariance: per-configuration accuracy-vs-shift statistics, and its refusals."""
import os
import subprocess
import sys

import pytest

from launch import invariance

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_summarize_gives_mean_std_and_t_interval_per_distance():
    groups = {"model=mlp": [{0: 0.90, 1: 0.80}, {0: 0.92, 1: 0.78}, {0: 0.88, 1: 0.82}]}
    rows = invariance.summarize(groups)
    assert [r["shift_px"] for r in rows] == [0, 1]
    one = rows[1]
    assert one["n_seeds"] == 3 and one["acc_mean"] == pytest.approx(0.80) and one["acc_std"] == pytest.approx(0.02)
    assert one["acc_ci95"] == pytest.approx(4.302653 * 0.02 / 3 ** 0.5, rel=1e-5)  # t(0.975, 2 dof)
    assert one["drop_mean"] == pytest.approx(0.10) and one["drop_std"] == pytest.approx(0.04)  # paired by seed
    assert rows[0]["drop_mean"] == 0


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "has no runs/"),
    (lambda d: os.makedirs(d / "runs" / "model=mlp,seed=0"), "no finished run"),
])
def test_an_out_without_finished_runs_is_one_error_line(tmp_path, make, message):
    make(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "launch.invariance", f"--out={tmp_path}"], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": REPO})
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr
    assert not any(name.startswith("invariance") for name in os.listdir(tmp_path))
