"""JAX's persistent compilation cache, on by default, and what each run records about its compile.

Every jit compilation is looked up in a directory of compiled executables and, on a miss, written
there, so the second process that trains (or evaluates) the same shapes with the same XLA flags
loads its executables instead of compiling them again (JAX's cache, keyed by the computation, the
compile options and XLA's flags, the jaxlib version and the device; it never changes a number).

Where (:func:`directory`), the first of:

  * ``config.compile_cache_dir`` of the run (``''``: off), where a config is known;
  * ``$CNNJAX_COMPILE_CACHE`` (``''``, ``0`` or ``off``: off);
  * ``$JAX_COMPILATION_CACHE_DIR`` (JAX's own variable);
  * ``$XDG_CACHE_HOME/cnnjax/jax``, else ``~/.cache/cnnjax/jax`` (:data:`DEFAULT`).

:func:`configure` turns it on for the process; the command-line entry points call it before their
first computation (``experiments.common.run``, so experiments.train/evaluate/predict/explain/export,
benchmarks and the sweep drivers) and :func:`cnnjax.train.experiment.train_and_evaluate` calls it for
every run (so every sweep trial).  JAX's default is changed in one way, unless the user set JAX's
own environment variable: every executable is cached, however short its compile
(``jax_persistent_cache_min_compile_time_secs=0``: a run compiles tens of small functions besides
the step).  The directory is not bounded: JAX's bound (``JAX_COMPILATION_CACHE_MAX_SIZE``, its
least-recently-used eviction) reads every entry's access time on every write, so with a few
thousand entries each compile took ~0.8 s longer (40 small compiles: 33.3 s with a 10,000-file
cache, 3.7 s with an empty one); set that variable to bound it anyway, or delete the directory.
Several processes may read and write one cache at once (a sweep's concurrent trials do): an
entry read while another process writes it fails to load, which JAX reports as one warning and
compiles instead.

The cache is never a reason for a run to fail: a directory that cannot be created or written is
one line ``notice: ...`` on stderr and the process compiles without it; an entry that cannot be read
or written later (a full disk, a lock held too long) is one warning, and that executable is compiled.
JAX trusts what it loads from the cache: do not point it at a directory others may write.

:class:`Probe` is what a run records in its summary.json (:meth:`Probe.record`): the time from the
start of training to the end of its first step, and how many of its compilations came from the
cache.
"""
from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
import warnings
from typing import Callable, Optional

from cnnjax import xla_cpu

ENV = "CNNJAX_COMPILE_CACHE"
_OFF = ("", "0", "off", "none", "false")

_lock = threading.Lock()
_state = {"dir": None, "configured": False, "listening": False, "refused": None}
_counts = {"compiles": 0, "hits": 0, "compile_seconds": 0.0}


