"""config.init_from: start a run from another run's or a file's weights (cnnjax.train.init_from)."""
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from cnnjax.train import config as config_lib
from cnnjax import data
from cnnjax.train import experiment, init_from, runs
from cnnjax.train.state import init_state
from cnnjax.train.workdir import Workdir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = dict(dataset="synthetic", num_train=320, num_test=100, batch_size=32, epochs=2, seed=0, progress="none",
            model="vgg_bn", model_options={"widths": (4, 8)})
NUMBERS = ("epoch", "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy")


def quiet(cfg, workdir, log=None):
    return experiment.train_and_evaluate(cfg, str(workdir), log=log or (lambda s: None))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A finished vgg_bn run on classes 0-4 (batch norm: statistics are loaded too)."""
    wd = tmp_path_factory.mktemp("source") / "run"
    quiet(dict(BASE, classes=(0, 1, 2, 3, 4)), wd)
    return wd


def _logits(model, variables, ds):
    x = data.normalize(ds.test_images[:50], ds.mean, ds.std)
    return np.asarray(model.apply(variables, x, train=False))


def _started(cfg):
    """(setup, the state a fresh run starts training from)."""
    s = experiment.build(config_lib.from_dict(cfg))
    state = init_state(s.model, s.tx, s.cfg.seed, s.data.image_shape)
    return s, init_from.apply(state, s.init, s.tx)


def test_loading_a_workdir_gives_the_source_logits_and_a_table(source):
    model, variables, _, epoch = runs.load_trained(str(source), "best")
    s, state = _started(dict(BASE, classes=(0, 1, 2, 3, 4), init_from=str(source), seed=3))
    np.testing.assert_array_equal(_logits(s.model, state.variables(), s.data), _logits(model, variables, s.data))
    assert s.init.table.splitlines()[0] == f"init_from {source} (epoch {epoch}): 22 loaded, 0 new, 0 skipped"  # 14 params, 8 statistics
    assert any(line.split() == ["bn1_1/mean", "(batch_stats)", "4", "loaded"] for line in s.init.table.splitlines())
    info = s.data_info()["init_from"]
    src = Workdir(str(source)).data_info()
    assert info["epoch"] == epoch and info["mean"] == src["mean"] and info["class_names"] == src["class_names"]


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_weights_files_load_the_same(source, tmp_path, suffix):
    model, variables, _, _ = runs.load_trained(str(source), "best")
    path = str(tmp_path / f"w{suffix}")
    init_from.write_weights(variables, path, mean=0.5, std=0.25, class_names=["a"])
    s, state = _started(dict(BASE, classes=(0, 1, 2, 3, 4), init_from=path))
    np.testing.assert_array_equal(_logits(s.model, state.variables(), s.data), _logits(model, variables, s.data))
    if suffix == ".safetensors":
        assert s.init.record["mean"] == 0.5 and s.init.record["class_names"] == ["a"]


def test_a_new_head_is_reinitialised_only_where_listed(source):
    cfg = dict(BASE, classes=(5, 6, 7), init_from=str(source))  # 3 classes: fc is 392x3, the source's 392x5
    with pytest.raises(init_from.InitFromError, match=r"config.init_from: fc/bias has shape \(5,\) in .* and \(3,\) "
                                                      r"in this model; list it in config.reinit"):
        experiment.build(config_lib.from_dict(cfg))
    s, state = _started(dict(cfg, reinit=["fc"]))
    fresh = init_state(s.model, s.tx, 0, s.data.image_shape)
    np.testing.assert_array_equal(state.params["fc"]["kernel"], fresh.params["fc"]["kernel"])
    _, src, _, _ = runs.load_trained(str(source), "best")
    np.testing.assert_array_equal(state.params["conv2_2"]["kernel"], src["params"]["conv2_2"]["kernel"])
    assert any("fc/kernel" in l and "new: config.reinit (source shape (392, 5))" in l for l in s.init.table.splitlines())


def test_reinit_starts_a_head_fresh_even_where_the_shapes_agree(source):
    s, state = _started(dict(BASE, classes=(5, 6, 7, 8, 9), init_from=str(source), reinit=["fc"]))  # 5 -> 5 classes
    fresh = init_state(s.model, s.tx, 0, s.data.image_shape)
    np.testing.assert_array_equal(state.params["fc"]["kernel"], fresh.params["fc"]["kernel"])
    assert s.init.table.splitlines()[0].endswith("20 loaded, 2 new, 0 skipped")


def test_resume_of_a_fine_tuning_run_is_bit_exact(source, tmp_path):
    cfg = dict(BASE, classes=(5, 6, 7, 8, 9), init_from=str(source), freeze=["conv1_*", "bn1_*"], epochs=3,
               learning_rate=3e-3)
    said = []
    quiet(cfg, tmp_path / "a", said.append)
    assert any(s.startswith(f"init_from {source}") for s in said)
    quiet(cfg, tmp_path / "b")
    os.remove(tmp_path / "b" / "summary.json")
    for e in (2, 3):
        shutil.rmtree(tmp_path / "b" / "checkpoints" / str(e), ignore_errors=True)
    said = []
    quiet(cfg, tmp_path / "b", said.append)
    assert any("from the checkpoint of epoch 1" in s for s in said) and not any("init_from" in s for s in said)
    rows = lambda w: [{k: r[k] for k in NUMBERS} for r in Workdir(str(w)).metrics()]
    assert rows(tmp_path / "a") == rows(tmp_path / "b")
    for x, y in zip(jax.tree.leaves(runs.load_trained(str(tmp_path / "a"), "latest")[1]),
                    jax.tree.leaves(runs.load_trained(str(tmp_path / "b"), "latest")[1])):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    _, src, _, _ = runs.load_trained(str(source), "best")
    _, tuned, _, _ = runs.load_trained(str(tmp_path / "a"), "latest")
    np.testing.assert_array_equal(tuned["params"]["conv1_1"]["kernel"], src["params"]["conv1_1"]["kernel"])  # frozen
    np.testing.assert_array_equal(tuned["batch_stats"]["bn1_1"]["var"], src["batch_stats"]["bn1_1"]["var"])
    assert json.loads((tmp_path / "a" / "data.json").read_text())["init_from"]["path"] == str(source)


def _damaged_checkpoints(source, tmp_path):
    wd = tmp_path / "damaged"
    shutil.copytree(source, wd)
    for root, _, files in os.walk(wd / "checkpoints"):
        for f in files:
            p = os.path.join(root, f)
            if os.path.getsize(p) > 100:
                with open(p, "r+b") as fh:
                    fh.truncate(50)
    return wd


def _unfinished(source, tmp_path):
    wd = tmp_path / "unfinished"
    shutil.copytree(source, wd)
    os.remove(wd / "summary.json")
    return wd


def _garbage(source, tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    return path


def _foreign(source, tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, **{"params/encoder/kernel": np.zeros((3, 3))})
    return path


@pytest.mark.parametrize("make,over,message", [
    (lambda s, t: t / "nowhere", {}, "does not exist"),
    (lambda s, t: t, {}, "is not a cnnjax work directory (no config.json)"),
    (_unfinished, {}, "is unfinished (no summary.json)"),
    (_damaged_checkpoints, {}, "cannot be read"),
    (_garbage, {}, "cannot be read (SafetensorError"),
    (_foreign, {}, "no variable of"),
    (lambda s, t: s, {"model": "padded_cnn", "model_options": {}}, "trained vgg_bn, another architecture than this "
                                                                    "run's padded_cnn"),
    (lambda s, t: s, {"model_options": {"widths": (4, 6)}}, "bn2_1/bias has shape (8,) in"),
    (lambda s, t: s, {"reinit": ["head"]}, "config.reinit: pattern 'head' matches no variable"),
])
def test_bad_sources_are_one_error_and_nothing_is_written(source, tmp_path, make, over, message):
    src = make(source, tmp_path)
    cfg = dict(BASE, classes=(0, 1, 2, 3, 4), init_from=str(src), **over)
    with pytest.raises(ValueError) as e:
        quiet(cfg, tmp_path / "new")
    assert message in str(e.value) and str(e.value).startswith("config.")
    assert not os.path.exists(tmp_path / "new")


def test_cli_error_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "experiments.train", f"--workdir={tmp_path / 'w'}",
                           "--config.dataset=synthetic", f"--config.init_from={tmp_path / 'missing'}"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: config.init_from: {tmp_path / 'missing'} does not exist"
    assert not os.path.exists(tmp_path / "w")
