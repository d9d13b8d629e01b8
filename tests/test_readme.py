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


def test_readme_model_count_is_the_registry_s():
    """The README's "models.available() lists N models" is the registry's count (it said 18 while
    the registry held 22)."""
    from cnnjax import models
    with open(os.path.join(REPO, "README.md")) as f:
        counts = re.findall(r"`models\.available\(\)` lists (\d+) models", f.read())
    assert counts == [str(len(models.available()))]


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_example_runs(index):
    code = BLOCKS[index].replace('data.load("fashion_mnist")', 'data.synthetic(640, 200)')
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    if "make_epoch_runner" in code:  # the training example prints one line per epoch: epoch, metrics, accuracy
        lines = [l for l in proc.stdout.splitlines() if l[:1].isdigit()]
        assert [l.split()[0] for l in lines] == ["1", "2"]
        assert float(lines[-1].split()[-1]) > 0.5


def test_the_library_map_names_every_module():
    """The README's map of the library (its "## The library" block) names every package and module
    of cnnjax (a module added or moved without its line fails here)."""
    with open(os.path.join(REPO, "README.md")) as f:
        block = re.search(r"## The library\n\n```\n(.*?)```", f.read(), re.S).group(1)
    package = os.path.join(REPO, "cnnjax")
    missing = []
    for d, subdirs, names in os.walk(package):
        subdirs[:] = [s for s in subdirs if s != "__pycache__"]
        rel = os.path.relpath(d, REPO)
        if rel != "cnnjax" and not re.search(rf"^{re.escape(rel)}/", block, re.M):
            missing.append(rel + "/")
        missing += [os.path.join(rel, n) for n in names
                    if n.endswith(".py") and n != "__init__.py" and not re.search(rf"\b{n[:-3]}\b", block)]
    assert missing == [], f"not in README's library map: {missing}"


def test_every_documented_import_resolves():
    """Every ``from cnnjax...`` / ``import cnnjax...`` line of a Python block in the README and
    docs/ imports (the examples name modules by where they live; a move that forgets a page fails
    here)."""
    lines = set()
    for name in ["README.md"] + sorted(os.listdir(os.path.join(REPO, "docs"))):
        path = os.path.join(REPO, name) if name == "README.md" else os.path.join(REPO, "docs", name)
        if not path.endswith(".md"):
            continue
        with open(path) as f:
            for block in re.findall(r"```python\n(.*?)```", f.read(), re.S):
                lines |= {l.strip() for l in block.splitlines() if re.match(r"\s*(from cnnjax\b|import cnnjax\b)", l)}
    assert lines
    proc = subprocess.run([sys.executable, "-c", "\n".join(sorted(lines))], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


TINY = ["--config.dataset=synthetic", "--config.num_train=128", "--config.num_test=64", "--config.batch_size=64",
        "--config.epochs=1", "--config.progress=none"]


def test_readme_training_commands_run(tmp_path):
    """Every `python -m experiments.train` line of the README's shell blocks, in order (a later
    line may re-run an earlier one's workdir), on tiny synthetic data in a temporary directory."""
    with open(os.path.join(REPO, "README.md")) as f:
        shell = "\n".join(re.findall(r"```bash\n(.*?)```", f.read(), re.S)).replace("\\\n", " ")
    commands = [l.split("&&")[-1].strip() for l in shell.splitlines() if "python -m experiments.train" in l]
    assert len(commands) >= 4, commands
    for command in commands:
        argv = command.split("#")[0].split()[1:]  # drop the comment and "python"
        argv = [a.replace("workdirs/", f"{tmp_path}/") for a in argv]
        rerun = any("rerun.py" in a for a in argv)
        proc = subprocess.run([sys.executable, *argv, *([] if rerun else TINY)], cwd=REPO, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, (command, proc.stderr[-2000:])
    assert sorted(os.listdir(tmp_path)) == ["a", "a2", "b", "padded_cnn", "vgg_bn"]
    assert open(tmp_path / "a" / "config.json").read() == open(tmp_path / "a2" / "config.json").read()
