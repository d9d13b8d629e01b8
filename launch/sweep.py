r"""Run a study: every run of a study file, each in its own resumable work directory.

  python -m launch.sweep --config=experiments/configs/ablation_blocks.py --out=sweeps/blocks
  python -m launch.sweep --config=experiments/configs/optimizers.py --config.epochs=1 --dry_run

A study is a config file with ``get_config()`` (the base run) and ``get_sweep()`` (one dict of
overrides per run): see :mod:`launch.study` and ``experiments/configs/*.py``.  ``--config.KEY=VALUE``
changes the base of every run, as for ``experiments.train`` (``--config.epochs=1`` shortens a
study); a key the study sweeps cannot be set this way.  Every run is validated before anything
is written: a bad key or value prints one line ``error: ...`` and exits with status 2.

Runs and resuming
  Each run trains in ``OUT/runs/<name>``, <name> being its overrides with the seed last, e.g.
  ``model=separable_cnn,seed=1`` or ``model_options.activation=sigmoid,seed=0`` (characters
  other than letters, digits and ``._+-`` are %-escaped).  The command is ``python -m
  experiments.train --config=STUDY <this command's --config.* overrides> <the run's overrides
  as --config.KEY=VALUE> --config.progress=plain --workdir=OUT/runs/<name>``, stdout+stderr
  appended to ``OUT/runs/<name>/log.txt``.  --out defaults to ``sweeps/<study file name>``.
  Rerunning the sweep skips finished runs and relaunches the others with the same command: the
  trainer resumes from its latest checkpoint.  A run that exits non-zero (or exits 0 without a
  finished summary.json) is recorded in ``OUT/failures.jsonl`` and ``OUT/runs/<name>/status.json``
  (exit code + the last lines of its log) and the sweep goes on; the sweep exits with status 1 if
  any run failed, 2 on bad usage, 130 when interrupted (Ctrl-C or SIGTERM stops the running
  trainers; their checkpoints remain).  If the sweep process itself is killed, its trainers are
  killed with it (Linux PR_SET_PDEATHSIG), and a lock file per run stops two sweep processes
  from training the same run at once.

  ``OUT/sweep.json`` records the study file, the command's overrides and every run (name,
  overrides, config).  A study whose runs differ from those (another study, a changed study
  file, another --config.epochs, ...) is refused in one line, nothing written: use another
  --out.  Settings that do not change the numbers (``cnnjax.config.run_fields()``: data_dir,
  progress, ...) may differ.  After the runs, ``launch.report`` writes ``OUT/results.{md,csv,png}``
  and ``OUT/curves.png`` (``--nocurves``, ``--noreport`` to skip).

Parallelism
  ``--parallel=N`` runs N trainers at once; the default fills the machine: usable cores //
  ``--threads_per_run`` (at least 1).  With ``--limit_threads=auto`` (default) and N > 1, each
  trainer is pinned to its own ``--threads_per_run`` cores (sched_setaffinity, which XLA's
  thread pools respect) and gets ``OMP_NUM_THREADS`` etc. = threads_per_run; with one thread
  per run it also gets ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
  intra_op_parallelism_threads=1`` (appended to any XLA_FLAGS already set).  ``on`` applies
  this even for N = 1, ``off`` never.

Several hosts
  ``--shard=i/n`` (1-based, 1 <= i <= n) runs only the i-th of n disjoint slices of the run
  list (run k goes to slice k mod n).  Run the same command with ``--shard=1/3``, ``2/3``,
  ``3/3`` on three hosts, with a shared OUT or a copy each; then copy every host's
  ``OUT/runs/*`` into one OUT (``rsync -a hostB:OUT/runs/ OUT/runs/``; sweep.json is identical
  on every host) and run ``python -m launch.report OUT``.

  ``--dry_run`` lists the runs (with their state: finished / partial / failed / new) and the
  first run's command, and writes nothing.
"""
from __future__ import annotations

