"""The library's layering is checked by a tool, not stated by a sentence (issue 36).

The contracts are import-linter's, in pyproject.toml ([tool.importlinter]): cnnjax's packages in
layers (interpret > train > weights > data > models > summary > blocks > ops > fastconv > process
set-up), no circles between the modules of a package, and the library never importing the entry
points, studies or benchmarks.  These tests run ``lint-imports`` on the repository, and on a copy
of it with one import added, to show that the contracts catch what they forbid.
"""
import ast
import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("cnnjax", "experiments", "launch", "benchmarks")


def lint_imports(root: pathlib.Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with the contracts of ``root``/pyproject.toml over the packages under ``root``."""
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports not found: install the test dependencies (pip install -e '.[dev]')")
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([exe, "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def repo_copy(tmp_path):
    """The packages and pyproject.toml copied to a temporary directory (sources only)."""
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_repository_keeps_every_contract():
    proc = lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


@pytest.mark.parametrize("module, line, broken", [
    # a model reaching up into training (the kind of import issue 36 found)
    ("cnnjax/models/common.py", "from cnnjax.train import step", "cnnjax.models is not allowed to import cnnjax.train"),
    # hidden in a function, as ten imports were before
    ("cnnjax/data/dataset.py", "def _later():\n    from cnnjax.weights import pytorch",
     "cnnjax.data is not allowed to import cnnjax.weights"),
    # weights climbing into training
    ("cnnjax/weights/nnx.py", "from cnnjax.train import runs", "cnnjax.weights is not allowed to import cnnjax.train"),
    # the library importing a benchmark
    ("cnnjax/train/loop.py", "import benchmarks.machine", "cnnjax.train.loop -> benchmarks.machine"),
])
def test_an_added_forbidden_import_breaks_a_contract(repo_copy, module, line, broken):
    path = repo_copy / module
    path.write_text(path.read_text() + "\n" + line + "\n")
    proc = lint_imports(repo_copy)
    assert proc.returncode != 0
    assert broken in proc.stdout, proc.stdout


def test_a_circle_inside_a_package_breaks_a_contract(repo_copy):
    # train.loop imports train.step; step importing loop back closes a circle within one layer
    path = repo_copy / "cnnjax/train/step.py"
    path.write_text(path.read_text() + "\nfrom cnnjax.train import loop\n")
    proc = lint_imports(repo_copy)
    assert proc.returncode != 0
    assert "No cycles are allowed in cnnjax.train" in proc.stdout, proc.stdout


def _imports_inside_functions(package: pathlib.Path):
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "cnnjax":
                        yield f"{path.relative_to(package.parent)}:{node.lineno}"
                    elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == "cnnjax" for a in node.names):
                        yield f"{path.relative_to(package.parent)}:{node.lineno}"


def test_the_library_imports_its_own_modules_at_the_top():
    """A cnnjax module imported inside a function hides a dependency from the reader (and from
    nobody else: import-linter sees it).  Imports inside functions are left for optional or slow
    third-party packages (torch, onnx, tensorflow_datasets, ...)."""
    assert list(_imports_inside_functions(ROOT / "cnnjax")) == []
