r"""Run a study on Ray: every run of a study file is a Ray task with its own resumable work directory.

  python -m launch.sweep --config=experiments/configs/ablation_blocks.py --out=results/ablation_blocks
  python -m launch.sweep --config=experiments/configs/optimizers.py --config.epochs=1 --dry_run
  python -m launch.sweep --config=STUDY --out=/shared/OUT --ray_address=auto      # an existing cluster

A study is a config file with ``get_config()`` and ``get_sweep()`` (:mod:`launch.study`);
``--config.KEY=VALUE`` changes the base of every run.  Every run is validated before anything is
written or any cluster started (bad key or value: one line ``error: ...``, exit status 2).

With no ``--ray_address`` ``ray.init()`` starts a local cluster (``--num_cpus``, default the
machine); ``auto`` / ``HOST:PORT`` joins a running one, and OUT must then be on storage every node
sees.  Each run is a task declaring ``--cpus_per_run`` / ``--gpus_per_run``, with
``config.threads`` = its CPUs (:func:`trial_threads`; the machine's cores / ``--cpus_per_run``
runs train at once, each with that many XLA threads), that trains in ``OUT/runs/<name>`` and logs
to its ``log.txt``.  Its worker process trains runs of one thread count only (one pool of Ray
workers per count, :data:`THREADS_ENV` in the task's ``runtime_env``) and is reused from run to
run: the first run in it sets the XLA flags and threads before JAX starts (:func:`_train`); the
next ones skip starting Python, importing JAX and loading the executables their predecessor
already used (~4 s of a small claim run's 17 s here); a worker that dies is retried (``--max_retries``)
and resumes from its checkpoint.  ``--processes_per_run=P`` trains each run as one P-process
data-parallel job (:func:`gang`).  Finished runs are skipped on a rerun; a failed run is recorded
in ``OUT/failures.jsonl`` and its ``status.json`` and the sweep goes on (exit 1 at the end);
Ctrl-C / SIGTERM cancel the tasks (exit 130).  Then ``launch.report`` writes
``OUT/results.{md,csv,png}`` and ``OUT/curves.png`` -- or, for a study file that names a
``REPORT`` module (e.g. experiments/configs/transfer.py: ``launch.transfer``), that module's
``report(out)`` writes the study's own tables.  Details: docs/sweeps.md.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Callable, Optional, Sequence

from absl import flags

from cnnjax.train import config as config_lib
from cnnjax.train import workdir as workdir_lib
from experiments import common
from launch import report
from launch import study as study_lib

UsageError = common.UsageError
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GLOO = {"JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo"}  # CPU collectives across processes
#: set in each run task's runtime_env to the run's config.threads: Ray starts and reuses workers
#: per distinct environment, so a worker only ever trains runs of the thread count its JAX runs
THREADS_ENV = "CNNJAX_TRIAL_THREADS"

# --------------------------------------------------------------------------- run state


def finished_summary(workdir: str) -> Optional[dict]:
    try:
        return workdir_lib.Workdir(workdir).summary()
    except workdir_lib.WorkdirError:
        return None


def state(workdir: str) -> str:
    if finished_summary(workdir):
        return "finished"
    if not os.path.isdir(workdir):
        return "new"
    st = report.run_status(workdir)
    if st.get("status") == "failed":
        return "failed"
    try:
        return f"partial ({len(workdir_lib.Workdir(workdir).metrics())} epochs logged)"
    except workdir_lib.WorkdirError:
        return "partial"


def _as_recorded(run_config):
    """A run's recorded config with the settings added since it was recorded filled in as such
    runs had them (``config.from_dict(older_run=True)``), so a new setting does not turn an
    existing OUT into 'a different sweep'; a record that does not parse is compared as it is."""
    try:
        return config_lib.to_dict(config_lib.from_dict(run_config, check_model=False, older_run=True))
    except (config_lib.ConfigError, TypeError):
        return run_config


def check_record(out: str, st: study_lib.Study) -> bool:
    """Whether OUT/sweep.json must be (re)written; UsageError when it records a different sweep.

    A sweep that keeps every recorded run as it was and adds runs (more seeds, another value) is
    the same sweep grown: the record is rewritten, the finished runs are reused.  A recorded run
    that changed or is missing makes it a different sweep."""
    old = report.sweep_record(out)
    if old is None:
        return True
    old_runs = {r.get("name"): _as_recorded(r.get("config")) for r in old.get("runs", []) if isinstance(r, dict)}
    new_runs = {r["name"]: _as_recorded(r["config"]) for r in json.loads(json.dumps(st.record()))["runs"]}
    if old_runs == new_runs:
        return False
    changed = [n for n in new_runs if n in old_runs and old_runs[n] != new_runs[n]]
    missing = [n for n in old_runs if n not in new_runs]
    if not changed and not missing:
        return True
    why = (f"run {changed[0]}: " + ", ".join(f"{k} was {(old_runs[changed[0]] or {}).get(k)!r}, now {v!r}"
                                             for k, v in new_runs[changed[0]].items()
                                             if (old_runs[changed[0]] or {}).get(k) != v)[:200]
           if changed else f"this command lacks run {missing[0]}")
    raise UsageError(f"{out} holds a different sweep ({old.get('study')}, {len(old_runs)} runs; {why}); "
                     f"use another --out")


# --------------------------------------------------------------------------- in the Ray worker


def trial_threads(config: dict, workdir: str, cpus_per_run: float) -> int:
    """``config.threads`` of a trial: the study's own value when it sets one (not 0); else, for a
    run already started in ``workdir``, the value its config.json recorded (0 for a run made before
    the setting: resumed as it was made); else the CPUs the trial declares (at least 1), so
    concurrent trials do not each run a thread per core."""
    if config.get("threads"):
        return int(config["threads"])
    try:
        recorded = workdir_lib.read_json(os.path.join(workdir, workdir_lib.CONFIG))
    except workdir_lib.WorkdirError:  # the trial reports it
        recorded = None
    if isinstance(recorded, dict):
        return int(recorded.get("threads") or 0)
    return max(1, int(cpus_per_run))


@contextlib.contextmanager
def _logging_to(workdir: str, what: str):
    """Send this worker's stdout/stderr (Python and C level) to ``workdir/log.txt`` while the
    block runs (yields log()); then back where they went before, so a reused worker's next run
    (or Ray's own messages) do not write into this run's log."""
    os.makedirs(workdir, exist_ok=True)
    fd = os.open(os.path.join(workdir, "log.txt"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    sys.stdout.flush(), sys.stderr.flush()
    saved = os.dup(1), os.dup(2), sys.stdout, sys.stderr
    os.dup2(fd, 1), os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = sys.stderr = open(1, "w", buffering=1, closefd=False)
    try:
        print(f"==== {time.strftime('%Y-%m-%d %H:%M:%S')} {socket.gethostname()} pid {os.getpid()}: {what}", flush=True)
        yield lambda line: print(line, flush=True)
    finally:
        sys.stdout.flush()
        os.dup2(saved[0], 1), os.dup2(saved[1], 2)
        os.close(saved[0]), os.close(saved[1])
        sys.stdout, sys.stderr = saved[2], saved[3]


def _train(config: dict, workdir: str, what: str, on_epoch=None, process: Optional[tuple] = None) -> dict:
    """Train one run in this worker process (the first run in it starts JAX with the run's XLA
    flags and threads; a reused worker has: launch.sweep gives it runs of the same thread count);
    returns {"ok": bool, ...}.  A Python error is a result (not retried: the same config fails the
    same way); only the process dying is retried."""
    with _logging_to(workdir, what) as log:
        workdir_lib.write_json(os.path.join(workdir, report.STATUS),
                               {"status": "running", "pid": os.getpid(), "host": socket.gethostname(),
                                "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
        from cnnjax import xla_cpu
        xla_cpu.configure()  # before JAX starts its backend in this process (a reused worker's: no-op)
        start = time.time()
        try:
            if process is not None:  # (coordinator, num_processes, process_id) of a multi-process run
                import jax
                jax.distributed.initialize(*process)
            from cnnjax.train import experiment
            summary = experiment.train_and_evaluate(config, workdir, log=log, on_epoch=on_epoch)
            return {"ok": True, "summary": summary, "seconds": time.time() - start}
        except Exception as e:  # noqa: BLE001 - recorded by the driver
            traceback.print_exc()
            return {"ok": False, "reason": f"{type(e).__name__}: {' '.join(str(e).split())}"[:500],
                    "seconds": time.time() - start}


def _task(config: dict, workdir: str, name: str) -> dict:
    return _train(config, workdir, f"run {name}")


class _Member:
    """One process of a multi-process run (a Ray actor: its own process, placed by the gang)."""

    def __init__(self):
        os.environ.update(GLOO)

    def address(self) -> str:
        import ray
        with socket.socket() as s:
            s.bind(("", 0))
            return f"{ray.util.get_node_ip_address()}:{s.getsockname()[1]}"

    def train(self, config: dict, workdir: str, name: str, process: tuple) -> dict:
        return _train(config, workdir, f"run {name}, process {process[2]} of {process[1]}", process=process)


def gang(config: dict, workdir: str, name: str, processes: int, cpus: float, gpus: float) -> dict:
    """Train one run as ``processes`` JAX processes (``jax.distributed`` with gloo CPU collectives),
    one Ray actor each, reserved together by a placement group (all start or none does).  Process
    0's actor picks the coordinator address.  If any process dies the gang is torn down and the
    error raised, so the task around it is retried (resuming from the checkpoint)."""
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
    bundle = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}
    pg = placement_group([bundle] * processes, strategy="SPREAD")
    members = []
    try:
        ray.get(pg.ready())
        member = ray.remote(_Member)
        members = [member.options(num_cpus=cpus, num_gpus=gpus, max_restarts=0, scheduling_strategy=
                                  PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=i)).remote()
                   for i in range(processes)]
        coordinator = ray.get(members[0].address.remote())
        results = ray.get([m.train.remote(config, workdir, name, (coordinator, processes, i))
                           for i, m in enumerate(members)])
        return results[0] if all(r["ok"] for r in results) else next(r for r in results if not r["ok"])
    finally:
        for m in members:
            ray.kill(m)
        remove_placement_group(pg)


# --------------------------------------------------------------------------- the driver


def _print(line: str) -> None:
    """print() that survives a closed stdout (``| head``): the runs go on."""
    try:
        print(line, flush=True)
    except (BrokenPipeError, OSError):
        sys.stdout = open(os.devnull, "w")


def _fmt(s: float) -> str:
    return f"{s:.0f}s" if s < 600 else f"{s / 60:.0f}min"


def init_ray(address: Optional[str] = None, num_cpus: Optional[int] = None, echo=_print) -> bool:
    """Start (no address) or join a Ray cluster unless this process already has one; returns
    whether it did (and so must shut it down)."""
    import logging

    import ray
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    t0 = time.time()
    env = {"PYTHONPATH": os.pathsep.join(p for p in (REPO_ROOT, os.environ.get("PYTHONPATH")) if p)}
    kwargs = {} if address else {"num_cpus": num_cpus, "object_store_memory": 100 * 2 ** 20}
    # "local": a new cluster even when one started by `ray start` runs on this machine
    ray.init(address=address or "local", include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
             runtime_env={"env_vars": env}, **kwargs)
    echo(f"ray: {'joined ' + address if address else 'started a local cluster'} in {time.time() - t0:.1f}s: "
         f"{ray.cluster_resources().get('CPU', 0):g} CPUs, {len(ray.nodes())} node(s)")
    return True


def write_report(out: str, st: study_lib.Study, curves: bool, echo: Callable[[str], None] = _print) -> None:
    """The sweep's last step: ``launch.report``'s tables, or the study's own (its ``REPORT``
    module's ``report(out)``, for runs that do not group as launch.report groups them).  A
    failure is echoed, never raised: it must not hide the sweep's status."""
    try:
        if st.report:
            import importlib
            made = importlib.import_module(st.report).report(out)
            echo(f"report ({st.report}): {', '.join(made)}")
        else:
            rows = report.report(out, curves=curves)
            echo(f"report: {len(rows)} configurations -> {os.path.join(out, 'results.md')}")
    except Exception as e:  # noqa: BLE001
        echo(f"report failed: {type(e).__name__}: {e}")


def run_sweep(out: str, st: study_lib.Study, *, ray_address: Optional[str] = None, num_cpus: Optional[int] = None,
              cpus_per_run: float = 1, gpus_per_run: float = 0, processes_per_run: int = 1, max_retries: int = 3,
              dry_run: bool = False, make_report: bool = True, curves: bool = True,
              echo: Callable[[str], None] = _print) -> int:
    """Run (or resume) study ``st`` in ``out`` on Ray; returns the exit status (0 ok, 1 a run
    failed, 130 interrupted).  Uses this process's Ray connection when there is one."""
    out = os.path.abspath(out)
    write = check_record(out, st)
    wd = lambda r: os.path.join(out, "runs", r.name)
    if dry_run:
        echo(f"{len(st.runs)} runs in {out}" + (" [sweep.json would be created]" if write else ""))
        for r in st.runs:
            echo(f"  {state(wd(r)):<28} {r.name}")
        return 0
    try:
        import ray
    except ImportError:
        raise UsageError("launch.sweep needs Ray: pip install -e '.[ray]'") from None
    os.makedirs(os.path.join(out, "runs"), exist_ok=True)
    if write:
        workdir_lib.write_json(os.path.join(out, study_lib.RECORD), st.record())

    total, k = len(st.runs), 0
    counts = {"done": 0, "skipped": 0, "failed": 0}

    def line(msg):
        nonlocal k
        k += 1
        echo(f"[{k}/{total}] {msg}")

    todo = []
    for r in st.runs:
        s = finished_summary(wd(r))
        if s:
            counts["skipped"] += 1
            line(f"skip {r.name} (finished) acc={_acc(s)}")
        else:
            todo.append(r)
    owns = bool(todo) and init_ray(ray_address, num_cpus, echo)
    pending: dict = {}
    try:
        with sigterm_as_ctrl_c():
            reused = ray.remote(max_calls=0)(_task)  # workers train run after run (module docstring)
            task = lambda threads: reused.options(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=max_retries,
                                                  retry_exceptions=False,
                                                  runtime_env={"env_vars": {THREADS_ENV: str(threads)}})
            gang_task = ray.remote(gang).options(num_cpus=0, max_retries=max_retries,
                                                 retry_exceptions=[ray.exceptions.RayActorError])
            for r in todo:
                cfg = config_lib.to_dict(r.config) | {"progress": "plain"}  # progress lines in log.txt
                cfg["threads"] = trial_threads(cfg, wd(r), cpus_per_run)
                if processes_per_run > 1:
                    ref = gang_task.remote(cfg, wd(r), r.name, processes_per_run, cpus_per_run, gpus_per_run)
                else:
                    ref = task(cfg["threads"]).remote(cfg, wd(r), r.name)
                pending[ref] = (r, time.time())
            if todo:
                echo(f"sweep: {len(todo)} runs to train in {out}, {cpus_per_run:g} CPU(s)"
                     + (f" x {processes_per_run} processes" if processes_per_run > 1 else "") + " each")
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    r, t0 = pending.pop(ref)
                    try:
                        res = ray.get(ref)
                    except ray.exceptions.RayError as e:  # retries used up, task lost, ...
                        res = {"ok": False, "reason": f"{type(e).__name__}: {' '.join(str(e).split())}"[:500]}
                    if res["ok"]:
                        counts["done"] += 1
                        workdir_lib.write_json(os.path.join(wd(r), report.STATUS),
                                               {"status": workdir_lib.FINISHED, "seconds": round(time.time() - t0, 1)})
                        line(f"done {r.name} acc={_acc(res['summary'])} ({_fmt(res['seconds'])} in its worker)")
                    else:
                        counts["failed"] += 1
                        _record_failure(out, wd(r), r.name, res["reason"], time.time() - t0)
                        line(f"FAILED {r.name}: {res['reason'][:200]}  [log: {os.path.join(wd(r), 'log.txt')}]")
    except KeyboardInterrupt:
        for ref, (r, _) in pending.items():
            ray.cancel(ref, force=True)
            workdir_lib.write_json(os.path.join(wd(r), report.STATUS), {"status": "interrupted"})
        echo(f"sweep interrupted: {len(pending)} unfinished run(s) cancelled; rerun the same command to resume")
        return 130
    finally:
        if owns:
            ray.shutdown()

    echo(f"sweep: {total} runs: " + ", ".join(f"{v} {n}" for n, v in counts.items() if v or n == "failed"))
    if make_report:
        write_report(out, st, curves, echo)
    if counts["failed"]:
        echo(f"{counts['failed']} run(s) failed: see {os.path.join(out, 'failures.jsonl')}")
        return 1
    return 0


def _record_failure(out: str, workdir: str, name: str, reason: str, seconds: float) -> None:
    rec = {"name": name, "reason": reason, "seconds": round(seconds, 1), "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "log": os.path.join(workdir, "log.txt")}
    workdir_lib.write_json(os.path.join(workdir, report.STATUS), {"status": "failed", **rec})
    with open(os.path.join(out, "failures.jsonl"), "a") as f:
        f.write(json.dumps(rec) + "\n")


@contextlib.contextmanager
def sigterm_as_ctrl_c():
    """Within the block SIGTERM raises KeyboardInterrupt, as Ctrl-C does, so a terminated sweep or
    search ends as an interrupted one (exit 130, resumable) instead of dying mid-write; SIGINT
    raises it too even when this process inherited SIGINT ignored (a parent that ignores it, a
    job started in the background by a script), where Python leaves it ignored.  The previous
    handlers are back afterwards.  Outside the main thread (where Python cannot set handlers) it
    changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _acc(summary: dict) -> str:
    a = summary.get("final_test_accuracy")
    return f"{a:.4f}" if isinstance(a, (int, float)) else "?"


# --------------------------------------------------------------------------- CLI


def define_flags() -> None:
    """The command line's flags (``python -m launch.sweep`` and ``launch.search``; importing defines none)."""
    from ml_collections import config_flags
    config_flags.DEFINE_config_file("config", None, "Study file (FILE[:ARG]); --config.KEY=VALUE overrides the base "
                                    "of every run.", lock_config=False, accept_new_attributes=True)
    flags.DEFINE_string("out", None, "Sweep directory (runs in OUT/runs/<name>); default sweeps/<study file name>.")
    flags.DEFINE_string("ray_address", None, "Join this Ray cluster (auto or HOST:PORT); default: start a local one.")
    flags.DEFINE_integer("num_cpus", None, "CPUs of the local cluster (default: the machine's); not with --ray_address.")
    flags.DEFINE_float("cpus_per_run", 1, "CPUs each run's Ray task declares (per process).")
    flags.DEFINE_float("gpus_per_run", 0, "GPUs each run's Ray task declares (per process).")
    flags.DEFINE_integer("processes_per_run", 1, "Train each run as one data-parallel job of this many processes.")
    flags.DEFINE_integer("max_retries", 3, "Times Ray reruns a run whose worker process died (it resumes).")
    flags.DEFINE_bool("dry_run", False, "List the runs and their state; write nothing.")
    flags.DEFINE_bool("report", True, "Write OUT/results.{md,csv,png} at the end (launch.report).")
    flags.DEFINE_bool("curves", True, "With the report, plot test accuracy vs epoch into OUT/curves.png.")


def command_overrides(argv: Sequence[str], config_flag) -> tuple[list[str], list[str]]:
    """(the ``--config.KEY=VALUE`` arguments of ``argv`` as given, the keys they set)."""
    from ml_collections import config_flags
    keys = list(config_flags.get_override_values(config_flag))
    args = []
    for i, arg in enumerate(argv):
        m = re.match(r"--?(no)?config\.([^=]+)(=.*)?$", arg)
        if m:
            takes_next = not m.group(1) and m.group(3) is None and i + 1 < len(argv) and not argv[i + 1].startswith("-")
            args.append(f"--config.{m.group(2)}={argv[i + 1]}" if takes_next else arg)
    return args, keys


def load_study(f) -> tuple[study_lib.Study, str]:
    """The validated study of the command line's --config, and its OUT."""
    from ml_collections import config_flags
    if f.config is None:
        raise UsageError("--config=STUDY_FILE is required, e.g. --config=experiments/configs/ablation_blocks.py")
    for name in ("cpus_per_run", "processes_per_run"):
        if f[name].value <= 0:
            raise UsageError(f"--{name} must be > 0")
    if f.ray_address and f.num_cpus:
        raise UsageError("--num_cpus sizes a local cluster; with --ray_address the cluster has its own size")
    file = config_flags.get_config_filename(f["config"])
    cli_args, cli_keys = command_overrides(sys.argv, f["config"])
    st = study_lib.load(file, f.config, cli_args, cli_keys)
    return st, f.out or os.path.join("sweeps", os.path.splitext(os.path.basename(file.split(":", 1)[0]))[0])


def main(argv):
    f = flags.FLAGS
    st, out = load_study(f)
    return run_sweep(out, st, ray_address=f.ray_address, num_cpus=f.num_cpus, cpus_per_run=f.cpus_per_run,
                     gpus_per_run=f.gpus_per_run, processes_per_run=f.processes_per_run, max_retries=f.max_retries,
                     dry_run=f.dry_run, make_report=f.report, curves=f.curves)


if __name__ == "__main__":
    define_flags()
    common.run(main)
