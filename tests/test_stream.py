"""Streaming (cnnjax.data.stream, cnnjax.train.streaming): batches in exactly the in-memory epoch order,
a position that is saved and restored, per-process shards, the memory rule, and training runs
that equal the in-memory path bit for bit -- also after SIGKILL and a rerun."""
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import datafiles
from cnnjax import data
from cnnjax.train import experiment, loop, runs, streaming
from cnnjax.train.config import TrainConfig
from cnnjax.data import stream
from cnnjax.train.workdir import Workdir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def mapped(tmp_path):
    """A memory-mapped (N=103, 5, 5, 1) uint8 split, as a prepared folder holds it, and its labels."""
    images = np.random.default_rng(0).integers(0, 256, (103, 5, 5, 1), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    return np.load(tmp_path / "images.npy", mmap_mode="r"), np.arange(103, dtype=np.int32) % 7, images


def _orders(n, epochs, seed=0):
    rng = jax.random.PRNGKey(seed)
    return np.stack([np.asarray(loop.epoch_permutation(rng, e, n)) for e in range(1, epochs + 1)])


def test_batches_are_the_in_memory_epoch_order(mapped):
    images, labels, raw = mapped
    orders = _orders(103, 2)
    got = list(stream.batches(images, labels, orders, 10, shard=(0, 1)))
    assert len(got) == 2 * 10  # 103 // 10 steps per epoch, the last 3 images dropped as in memory
    for k, (x, y) in enumerate(got):
        epoch, s = divmod(k, 10)
        rows = orders[epoch, s * 10:(s + 1) * 10]
        assert x.dtype == np.uint8 and x.shape == (10, 5, 5, 1) and y.dtype == np.int32
        np.testing.assert_array_equal(x, raw[rows])
        np.testing.assert_array_equal(y, labels[rows])


@pytest.mark.parametrize("workers", [0, 1])
def test_stop_mid_epoch_save_restore_in_a_new_iterator_gives_the_same_remaining_batches(mapped, workers):
    images, labels, _ = mapped
    orders = _orders(103, 2)
    it = stream.batches(images, labels, orders, 10, workers=workers, shard=(0, 1))
    head = [next(it) for _ in range(13)]  # into the second epoch
    saved = json.loads(json.dumps(it.get_state()))  # as a checkpoint's JSON metadata holds it
    rest = list(it)
    again = stream.batches(images, labels, orders, 10, workers=workers, shard=(0, 1))
    again.set_state(saved)
    resumed = list(again)
    assert len(head) + len(rest) == 20 and len(resumed) == len(rest) == 7
    for (x, y), (x2, y2) in zip(rest, resumed):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)


def test_each_process_reads_its_rows_of_every_global_batch(mapped):
    images, labels, raw = mapped
    orders = _orders(103, 1)
    halves = [list(stream.batches(images, labels, orders, 10, shard=(i, 2))) for i in (0, 1)]
    for s, ((x0, y0), (x1, y1)) in enumerate(zip(*halves)):
        rows = orders[0, s * 10:(s + 1) * 10]
        np.testing.assert_array_equal(np.concatenate([x0, x1]), raw[rows])
        np.testing.assert_array_equal(np.concatenate([y0, y1]), labels[rows])
    with pytest.raises(ValueError, match="multiple of the number of shards"):
        stream.EpochBatches(images, labels, orders, 9, (0, 2))


def test_a_mapped_view_reaches_workers_as_its_file_not_its_bytes(mapped):
    import pickle
    images, _, raw = mapped
    state = stream._Mapped(images[40:]).__getstate__()
    assert "file" in state and state["offset"] == 128 + 40 * 25  # .npy header, then 40 images of 25 bytes
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(stream._Mapped(images[40:]))).array, raw[40:])


