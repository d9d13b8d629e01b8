"""cnnjax.compile_cache: JAX's persistent compilation cache on by default, where it lives, that it
never fails a run, that processes share it, and what a run records about its compile."""
import json
import os
import subprocess
import sys

import pytest

from cnnjax import compile_cache

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--config.dataset=synthetic", "--config.num_train=256", "--config.num_test=64", "--config.epochs=1",
        "--config.batch_size=64", "--config.progress=none"]


def env_with(**values):
    env = {k: v for k, v in os.environ.items()
           if k not in ("CNNJAX_COMPILE_CACHE", "JAX_COMPILATION_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(values)
    return env


def test_directory_setting_then_environment_then_user_cache(monkeypatch, tmp_path):
    for k in ("CNNJAX_COMPILE_CACHE", "JAX_COMPILATION_CACHE_DIR"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.directory() == str(tmp_path / "xdg" / "cnnjax" / "jax")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "jax"))
    assert compile_cache.directory() == str(tmp_path / "jax")
    monkeypatch.setenv("CNNJAX_COMPILE_CACHE", str(tmp_path / "mine"))
    assert compile_cache.directory() == str(tmp_path / "mine")
    assert compile_cache.directory(str(tmp_path / "config")) == str(tmp_path / "config")  # the run's setting wins
    assert compile_cache.directory("") is None
    for off in ("", "0", "off", "OFF"):
        monkeypatch.setenv("CNNJAX_COMPILE_CACHE", off)
        assert compile_cache.directory() is None


CONCURRENT = r"""
import sys, jax, jax.numpy as jnp
from cnnjax import compile_cache
compile_cache.configure()
for n in range(1, 7):  # six executables, each compiled (or loaded) once
    jax.jit(lambda x, n=n: jnp.tanh(x @ x.T * n).sum())(jnp.ones((64, 64))).block_until_ready()
c = compile_cache.counts()
print(c["compiles"], c["hits"])
"""


def test_processes_share_one_cache_written_at_once(tmp_path):
    """Three processes compile the same functions into an empty cache at the same time: all
    succeed with nothing on stderr, and a fourth process loads every executable from it."""
    env = env_with(CNNJAX_COMPILE_CACHE=str(tmp_path / "cache"))
    run = lambda: subprocess.Popen([sys.executable, "-c", CONCURRENT], cwd=REPO, env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    procs = [run() for _ in range(3)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0 and not err.strip(), err
    out, err = run().communicate(timeout=300)
    compiles, hits = map(int, out.split())
    assert compiles >= 6 and hits == compiles, (out, err)
    assert not err.strip(), err


def test_unwritable_cache_is_one_notice_line_and_the_run_trains(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    proc = subprocess.run([sys.executable, "-m", "experiments.train", f"--workdir={tmp_path / 'run'}", *TINY],
                          cwd=REPO, env=env_with(CNNJAX_COMPILE_CACHE=str(blocker / "cache")),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    notices = [l for l in proc.stderr.splitlines() if "compilation cache" in l]
    assert len(notices) == 1 and notices[0].startswith("notice: the compilation cache ") \
        and "not writable" in notices[0], proc.stderr
    record = json.load(open(tmp_path / "run" / "summary.json"))["compile_cache"]
    assert record["dir"] is None and record["from_cache"] == 0


def test_second_run_of_a_config_loads_its_compiles_from_the_cache_and_records_it(tmp_path):
    """Two runs of one config in fresh processes with one cache directory: the first compiles and
    fills the cache, the second loads every executable from it, with bit-identical numbers; each
    run's summary.json records it and the time to the end of its first step."""
    env = env_with(XDG_CACHE_HOME=str(tmp_path / "xdg"))  # the default place, under the user's cache
    summaries, rows = [], []
    for name in ("first", "second"):
        proc = subprocess.run([sys.executable, "-m", "experiments.train", f"--workdir={tmp_path / name}", *TINY],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        summaries.append(json.load(open(tmp_path / name / "summary.json")))
        rows.append([{k: v for k, v in json.loads(l).items() if k not in ("seconds", "images_per_sec")}
                     for l in open(tmp_path / name / "metrics.jsonl")])
    first, second = (s["compile_cache"] for s in summaries)
    assert first["dir"] == second["dir"] == str(tmp_path / "xdg" / "cnnjax" / "jax")
    assert first["compiles"] > 0 and first["from_cache"] < first["compiles"]
    assert second["compiles"] == first["compiles"] and second["from_cache"] == second["compiles"]
    assert all(isinstance(s["first_step_seconds"], float) and s["first_step_seconds"] > 0 for s in summaries)
    assert rows[0] == rows[1]
    assert summaries[0]["final_test_loss"] == summaries[1]["final_test_loss"]


def test_config_compile_cache_dir_off_compiles_without_a_cache(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "experiments.train", f"--workdir={tmp_path / 'run'}", *TINY,
                           "--config.compile_cache_dir="], cwd=REPO, env=env_with(XDG_CACHE_HOME=str(tmp_path)),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    record = json.load(open(tmp_path / "run" / "summary.json"))["compile_cache"]
    assert record["dir"] is None and record["compiles"] > 0 and record["from_cache"] == 0
    # off from the start: the default directory (under XDG_CACHE_HOME) is never made
    assert not (tmp_path / "cnnjax").exists()


@pytest.mark.parametrize("value", ["", "0", "off"])
def test_environment_turns_it_off(value):
    code = "from cnnjax import compile_cache; print(compile_cache.configure())"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env_with(CNNJAX_COMPILE_CACHE=value),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "None", proc.stderr
