"""Process-wide XLA settings for the CPU backend: :func:`configure` adds the XLA flags that
pay on a small-CNN training step (:data:`FLAGS`) to ``XLA_FLAGS`` before JAX starts.

This is process set-up, not a kernel: it must run before JAX initialises its backend (the
first computation or ``jax.devices()``; importing jax is fine) and changes nothing after.
It reads two jaxlib internals, each guarded: the strings in jaxlib's shared libraries (to
skip flags this jaxlib does not know -- an unknown flag aborts the process) and
``jax._src.xla_bridge._backends`` (whether the backend is up).  The conv / pool kernels
are in :mod:`cnnjax.fastconv`.

Threads (:func:`set_threads`): XLA's CPU client sizes its intra-op thread pools (Eigen's and the
runtime's) by the cores the process may run on when the backend starts, and reads no flag for it.
``set_threads(n)`` therefore restricts the process to ``n`` cores before JAX starts and
:func:`unpin` lets every thread run on any core again once the backend is up: the pools keep
``n`` threads, and the operating system places them (trials side by side are not tied to the
same core).  On the CPU the thread count changes the last bits of a run's numbers (a reduction
split over another number of threads; measured: training losses differ by ~2e-7 relative between
1 and 2 threads, the same thread count is bit-identical), which is why ``config.threads`` is a
setting of the run (:mod:`cnnjax.train.config`).
"""
from __future__ import annotations

import os
from typing import Optional


#: XLA flags :func:`configure` adds (each measured in interleaved rounds, see
#: benchmarks/RESULTS.md):
#:
#: ``--xla_cpu_experimental_ynn_fusion_type=-individual_convolution``: this jaxlib hands every
#:   convolution to YNNPACK, which runs a conv on ONE thread (a conv takes the same time on
#:   one core as on two); without it XLA uses Eigen's multi-threaded convolution.  Training
#:   1.2-2x faster with both cores free.  When other processes hold the cores it is ~15%
#:   slower than YNNPACK (measured pinned to one core): keep YNNPACK then by setting
#:   ``--xla_cpu_experimental_ynn_fusion_type=`` yourself (an empty list; user flags win).
#: ``--xla_cpu_scheduler_type=CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED``: order the step's ops to
#:   keep few buffers alive instead of XLA's default concurrency-optimised order (which runs
#:   independent ops -- e.g. a conv's input and weight gradients, or several layers' pieces --
#:   side by side, so their working sets share the caches).  Training at batch 256: 1.3-2.4x
#:   faster with YNNPACK convs and 1.6-3x with Eigen convs; batch 50: within +-10%.
FLAGS: tuple[str, ...] = (
    "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution",
    "--xla_cpu_scheduler_type=CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED",
)


def _xla_knows(flag: str) -> bool:
    """Whether the installed jaxlib knows an XLA flag and its enum values: an unknown flag or
    value in XLA_FLAGS aborts the process when JAX starts, so only known ones are added.
    Looks the strings up in jaxlib's shared libraries (~0.1 s)."""
    import glob
    import mmap

    name, _, value = flag.lstrip("-").partition("=")
    needles = [name.encode()]
    for tok in value.split(","):  # enum names; lower-case list items are matched upper-cased
        tok = tok.strip().lstrip("+-")
        if tok and tok.lower() not in ("true", "false") and not tok.replace(".", "").isdigit():
            needles.append(tok.upper().encode())
    try:
        import jaxlib
        libs = glob.glob(os.path.join(os.path.dirname(jaxlib.__file__), "*.so"))
    except Exception:  # pragma: no cover
        return False
    found = set()
    for path in libs:
        try:
            with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                found.update(n for n in needles if n not in found and m.find(n) >= 0)
        except (OSError, ValueError):
            continue
        if len(found) == len(needles):
            return True
    return False


def configure(extra_flags: Optional[str] = None) -> str:
    """Apply the process-level CPU settings that pay; call before JAX initialises its backend
    (before the first computation or ``jax.devices()``; importing jax is fine).

    Appends :data:`FLAGS` (and ``extra_flags``) to ``XLA_FLAGS``, keeping flags the
    user already set (a flag named there is not overridden) and skipping flags the installed
    jaxlib does not know.  Returns the resulting ``XLA_FLAGS``.  The flags only affect XLA's
    CPU backend.  After the backend is up nothing can change any more: the call warns and
    returns the current value.  Thread counts are left alone (XLA's pools already have one
    thread per core).
    """
    import warnings

    flags = os.environ.get("XLA_FLAGS", "")
    have = {f.split("=", 1)[0] for f in flags.split()}
    wanted = [f for f in (*FLAGS, *(extra_flags.split() if extra_flags else ()))
              if f.split("=", 1)[0] not in have]
    if _backend_initialised():
        if wanted:
            warnings.warn("cnnjax.xla_cpu.configure() called after JAX initialised its backend; "
                          f"XLA_FLAGS {' '.join(wanted)} not applied", stacklevel=2)
        return flags
    add = [f for f in wanted if _xla_knows(f)]
    new = " ".join([flags, *add]).strip()
    if new:
        os.environ["XLA_FLAGS"] = new
    return new


_threads = {"pinned": None, "all": None}


def set_threads(n: int) -> int:
    """Give XLA's CPU backend ``n`` intra-op threads (0: one per core this process may use);
    returns the count the backend runs (:func:`threads`).

    Before the backend starts, ``n`` of the process's cores are the only ones it may use until
    :func:`unpin` (chosen by the process id, so processes that start together begin on
    different cores).  After it started nothing can change: ValueError naming ``config.threads``
    when ``n`` is not the count it runs.  ValueError too when ``n`` exceeds the cores the process
    may use (a rerun elsewhere must not silently use fewer threads than its record says)."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    if n < 0:
        raise ValueError(f"config.threads must be >= 0 (0 = every core), got {n}")
    if _backend_initialised():
        if n and n != threads():
            raise ValueError(f"config.threads={n}: this process's XLA CPU backend already runs {threads()} thread(s) "
                             f"(it is fixed when JAX starts): train it in a fresh process, e.g. experiments.train")
        return threads()
    if allowed is None or not n:
        return threads()
    if n > len(allowed):
        raise ValueError(f"config.threads={n}: this process may use only {len(allowed)} core(s)")
    if n < len(allowed):
        first = os.getpid() % len(allowed)
        cores = {allowed[(first + i) % len(allowed)] for i in range(n)}
        if _threads["all"] is None:
            _threads["all"] = set(allowed)
        os.sched_setaffinity(0, cores)
        _threads["pinned"] = n
    return n


def threads() -> int:
    """XLA's CPU intra-op thread count in this process: the count :func:`set_threads` gave it, else
    the cores the process may use (what the backend sizes its pools by)."""
    if _threads["pinned"] is not None:
        return _threads["pinned"]
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def unpin() -> None:
    """Once JAX's backend is up, let every thread of the process run on every core it could use
    before :func:`set_threads` (the pools keep their size).  Does nothing before the backend
    started or when nothing was pinned."""
    if _threads["all"] is None or not _backend_initialised():
        return
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), _threads["all"])
        except OSError:  # a thread that ended meanwhile
            pass
    _threads["all"] = None


def _backend_initialised() -> bool:
    try:
        from jax._src import xla_bridge
        return bool(getattr(xla_bridge, "_backends", None))
    except Exception:  # pragma: no cover - private API moved
        return False
