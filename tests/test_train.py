"""Training: learns, is deterministic, resumes bit-identically after SIGKILL, survives corrupt
checkpoints, refuses bad input without touching existing files."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import optax
import pytest

from cnnjax import data, models
from cnnjax.train import checkpoint, evaluation, experiment, optim, loop, runs, state as train_state
from cnnjax.train import step as step_lib
from cnnjax.train import config as config_lib
from cnnjax.train.config import TrainConfig
from cnnjax.train.workdir import Workdir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(dataset="synthetic", num_train=640, num_test=200, batch_size=64, epochs=3, seed=0)
NUMBERS = ("epoch", "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "learning_rate")


def numbers(workdir):
    """Every epoch's numbers plus the test numbers measured once at the end."""
    summary = Workdir(workdir).summary() or {}
    tested = {k: summary.get(k) for k in ("final_test_accuracy", "final_test_loss", "selected_epoch",
                                          "selected_test_accuracy")}
    return [{k: r[k] for k in NUMBERS} for r in Workdir(workdir).metrics()] + [tested]


def params_of(workdir, which="latest"):
    _, variables, _, _ = runs.load_trained(str(workdir), which)
    return jax.tree.leaves(variables)


def assert_same_params(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def cli_flags(workdir, **over):
    cfg = {**SMALL, **over}
    return [f"--config.{k}={v}" for k, v in cfg.items()] + [f"--workdir={workdir}", "--config.progress=plain"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted CLI run, the yardstick for every resume test."""
    workdir = tmp_path_factory.mktemp("reference")
    proc = run_cli(*cli_flags(workdir))
    assert proc.returncode == 0, proc.stderr
    return workdir


def test_training_on_synthetic_learns_and_writes_the_workdir(reference):
    rows = Workdir(reference).metrics()
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[-1]["val_accuracy"] > 0.9 and rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert all("test_accuracy" not in r for r in rows)  # the test set is measured once, at the end
    for name in ("config.json", "metrics.jsonl", "summary.json", "curves.png"):
        assert os.path.getsize(reference / name) > 0, name
    assert any(n.startswith("events.out.tfevents") for n in os.listdir(reference))
    result = json.loads((reference / "summary.json").read_text())
    assert result["status"] == "finished" and result["params"] == 28_938 and result["steps"] == 3 * (576 // 64)
    best = max(rows, key=lambda r: (r["val_accuracy"], -r["epoch"]))
    assert result["selected_epoch"] == best["epoch"] and result["selected_val_accuracy"] == best["val_accuracy"]
    assert result["final_test_accuracy"] > 0.9 and result["num_val"] == 64  # 10% of 640
    config = json.loads((reference / "config.json").read_text())
    assert config == {**config_lib.to_dict(TrainConfig()), **SMALL, "progress": "plain"}  # every setting
    data_json = json.loads((reference / "data.json").read_text())
    assert (data_json["num_train"], data_json["num_val"]) == (576, 64)


def test_same_seed_same_numbers_in_process(tmp_path, reference):
    experiment.train_and_evaluate(dict(SMALL, progress="none"), str(tmp_path / "a"), log=lambda s: None)
    assert numbers(tmp_path / "a") == numbers(reference)
    assert_same_params(params_of(tmp_path / "a"), params_of(reference))


def checkpointed(workdir):
    """The epochs with a finished checkpoint (Orbax writes into a temporary name and renames)."""
    d = workdir / "checkpoints"
    return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if d.is_dir() else []


def test_sigkill_mid_epoch_and_rerun_resumes_and_equals_uninterrupted(tmp_path, reference):
    """Killed while it trains epoch 2: the moment is read with the process stopped (SIGSTOP) just
    before the kill -- epoch 1 logged and checkpointed, epoch 2 not logged, no summary.  The rerun
    must say it resumes from epoch 1's checkpoint and end equal to the uninterrupted run."""
    for attempt in range(3):  # epoch 2 takes ~0.5 s here: a loaded machine may overshoot it
        workdir = tmp_path / f"killed{attempt}"
        proc = subprocess.Popen([sys.executable, "-m", "experiments.train", *cli_flags(workdir)], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while not checkpointed(workdir) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGSTOP)
        at_kill = checkpointed(workdir), len(Workdir(workdir).metrics()), (workdir / "summary.json").exists()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if at_kill == ([1], 1, False):
            break
    else:
        pytest.fail(f"three runs were never stopped inside epoch 2 (checkpoints, logged epochs, finished): {at_kill}")
    rerun = run_cli(*cli_flags(workdir))
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming {workdir} from the checkpoint of epoch 1" in rerun.stdout.splitlines()
    assert numbers(workdir) == numbers(reference)
    assert_same_params(params_of(workdir), params_of(reference))


def test_corrupt_latest_checkpoint_falls_back_to_previous(tmp_path, reference):
    workdir = tmp_path / "corrupt"
    experiment.train_and_evaluate(dict(SMALL, progress="none"), str(workdir), log=lambda s: None)
    os.remove(workdir / "summary.json")  # pretend the run stopped right after saving epoch 3
    for root, _, files in os.walk(workdir / "checkpoints" / "3"):
        for name in files:
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"\x00garbage")
    said = []
    experiment.train_and_evaluate(dict(SMALL, progress="none"), str(workdir), log=said.append)
    assert any("epoch 3 is unreadable" in s and "falling back" in s for s in said), said
    assert any("resuming" in s and "epoch 2" in s for s in said), said
    assert (workdir / "corrupt_checkpoints" / "3").is_dir()  # set aside, not deleted
    assert numbers(workdir) == numbers(reference)
    assert_same_params(params_of(workdir), params_of(reference))


def digest(workdir):
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(workdir)):
        for name in sorted(files):
            h.update(name.encode())
            with open(os.path.join(root, name), "rb") as f:
                h.update(f.read())
    return h.hexdigest()


