r"""Sweep runner: train every point of a grid x seeds, each in its own resumable workdir.

  python -m launch.sweep --out=sweeps/blocks \
      --grid='model=padded_cnn,separable_cnn;learning_rate=1e-3,3e-3' --seeds=0,1,2 \
      --base='epochs=3,batch_size=128,dataset=fashion_mnist'

Syntax
  --grid   ';' separates axes, ',' separates an axis' values: ``name=v1,v2;name2=v3``.  An axis
           name is a flag of ``experiments.train`` (model, learning_rate, optimizer, epochs, ...)
           or, if it is not, an OPTION OF THE MODEL: ``activation=relu,sigmoid`` becomes
           ``--model_options=activation=relu`` / ``activation=sigmoid`` for the runs.  Option
           names are checked against every model of the sweep (``cnnjax.models``), so a typo is
           still an error.  Several option axes combine into one --model_options, keys sorted.
           ``seed`` (use --seeds), ``workdir`` (set per run) and ``model_options`` (write the
           options as their own axes) are not axes.  Numbers are normalised (``3e-3`` ->
           ``0.003``), so the same value always names the same run.
  --base   flags for every run, ``name=value`` items separated by ',' (model options allowed,
           as in --grid).  A grid axis overrides a --base key of the same name.
  --seeds  ``0,1,2``: every grid point runs once per seed (seed-major order: seed 0 of every
           point first, so an interrupted sweep already has one seed of everything).

Errors in any of these (empty axis, axis without values, duplicate axis or value, unknown flag
or option name, value of the wrong type) print one line ``error: ...`` and exit with status 2.

Runs and resuming
  Each run trains in ``OUT/runs/<name>``, where <name> is the run's grid values then its seed,
  e.g. ``model=separable_cnn,learning_rate=0.003,seed=1`` (characters other than letters,
  digits and ``._+-`` are %-escaped, so names are filesystem-safe and decode back).  The
  command is ``python -m experiments.train <base and grid flags> --seed=S --workdir=DIR
  --progress=plain``, stdout+stderr appended to ``OUT/runs/<name>/log.txt``.
  Rerunning the sweep skips runs whose summary.json says ``finished`` and relaunches the
  others with the same command: the trainer resumes from its latest checkpoint.  A run that
  exits non-zero (or exits 0 without a finished summary.json) is recorded in
  ``OUT/failures.jsonl`` and ``OUT/runs/<name>/status.json`` (exit code + the last lines of its
  log) and the sweep goes on; the sweep exits with status 1 if any run failed, 2 on bad usage,
  130 when interrupted (Ctrl-C stops the running trainers; their checkpoints remain).  If the
  sweep process itself is killed, its trainers are killed with it (Linux PR_SET_PDEATHSIG), and
  a per-run lock file stops two sweep processes from training the same run at once.

  ``OUT/sweep.json`` records the grid, base and seeds.  Running a different grid, base or seed
  list into an existing OUT is refused (nothing is written) unless ``--extend``, which adds the
  new runs to the sweep (a changed --base value then appears in the new runs' names, e.g.
  ``model=lenet5,epochs=10,seed=0``; runs identical to existing ones are not duplicated).
  After the runs, ``launch.report`` writes ``OUT/results.{md,csv,png}`` (``--curves`` adds
  ``OUT/curves.png``; ``--noreport`` skips it).

Parallelism
  ``--parallel=N`` runs N trainers at once; the default fills the machine: usable cores //
  ``--threads_per_run`` (at least 1).  With ``--limit_threads=auto`` (default) and N > 1, each
  trainer is pinned to its own ``--threads_per_run`` cores (sched_setaffinity, which XLA's
  thread pools respect) and gets ``OMP_NUM_THREADS`` etc. = threads_per_run; with one thread
  per run it also gets ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
  intra_op_parallelism_threads=1`` (appended to any XLA_FLAGS already set).  ``on`` applies
  this even for N = 1, ``off`` never.

Several hosts
  ``--shard=i/n`` (1-based, 1 <= i <= n) runs only the i-th of n disjoint slices of the
  expanded run list (run k goes to slice k mod n); the n slices partition the list exactly.
  Run the same command with ``--shard=1/3``, ``2/3``, ``3/3`` on three hosts, either with a
  shared OUT (runs never collide: each lives in its own directory) or with a copy each; then
  copy every host's ``OUT/runs/*`` into one OUT (``rsync -a hostB:OUT/runs/ OUT/runs/``;
  sweep.json is identical on every host) and run ``python -m launch.report OUT``.

  ``--dry_run`` lists the runs (with their state: finished / partial / failed / new) and the
  first run's command, and writes nothing.

Named studies (``python -m launch.ablation_blocks`` etc.) call :func:`study`, which fixes the
grid, seeds and base; every flag above still works there and --base keys are merged into the
study's base (so ``--base=epochs=1`` shortens a study).
"""
from __future__ import annotations

import ctypes
import dataclasses
import fcntl
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from typing import Callable, Optional, Sequence

