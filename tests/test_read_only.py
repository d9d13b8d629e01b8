"""The commands that read a run -- evaluate (with --shifts), predict, explain, export -- never move,
change or remove a file training wrote: every file of the work directory is hashed before and
after each command, on a healthy run, a run whose latest checkpoint has a flipped byte, and a run
whose checkpoints hold a model of another shape.  A damaged or mismatched checkpoint is one line
on stderr and the fallback asked for (--which=latest), or exit 2; machine-readable stdout parses."""
import json
import os
import shutil

import pytest
from tests.commands import cli, hashes

TRAIN = ["--config.dataset=synthetic", "--config.num_train=160", "--config.num_test=32", "--config.batch_size=16",
         "--config.epochs=3", "--config.progress=none"]


def flip_a_byte(directory):
    """Flip bytes inside the largest file of a checkpoint (its array data: Orbax reads it without
    complaint, only the digest catches it)."""
    files = [os.path.join(r, n) for r, _, ns in os.walk(directory) for n in ns]
    path = max(files, key=os.path.getsize)
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        chunk = bytearray(f.read(16))
        f.seek(os.path.getsize(path) // 2)
        f.write(bytes(b ^ 0xFF for b in chunk))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{kind: finished work directory}: healthy; latest checkpoint (epoch 3) with a flipped byte;
    checkpoints of a 3-class run under a 10-class run's config and data.json (another shape)."""
    base = tmp_path_factory.mktemp("runs")
    healthy, three = base / "healthy", base / "three"
    for workdir, extra in ((healthy, []), (three, ["--config.classes=0,1,2"])):
        proc = cli("train", *TRAIN, *extra, f"--workdir={workdir}")
        assert proc.returncode == 0, proc.stderr
    flipped, mismatched = base / "flipped", base / "mismatched"
    shutil.copytree(healthy, flipped)
    flip_a_byte(flipped / "checkpoints" / "3")
    shutil.copytree(healthy, mismatched)
    shutil.rmtree(mismatched / "checkpoints")
    shutil.copytree(three / "checkpoints", mismatched / "checkpoints")
    return {"healthy": healthy, "flipped": flipped, "mismatched": mismatched}


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    from PIL import Image
    from cnnjax import data
    path = tmp_path_factory.mktemp("img") / "x.png"
    Image.fromarray(data.synthetic(num_train=8, num_test=2).test_images[0][..., 0], "L").save(path)
    return str(path)


def command(name, workdir, out, image):
    which = "--which=latest"  # the fallback a user asks for: a damaged latest checkpoint is skipped
    return {
        "evaluate": ("evaluate", f"--workdir={workdir}", which, "--shifts=1"),
        "predict": ("predict", f"--workdir={workdir}", which, "--format=json", image),
        "explain": ("explain", f"--workdir={workdir}", which, f"--out={out}", "--methods=gradients", "--indices=0"),
        "export": ("export", f"--workdir={workdir}", which, "--format=stablehlo", f"--out={out}.stablehlo"),
    }[name]


@pytest.mark.parametrize("name", ["evaluate", "predict", "explain", "export"])
@pytest.mark.parametrize("kind", ["healthy", "flipped", "mismatched"])
def test_a_read_only_command_changes_nothing_training_wrote(runs, image, tmp_path, name, kind):
    workdir = runs[kind]
    before = hashes(workdir)
    proc = cli(*command(name, workdir, tmp_path / "out", image))
    after = hashes(workdir)
    assert {k: after.get(k) for k in before} == before, "a file training wrote was changed or removed"
    assert set(after) - set(before) <= ({"confusion.png", "evaluation.json"} if name == "evaluate" else set())
    assert not os.path.exists(workdir / "corrupt_checkpoints")
    lines = proc.stderr.strip().splitlines()
    if kind == "mismatched":
        assert proc.returncode == 2, proc.stderr
        assert lines == [f"error: {workdir}: checkpoint of epoch 3 holds a model with 3 classes; this config builds "
                         f"10 (params/fc/bias): another run's checkpoint, not damage"], lines
        assert proc.stdout == ""
        return
    assert proc.returncode == 0, proc.stderr
    if kind == "flipped":
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"checkpoint of epoch 3 in {workdir / 'checkpoints'} is unreadable or damaged "
                                   f"(CorruptCheckpoint:") and "left it in place and skipped it" in lines[0], lines
    else:
        assert lines == [], lines
    if name == "predict":  # stdout holds only the predictions, whatever stderr said
        [row] = json.loads(proc.stdout)
        assert row["file"] == image and len(row["predictions"]) == 3
    if name == "evaluate":
        report = json.loads((workdir / "evaluation.json").read_text())
        epoch = 2 if kind == "flipped" else 3
        assert (report["which"], report["epoch"]) == ("latest", epoch)
        assert report["checkpoint"] == str(workdir / "checkpoints" / str(epoch))
        assert f"(latest checkpoint, epoch {epoch})" in proc.stdout


def test_evaluate_writes_elsewhere_with_out(runs, tmp_path):
    workdir = runs["healthy"]
    before = hashes(workdir)
    proc = cli("evaluate", f"--workdir={workdir}", f"--out={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    assert hashes(workdir) == before
    assert sorted(os.listdir(tmp_path)) == ["confusion.png", "evaluation.json"]
    assert json.loads((tmp_path / "evaluation.json").read_text())["which"] == "best"


def test_training_refuses_another_runs_checkpoints_and_sets_nothing_aside(runs, tmp_path):
    """Training meets the mismatched checkpoints too: one error line, nothing moved."""
    workdir = tmp_path / "run"
    shutil.copytree(runs["mismatched"], workdir)
    os.remove(workdir / "summary.json")  # not finished: training would resume from the checkpoints
    before = hashes(workdir)
    proc = cli("train", *TRAIN, f"--workdir={workdir}")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"error: {workdir}: checkpoint of epoch 3 holds a model with 3 classes; this config builds 10 "
                     f"(params/fc/bias): another run's checkpoint, not damage; nothing was moved: use another "
                     f"--workdir, or the config that made this run"], lines
    assert {k: v for k, v in hashes(workdir).items() if k != ".lock"} == {k: v for k, v in before.items() if k != ".lock"}
    assert not (workdir / "corrupt_checkpoints").exists()


def test_predict_top_k_defaults_to_the_class_count_when_below_3(tmp_path, image):
    workdir = tmp_path / "two"
    proc = cli("train", *TRAIN, "--config.epochs=1", "--config.classes=0,1", f"--workdir={workdir}")
    assert proc.returncode == 0, proc.stderr
    proc = cli("predict", f"--workdir={workdir}", "--format=json", image)
    assert proc.returncode == 0, proc.stderr
    [row] = json.loads(proc.stdout)
    assert len(row["predictions"]) == 2
    proc = cli("predict", f"--workdir={workdir}", "--top_k=3", image)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: --top_k must be in [1, 2] (the run has 2 classes), got 3"]