import ctypes
import dataclasses
import fcntl
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from typing import Callable, Optional, Sequence

from absl import flags

from cnnjax import workdir as workdir_lib
from experiments import common
from launch import report
from launch import study as study_lib

UsageError = common.UsageError
DEFAULT_TRAIN_MODULE = "experiments.train"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCK = ".sweep.lock"  # not the trainer's .lock: the sweep holds this one while its trainer runs

# --------------------------------------------------------------------------- run state


def finished_summary(workdir: str) -> Optional[dict]:
    try:
        return workdir_lib.Workdir(workdir).summary()
    except workdir_lib.WorkdirError:
        return None


def epochs_done(workdir: str) -> int:
    """Number of epochs logged in metrics.jsonl (0 if none or unreadable)."""
    try:
        return len(workdir_lib.Workdir(workdir).metrics())
    except workdir_lib.WorkdirError:
        return 0


def state(workdir: str) -> str:
    if finished_summary(workdir):
        return "finished"
    if not os.path.isdir(workdir):
        return "new"
    st = report.run_status(workdir)
    if st.get("status") == "failed":
        return f"failed (exit {st.get('exit_code')})"
    return f"partial ({epochs_done(workdir)} epochs logged)"


def check_record(out: str, st: study_lib.Study) -> bool:
    """Whether OUT/sweep.json must be written; UsageError when it records a different sweep."""
    old = report.sweep_record(out)
    if old is None:
        return True
    new = json.loads(json.dumps(st.record()))  # tuples as lists, as read back
    old_runs = {r.get("name"): r.get("config") for r in old.get("runs", []) if isinstance(r, dict)}
    new_runs = {r["name"]: r["config"] for r in new["runs"]}
    if old_runs == new_runs:
        return False
    raise UsageError(f"{out} holds a different sweep ({old.get('study')}, {len(old_runs)} runs; "
                     f"{_difference(old_runs, new_runs)}); use another --out")


def _difference(old: dict, new: dict) -> str:
    for name, cfg in new.items():
        if name not in old:
            return f"this command adds run {name}"
        changed = [k for k in cfg if (old[name] or {}).get(k) != cfg[k]]
        if changed:
            k = changed[0]
            return f"run {name}: {k} was {(old[name] or {}).get(k)!r}, now {cfg[k]!r}"
    return f"this command lacks run {next(n for n in old if n not in new)}"


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must be i/n (e.g. 2/4), got {text!r}") from None
    if not 1 <= i <= n:
        raise UsageError(f"--shard={text}: need 1 <= i <= n (i is 1-based)")
    return i, n


def shard(runs: Sequence, i: int, n: int) -> list:
    """The i-th (1-based) of n disjoint slices: elements k with k % n == i - 1."""
    return [r for k, r in enumerate(runs) if k % n == i - 1]


# --------------------------------------------------------------------------- launching


def write_status(workdir: str, status: dict) -> None:
    workdir_lib.write_json(os.path.join(workdir, report.STATUS), status)


def _child_env(limit: bool, threads: int) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if limit:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
            env[var] = str(threads)
        if threads == 1:
            extra = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
            env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {extra}".strip()
    return env


try:  # loaded in the parent: the forked child only calls into it
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _PRCTL = None


def _preexec(cpus: Optional[list[int]]):
    def fn():
        if _PRCTL is not None:  # die with the sweep: no orphan trainer keeps writing its workdir
            _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if cpus:
            try:
                os.sched_setaffinity(0, cpus)
            except (OSError, AttributeError):
                pass
    return fn


def _log_tail(path: str, offset: int, lines: int = 20) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    # progress bars redraw with '\r': keep the last state of each line
    return [l.rsplit("\r", 1)[-1].rstrip() for l in text.splitlines() if l.strip()][-lines:]


@dataclasses.dataclass
class _Job:
    run: study_lib.Run
    workdir: str
    proc: subprocess.Popen
    log: object
    lock: object
    offset: int
    start: float
    slot: int


