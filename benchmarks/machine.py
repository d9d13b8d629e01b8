"""What every benchmark records about the machine it ran on: the load average, the CPU, the
cores it may use and the software versions (the GUIDE: report speed with the load average)."""
from __future__ import annotations

import os
import platform


def loadavg() -> list[float]:
    """The 1 / 5 / 15-minute load averages, rounded to 2 decimals; [] where the OS has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def load_text(loads: list[float] | None = None) -> str:
    """``loads`` (default: now) as '1.52/1.31/0.97'; '?' when unknown."""
    loads = loadavg() if loads is None else loads
    return "/".join(f"{x:.2f}" for x in loads) or "?"


def threads() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_info() -> dict:
    """{'cpu': the CPU's model name, 'cores': os.cpu_count(), 'python': its version}."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


def versions(packages) -> dict:
    """Installed version of each package name (None where it is not installed)."""
    from importlib import metadata
    out = {}
    for p in packages:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out
