"""Run the test process with the XLA CPU settings ``experiments.train`` uses
(``xla_cpu.configure()``, before JAX starts), so a run trained in-process and one
trained by the CLI in a subprocess compile the same way and can be compared bit for bit."""
import atexit
import os
import shutil
import tempfile

# Each test session compiles into its own compilation cache (cnnjax.compile_cache), not the user's:
# the suite compiles thousands of functions, which would fill the user's cache, and a session's
# results must not depend on what earlier sessions left there.  Subprocesses inherit it.
if "CNNJAX_COMPILE_CACHE" not in os.environ:
    os.environ["CNNJAX_COMPILE_CACHE"] = tempfile.mkdtemp(prefix="cnnjax-tests-jax-cache-")
    atexit.register(shutil.rmtree, os.environ["CNNJAX_COMPILE_CACHE"], True)

from cnnjax import xla_cpu  # noqa: E402

xla_cpu.configure()
