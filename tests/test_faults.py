"""Fault injection: damaged checkpoints, metrics, configs and summaries, a full disk, a read-only
directory, concurrent trainers and kills at random points.  Every case ends either in a run equal
to an uninterrupted one, or in one ``error:`` line naming the file and nothing lost."""
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from cnnjax.train import experiment, runs
from cnnjax.train.workdir import Workdir, WorkdirError
from tests import fsfaults

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(dataset="synthetic", num_train=640, num_test=200, batch_size=64, epochs=3, seed=0, progress="none")
NUMBERS = ("epoch", "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate")


def train(workdir, log=None, **over):
    return experiment.train_and_evaluate(dict(SMALL, **over), str(workdir), log=log or (lambda s: None))


def numbers(workdir):
    return [{k: r[k] for k in NUMBERS} for r in Workdir(workdir).metrics()]


def params(workdir):
    return [np.asarray(a) for a in jax.tree.leaves(runs.load_trained(str(workdir), "latest")[1])]


def _tested(workdir):
    s = Workdir(workdir).summary()
    return {k: s[k] for k in ("final_test_accuracy", "final_test_loss", "selected_epoch", "selected_test_accuracy")}


def assert_equals_reference(workdir, reference):
    assert numbers(workdir) == numbers(reference)
    assert _tested(workdir) == _tested(reference)
    for a, b in zip(params(workdir), params(reference)):
        np.testing.assert_array_equal(a, b)


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def cli_flags(workdir):
    return [f"--config.{k}={v}" for k, v in SMALL.items()] + [f"--workdir={workdir}"]


