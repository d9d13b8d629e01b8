"""cnnjax.xla_cpu: process-level XLA CPU flags, set before JAX starts."""
import os
import subprocess
import sys

import jax.numpy as jnp
import pytest

from cnnjax import xla_cpu


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