from absl import flags

from experiments import common
# The grammar lives in launch/grid.py; its names are re-exported so that launch.sweep is the one
# module studies, reports and tests import.
from launch.grid import (  # noqa: F401
    DEFAULT_TRAIN_MODULE, FINISHED, MANAGEMENT_FLAGS, REPO_ROOT, TRAIN_FLAGS, Run, Stage,
    canonical_value, check_model_options, escape, expand, make_stage, parse_base, parse_grid,
    parse_name, parse_seeds, parse_shard, run_name, shard, unescape)

UsageError = common.UsageError

# --------------------------------------------------------------------------- run state


def read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_json(path: str, obj) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def finished_summary(workdir: str) -> Optional[dict]:
    s = read_json(os.path.join(workdir, "summary.json"))
    return s if isinstance(s, dict) and s.get("status") == FINISHED else None


def epochs_done(workdir: str) -> int:
    """Number of epochs logged in metrics.jsonl (0 if none)."""
    n = 0
    try:
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            for line in f:
                try:
                    json.loads(line)
                    n += 1
                except ValueError:
                    pass
    except OSError:
        pass
    return n


def state(workdir: str) -> str:
    if finished_summary(workdir):
        return "finished"
    if not os.path.isdir(workdir):
        return "new"
    st = read_json(os.path.join(workdir, "status.json")) or {}
    if st.get("status") == "failed":
        return f"failed (exit {st.get('exit_code')})"
    return f"partial ({epochs_done(workdir)} epochs logged)"


def load_stages(out: str, stage: Stage, extend: bool) -> tuple[list[Stage], bool]:
    """(stages of the sweep in OUT including ``stage``, whether sweep.json must be (re)written)."""
    path = os.path.join(out, "sweep.json")
    if not os.path.exists(path):
        return [stage], True
    recorded = read_json(path)
    try:
        stages = [Stage.from_json(s) for s in recorded["stages"]]
    except (TypeError, KeyError, ValueError):
        raise UsageError(f"{path} is not a sweep record; use another --out") from None
    if any(stage.same_as(s) for s in stages):
        return stages, False
    if not extend:
        raise UsageError(f"{out} holds a different sweep ({stages[-1].describe()}; this command: "
                         f"{stage.describe()}); use another --out, or --extend to add these runs")
    return stages + [stage], True


# --------------------------------------------------------------------------- launching


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
    run: Run
    workdir: str
    proc: subprocess.Popen
    log: object
    lock: object
    offset: int
    start: float
    slot: int


def _try_lock(workdir: str):
    f = open(os.path.join(workdir, ".lock"), "a")
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


