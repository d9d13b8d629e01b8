"""Multi-host training for real: two ``experiments.train`` processes on 127.0.0.1 joined by
``jax.distributed.initialize`` (``--coordinator_address/--num_processes/--process_id``) with JAX's
gloo CPU collectives train as one data-parallel job: the same metrics as one process with the
same global batch (to float tolerance), one set of files and checkpoints in the shared work
directory.  (The same through Ray, as one gang of actors: tests/test_ray_sweep.py.)"""
import os
import subprocess
import sys

import pytest

from tests.ports import free_port

from cnnjax.train.workdir import Workdir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = ["--config.model=padded_cnn", "--config.dataset=synthetic", "--config.num_train=512",
          "--config.num_test=128", "--config.epochs=2", "--config.batch_size=64", "--config.progress=plain"]
NUMBERS = ("epoch", "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate")


def trainer(workdir, *extra):
    env = {**os.environ, "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo",
           "PYTHONPATH": os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)}
    return subprocess.Popen([sys.executable, "-m", "experiments.train", *CONFIG, f"--workdir={workdir}", *extra],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The reference: the same config trained by one process (in memory)."""
    one = str(tmp_path_factory.mktemp("one"))
    out = trainer(one).communicate(timeout=300)[0]
    assert Workdir(one).summary() is not None, out
    return one


@pytest.mark.parametrize("data_in_memory", ["true", "false"])
def test_two_processes_train_as_one_data_parallel_job(tmp_path, one_process, data_in_memory):
    """In memory, and streamed by each process's Grain pipeline reading only its half of every batch."""
    two = str(tmp_path / "two")
    port = free_port()
    procs = [trainer(two, f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={i}",
                     f"--config.data_in_memory={data_in_memory}") for i in (0, 1)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert "data-parallel over 2 devices (2 processes)" in outs[0]
    if data_in_memory == "false":
        assert "process 0 of 2 reads rows 0-32 of each batch of 64" in outs[0], outs[0]
        assert "process 1 of 2 reads rows 32-64 of each batch of 64" in outs[1], outs[1]
    got, want = Workdir(two).metrics(), Workdir(one_process).metrics()
    assert len(got) == len(want) == 2  # written once (process 0), not once per process
    for g, w in zip(got, want):
        for k in NUMBERS:
            assert g[k] == pytest.approx(w[k], rel=1e-4, abs=1e-5), (k, g, w)
    assert Workdir(two).summary()["final_test_accuracy"] == pytest.approx(
        Workdir(one_process).summary()["final_test_accuracy"])
    assert sorted(os.listdir(Workdir(two).checkpoint_dir)) == sorted(os.listdir(Workdir(one_process).checkpoint_dir))
