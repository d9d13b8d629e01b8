"""cnnjax.xla_cpu: process-level XLA CPU flags and thread count, set before JAX starts."""
import json
import os
import subprocess
import sys

import jax.numpy as jnp
import pytest

from cnnjax import xla_cpu

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_configure_sets_xla_flags_before_jax_starts_and_keeps_user_flags():
    code = ("import os; os.environ['XLA_FLAGS'] = '--xla_cpu_enable_fast_math=false'\n"
            "from cnnjax import xla_cpu\n"
            "print(xla_cpu.configure('--xla_cpu_enable_fast_math=true --xla_cpu_use_thunk_runtime=true'))\n"
            "import jax.numpy as jnp; print(float(jnp.ones(3).sum()))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.returncode == 0, out.stderr
    flags, total = out.stdout.split("\n")[:2]
    assert flags.split()[0] == "--xla_cpu_enable_fast_math=false"  # the user's flag wins
    assert "--xla_cpu_enable_fast_math=true" not in flags
    assert "--xla_cpu_use_thunk_runtime=true" in flags
    for f in xla_cpu.FLAGS:
        assert f in flags
    assert total == "3.0"


def test_configure_skips_flags_this_jaxlib_does_not_know():
    # an unknown XLA flag would abort the process at start-up
    assert xla_cpu._xla_knows("--xla_cpu_scheduler_type=CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED")
    assert not xla_cpu._xla_knows("--xla_cpu_no_such_flag_for_cnnjax=true")
    assert not xla_cpu._xla_knows("--xla_cpu_scheduler_type=CPU_SCHEDULER_TYPE_NO_SUCH_VALUE")
    assert xla_cpu._xla_knows("--xla_cpu_experimental_ynn_fusion_type=-individual_convolution")
    assert not xla_cpu._xla_knows("--xla_cpu_experimental_ynn_fusion_type=-no_such_fusion")
    assert xla_cpu._xla_knows("--xla_cpu_enable_fast_math=false")


def test_configure_after_start_warns_and_changes_nothing():
    jnp.ones(1).block_until_ready()
    before = os.environ.get("XLA_FLAGS", "")
    with pytest.warns(UserWarning, match="after JAX initialised"):
        xla_cpu.configure("--xla_cpu_enable_fast_math=true")
    assert os.environ.get("XLA_FLAGS", "") == before


def test_set_threads_after_start_accepts_only_the_running_count():
    jnp.ones(1).block_until_ready()
    assert xla_cpu.set_threads(0) == xla_cpu.threads()
    assert xla_cpu.set_threads(xla_cpu.threads()) == xla_cpu.threads()
    with pytest.raises(ValueError, match=r"config.threads=\d+: this process's XLA CPU backend already runs"):
        xla_cpu.set_threads(xla_cpu.threads() + 1)


PINNED = r"""
import os, sys
from cnnjax import xla_cpu
xla_cpu.set_threads(1)
during = len(os.sched_getaffinity(0))
import jax, jax.numpy as jnp
jnp.ones(3).sum().block_until_ready()  # the backend starts with one core
xla_cpu.unpin()
print(during, xla_cpu.threads(), min(len(os.sched_getaffinity(int(t))) for t in os.listdir("/proc/self/task")))
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores")
def test_one_thread_then_every_core_again_once_the_backend_is_up():
    out = subprocess.run([sys.executable, "-c", PINNED], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    during, threads, after = map(int, out.stdout.split())
    assert (during, threads) == (1, 1)
    assert after == len(os.sched_getaffinity(0))  # every thread may run on every core again


TRAIN = ["--config.dataset=synthetic", "--config.num_train=512", "--config.num_test=128", "--config.epochs=1",
         "--config.batch_size=64", "--config.progress=none"]


def _train(workdir, *args, prefix=()):
    out = subprocess.run([*prefix, sys.executable, "-m", "experiments.train", f"--workdir={workdir}", *TRAIN, *args],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
    summary = json.load(open(os.path.join(workdir, "summary.json")))
    return [x for r in rows for x in (r["train_loss"], r["val_loss"])] + [summary["final_test_loss"]], summary


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores")
def test_thread_count_is_a_setting_that_reproduces_the_numbers(tmp_path):
    """config.threads=1 computes what a process confined to one core computes (bit for bit), and
    records it; one thread and two differ at most in the last bits (measured ~2e-7 relative)."""
    one, s1 = _train(tmp_path / "one", "--config.threads=1")
    pinned, sp = _train(tmp_path / "pinned", prefix=("taskset", "-c", "0"))
    two, s2 = _train(tmp_path / "two", "--config.threads=2")
    assert one == pinned
    assert (s1["threads"], sp["threads"], s2["threads"]) == (1, 1, 2)
    assert json.load(open(tmp_path / "one" / "config.json"))["threads"] == 1
    assert two == pytest.approx(one, rel=1e-5)


@pytest.mark.parametrize("value, message", [("-1", "config.threads must be >= 0"),
                                            ("4096", "config.threads=4096: this process may use only")])
def test_bad_thread_count_is_one_error_line(tmp_path, value, message):
    out = subprocess.run([sys.executable, "-m", "experiments.train", f"--workdir={tmp_path / 'run'}", *TRAIN,
                          f"--config.threads={value}"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 2 and out.stderr.strip().startswith("error: ") and message in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not os.path.exists(tmp_path / "run" / "config.json")