def run_sweep(out: str, stage: Stage, *, extend: bool = False, shard_spec: tuple[int, int] = (1, 1),
              parallel: int = 1, threads_per_run: int = 1, limit_threads: str = "auto",
              dry_run: bool = False, train_cmd: Optional[Sequence[str]] = None,
              make_report: bool = True, curves: bool = False, poll: float = 0.2,
              echo: Callable[[str], None] = _print) -> int:
    """Run (or resume) the sweep in ``out``; returns the exit status (0 ok, 1 a run failed, 130 interrupted).

    ``train_cmd`` is the trainer command prefix (default ``python -m experiments.train``); the
    run's flags are appended to it."""
    out = os.path.abspath(out)
    stages, write = load_stages(out, stage, extend)
    runs_all = expand(stages)
    i, n = shard_spec
    runs = shard(runs_all, i, n)
    train_cmd = list(train_cmd or [sys.executable, "-m", DEFAULT_TRAIN_MODULE])
    where = f" (shard {i}/{n} of {len(runs_all)})" if n > 1 else ""
    wd = lambda r: os.path.join(out, "runs", r.name)

    if dry_run:
        new = "" if not write else " [sweep.json would be " + ("extended]" if len(stages) > 1 else "created]")
        echo(f"{len(runs)} runs{where} in {out}{new}")
        for r in runs:
            echo(f"  {state(wd(r)):<28} {r.name}")
        if runs:
            echo("first command: " + shlex.join(train_cmd + runs[0].argv(wd(runs[0]))))
        return 0

    os.makedirs(os.path.join(out, "runs"), exist_ok=True)
    if write:
        write_json(os.path.join(out, "sweep.json"),
                   {"version": 1, "stages": [s.to_json() for s in stages], "runs": [r.name for r in runs_all]})
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
        write_json(os.path.join(job.workdir, "status.json"), {"status": "failed", **rec})
        with open(os.path.join(out, "failures.jsonl"), "a") as f:
            f.write(json.dumps(rec) + "\n")
        last = tail[-1] if tail else "(empty log)"
        line(f"FAILED {job.run.name} {reason} ({_fmt_secs(time.time() - job.start)}): {last[:160]}"
             f"  [log: {os.path.join(job.workdir, 'log.txt')}]")

    def launch(run: Run, slot: int) -> bool:
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
        cmd = train_cmd + run.argv(workdir)
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
        write_json(os.path.join(workdir, "status.json"),
                   {"status": "running", "pid": proc.pid, "host": socket.gethostname(),
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
            write_json(os.path.join(job.workdir, "status.json"),
                       {"status": FINISHED, "exit_code": 0, "seconds": round(secs, 1)})
            line(f"done {job.run.name} acc={_acc(s)} ({_fmt_secs(secs)})")
        else:
            counts["failed"] += 1
            if code == 0:
                reason = "exited 0 without a finished summary.json"
            elif code < 0:
                reason = f"killed by signal {-code}"
            elif code == 2:
                reason = "exit 2 (flags refused)"
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
            write_json(os.path.join(job.workdir, "status.json"), {"status": "interrupted"})
            job.lock.close()
        echo(f"sweep interrupted: {len(jobs)} running run(s) stopped; rerun the same command to resume")
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

    summary = ", ".join(f"{v} {k}" for k, v in counts.items() if v or k == "failed")
    echo(f"sweep: {total} runs{where}: {summary}")
    if make_report:
        from launch import report as report_mod
        try:
            rows = report_mod.report(out, curves=curves)
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

_F: dict = {}  # the CLI's flags, defined only by define_flags() so that importing is side-effect free


def define_flags() -> None:
    """Define the sweep's absl flags (once); called by the CLI and by :func:`study`."""
    if _F:
        return
    d = flags
    _F.update(
        out=d.DEFINE_string("out", None, "Sweep directory (runs in OUT/runs/<name>)."),
        grid=d.DEFINE_string("grid", "", "Axes 'name=v1,v2;name2=v3' (train flags, or model options)."),
        seeds=d.DEFINE_string("seeds", "0", "Comma list of seeds; every grid point runs once per seed."),
        base=d.DEFINE_string("base", "", "Flags for every run: 'epochs=3,batch_size=128,dataset=fashion_mnist'."),
        parallel=d.DEFINE_integer("parallel", 0, "Runs at once; 0 = usable cores // --threads_per_run."),
        threads_per_run=d.DEFINE_integer("threads_per_run", 1, "CPU cores per run when threads are limited."),
        limit_threads=d.DEFINE_enum("limit_threads", "auto", ["auto", "on", "off"],
                                    "Pin each run to --threads_per_run cores (+ single-thread XLA_FLAGS when 1); "
                                    "auto = when --parallel > 1."),
        shard=d.DEFINE_string("shard", "1/1", "Run only slice i of n (1-based) of the run list, e.g. 2/4."),
        extend=d.DEFINE_bool("extend", False, "Add this grid/base/seeds to the existing sweep in --out."),
        dry_run=d.DEFINE_bool("dry_run", False, "List the runs and their state; write nothing."),
        report=d.DEFINE_bool("report", True, "Write OUT/results.{md,csv,png} at the end (launch.report)."),
        curves=d.DEFINE_bool("curves", False, "Also plot test accuracy vs epoch into OUT/curves.png."),
        train_module=d.DEFINE_string("train_module", DEFAULT_TRAIN_MODULE,
                                     "Trainer, run as 'python -m MODULE' (tests substitute a fake)."),
    )


_STUDY_BASE = {"base": ""}


def main(argv):
    v = {k: f.value for k, f in _F.items()}
    if not v["out"]:
        raise UsageError("--out is required (the sweep directory)")
    if v["threads_per_run"] < 1:
        raise UsageError("--threads_per_run must be >= 1")
    if v["parallel"] < 0:
        raise UsageError("--parallel must be >= 0 (0 = fill the cores)")
    stage = make_stage(v["grid"], v["base"], v["seeds"], _STUDY_BASE["base"])
    parallel = v["parallel"] or default_parallel(v["threads_per_run"])
    return run_sweep(v["out"], stage, extend=v["extend"], shard_spec=parse_shard(v["shard"]),
                     parallel=parallel, threads_per_run=v["threads_per_run"], limit_threads=v["limit_threads"],
                     dry_run=v["dry_run"], train_cmd=[sys.executable, "-m", v["train_module"]],
                     make_report=v["report"], curves=v["curves"])


def study(name: str, grid: str, seeds: str, base: str, curves: bool = False) -> None:
    """Entry point of a named study script: fixed grid/seeds/base, default --out=sweeps/<name>.

    Command-line flags still apply; --base keys are merged over ``base``."""
    define_flags()
    flags.FLAGS.set_default("grid", grid)
    flags.FLAGS.set_default("seeds", seeds)
    flags.FLAGS.set_default("out", os.path.join("sweeps", name))
    flags.FLAGS.set_default("curves", curves)
    _STUDY_BASE["base"] = base
    common.run(main)


if __name__ == "__main__":
    # `python -m launch.sweep` runs this file as __main__; make `import launch.sweep` (done by
    # launch.report) find this module instead of executing it again (its flags would clash).
    import launch
    sys.modules["launch.sweep"] = launch.sweep = sys.modules[__name__]
    define_flags()
    common.run(main)