def default_directory() -> str:
    """``$XDG_CACHE_HOME/cnnjax/jax``, else ``~/.cache/cnnjax/jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cnnjax", "jax")


def directory(setting: Optional[str] = None) -> Optional[str]:
    """The cache directory for ``setting`` (``config.compile_cache_dir``: None = not set, ``''`` =
    off) and the environment (module docstring); None when the cache is off."""
    if setting is not None:
        return os.path.abspath(os.path.expanduser(setting)) if setting.strip() else None
    if ENV in os.environ:
        value = os.environ[ENV].strip()
        return None if value.lower() in _OFF else os.path.abspath(os.path.expanduser(value))
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return os.path.abspath(os.path.expanduser(os.environ["JAX_COMPILATION_CACHE_DIR"]))
    return default_directory()


def _unwritable(path: str) -> Optional[str]:
    """Why ``path`` cannot hold the cache (None: it can): created if missing, a file written and
    removed in it."""
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".cnnjax-probe-", dir=path)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        return e.strerror or str(e)
    return None


def configure(setting: Optional[str] = None, *, notice: Callable[[str], None] | None = None) -> Optional[str]:
    """Use the compilation cache of ``setting`` / the environment (:func:`directory`) in this
    process; returns the directory in use (None: off).  Call it before the computations whose
    compiles should be cached; calling it again with the same outcome does nothing, with another
    directory moves the cache there (JAX's ``reset_cache``).  A directory that cannot be written
    is reported by ``notice`` (default: one ``notice: ...`` line on stderr) and the cache is off;
    this never raises for the cache's sake."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache as cc

    path = directory(setting)
    with _lock:
        _listen()
        if _state["configured"] and (_state["dir"] == path or (path and _state["refused"] == path)):
            return _state["dir"]  # the same outcome: nothing to do, nothing said twice
        refused = None
        if path is not None and (why := _unwritable(path)):
            (notice or _notice)(f"notice: the compilation cache {path} is not writable ({why}); compiling without "
                                f"it (set ${ENV} or config.compile_cache_dir to another directory, '' to turn it off)")
            refused, path = path, None
        previous = _state["dir"]
        if path is not None:
            if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
                jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        if previous != path or not _state["configured"]:
            cc.set_cache_dir(path)
            if previous is not None:  # JAX opens its cache once: start over at the new place
                cc.reset_cache()
        _state.update(dir=path, configured=True, refused=refused)
    # a cache entry that cannot be read or written warns once, not at every compile
    warnings.filterwarnings("once", message=r"Error (reading|writing) persistent compilation cache")
    return path


def configured_directory() -> Optional[str]:
    """The directory :func:`configure` put in use (None: off or not configured)."""
    return _state["dir"]


def _notice(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _listen() -> None:
    """Count this process's compilations (XLA compiling or loading an executable: their number and
    seconds) and those found in the cache, from JAX's monitoring events."""
    if _state["listening"]:
        return
    from jax import monitoring

    def on_event(event: str, **kwargs) -> None:
        if event == "/jax/compilation_cache/cache_hits":
            _counts["hits"] += 1

    def on_duration(event: str, seconds: float, **kwargs) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            _counts["compiles"] += 1
            _counts["compile_seconds"] += seconds

    monitoring.register_event_listener(on_event)
    monitoring.register_event_duration_secs_listener(on_duration)
    _state["listening"] = True


def counts() -> dict:
    """This process's compilation counts so far: ``compiles`` (executables XLA compiled or loaded
    from the cache), ``hits`` (of those, loaded from the cache), ``compile_seconds`` (their time)."""
    return dict(_counts)


def start(cfg) -> None:
    """A training run's process set-up, before its first computation: the compilation cache of
    ``cfg.compile_cache_dir`` (:func:`configure`) and ``cfg.threads`` XLA CPU threads
    (:func:`cnnjax.xla_cpu.set_threads`; ValueError when the backend already runs another count)."""
    configure(cfg.compile_cache_dir)
    xla_cpu.set_threads(cfg.threads)


class Probe:
    """What a training run records about its start: construct it at the start of training, call
    :meth:`on_step` after each step (``on_step(i, steps, metrics)``, as the epoch runners do), and
    merge :meth:`record` into summary.json.

    ``first_step_seconds``: from the construction to the end of the first training step of this
    session (its metrics computed: jit compilation of the initial state and of the step included;
    for an epoch run as one ``lax.scan``, the end of the first epoch).  ``compile_cache``: the
    directory (None: off), the executables XLA compiled or loaded (``compiles``), those of them
    loaded from the cache (``from_cache``) and the seconds all that took, from the construction to
    :meth:`record`.  ``threads``: the XLA CPU intra-op threads of the process
    (:func:`cnnjax.xla_cpu.threads`)."""

    def __init__(self):
        xla_cpu.unpin()  # the backend is up: its pools are sized; let their threads run on every core
        _listen()
        self.t0, self.first_step, self.before = time.perf_counter(), None, counts()

    def on_step(self, i: int, steps: int, metrics) -> None:
        if self.first_step is None:
            if metrics is not None:
                import jax
                jax.block_until_ready(metrics)
            self.first_step = time.perf_counter() - self.t0

    def on_step_then(self, then: Callable) -> Callable:
        """``on_step`` followed by ``then(i, steps, metrics)``: an epoch runner's callback."""
        def callback(i, steps, metrics):
            self.on_step(i, steps, metrics)
            then(i, steps, metrics)
        return callback

    def record(self) -> dict:
        now = counts()
        return {"first_step_seconds": self.first_step,
                "compile_cache": {"dir": configured_directory(),
                                  "compiles": now["compiles"] - self.before["compiles"],
                                  "from_cache": now["hits"] - self.before["hits"],
                                  "compile_seconds": round(now["compile_seconds"] - self.before["compile_seconds"], 3)},
                "threads": xla_cpu.threads()}