def _try_lock(workdir: str):
    f = open(os.path.join(workdir, LOCK), "a")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    return f


def _print(line: str) -> None:
    """print() that survives a closed stdout (``| head``, a dead ``tee``): the runs go on."""
    try:
        print(line, flush=True)
    except (BrokenPipeError, OSError):
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass


def _fmt_secs(s: float) -> str:
    return f"{s:.0f}s" if s < 600 else f"{s / 60:.0f}min"


def default_parallel(threads_per_run: int) -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, threads_per_run))


def run_sweep(out: str, st: study_lib.Study, *, shard_spec: tuple[int, int] = (1, 1),
              parallel: int = 1, threads_per_run: int = 1, limit_threads: str = "auto",
              dry_run: bool = False, train_cmd: Optional[Sequence[str]] = None,
              make_report: bool = True, curves: bool = True, poll: float = 0.2,
              echo: Callable[[str], None] = _print) -> int:
    """Run (or resume) study ``st`` in ``out``; returns the exit status (0 ok, 1 a run failed, 130 interrupted).

    ``train_cmd`` is the trainer command prefix (default ``python -m experiments.train``); the
    run's arguments (:meth:`launch.study.Study.command`) are appended to it."""
    out = os.path.abspath(out)
    write = check_record(out, st)
    runs_all = list(st.runs)
    i, n = shard_spec
    runs = shard(runs_all, i, n)
    train_cmd = list(train_cmd or [sys.executable, "-m", DEFAULT_TRAIN_MODULE])
    where = f" (shard {i}/{n} of {len(runs_all)})" if n > 1 else ""
    wd = lambda r: os.path.join(out, "runs", r.name)

    if dry_run:
        echo(f"{len(runs)} runs{where} in {out}" + (" [sweep.json would be created]" if write else ""))
        for r in runs:
            echo(f"  {state(wd(r)):<28} {r.name}")
        if runs:
            echo("first command: " + shlex.join(train_cmd + st.command(runs[0], wd(runs[0]))))
        return 0

    os.makedirs(os.path.join(out, "runs"), exist_ok=True)
    if write:
        workdir_lib.write_json(os.path.join(out, study_lib.RECORD), st.record())
    parallel = max(1, parallel)
    limit = limit_threads == "on" or (limit_threads == "auto" and parallel > 1)
    env = _child_env(limit, threads_per_run)
    try:
        cpus_all = sorted(os.sched_getaffinity(0))
    except AttributeError:
        cpus_all = []
    echo(f"sweep: {len(runs)} runs{where} in {out}, {parallel} at a time"
         + (f", {threads_per_run} thread(s) each" if limit else ""))

    total, k = len(runs), 0
    counts = {"done": 0, "skipped": 0, "failed": 0, "busy": 0}
    pending = list(runs)
    jobs: dict[int, _Job] = {}

    def line(msg):
        nonlocal k
        k += 1
        echo(f"[{k}/{total}] {msg}")

    def record_failure(job: _Job, code, reason: str):
        tail = _log_tail(os.path.join(job.workdir, "log.txt"), job.offset)
        rec = {"name": job.run.name, "exit_code": code, "reason": reason,
               "seconds": round(time.time() - job.start, 1), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "host": socket.gethostname(), "log": os.path.join(job.workdir, "log.txt"), "log_tail": tail}
        write_status(job.workdir, {"status": "failed", **rec})
        with open(os.path.join(out, "failures.jsonl"), "a") as f:
            f.write(json.dumps(rec) + "\n")
        last = tail[-1] if tail else "(empty log)"
        line(f"FAILED {job.run.name} {reason} ({_fmt_secs(time.time() - job.start)}): {last[:160]}"
             f"  [log: {os.path.join(job.workdir, 'log.txt')}]")

    def launch(run: study_lib.Run, slot: int) -> bool:
        workdir = wd(run)
        s = finished_summary(workdir)
        if s:
            counts["skipped"] += 1
            line(f"skip {run.name} (finished) acc={_acc(s)}")
            return False
        os.makedirs(workdir, exist_ok=True)
        lock = _try_lock(workdir)
        if lock is None:
            counts["busy"] += 1
            line(f"busy {run.name} (another sweep process is training it)")
            return False
        if finished_summary(workdir):  # finished by another process while we waited for the lock
            lock.close()
            counts["skipped"] += 1
            line(f"skip {run.name} (finished)")
            return False
        cmd = train_cmd + st.command(run, workdir)
        log_path = os.path.join(workdir, "log.txt")
        log = open(log_path, "ab")
        done = epochs_done(workdir)
        log.write(f"==== {time.strftime('%Y-%m-%d %H:%M:%S')} {socket.gethostname()}: "
                  f"{shlex.join(cmd)}\n".encode())
        log.flush()
        offset = log.tell()
        cpus = None
        if limit and cpus_all:
            first = slot * threads_per_run
            cpus = [cpus_all[(first + j) % len(cpus_all)] for j in range(threads_per_run)]
        try:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, preexec_fn=_preexec(cpus))
        except OSError as e:
            log.close()
            lock.close()
            raise UsageError(f"cannot start the trainer {shlex.join(train_cmd)}: {e}") from None
        write_status(workdir, {"status": "running", "pid": proc.pid, "host": socket.gethostname(),
                    "command": cmd, "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
        jobs[slot] = _Job(run, workdir, proc, log, lock, offset, time.time(), slot)
        echo(f"  start {run.name}" + (f" (resuming after {done} logged epochs)" if done else ""))
        return True

    def finish(job: _Job, code: int):
        job.log.close()
        secs = time.time() - job.start
        s = finished_summary(job.workdir)
        if code == 0 and s:
            counts["done"] += 1
            write_status(job.workdir, {"status": workdir_lib.FINISHED, "exit_code": 0, "seconds": round(secs, 1)})
            line(f"done {job.run.name} acc={_acc(s)} ({_fmt_secs(secs)})")
        else:
            counts["failed"] += 1
            if code == 0:
                reason = "exited 0 without a finished summary.json"
            elif code < 0:
                reason = f"killed by signal {-code}"
            elif code == 2:
                reason = "exit 2 (config or work directory refused)"
            elif code == 3:
                reason = "exit 3 (NaN/inf loss)"
            else:
                reason = f"exit {code}"
            record_failure(job, code, reason)
        job.lock.close()

    def on_term(signum, frame):
        raise KeyboardInterrupt
    try:  # `kill SWEEP` stops the trainers like Ctrl-C does
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        previous = None
    try:
        while pending or jobs:
            for slot in range(parallel):
                while slot not in jobs and pending:
                    launch(pending.pop(0), slot)
            for slot, job in list(jobs.items()):
                code = job.proc.poll()
                if code is not None:
                    del jobs[slot]
                    finish(job, code)
            if jobs:
                time.sleep(poll)
    except KeyboardInterrupt:
        for job in jobs.values():
            job.proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 20
        for job in jobs.values():
            try:
                job.proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                job.proc.kill()
                job.proc.wait()
            job.log.close()
            write_status(job.workdir, {"status": "interrupted"})
            job.lock.close()
        echo(f"sweep interrupted: {len(jobs)} running run(s) stopped; rerun the same command to resume")
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

    summary = ", ".join(f"{v} {k}" for k, v in counts.items() if v or k == "failed")
    echo(f"sweep: {total} runs{where}: {summary}")
    if make_report:
        try:
            rows = report.report(out, curves=curves)
            echo(f"report: {len(rows)} configurations -> {os.path.join(out, 'results.md')}")
        except Exception as e:  # noqa: BLE001 - a report problem must not hide the sweep's status
            echo(f"report failed: {type(e).__name__}: {e}")
    if counts["failed"]:
        echo(f"{counts['failed']} run(s) failed: see {os.path.join(out, 'failures.jsonl')}")
        return 1
    return 0


def _acc(summary: dict) -> str:
    a = summary.get("final_test_accuracy")
    return f"{a:.4f}" if isinstance(a, (int, float)) else "?"


# --------------------------------------------------------------------------- CLI


def define_flags() -> None:
    """The command line's flags (called by ``python -m launch.sweep`` only: importing defines none)."""
    from ml_collections import config_flags
    config_flags.DEFINE_config_file("config", None, "Study file (FILE[:ARG]) with get_config() and get_sweep(); "
                                    "--config.KEY=VALUE overrides the base of every run.",
                                    lock_config=False, accept_new_attributes=True)
    flags.DEFINE_string("out", None, "Sweep directory (runs in OUT/runs/<name>); default sweeps/<study file name>.")
    flags.DEFINE_integer("parallel", 0, "Runs at once; 0 = usable cores // --threads_per_run.")
    flags.DEFINE_integer("threads_per_run", 1, "CPU cores per run when threads are limited.")
    flags.DEFINE_enum("limit_threads", "auto", ["auto", "on", "off"],
                      "Pin each run to --threads_per_run cores (+ single-thread XLA_FLAGS when 1); "
                      "auto = when --parallel > 1.")
    flags.DEFINE_string("shard", "1/1", "Run only slice i of n (1-based) of the run list, e.g. 2/4.")
    flags.DEFINE_bool("dry_run", False, "List the runs and their state; write nothing.")
    flags.DEFINE_bool("report", True, "Write OUT/results.{md,csv,png} at the end (launch.report).")
    flags.DEFINE_bool("curves", True, "With the report, plot test accuracy vs epoch into OUT/curves.png.")
    flags.DEFINE_string("train_module", DEFAULT_TRAIN_MODULE,
                        "Trainer, run as 'python -m MODULE' (tests substitute a fake).")


def command_overrides(argv: Sequence[str], config_flag) -> tuple[list[str], list[str]]:
    """(the ``--config.KEY=VALUE`` arguments of ``argv`` as given, the keys they set).  The
    two-word form ``--config.KEY VALUE`` is joined into one argument."""
    from ml_collections import config_flags
    keys = list(config_flags.get_override_values(config_flag))
    args = []
    for i, arg in enumerate(argv):
        m = re.match(r"--?(no)?config\.([^=]+)(=.*)?$", arg)
        if not m:
            continue
        takes_next = not m.group(1) and m.group(3) is None and i + 1 < len(argv) and not argv[i + 1].startswith("-")
        args.append(f"--config.{m.group(2)}={argv[i + 1]}" if takes_next else arg)
    return args, keys


def main(argv):
    f = flags.FLAGS
    if f.config is None:
        raise UsageError("--config=STUDY_FILE is required, e.g. --config=experiments/configs/ablation_blocks.py")
    if f.threads_per_run < 1:
        raise UsageError("--threads_per_run must be >= 1")
    if f.parallel < 0:
        raise UsageError("--parallel must be >= 0 (0 = fill the cores)")
    from ml_collections import config_flags
    file = config_flags.get_config_filename(f["config"])
    cli_args, cli_keys = command_overrides(sys.argv, f["config"])
    st = study_lib.load(file, f.config, cli_args, cli_keys)
    out = f.out or os.path.join("sweeps", os.path.splitext(os.path.basename(file.split(":", 1)[0]))[0])
    return run_sweep(out, st, shard_spec=parse_shard(f.shard),
                     parallel=f.parallel or default_parallel(f.threads_per_run), threads_per_run=f.threads_per_run,
                     limit_threads=f.limit_threads, dry_run=f.dry_run, train_cmd=[sys.executable, "-m", f.train_module],
                     make_report=f.report, curves=f.curves)


if __name__ == "__main__":
    define_flags()
    common.run(main)