def one_error_line(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reference") / "run"
    train(workdir)
    return workdir


@pytest.fixture
def copy(reference, tmp_path):
    """A copy of the finished reference run, turned back into a run stopped after epoch 3's save."""
    workdir = tmp_path / "run"
    shutil.copytree(reference, workdir)
    os.remove(workdir / "summary.json")
    return workdir


def largest_file(directory):
    files = [os.path.join(r, n) for r, _, ns in os.walk(directory) for n in ns]
    return max(files, key=os.path.getsize)


# --------------------------------------------------------------------------- damaged checkpoints


@pytest.mark.parametrize("damage", ["flip_bytes", "truncate", "delete_files"])
def test_damaged_latest_checkpoint_is_set_aside_and_the_run_equals_the_reference(copy, reference, damage):
    shutil.rmtree(copy / "checkpoints" / "3")  # stopped after epoch 2: 3 will be redone from 2 ...
    with open(copy / "metrics.jsonl") as f:
        rows = f.readlines()
    (copy / "metrics.jsonl").write_text("".join(rows[:2]))
    target = copy / "checkpoints" / "2"  # ... unless 2 is damaged: then from 1
    path = largest_file(target)
    if damage == "flip_bytes":  # inside the array data: Orbax reads it without complaint
        with open(path, "r+b") as f:
            f.seek(os.path.getsize(path) // 2)
            chunk = bytearray(f.read(64))
            f.seek(os.path.getsize(path) // 2)
            f.write(bytes(b ^ 0xFF for b in chunk))
    elif damage == "truncate":
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 3)
    else:
        for root, _, names in os.walk(target):
            for n in names:
                os.remove(os.path.join(root, n))
    said = []
    train(copy, log=said.append)
    assert any("epoch 2 is unreadable or damaged" in s for s in said), said
    assert any("resuming" in s and "epoch 1" in s for s in said), said
    assert (copy / "corrupt_checkpoints" / "2").is_dir()
    assert_equals_reference(copy, reference)


def test_every_checkpoint_gone_says_so_and_starts_again(copy, reference):
    shutil.rmtree(copy / "checkpoints")
    said = []
    train(copy, log=said.append)
    assert any("no readable checkpoint" in s and "starting" in s and "3 logged epochs are redone" in s
               for s in said), said
    assert_equals_reference(copy, reference)


def test_evaluate_on_a_damaged_best_checkpoint_is_one_line(copy):
    best = experiment.selected_epoch(Workdir(copy).metrics())
    path = largest_file(copy / "checkpoints" / str(best))
    with open(path, "r+b") as f:
        f.truncate(10)
    proc = subprocess.run([sys.executable, "-m", "experiments.evaluate", f"--workdir={copy}"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    one_error_line(proc, "the best checkpoint (epoch", "is unreadable", "--which=latest")


# --------------------------------------------------------------------------- damaged metrics, configs, summaries


def test_a_torn_last_metrics_line_is_dropped_and_redone(copy, reference):
    shutil.rmtree(copy / "checkpoints" / "3")
    text = (copy / "metrics.jsonl").read_text()
    (copy / "metrics.jsonl").write_text(text[: len(text) - 40])  # epoch 3's line cut mid-write
    train(copy)
    assert_equals_reference(copy, reference)


def test_a_damaged_middle_metrics_line_is_named(copy):
    lines = (copy / "metrics.jsonl").read_text().splitlines(keepends=True)
    lines[1] = lines[1][:30] + "\n"
    (copy / "metrics.jsonl").write_text("".join(lines))
    before = (copy / "metrics.jsonl").read_text()
    one_error_line(cli(*cli_flags(copy)), f"{copy / 'metrics.jsonl'} line 2 is damaged")
    assert (copy / "metrics.jsonl").read_text() == before


@pytest.mark.parametrize("name,content,fragment", [
    ("config.json", "{not json", "config.json is unreadable"),
    ("config.json", "[1, 2]", "config.json is not a JSON object"),
    ("config.json", '{"learnig_rate": 0.1}', "config.json: config.learnig_rate is not a setting"),
    ("summary.json", "", "summary.json is unreadable"),
    ("summary.json", "{}", "summary.json is not a finished run's summary"),
])
def test_garbage_json_files_are_named_and_left_alone(copy, name, content, fragment):
    (copy / name).write_text(content)
    proc = cli(*cli_flags(copy))
    one_error_line(proc, fragment)
    assert (copy / name).read_text() == content


# --------------------------------------------------------------------------- concurrency


def test_a_second_trainer_is_refused_while_the_first_holds_the_workdir(copy):
    with Workdir(copy).lock():
        proc = cli(*cli_flags(copy))
    one_error_line(proc, f"{copy} is in use by pid {os.getpid()}")
    assert len(Workdir(copy).metrics()) == 3  # nothing written by the refused one


def test_concurrent_trainers_on_one_workdir_give_one_run(tmp_path, reference):
    workdir = tmp_path / "shared"
    procs = [subprocess.Popen([sys.executable, "-m", "experiments.train", *cli_flags(workdir)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes[0] == 0, results
    for code, err in results:  # the others were refused, or found it finished and did nothing
        assert code == 0 or (code == 2 and "is in use by pid" in err), err
    assert_equals_reference(workdir, reference)


def checkpointed(workdir):
    """The epochs with a finished checkpoint (Orbax writes into a temporary name and renames)."""
    d = workdir / "checkpoints"
    return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if d.is_dir() else []


def test_kills_at_random_points_then_rerun_equal_the_reference(tmp_path, reference):
    """SIGKILL at random moments of one run: the first process at a random time from its start
    (start-up, usually), the second at a random moment after it checkpointed an epoch of its own
    (mid-epoch or mid-checkpoint alike), the third at a random moment after it resumed.  What was
    on disk at each kill is read with the process stopped (SIGSTOP); every next process must say it
    resumes from the newest checkpoint then on disk -- at least one of them from epoch >= 1 -- and
    the last one finishes equal to the reference.  The lock a killed trainer held never blocks."""
    workdir = tmp_path / "killed"
    rng = random.Random(1234)
    resumed_from, finished, resumes = None, False, 0  # resumed_from: where the next process must resume
    for kill in range(4):
        log = tmp_path / f"process{kill}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "experiments.train", *cli_flags(workdir)], cwd=REPO,
                                    stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        said = lambda: log.read_text().splitlines()
        before, deadline = checkpointed(workdir), time.time() + 120
        if kill == 0:
            time.sleep(rng.uniform(0.5, 3.0))
        elif kill == 1:
            while checkpointed(workdir) == before and proc.poll() is None and time.time() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.5))
        elif kill == 2:
            while not any(line.startswith("resuming") for line in said()) and proc.poll() is None \
                    and time.time() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 1.0))
        if kill < 3:
            proc.send_signal(signal.SIGSTOP)
            on_disk, finished = checkpointed(workdir), (workdir / "summary.json").exists()
            proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=300) in ((0,) if kill == 3 else (0, -signal.SIGKILL)), log.read_text()
        if resumed_from:
            assert f"resuming {workdir} from the checkpoint of epoch {resumed_from}" in said(), said()
            resumes += 1
        elif kill:
            assert not any(line.startswith("resuming") for line in said()), said()
        if finished:
            break
        if kill == 1:
            assert on_disk and on_disk[-1] >= 1  # so the next process must resume
        resumed_from = on_disk[-1] if on_disk else None
    assert resumes >= 1, "no process resumed: the run finished before a kill after its first checkpoint"
    assert_equals_reference(workdir, reference)


# --------------------------------------------------------------------------- the disk


#: a tmpfs with room for the run's small files and epoch 1's checkpoint but not for epoch 2's: a
#: checkpoint needs its state's bytes (~0.35 MB here) + 1 MiB free (checkpoint.Checkpoints.save) and
#: takes ~0.4 MB, so any size from ~1.37 MB to ~1.77 MB fills at epoch 2
DISK_FULL_AT_EPOCH_2 = "1620k"


def test_a_full_disk_is_one_line_and_a_rerun_with_room_resumes(tmp_path, reference):
    """A real tmpfs, mounted in a private mount namespace (root or not), with room for epoch 1's
    checkpoint but not epoch 2's; the run is copied out of it ("free space": moved to a bigger
    disk) before the namespace and the tmpfs end.  The rerun resumes from epoch 1's checkpoint --
    it says so and keeps epoch 1's logged row as it was, timing included -- and ends equal to the
    uninterrupted reference."""
    disk, saved = tmp_path / "disk", tmp_path / "moved"
    disk.mkdir()
    proc = fsfaults.run_in_mount_namespace([sys.executable, "-m", "experiments.train", *cli_flags(disk / "run")],
                                           [["-t", "tmpfs", "-o", f"size={DISK_FULL_AT_EPOCH_2}", "tmpfs", str(disk)]],
                                           after=f"cp -a {disk / 'run'} {saved}",
                                           cwd=REPO, capture_output=True, text=True, timeout=300)
    one_error_line(proc, f"the disk of {disk / 'run'} is full", "rerun the same command to resume")
    assert Workdir(saved).config() is not None and not (saved / "summary.json").exists()
    assert os.listdir(saved / "checkpoints") == ["1"], "the disk should fill at epoch 2's checkpoint"
    epoch_1 = Workdir(saved).metrics()[0]
    assert epoch_1["epoch"] == 1 and epoch_1["seconds"] > 0
    again = cli(*cli_flags(saved))
    assert again.returncode == 0, again.stderr
    assert f"resuming {saved} from the checkpoint of epoch 1" in again.stdout + again.stderr
    assert Workdir(saved).metrics()[0] == epoch_1  # not trained again: its timing would differ
    assert_equals_reference(saved, reference)


def test_a_disk_that_fills_at_a_checkpoint_stops_and_a_rerun_resumes(tmp_path, reference, monkeypatch):
    """The same promise without any mount (runs wherever the tmpfs test cannot): the disk reports
    too little room for epoch 2's checkpoint."""
    from cnnjax.train import checkpoint
    real = checkpoint.shutil.disk_usage
    workdir = tmp_path / "run"

    def disk_usage(path):
        full = os.path.isdir(workdir / "checkpoints" / "1")
        return real(path)._replace(free=1000) if full else real(path)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", disk_usage)
    with pytest.raises(experiment.DiskFull, match=f"the disk of {workdir} is full .*rerun the same command"):
        train(workdir)
    assert [r["epoch"] for r in Workdir(workdir).metrics()] == [1, 2] and os.listdir(workdir / "checkpoints") == ["1"]
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", real)
    said = []
    train(workdir, log=said.append)
    assert any("resuming" in s and "epoch 1" in s for s in said), said
    assert_equals_reference(workdir, reference)


@pytest.mark.parametrize("how,reason", [("permissions", "Operation not permitted" if os.geteuid() == 0
                                         else "Permission denied"),  # chattr +i as root, chmod a-w otherwise
                                        ("read-only mount", "Read-only file system")])
def test_a_read_only_workdir_is_one_line(copy, how, reason):
    argv = [sys.executable, "-m", "experiments.train", *cli_flags(copy)]
    if how == "permissions":
        with fsfaults.read_only(copy):
            proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    else:
        proc = fsfaults.run_in_mount_namespace(argv, fsfaults.read_only_mount(copy), cwd=REPO,
                                               capture_output=True, text=True, timeout=300)
    one_error_line(proc, f"cannot write in {copy}: {reason}")
    assert not (copy / "summary.json").exists()


# --------------------------------------------------------------------------- failures that must write nothing


def test_validation_failures_write_nothing(tmp_path):
    workdir = tmp_path / "new"
    one_error_line(cli(*cli_flags(workdir), "--config.batch_size=5000"), "config.batch_size 5000 is larger than "
                   "the training set (576 images)")  # 640 less the 10% validation split
    assert not workdir.exists()
    proc = cli(*cli_flags(workdir))  # the corrected command is not refused
    assert proc.returncode == 0, proc.stderr


def test_nan_stop_says_how_to_retry(tmp_path):
    with pytest.raises(experiment.NonFiniteLoss, match="use another --workdir"):
        train(tmp_path / "nan", learning_rate=1e30, optimizer="sgd")
    with pytest.raises(WorkdirError, match="holds a different run: learning_rate=1e[+]30"):
        train(tmp_path / "nan", learning_rate=1e-3, optimizer="sgd")


def test_a_model_too_big_for_memory_is_refused_up_front_with_the_numbers(tmp_path, monkeypatch):
    """padding=50 makes padded_cnn's conv2 158x158x32 (about 43 MB of patches per image): a
    1000-image evaluation batch would need ~42 GiB, and the conv library aborted the process."""
    monkeypatch.setattr(experiment, "available_memory", lambda: 8 * 2**30)
    with pytest.raises(ValueError, match=r"config.eval_batch_size=1000 needs about 42.1 GiB for padded_cnn "
                                         r"\(largest layer conv2: 158x158x32 per image\), 8.0 GiB are available; "
                                         r"use config.eval_batch_size <= 152"):
        train(tmp_path / "big", model_options={"padding": 50})
    assert not (tmp_path / "big").exists()


def test_an_autoencoder_is_not_trained_as_a_classifier(tmp_path):
    one_error_line(cli(*cli_flags(tmp_path / "ae"), "--config.model=conv_autoencoder"),
                   "config.model conv_autoencoder outputs 28x28x1 per image, not 10 class scores")
    assert not (tmp_path / "ae").exists()


def _events(path):
    """The Event protos of a TensorBoard event file (TFRecord framing: length, crc, data, crc)."""
    import struct

    from tensorboardX.proto import event_pb2
    out = []
    with open(path, "rb") as f:
        while header := f.read(12):
            (length,) = struct.unpack("<Q", header[:8])
            event = event_pb2.Event()
            event.ParseFromString(f.read(length))
            f.read(4)
            out.append(event)
    return out


def test_a_resume_hides_the_events_of_the_epochs_it_trains_again(copy):
    shutil.rmtree(copy / "checkpoints" / "3")  # stopped after epoch 2's checkpoint, epoch 3 was logged
    before = set(os.listdir(copy))
    train(copy)
    new = [n for n in os.listdir(copy) if n.startswith("events.out") and n not in before]
    assert len(new) == 1
    events = _events(copy / new[0])
    starts = [e.step for e in events if e.HasField("session_log") and e.session_log.status == 1]  # START
    assert starts == [3]  # TensorBoard drops the older files' events from step 3 on
    scalars = sorted({e.step for e in events if e.HasField("summary")})
    assert scalars == [3]


# --------------------------------------------------------------------------- promises not exercised elsewhere


def test_checkpoint_retention_keeps_the_latest_n_plus_the_best(tmp_path):
    """keep_checkpoints=2 over six epochs whose best validation accuracy is epoch 2's: 2, 5, 6 stay."""
    import optax

    from cnnjax import models
    from cnnjax.train import checkpoint
    from cnnjax.train.state import init_state
    state = init_state(models.create("mlp", hidden=()), optax.sgd(0.1), 0, (28, 28, 1))
    checkpoints = checkpoint.Checkpoints(str(tmp_path / "checkpoints"), keep=2, log=lambda s: None)
    try:
        for epoch, val_accuracy in enumerate([0.5, 0.9, 0.6, 0.7, 0.8, 0.85], start=1):
            checkpoints.save(epoch, state, {"epoch": epoch, "step": epoch}, {"val_accuracy": val_accuracy})
            checkpoints.wait()
        assert checkpoints.epochs() == [2, 5, 6]
    finally:
        checkpoints.close()
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "5", "6"]  # deleted from disk, not just hidden


def test_a_run_keeps_its_latest_checkpoints_and_the_selected_one(tmp_path):
    """config.keep_checkpoints reaches the run: with 1 kept over 4 epochs, epochs 1-3 are deleted unless
    validation selected one of them (the retention policy itself: the test above)."""
    workdir = tmp_path / "run"
    train(workdir, epochs=4, keep_checkpoints=1)
    selected = Workdir(workdir).summary()["selected_epoch"]
    assert sorted(os.listdir(workdir / "checkpoints"), key=int) == sorted({str(selected), "4"}, key=int)


def test_nan_stop_exits_3_with_one_line_and_keeps_the_workdir(tmp_path):
    """README: a NaN/inf loss stops the run (exit 3) and keeps the checkpoints before it."""
    workdir = tmp_path / "nan"
    proc = cli(*cli_flags(workdir), "--config.learning_rate=1e30", "--config.optimizer=sgd")
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: train loss is nan in epoch 1; stopped with the "
                                                   "checkpoints of epochs none kept"), proc.stderr
    assert "use another --workdir" in lines[0]
    assert Workdir(workdir).config().learning_rate == 1e30 and not (workdir / "summary.json").exists()


