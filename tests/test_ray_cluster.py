"""launch.sweep joins a Ray cluster by address: a head node started here with ``ray start --head``
on 127.0.0.1 runs a sweep given ``--ray_address``; Ctrl-C (SIGINT) or SIGTERM stops the sweep with status
130 and the rerun resumes it to the end; a typo in a study exits 2 with one line before any
cluster is touched.

The head runs as ``ray start --head --block`` in its own session and is stopped by signalling
that session only (``ray stop`` would stop every Ray cluster of this user on the machine)."""
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.ports import free_port

pytest.importorskip("ray")

from cnnjax.train.workdir import Workdir  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDY = '''
from cnnjax.train import config

def get_config():
    return config.config_dict(model="seed_net", dataset="synthetic", num_train=512, num_test=128, epochs=3,
                              batch_size=64)

def get_sweep():
    return config.product(config.sweep("seed", [0]), config.sweep("learning_rate", [1e-3, 3e-3]))
'''


JAX_CACHE = {"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}  # + a directory: see head()
# This cluster's own token for Ray's token authentication (on by default in this Ray): the default
# token file is shared by every cluster of the user on the machine, and another one starting
# meanwhile (a concurrent sweep) may replace it; RAY_AUTH_TOKEN takes precedence over the file.
AUTH = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}


def env():
    e = {**os.environ, "RAY_DEDUP_LOGS": "0", **JAX_CACHE, **AUTH}
    e["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, e.get("PYTHONPATH")) if p)
    return e


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    ray_bin = shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")
    port = free_port()
    JAX_CACHE["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path_factory.mktemp("jax_cache"))  # the workers' env
    log = open(tmp_path_factory.mktemp("head") / "ray_start.log", "w")
    t0 = time.time()
    proc = subprocess.Popen([ray_bin, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                             "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
                             "--object-store-memory=100000000", "--block"],
                            stdout=log, stderr=subprocess.STDOUT, env=env(), start_new_session=True)
    try:
        address = f"127.0.0.1:{port}"
        deadline = time.time() + 90
        while time.time() < deadline:  # the GCS answers
            if proc.poll() is not None:
                pytest.fail(f"ray start exited {proc.returncode}: {open(log.name).read()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        print(f"ray start --head: {time.time() - t0:.1f}s")
        yield address
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # this head's session only
            proc.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()


def sweep_cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "launch.sweep", *args], cwd=REPO, env=env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl_c", "sigterm"])
def test_sweep_on_a_cluster_by_address_ctrl_c_and_resume(head, tmp_path, signum):
    # 30 epochs of ~0.1 s: the interrupt, sent after the first epoch, lands while both runs train
    # (with 3, an idle machine finished the sweep before it, and the test had nothing to test)
    (tmp_path / "study.py").write_text(STUDY.replace("epochs=3,", "epochs=30,"))
    out = tmp_path / "out"
    args = [f"--config={tmp_path / 'study.py'}", f"--out={out}", f"--ray_address={head}"]
    proc = sweep_cli(*args)
    first = out / "runs" / "learning_rate=0.001,seed=0"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        try:
            if Workdir(str(first)).metrics():
                break
        except Exception:  # noqa: BLE001 - being written
            pass
        time.sleep(0.1)
    proc.send_signal(signum)
    stdout, _ = proc.communicate(timeout=120)
    assert f"ray: joined {head}" in stdout, stdout
    assert proc.returncode == 130 and "sweep interrupted" in stdout, stdout
    statuses = [json.load(open(out / "runs" / n / "status.json"))["status"] for n in os.listdir(out / "runs")]
    assert "interrupted" in statuses
    proc = sweep_cli(*args)
    stdout, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, stdout
    for name in ("learning_rate=0.001,seed=0", "learning_rate=0.003,seed=0"):
        assert Workdir(str(out / "runs" / name)).summary()["epochs"] == 30
    assert (out / "results.md").exists() and (out / "results.png").exists()


def test_typo_in_a_study_exits_2_with_one_line_and_writes_nothing(head, tmp_path):
    (tmp_path / "study.py").write_text(STUDY.replace('sweep("learning_rate"', 'sweep("lerning_rate"'))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "launch.sweep", f"--config={tmp_path / 'study.py'}", f"--out={out}",
                        f"--ray_address={head}"], cwd=REPO, env=env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("error: ") and "config.lerning_rate is not a setting" in r.stderr
    assert not out.exists() and "ray:" not in r.stdout


SEARCH = STUDY.split("def get_sweep")[0] + '''
def get_search():
    return {"space": {"learning_rate": ("log", 1e-4, 1e-1)}, "num_samples": 4, "algorithm": "optuna"}
'''


@pytest.mark.slow
def test_search_ctrl_c_and_resume(head, tmp_path):
    """Tune catches Ctrl-C, saves its state and returns from fit(): the search must still end as
    interrupted (exit 130, no results), and the same command resumes it: the trials finished before
    the interrupt are not trained again, and the report holds all of them."""
    (tmp_path / "search.py").write_text(SEARCH)
    out = tmp_path / "out"
    args = [f"--config={tmp_path / 'search.py'}", f"--out={out}", f"--ray_address={head}"]
    run = lambda: subprocess.Popen([sys.executable, "-m", "launch.search", *args], cwd=REPO, env=env(), text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    summaries = lambda: {p.parent.name: p.stat().st_mtime_ns for p in out.glob("runs/*/summary.json")}
    proc = run()
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not summaries():
        time.sleep(0.1)
    if proc.poll() is not None:
        pytest.skip(f"the search ended (status {proc.returncode}) before it could be interrupted")
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "search interrupted; rerun the same command to resume it" in stdout, stdout
    assert not (out / "sweep.json").exists() and not (out / "results.md").exists()
    finished = summaries()
    assert finished
    proc = run()
    stdout, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0 and "search: resuming the interrupted search" in stdout, stdout
    runs = json.load(open(out / "sweep.json"))["runs"]
    assert len(runs) == 4 and (out / "results.md").exists()
    assert {n: t for n, t in summaries().items() if n in finished} == finished  # not trained again
    for r in runs:
        assert json.load(open(out / "runs" / r["name"] / "status.json"))["status"] in ("finished", "stopped")
