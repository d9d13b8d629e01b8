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
    proc = subprocess.run([sys.executable, "-m", "benchmarks.accuracy", f"--out={tmp_path}", "--recipes=padded_cnn"],
                          cwd=REPO, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "padded_cnn" / "summary.json").read_text())
    assert result["params"] == 28_938
    assert result["final_test_accuracy"] >= 0.915
