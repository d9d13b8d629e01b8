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


def test_padded_cnn_reaches_91_5_percent_on_fashion_mnist(tmp_path):
    """The default recipe on all of Fashion-MNIST (54k training images, 6k validation, label
    smoothing 0.1), seed 0.  Measured (results/label_smoothing_seeds): final test accuracy
    0.9165 ± 0.0019 over seeds 0-3 (0.9148, 0.9159, 0.9161, 0.9192), so the >= 91.5% target is a
    mean over seeds; one seed is held to the mean minus 2.5 standard deviations."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.accuracy", f"--out={tmp_path}", "--recipes=padded_cnn"],
                          cwd=REPO, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "padded_cnn" / "summary.json").read_text())
    assert result["params"] == 28_938
    assert result["final_test_accuracy"] >= 0.912


def test_default_recipe_holds_on_4000_images(tmp_path):
    """Small data: the default padded_cnn on the first 4,000 training images (3,600 after the
    validation split), 15 epochs.  Measured (results/label_smoothing_seeds, label smoothing 0.1):
    validation-selected test accuracy 0.8615 ± 0.0046 over seeds 0-7; the threshold is the mean
    minus 2.5 standard deviations."""
    proc = subprocess.run([sys.executable, "-m", "experiments.train", f"--workdir={tmp_path / 'small'}",
                           "--config.num_train=4000", "--config.progress=none"],
                          cwd=REPO, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "small" / "summary.json").read_text())
    assert result["num_val"] == 400 and result["selected_test_accuracy"] >= 0.85