@pytest.mark.parametrize("flag,message", [
    ("--config.model=lenet5", "holds a different run: model='padded_cnn' (now 'lenet5')"),
    ("--config.dataset=fashion_mnist", "holds a different run"),
    ("--config.learning_rate=0.1", "holds a different run"),
    ("--config.model_options.activation=sigmoid", "holds a different run: model_options={} (now {'activation'"),
])
def test_different_run_in_existing_workdir_is_refused_and_nothing_changes(reference, flag, message):
    before = digest(reference)
    proc = run_cli(*cli_flags(reference), flag)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ") and message in proc.stderr
    assert digest(reference) == before


@pytest.mark.parametrize("flag,message", [
    ("--config.epochs=0", "config.epochs must be >= 1"), ("--config.model=resnet", "unknown model 'resnet'"),
    ("--config.dataset=no_such_set", "cannot load 'no_such_set'"),
    ("--config.batch_size=100000", "config.batch_size 100000 is larger than the training set"),
    # a setting that cannot apply is refused, not ignored: streamed batches have no lax.scan epoch
    (("--config.epoch_loop=scan", "--config.data_in_memory=false"),
     "config.epoch_loop='scan' cannot apply: this run streams its training batches"),
    ("--config.learning_rate=-1", "config.learning_rate must be a positive"),
    ("--config.model_options.activation=swish9", "activation must be one of"),
    ("--config.model_options.activaton=relu", "has no option(s) ['activaton']"),
    ("--config.label_smoothing=1.5", "config.label_smoothing"),
    ("--config.learnig_rate=0.1", "config.learnig_rate is not a setting (did you mean learning_rate?)"),
    ("--config.epochs=2.5", "flag --config.epochs=2.5"),
    ("--config.compute_dtype=float16", "config.compute_dtype must be one of float32, bfloat16, auto; got 'float16'"),
    ("--config.model_options='x'", "--config.model_options='x': Failed to parse"),
    ("--no_such_flag=1", "Unknown command line flag 'no_such_flag'"),
    ("--config=experiments/configs/recipes.py:nope", "unknown recipe 'nope'"),
])
def test_bad_flags_give_one_line_error_and_exit_2(tmp_path, flag, message):
    workdir = tmp_path / "bad"
    proc = run_cli(*cli_flags(workdir), *((flag,) if isinstance(flag, str) else flag))
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, proc.stderr
    assert not workdir.exists()  # a failed validation writes nothing


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    workdir = str(tmp_path / "nan")
    cfg = dict(SMALL, epochs=1)
    experiment.train_and_evaluate(cfg, workdir, log=lambda s: None)
    good = params_of(workdir)
    # Continue the same run to more epochs is a different run; so blow up a fresh one instead.
    with pytest.raises(experiment.NonFiniteLoss, match="train loss is nan"):
        experiment.train_and_evaluate(dict(SMALL, learning_rate=1e30, optimizer="sgd"), str(tmp_path / "nan2"),
                                      log=lambda s: None)
    assert checkpoint.Checkpoints(str(tmp_path / "nan2" / "checkpoints")).epochs() == []
    assert not (tmp_path / "nan2" / "summary.json").exists()
    assert_same_params(params_of(workdir), good)