def test_a_training_batch_too_big_for_memory_is_refused_up_front(tmp_path, monkeypatch):
    """The training batch (activations kept for the backward pass) is checked like the evaluation
    batch.  With 64 MiB available, padded_cnn's training batch of 512 does not fit in 80% of it,
    while the evaluation batch of 64 does.  (Were the check gone, this trains a small model.)"""
    from cnnjax import models, summary
    monkeypatch.setattr(experiment, "available_memory", lambda: 64 * 2**20)
    per_image = summary.summarize(models.create("padded_cnn"), (28, 28, 1)).bytes_per_example(True)
    fits = int(0.8 * 64 * 2**20 // per_image)
    assert 0 < fits < 512
    with pytest.raises(ValueError, match=rf"^config.batch_size=512 needs about {512 * per_image / 2**30:.1f} GiB "
                                         rf"for padded_cnn \(largest layer conv2: 14x14x32 per image\), 0.1 GiB "
                                         rf"are available; use config.batch_size <= {fits}$"):
        train(tmp_path / "big", batch_size=512, eval_batch_size=64)
    assert not (tmp_path / "big").exists()


def test_tensorboard_scalars_are_the_metrics_and_the_test_numbers(reference):
    """Every number of metrics.jsonl (but epoch and step) under its own tag at step = epoch, and the
    test numbers of summary.json at the last epoch: nothing else, nothing missing."""
    files = [n for n in os.listdir(reference) if n.startswith("events.out.tfevents")]
    assert len(files) == 1
    got = {(v.tag, e.step): v.simple_value for e in _events(reference / files[0]) if e.HasField("summary")
           for v in e.summary.value}
    rows, summary = Workdir(reference).metrics(), Workdir(reference).summary()
    want = {(k, r["epoch"]): v for r in rows for k, v in r.items() if k not in ("epoch", "step") and v is not None}
    last = rows[-1]["epoch"]
    want.update({("test_loss_final", last): summary["final_test_loss"],
                 ("test_accuracy_final", last): summary["final_test_accuracy"],
                 ("test_loss_selected", last): summary["selected_test_loss"],
                 ("test_accuracy_selected", last): summary["selected_test_accuracy"]})
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate"} <= {k for k, _ in want}
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-6), key  # stored as float32
