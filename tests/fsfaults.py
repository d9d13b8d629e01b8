"""Read-only and full-disk directories for tests, as root and as an unprivileged user alike.

Two mechanisms, so that each case runs wherever the kernel allows either:

- ``read_only(path)``: file permissions -- ``chattr -R +i`` (immutable: refuses root too) when
  running as root, ``chmod -R a-w`` otherwise.  Writes fail with EPERM / EACCES.
- ``run_in_mount_namespace(argv, mounts)``: the command runs in a private mount namespace
  (``unshare --mount``; unprivileged: ``--user --map-root-user`` as well) after the given
  ``mount`` commands, so a read-only bind mount (EROFS) or a small tmpfs (ENOSPC) needs no
  privileges and leaves the host's mounts alone.

Where a mechanism is unavailable the test skips saying exactly which command failed and how.
"""
import contextlib
import os
import shlex
import subprocess

import pytest

MOUNT_FAILED = 97  # the exit status of the shell wrapper when a mount inside the namespace fails


def _unshare() -> list[str]:
    return ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--mount"]


def run_in_mount_namespace(argv, mounts, after="", **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run(argv, **kwargs)`` inside a private mount namespace, after ``mounts``
    (``mount`` argument lists, run in order); ``after`` is a shell command run there afterwards
    (e.g. copying files out of a tmpfs before it vanishes with the namespace).  The result's
    returncode is argv's."""
    try:
        probe = subprocess.run([*_unshare(), "true"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("no `unshare` command here (util-linux): cannot make a private mount namespace")
    if probe.returncode != 0:
        pytest.skip(f"`{' '.join(_unshare())} true` fails here (private mount namespaces not allowed): "
                    f"{probe.stderr.strip()}")
    mount_lines = " && ".join(f"mount {shlex.join(m)}" for m in mounts)
    script = f'{mount_lines} || exit {MOUNT_FAILED}; "$@"; rc=$?; {after or ":"}; exit $rc'
    proc = subprocess.run([*_unshare(), "sh", "-c", script, "sh", *argv], **kwargs)
    if proc.returncode == MOUNT_FAILED:
        pytest.skip(f"`{mount_lines}` fails in a private mount namespace here: {proc.stderr}")
    return proc


def read_only_mount(path) -> list[list[str]]:
    """The ``mounts`` that make ``path`` a read-only bind mount of itself."""
    return [["--bind", str(path), str(path)], ["-o", "remount,bind,ro", str(path)]]


def _set_writable(path, writable: bool) -> None:
    if os.geteuid() == 0:
        proc = subprocess.run(["chattr", "-R", "-i" if writable else "+i", str(path)], capture_output=True, text=True)
        if proc.returncode != 0 and not writable:
            subprocess.run(["chattr", "-R", "-i", str(path)], capture_output=True)
            pytest.skip(f"`chattr -R +i {path}` fails on this file system: {proc.stderr.strip()}")
        return
    for root, dirs, files in os.walk(path):
        for name in [root] + [os.path.join(root, n) for n in files]:
            mode = os.stat(name).st_mode
            os.chmod(name, (mode | 0o200) if writable else (mode & ~0o222))


@contextlib.contextmanager
def read_only(path):
    """``path`` and everything in it cannot be written (nor files added or removed) inside the
    ``with`` block, by this process or its children, root or not; restored afterwards."""
    try:
        _set_writable(path, False)
    except FileNotFoundError:
        pytest.skip("no `chattr` command here (e2fsprogs): root cannot be refused a write without it")
    try:
        probe = os.path.join(path, ".write-probe")
        with pytest.raises(OSError):  # the premise: otherwise the test would prove nothing
            open(probe, "w").close()
        yield
    finally:
        _set_writable(path, True)
