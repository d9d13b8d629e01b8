"""Real-accuracy runs on Fashion-MNIST (minutes on 2 cores): `pytest -m slow`."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.path.isdir("/usr/share/datasets/fashion-mnist"),
                                 reason="needs Debian's dataset-fashion-mnist")]


@pytest.mark.xfail(strict=False, reason="open (issue 14): with 10% of the training images held out for "
                   "validation the default recipe measured 0.9129 / 0.9160 (seeds 0 / 1), mean 0.9144")
def test_padded_cnn_reaches_91_5_percent_on_fashion_mnist(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.accuracy", f"--out={tmp_path}", "--recipes=padded_cnn"],
                          cwd=REPO, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "padded_cnn" / "summary.json").read_text())
    assert result["params"] == 28_938
    assert result["final_test_accuracy"] >= 0.915


def test_default_recipe_holds_on_4000_images(tmp_path):
    """Small data: the default padded_cnn on the first 4,000 training images (3,600 after the
    validation split), 15 epochs.  Measured (results/small_data_defaults): validation-selected test
    accuracy 0.8645 ± 0.0037 over seeds 0 and 1 (0.867 for seed 0, which this runs); the threshold
    leaves a margin."""
    proc = subprocess.run([sys.executable, "-m", "experiments.train", f"--workdir={tmp_path / 'small'}",
                           "--config.num_train=4000", "--config.progress=none"],
                          cwd=REPO, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "small" / "summary.json").read_text())
    assert result["num_val"] == 400 and result["selected_test_accuracy"] >= 0.85