def test_memory_rule_of_data_in_memory(monkeypatch):
    assert stream.fits_in_memory(10, budget=10) and not stream.fits_in_memory(11, budget=10)
    monkeypatch.setenv("CNNJAX_DATA_MEMORY_BUDGET", "1000")
    ds = data.synthetic(40, 10)  # 40 * 28 * 28 = 31,360 bytes of training images
    assert streaming.streams(TrainConfig(data_in_memory="auto"), ds)
    assert not streaming.streams(TrainConfig(data_in_memory="true"), ds)
    monkeypatch.setenv("CNNJAX_DATA_MEMORY_BUDGET", "1e6")
    assert not streaming.streams(TrainConfig(data_in_memory="auto"), ds)
    assert streaming.streams(TrainConfig(data_in_memory="false"), ds)


def test_worker_processes_only_for_a_mapped_split_on_more_than_two_cores(monkeypatch, mapped):
    from cnnjax.train.config import ConfigError
    images = mapped[0]
    for cores, want in ((1, 0), (2, 0), (4, 2), (16, 2)):
        monkeypatch.setattr(os, "cpu_count", lambda: cores)
        assert streaming.default_workers(images) == want, cores
        assert streaming.default_workers(np.asarray(images)) == 0  # in memory: threads, no copy per worker
    with pytest.raises(ConfigError, match="data_workers"):
        TrainConfig(data_workers=-2).validate()


# ------------------------------------------------------------------ training runs


def _folder(tmp_path):
    """An image folder (train/val/test) of the synthetic bars: its training split stays memory-mapped."""
    ds = data.synthetic(640, 200, seed=0)
    root = tmp_path / "bars"
    names = [f"{k}_{name}" for k, name in enumerate(ds.class_names)]
    datafiles.write_image_folder(root, {"train": (ds.train_images[:576], ds.train_labels[:576]),
                                        "val": (ds.train_images[576:], ds.train_labels[576:]),
                                        "test": (ds.test_images, ds.test_labels)}, names)
    return root


def _config(root, tmp_path, **over):
    return {**dict(dataset="folder", data_dir=str(root), data_cache_dir=str(tmp_path / "cache"), batch_size=64,
                   epochs=3, seed=0, progress="plain"), **over}


def _numbers(workdir):
    rows = Workdir(workdir).metrics()
    summary = Workdir(workdir).summary()
    keys = ("epoch", "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate")
    return [{k: r[k] for k in keys} for r in rows] + [{k: summary[k] for k in ("final_test_loss", "final_test_accuracy")}]


def _params(workdir):
    _, variables, _, _ = runs.load_trained(str(workdir), "latest")
    return [np.asarray(a) for a in jax.tree.leaves(variables)]


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _children(pid):
    """Grain worker processes (multiprocessing spawn) started by ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid and "spawn_main" in _cmdline(int(entry)):
                found.append(int(entry))
    return found


def test_streamed_run_killed_and_rerun_equals_the_in_memory_run(tmp_path):
    root = _folder(tmp_path)
    reference = tmp_path / "in_memory"
    experiment.train_and_evaluate(_config(root, tmp_path, data_in_memory="true", progress="none"), str(reference),
                                  log=lambda s: None)
    workdir = tmp_path / "streamed"
    flags = [f"--config.{k}={v}" for k, v in _config(root, tmp_path, data_in_memory="false", data_workers=1).items()]
    command = [sys.executable, "-m", "experiments.train", f"--workdir={workdir}", *flags]
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (workdir / "checkpoints" / "1").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (workdir / "summary.json").exists(), "killed too late: the run had already finished"
    assert workers, "the streamed run started no worker process"
    deadline = time.time() + 10
    while any(os.path.exists(f"/proc/{pid}") for pid in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if os.path.exists(f"/proc/{pid}") and "spawn_main" in _cmdline(pid)], \
        "Grain workers outlived the killed run"
    rerun = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "streaming the training batches" in rerun.stdout and "resuming" in rerun.stdout
    assert _numbers(workdir) == _numbers(reference)
    for a, b in zip(_params(workdir), _params(reference), strict=True):
        np.testing.assert_array_equal(a, b)
