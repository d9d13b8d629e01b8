"""The two ways a finished-looking run could be left unable to finish as it should (issue 26): the
metrics row of the newest checkpoint's epoch lost (metrics.jsonl is appended without fsync before
an asynchronous checkpoint save, so after a power loss the checkpoint can survive while its row
does not), and the checkpoint that validation selected damaged."""
import os
import shutil

import pytest

from cnnjax.train.workdir import Workdir

from test_faults import assert_equals_reference, largest_file, numbers, train

EPOCHS = 4


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A finished 4-epoch run whose validation-selected epoch is not its last (checked)."""
    workdir = tmp_path_factory.mktemp("reference") / "run"
    train(workdir, epochs=EPOCHS, learning_rate=3e-2)
    return workdir


@pytest.fixture
def copy(reference, tmp_path):
    """The reference run as a power loss after epoch 4's checkpoint would leave it: no summary.json."""
    workdir = tmp_path / "run"
    shutil.copytree(reference, workdir)
    os.remove(workdir / "summary.json")
    return workdir


@pytest.mark.parametrize("loss", ["torn_last_row", "last_two_rows_missing"])
def test_rows_lost_after_their_checkpoint_are_recovered(copy, reference, loss):
    text = (copy / "metrics.jsonl").read_text()
    lines = text.splitlines(keepends=True)
    assert len(lines) == EPOCHS and (copy / "checkpoints" / str(EPOCHS)).is_dir()
    if loss == "torn_last_row":
        (copy / "metrics.jsonl").write_text(text[: len(text) - 40])  # row 4 cut mid-write
    else:
        (copy / "metrics.jsonl").write_text("".join(lines[:2]))  # rows 3 and 4 never reached the disk
    said = []
    train(copy, log=said.append, epochs=EPOCHS, learning_rate=3e-2)
    assert any(f"from the checkpoint of epoch {EPOCHS}" in s for s in said), said
    assert any("metrics.jsonl lacks the rows of epochs" in s and "restored them" in s for s in said), said
    assert len(Workdir(copy).metrics()) == EPOCHS
    assert (copy / "metrics.jsonl").read_text() == text  # the very rows, timings included
    assert Workdir(copy).summary()["epochs_trained"] == EPOCHS
    assert_equals_reference(copy, reference)


def test_a_damaged_selected_checkpoint_is_set_aside_and_the_run_finishes(copy, reference):
    ref = Workdir(reference).summary()
    rows = Workdir(reference).metrics()
    selected = ref["selected_epoch"]
    assert selected not in (None, EPOCHS), rows  # the case: a checkpoint restored only for the test set
    path = largest_file(copy / "checkpoints" / str(selected))
    with open(path, "r+b") as f:  # inside the array data: Orbax reads it without complaint, the digest fails
        f.seek(os.path.getsize(path) // 2)
        chunk = bytearray(f.read(64))
        f.seek(os.path.getsize(path) // 2)
        f.write(bytes(b ^ 0xFF for b in chunk))
    said = []
    result = train(copy, log=said.append, epochs=EPOCHS, learning_rate=3e-2)
    lines = [s for s in said if f"epoch {selected} is unreadable or damaged" in s]
    assert len(lines) == 1 and "corrupt_checkpoints" in lines[0], said
    assert (copy / "corrupt_checkpoints" / str(selected)).is_dir()
    assert not (copy / "checkpoints" / str(selected)).exists()
    # selected again among the intact checkpoints, by validation accuracy only
    intact = [r for r in rows if r["epoch"] != selected and (copy / "checkpoints" / str(r["epoch"])).is_dir()]
    best = max(intact, key=lambda r: (r["val_accuracy"], -r["epoch"]))["epoch"]
    summary = Workdir(copy).summary()
    assert result["selected_epoch"] == summary["selected_epoch"] == best
    assert summary["checkpoints_set_aside"] == [selected]
    assert summary["final_test_accuracy"] == ref["final_test_accuracy"]
    assert numbers(copy) == numbers(reference)
    # and the next rerun finds it finished
    again = []
    assert train(copy, log=again.append, epochs=EPOCHS, learning_rate=3e-2)["selected_epoch"] == best
    assert any("already finished" in s for s in again), again