def test_evaluate_counts_by_hand():
    ds = data.synthetic(64, 37, seed=3)
    model = models.create("seed_net")
    state = train_state.init_state(model, optax.adam(1e-3), 0, ds.image_shape)
    ev = evaluation.evaluate(model, state.variables(), ds, batch_size=16)  # 37 = 16 + 16 + 5: padding is masked
    logits = model.apply(state.variables(), data.normalize(ds.test_images, ds.mean, ds.std))
    pred = np.argmax(np.asarray(logits), -1)
    assert ev["accuracy"] == pytest.approx(np.mean(pred == ds.test_labels))
    assert ev["confusion"].sum() == 37 and ev["confusion"][ds.test_labels[0], pred[0]] >= 1
    np.testing.assert_allclose(ev["per_class_accuracy"],
                               [np.mean(pred[ds.test_labels == k] == k) if np.any(ds.test_labels == k) else 0
                                for k in range(10)])


def test_schedules_and_optimizers():
    cfg = TrainConfig(epochs=10, learning_rate=0.1, schedule="cosine", warmup_epochs=1)
    lr = optim.make_schedule(cfg, steps_per_epoch=10)
    assert float(lr(0)) == 0 and float(lr(10)) == pytest.approx(0.1) and float(lr(100)) == pytest.approx(0, abs=1e-6)
    one = optim.make_schedule(TrainConfig(epochs=10, learning_rate=0.1, schedule="onecycle"), 10)
    assert float(one(30)) == pytest.approx(0.1, rel=1e-3) and float(one(0)) < 0.01
    const = optim.make_schedule(TrainConfig(learning_rate=0.1, schedule="constant"), 10)
    assert float(const(0)) == float(const(999)) == pytest.approx(0.1)
    for opt in config_lib.OPTIMIZERS:
        tx = optim.make_optimizer(TrainConfig(optimizer=opt, weight_decay=1e-4), 10)
        params = {"w": jax.numpy.ones(3)}
        updates, _ = tx.update({"w": jax.numpy.ones(3)}, tx.init(params), params)
        assert float(updates["w"][0]) < 0  # every optimizer steps against the gradient


def test_augmentation_flips_and_crops_by_exactly_what_it_says():
    """flip: each image mirrored left-right or left alone, both occurring; crop: each image is the
    zero-padded image (pad 2) cut at an offset in [0, 4]^2, i.e. shifted by -2..2 pixels per axis
    with zeros shifted in, every one of the 25 offsets occurring; flip_crop: a crop of a flip."""
    n, pad = 512, 2
    imgs = (np.arange(n * 6 * 5, dtype=np.int64) % 251 + 1).astype(np.uint8).reshape(n, 6, 5, 1)  # no zeros
    imgs[:, :, 0] = 7  # asymmetric and distinct per column, so a flip is visible
    flipped = np.asarray(step_lib.augment_batch(jax.random.PRNGKey(0), imgs, "flip"))
    mirrored = [np.array_equal(a, b[:, ::-1]) for a, b in zip(flipped, imgs)]
    kept = [np.array_equal(a, b) for a, b in zip(flipped, imgs)]
    assert all(m != k for m, k in zip(mirrored, kept))  # exactly one of the two
    assert 0.4 < np.mean(mirrored) < 0.6  # probability 1/2

    def offset(out, img):
        padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)))
        found = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                 if np.array_equal(out, padded[dy:dy + 6, dx:dx + 5])]
        assert len(found) <= 1, found
        return found[0] if found else None
    cropped = np.asarray(step_lib.augment_batch(jax.random.PRNGKey(1), imgs, "crop", pad=pad))
    assert cropped.shape == imgs.shape and cropped.dtype == np.uint8
    offsets = [offset(a, b) for a, b in zip(cropped, imgs)]
    assert set(offsets) == {(dy, dx) for dy in range(5) for dx in range(5)}
    assert offsets.count((pad, pad)) < n / 10  # the identity only as one of 25 offsets
    both = np.asarray(step_lib.augment_batch(jax.random.PRNGKey(2), imgs, "flip_crop", pad=pad))
    as_is = [offset(out, img) is not None for out, img in zip(both, imgs)]
    as_flipped = [offset(out, img[:, ::-1]) is not None for out, img in zip(both, imgs)]
    assert all(a != f for a, f in zip(as_is, as_flipped)) and 0.4 < np.mean(as_flipped) < 0.6


