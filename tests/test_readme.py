"""The README's Python examples run as written (the dataset swapped for a small synthetic one)."""
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(REPO, "README.md")) as f:
    BLOCKS = re.findall(r"```python\n(.*?)```", f.read(), re.S)


def test_readme_has_the_python_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_example_runs(index):
    code = BLOCKS[index].replace('data.load("fashion_mnist")', 'data.synthetic(640, 200)')
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    if "train_epoch" in code:  # the training example prints one line per epoch: epoch, metrics, accuracy
        lines = [l for l in proc.stdout.splitlines() if l[:1].isdigit()]
        assert [l.split()[0] for l in lines] == ["1", "2"]
        assert float(lines[-1].split()[-1]) > 0.5
