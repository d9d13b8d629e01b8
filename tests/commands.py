"""Running the entry points as a user does, and fingerprinting what a command leaves on disk."""
import hashlib
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(module, *args, timeout=600):
    """``python -m experiments.MODULE ARGS`` from the repository root (this checkout's cnnjax first
    on the path), output captured as text."""
    env = {**os.environ, "PYTHONPATH": REPO}
    return subprocess.run([sys.executable, "-m", f"experiments.{module}", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=env)


def hashes(directory) -> dict:
    """{path relative to ``directory``: sha256 of its bytes} of every file below ``directory``."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
    return out