def test_evaluate_cli_restores_best_and_writes_confusion(reference):
    proc = subprocess.run([sys.executable, "-m", "experiments.evaluate", f"--workdir={reference}"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((reference / "summary.json").read_text())
    assert f"test accuracy {result['selected_test_accuracy']:.4f}" in proc.stdout
    assert f"epoch {result['selected_epoch']}" in proc.stdout and "bar_0deg" in proc.stdout
    assert os.path.getsize(reference / "confusion.png") > 0
    evaluation = json.loads((reference / "evaluation.json").read_text())
    assert sum(map(sum, evaluation["confusion"])) == 200


def test_batch_norm_statistics_are_trained_and_checkpointed(tmp_path):
    cfg = dict(SMALL, model="vgg_bn", epochs=1, num_train=256, augment="flip_crop")
    experiment.train_and_evaluate(cfg, str(tmp_path / "bn"), log=lambda s: None)
    _, variables, _, _ = runs.load_trained(str(tmp_path / "bn"))
    means = variables["batch_stats"]["bn1_1"]["mean"]
    assert means.shape == (24,) and float(np.abs(np.asarray(means)).max()) > 0  # moved away from the init zeros


def _run_epochs(name, cfg, fused, epochs=2):
    ds = data.synthetic(320, 64, seed=0)
    model = models.create(name)
    tx = optim.make_optimizer(cfg, 320 // cfg.batch_size)
    state = train_state.init_state(model, tx, cfg.seed, ds.image_shape)
    images, labels = jax.device_put((ds.train_images, ds.train_labels))
    spec = step_lib.StepSpec.from_config(cfg, model, tx, num_classes=ds.num_classes, mean=ds.mean, std=ds.std)
    run = loop.make_epoch_runner(spec, fused=fused)
    rows = []
    for epoch in range(1, epochs + 1):
        state, m = run(state, images, labels, epoch)
        rows.append(m)
    return rows, state, model, ds


def test_batches_from_the_host_train_as_the_in_memory_epoch():
    """What an input pipeline does: gather each batch on the host in the epoch's order and call the
    jitted step on it.  Same losses and the same state, bit for bit, as the in-memory epoch."""
    cfg = TrainConfig(model="vgg_bn", batch_size=32, epochs=2, augment="flip_crop", label_smoothing=0.1)
    want_rows, want, model, ds = _run_epochs("vgg_bn", cfg, fused=False)
    tx = optim.make_optimizer(cfg, 320 // cfg.batch_size)
    state = train_state.init_state(model, tx, cfg.seed, ds.image_shape)
    spec = step_lib.StepSpec.from_config(cfg, model, tx, num_classes=ds.num_classes, mean=ds.mean, std=ds.std)
    step = step_lib.make_train_step(spec)
    for epoch, row in zip((1, 2), want_rows):
        order = np.asarray(loop.epoch_permutation(state.rng, epoch, len(ds.train_labels)))
        losses = []
        for i in range(len(order) // cfg.batch_size):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            state, m = step(state, (ds.train_images[idx], ds.train_labels[idx]))
            losses.append(m["loss"])
        assert float(sum(losses[1:], losses[0])) / len(losses) == row["train_loss"]
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_fused_epoch_scan_equals_per_step_loop():
    cfg = TrainConfig(model="padded_cnn", batch_size=32, epochs=2)
    loop_rows, loop_state, _, _ = _run_epochs("padded_cnn", cfg, fused=False)
    scan_rows, scan_state, _, _ = _run_epochs("padded_cnn", cfg, fused=True)
    for a, b in zip(loop_rows, scan_rows):
        assert a["train_accuracy"] == b["train_accuracy"]
        np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=1e-5)
    assert int(scan_state.step) == int(loop_state.step) == 2 * (320 // 32)
    for x, y in zip(jax.tree.leaves(loop_state), jax.tree.leaves(scan_state)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-5)
    assert loop_rows[1]["train_loss"] < loop_rows[0]["train_loss"]


def test_bfloat16_mixed_precision_keeps_float32_weights_and_tracks_float32():
    f32 = TrainConfig(model="vgg_bn", batch_size=32, epochs=2)
    bf16 = TrainConfig(model="vgg_bn", batch_size=32, epochs=2, compute_dtype="bfloat16")
    rows32, _, _, _ = _run_epochs("vgg_bn", f32, fused=False)
    rows16, state, model, ds = _run_epochs("vgg_bn", bf16, fused=True)
    # master weights, optimizer moments and batch-norm statistics stay float32
    assert {str(a.dtype) for a in jax.tree.leaves((state.params, state.opt_state, state.batch_stats))
            if np.issubdtype(a.dtype, np.floating)} == {"float32"}
    for a, b in zip(rows32, rows16):  # bf16 has ~3 significant digits: close, not equal
        assert abs(a["train_loss"] - b["train_loss"]) < 0.02 and a["train_loss"] != b["train_loss"]
    ev = evaluation.evaluate(model, state.variables(), ds, 64, compute_dtype="bfloat16")
    ev32 = evaluation.evaluate(model, state.variables(), ds, 64)
    assert ev["accuracy"] > 0.8 and abs(ev["loss"] - ev32["loss"]) < 0.02


def test_auto_compute_dtype_is_bfloat16_on_gpu_tpu_and_float32_on_cpu():
    assert step_lib.resolve_compute_dtype("auto", "cpu") == "float32"
    assert step_lib.resolve_compute_dtype("auto", "gpu") == step_lib.resolve_compute_dtype("auto", "tpu") == "bfloat16"
    for backend in ("cpu", "gpu"):  # an explicit dtype is what it says everywhere
        assert step_lib.resolve_compute_dtype("float32", backend) == "float32"
        assert step_lib.resolve_compute_dtype("bfloat16", backend) == "bfloat16"


def test_auto_compute_dtype_trains_what_it_resolves_to(monkeypatch):
    """'auto' on this CPU is the float32 step bit for bit; on a GPU (the backend's name faked: the
    choice is made when the step is built and traced) it is the bfloat16 step bit for bit."""
    ds = data.synthetic(64, 16, seed=0)
    model = models.create("seed_net")
    batch = jax.device_put((ds.train_images[:32], ds.train_labels[:32]))

    def one_step(dtype):
        cfg = TrainConfig(model="seed_net", batch_size=32, compute_dtype=dtype)
        tx = optim.make_optimizer(cfg, 2)
        spec = step_lib.StepSpec.from_config(cfg, model, tx, num_classes=ds.num_classes, mean=ds.mean, std=ds.std)
        step = step_lib.make_train_step(spec)
        state, m = step(train_state.init_state(model, tx, 0, ds.image_shape), batch)
        return float(m["loss"]), [np.asarray(a) for a in jax.tree.leaves(state.params)]

    def same(a, b):
        return a[0] == b[0] and all(np.array_equal(x, y) for x, y in zip(a[1], b[1]))

    f32, bf16, auto_cpu = one_step("float32"), one_step("bfloat16"), one_step("auto")
    assert same(auto_cpu, f32) and not same(bf16, f32)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")  # (also picks lax's convs: cnnjax.fastconv)
    auto_gpu = one_step("auto")
    assert same(auto_gpu, one_step("bfloat16")) and not same(auto_gpu, one_step("float32"))


def test_bad_compute_dtype_is_named():
    with pytest.raises(ValueError, match="config.compute_dtype must be one of"):
        TrainConfig(compute_dtype="float16").validate()


def test_fused_epoch_default_follows_the_backend():
    assert not loop.fused_epoch_default("cpu")
    assert loop.fused_epoch_default("gpu") and loop.fused_epoch_default("tpu")


def test_switching_epoch_loop_on_resume_gives_the_same_run(tmp_path, reference):
    """epoch_loop is how a run executes, not what it computes: a run trained with the fused
    scan, and the same run resumed from epoch 2 with per-step calls, both match the
    uninterrupted per-step reference (to float rounding)."""
    import shutil
    workdir = tmp_path / "scan_then_steps"

    def assert_matches_reference():
        rows, ref = numbers(workdir)[:-1], numbers(reference)[:-1]
        assert [(r["epoch"], r["step"]) for r in rows] == [(r["epoch"], r["step"]) for r in ref]
        for a, b in zip(rows, ref):
            np.testing.assert_allclose([a["train_loss"], a["val_loss"]], [b["train_loss"], b["val_loss"]],
                                       rtol=1e-4)
            assert abs(a["val_accuracy"] - b["val_accuracy"]) <= 1 / 64

    first = run_cli(*cli_flags(workdir), "--config.epoch_loop=scan")
    assert first.returncode == 0, first.stderr
    assert_matches_reference()
    os.remove(workdir / "summary.json")  # pretend it stopped after epoch 2
    shutil.rmtree(workdir / "checkpoints" / "3")
    resumed = run_cli(*cli_flags(workdir), "--config.epoch_loop=steps")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout and "epoch 2" in resumed.stdout
    assert_matches_reference()


def test_selection_follows_validation_never_test(tmp_path, monkeypatch):
    """A constructed case where they disagree: the test labels are shifted by one class, so the
    better the model gets, the worse its test accuracy.  The selected epoch, the kept best
    checkpoint and load_trained('best') follow validation accuracy; test is only reported."""
    import dataclasses
    ds = data.synthetic(640, 200, seed=0)
    shifted = dataclasses.replace(ds, test_labels=(ds.test_labels + 1) % ds.num_classes)
    monkeypatch.setattr(data, "load", lambda name, data_dir=None, **options: shifted)
    workdir = tmp_path / "disagree"
    result = experiment.train_and_evaluate(dict(SMALL, progress="none"), str(workdir),
                                           log=lambda s: None)
    rows = Workdir(workdir).metrics()
    by_val = max(rows, key=lambda r: (r["val_accuracy"], -r["epoch"]))["epoch"]
    model = models.create("padded_cnn")
    target = train_state.abstract_state(model, optim.make_optimizer(TrainConfig(**SMALL), 9), 0, ds.image_shape)
    ckpt = checkpoint.Checkpoints(str(workdir / "checkpoints"))
    assert ckpt.epochs() == [1, 2, 3]
    test_of = {e: evaluation.evaluate(model, ckpt.restore(e, target)[0].variables(), shifted)["accuracy"] for e in (1, 2, 3)}
    ckpt.close()
    by_test = max(test_of, key=lambda e: (test_of[e], -e))
    assert by_val != by_test, (rows, test_of)  # the case really disagrees
    assert result["selected_epoch"] == by_val
    assert result["selected_test_accuracy"] == pytest.approx(test_of[by_val])
    assert runs.load_trained(str(workdir), "best")[3] == by_val


def test_a_work_directory_made_before_validation_splits_resumes_without_one(tmp_path):
    """Its config.json has no validation_size: the same command (whose default is now a split)
    resumes it as it was made, says so, and selects nothing by the test set."""
    workdir = tmp_path / "old"
    experiment.train_and_evaluate(dict(SMALL, progress="none", validation_size=0, epochs=3), str(workdir),
                                  log=lambda s: None)
    config = json.loads((workdir / "config.json").read_text())
    del config["validation_size"]
    (workdir / "config.json").write_text(json.dumps(config))
    os.remove(workdir / "summary.json")
    import shutil
    shutil.rmtree(workdir / "checkpoints" / "3")
    said = []
    result = experiment.train_and_evaluate(dict(SMALL, progress="none"), str(workdir), log=said.append)
    assert any("made before the settings validation_size existed" in s and "validation_size=0.0" in s
               for s in said), said
    assert any("no validation split" in s for s in said), said
    assert result["num_val"] == 0 and result["selected_epoch"] == 3
    assert result["selected_test_accuracy"] == result["final_test_accuracy"]


@pytest.mark.parametrize("name", ["airbench28_s", "padded_cnn", "lenet5"])
def test_init_state_draws_the_parameters_model_init_draws(name):
    """init_state jits model.init (one compilation, not one per operation, at a lower
    optimisation level); the parameters and BN statistics are bit for bit those of the plain
    call with the same key."""
    import jax.numpy as jnp
    model = models.create(name, 10)
    tx = optax.adam(1e-3)
    state = train_state.init_state(model, tx, 3, (28, 28, 1), ema=True)
    plain = model.init(jax.random.fold_in(jax.random.PRNGKey(3), 0), jnp.zeros((1, 28, 28, 1)), train=False)
    assert len(jax.tree.leaves(plain["params"])) >= 4
    for got, want in ((state.params, plain["params"]), (state.batch_stats, plain.get("batch_stats", {})),
                      (state.ema["params"], plain["params"])):
        assert jax.tree.structure(got) == jax.tree.structure(want)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_array_equal(a, b)


def test_run_epoch_is_the_one_loop_for_any_batch_source():
    """loop.run_epoch sums each advance's metrics, reports progress after each, and is what both
    the in-memory and the streamed sources run (a user's own source too)."""
    import jax.numpy as jnp

    class Source:
        steps, batch_size = 3, 4

        def epoch(self, state, epoch):
            assert epoch == 7
            for i in range(3):
                yield lambda s, i=i: (s + 1, {"loss": jnp.float32(i + 1), "correct": jnp.int32(i)}, 1)

    calls = []
    state, m = loop.run_epoch(0, Source(), 7, lambda i, n, metrics: calls.append((i, n, float(metrics["loss"]))))
    assert state == 3 and m == {"train_loss": 2.0, "train_accuracy": 3 / 12}
    assert calls == [(0, 3, 1.0), (1, 3, 2.0), (2, 3, 3.0)]


def _drawings(tmp_path, epochs: int, epoch_seconds: float, **settings) -> list[int]:
    """How many rows each drawing of curves.png had, for a run of ``epochs`` epochs of
    ``epoch_seconds`` each on a fake clock, where a drawing takes 0.5 s."""
    now = [0.0]
    drawn = []

    class Plots:
        @staticmethod
        def plot_curves(rows, path, title=None):
            now[0] += 0.5
            drawn.append(len(rows))

    rows = []
    curves = experiment._Curves(Plots, rows, Workdir(str(tmp_path)), TrainConfig(**SMALL, **settings),
                                clock=lambda: now[0])
    for epoch in range(1, epochs + 1):
        now[0] += epoch_seconds
        rows.append({"epoch": epoch})
        curves.after_epoch(rows[-1])
    curves.after_training()
    return drawn


def test_curves_are_redrawn_at_most_every_spacing_times_a_drawing_and_once_after_training(tmp_path):
    """A 100-epoch run of 0.1-s epochs redrew curves.png (~0.5 s) after every epoch: it draws
    when SPACING x FIRST_DRAWING (10 s) of training has passed, then each time SPACING x the last
    drawing's time has, and always at the end."""
    drawn = _drawings(tmp_path, 350, 0.1)
    assert 99 <= drawn[0] <= 101 and drawn[-1] == 350 and len(drawn) == 4, drawn
    assert all(100 <= gap <= 102 for gap in np.diff(drawn[:-1])), drawn


def test_a_run_shorter_than_the_first_spacing_draws_its_curves_once_after_training(tmp_path):
    """A study's 3-epoch trial of 2-s epochs drew after epoch 1 and again after training (0.3 s of
    ~7 s in a claim study's run); now only after training."""
    assert _drawings(tmp_path, 3, 2.0) == [3]


def test_a_timed_run_draws_its_curves_only_after_training(tmp_path):
    """Epochs of 12 s, each past the spacing: an untimed run draws after every one, a timed run
    (a target clock, which must not time the drawing) only once, after training."""
    assert _drawings(tmp_path, 3, 12.0) == [1, 2, 3]
    assert _drawings(tmp_path, 3, 12.0, target_accuracy=0.9, validation_size=0.1) == [3]
