"""Process-wide XLA settings for the CPU backend: :func:`configure` adds the XLA flags that
pay on a small-CNN training step (:data:`FLAGS`) to ``XLA_FLAGS`` before JAX starts.

This is process set-up, not a kernel: it must run before JAX initialises its backend (the
first computation or ``jax.devices()``; importing jax is fine) and changes nothing after.
It reads two jaxlib internals, each guarded: the strings in jaxlib's shared libraries (to
skip flags this jaxlib does not know -- an unknown flag aborts the process) and
``jax._src.xla_bridge._backends`` (whether the backend is up).  The conv / pool kernels
are in :mod:`cnnjax.fastconv`.
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


def _backend_initialised() -> bool:
    try:
        from jax._src import xla_bridge
        return bool(getattr(xla_bridge, "_backends", None))
    except Exception:  # pragma: no cover - private API moved
        return False
