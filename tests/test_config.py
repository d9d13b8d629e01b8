"""The experiment schema (cnnjax.train.config), the config files and the --config command line:
one declaration of every setting, validated once, round-tripping through config.json."""
import dataclasses
import glob
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from ml_collections import config_flags

from cnnjax.train import config, experiment, runs
from cnnjax.train.config import ConfigError, TrainConfig
from cnnjax.train.workdir import Workdir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(REPO, "experiments", "configs", "*.py")))
TINY = dict(dataset="synthetic", num_train=256, num_test=64, batch_size=64, epochs=2, progress="none")


def load_config_file(path, arg=None):
    module = config_flags.config_flags._load_source(os.path.basename(path)[:-3], path)
    return module, (module.get_config(arg) if arg is not None else module.get_config())


def config_file_variants():
    """(file, argument) for every config file, each recipe of recipes.py."""
    from experiments.configs import recipes
    out = []
    for path in CONFIGS:
        name = os.path.basename(path)
        if name == "rerun.py":
            continue  # needs a workdir: tested below
        if name == "recipes.py":
            out += [(path, r) for r in recipes.RECIPES]
        elif not name.startswith("_") and "get_config" in open(path).read():
            out.append((path, None))
    return out


@pytest.mark.parametrize("path,arg", config_file_variants(),
                         ids=lambda v: os.path.basename(v) if isinstance(v, str) and v.endswith(".py") else str(v))
def test_every_config_file_loads_and_validates(path, arg):
    _, cfg_dict = load_config_file(path, arg)
    cfg = config.from_dict(cfg_dict)  # raises on an unknown key, a wrong type or a bad value
    assert isinstance(cfg, TrainConfig)


def test_default_config_file_is_the_schema_defaults():
    _, cfg_dict = load_config_file(os.path.join(REPO, "experiments", "configs", "default.py"))
    assert config.from_dict(cfg_dict) == TrainConfig()
    assert set(cfg_dict.keys()) == {f.name for f in dataclasses.fields(TrainConfig)}


def test_json_round_trip_is_exact():
    cfg = TrainConfig(model="mlp", model_options={"hidden": [35, 35], "activation": "tanh"}, learning_rate=3e-3,
                      data_dir="/x", augment="flip_crop")
    again = config.from_dict(json.loads(json.dumps(config.to_dict(cfg))))
    assert again == cfg and again.model_options == {"activation": "tanh", "hidden": (35, 35)}


@pytest.mark.parametrize("mapping,message", [
    ({"learnig_rate": 0.1}, "config.learnig_rate is not a setting (did you mean learning_rate?)"),
    ({"epochs": 2.5}, "config.epochs must be an integer, got 2.5"),
    ({"epochs": True}, "config.epochs must be an integer, got True"),
    ({"learning_rate": "fast"}, "config.learning_rate must be a number"),
    ({"learning_rate": float("inf")}, "config.learning_rate must be a finite number"),
    ({"optimizer": "adamx"}, "config.optimizer must be one of adam, adamw, sgd; got 'adamx'"),
    ({"warmup_epochs": 20.0}, "config.warmup_epochs must be in [0, epochs=15)"),
    ({"model_options": [1]}, "config.model_options must be a mapping"),
    ({"model_options": {"activaton": "relu"}}, "config.model_options: model 'padded_cnn' has no option(s) ['activaton']"),
    ({"model_options": {"num_classes": 5}}, "config.model_options: padded_cnn: num_classes is set by the dataset"),
    ({"model_options": {"widths": (-8, 16)}}, "config.model_options: padded_cnn: widths must be 2 positive integers"),
    ({"model": "resnet"}, "config.model: unknown model 'resnet'"),
    ({"data_dir": 3}, "config.data_dir must be a string"),
    ({"seed": -1}, "config.seed must be >= 0"),
    ({"augment_policy": "autoaugment"}, "config.augment_policy must be one of none, randaugment, trivialaugment"),
    ({"randaugment_m": 31}, "config.randaugment_m must be a magnitude bin in [0, 30], got 31"),
    ({"randaugment_n": -1}, "config.randaugment_n must be in [0, 14], got -1"),
    ({"affine_rotate": -5.0}, "config.affine_rotate must be in [0, 180] degrees, got -5.0"),
    ({"affine_translate": 1.5}, "config.affine_translate must be in [0, 1]"),
    ({"affine_scale": 1.0}, "config.affine_scale must be in [0, 1), got 1.0"),
    ({"affine_shear": 90.0}, "config.affine_shear must be in [0, 90) degrees, got 90.0"),
    ({"augment_interpolation": "cubic"}, "config.augment_interpolation must be one of nearest, bilinear"),
    ({"augment_fill": 256}, "config.augment_fill must be a pixel value in [0, 255], got 256"),
    ({"erasing_prob": 1.5}, "config.erasing_prob must be in [0, 1], got 1.5"),
    ({"erasing_area": [0.3, 0.1]}, "config.erasing_area must be (low, high) with 0 < low <= high <= 1, got [0.3, 0.1]"),
    ({"erasing_area": [0.1]}, "config.erasing_area must be (low, high)"),
    ({"erasing_value": -2}, "config.erasing_value must be a pixel value in [0, 255] or -1 (noise), got -2"),
    ({"mix": "mixcut"}, "config.mix must be one of none, mixup, cutmix, mixup_cutmix; got 'mixcut'"),
    ({"mix_alpha": 0.0}, "config.mix_alpha must be > 0, got 0.0"),
    ({"mix_prob": -0.1}, "config.mix_prob must be in [0, 1], got -0.1"),
])
def test_bad_settings_are_named(mapping, message):
    with pytest.raises(ConfigError) as e:
        config.from_dict(mapping)
    assert message in str(e.value)


def test_sweep_helpers():
    axes = config.product(config.sweep("model", ["a", "b"]), config.sweep("seed", [0, 1]))
    assert axes == [{"model": "a", "seed": 0}, {"model": "a", "seed": 1},
                    {"model": "b", "seed": 0}, {"model": "b", "seed": 1}]
    assert config.zipped(config.sweep("a", [1, 2]), config.sweep("b", [3, 4])) == [{"a": 1, "b": 3}, {"a": 2, "b": 4}]
    with pytest.raises(ConfigError, match="equal lengths"):
        config.zipped(config.sweep("a", [1, 2]), config.sweep("b", [3]))
    base = config.config_dict(model_options={"pool": "avg"})
    applied = config.apply(base, {"model_options.activation": "sigmoid", "epochs": 3})
    assert applied["model_options"] == {"activation": "sigmoid", "pool": "avg"} and applied["epochs"] == 3
    assert base.epochs == 15  # the base is not changed


def test_print_config_lists_every_setting_with_its_value():
    proc = subprocess.run([sys.executable, "-m", "experiments.train", "--print_config", "--config.epochs=3",
                           "--config.model_options.pool=avg"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [l.split()[0] for l in lines] == [f.name for f in dataclasses.fields(TrainConfig)]
    assert "epochs                = 3  # Training epochs." in lines  # aligned on the longest name, augment_interpolation
    assert any(l.startswith("augment_policy        = 'none'  #") and "[none|randaugment|trivialaugment]" in l
               for l in lines)
    assert any(l.startswith("model_options         = {'pool': 'avg'}") for l in lines)


def test_run_fields_are_exactly_the_ones_that_do_not_change_numbers():
    assert config.run_fields() == {"data_dir", "eval_batch_size", "checkpoint_every", "keep_checkpoints", "epoch_loop",
                                   "progress", "data_cache_dir", "data_in_memory", "data_workers",
                                   "data_changed",  # only says whether changed data may be accepted (issue 35)
                                   "compile_cache_dir"}


def test_data_in_memory_takes_the_command_line_and_python_spellings():
    for value, canonical in ((True, "true"), (False, "false"), ("False", "false"), ("AUTO", "auto")):
        assert config.from_dict({"data_in_memory": value}).data_in_memory == canonical
    with pytest.raises(config.ConfigError, match="config.data_in_memory must be one of auto, true, false"):
        config.from_dict({"data_in_memory": "sometimes"})
    with pytest.raises(config.ConfigError, match="config.channels must be 0"):
        config.from_dict({"channels": 2})


def run_train(*args):
    return subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_overrides_of_every_type_reach_config_json(tmp_path):
    """Number, string, enum, tuple and new nested model options from the command line."""
    workdir = tmp_path / "w"
    proc = run_train(f"--workdir={workdir}", "--config.dataset=synthetic", "--config.num_train=128",
                     "--config.num_test=64", "--config.batch_size=64", "--config.epochs=1",
                     "--config.learning_rate=3e-3", "--config.optimizer=sgd", "--config.model_options.pool=avg",
                     "--config.model_options.widths=(8, 16)", "--config.model_options.padding=same",
                     "--config.progress=none")
    assert proc.returncode == 0, proc.stderr
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["learning_rate"] == 0.003 and saved["optimizer"] == "sgd" and saved["num_train"] == 128
    assert saved["model_options"] == {"padding": "same", "pool": "avg", "widths": [8, 16]}
    assert json.loads((workdir / "summary.json").read_text())["params"] == 8 * 25 + 8 + 16 * 8 * 25 + 16 + 784 * 10 + 10


def test_config_json_reruns_the_same_run_bit_identically(tmp_path):
    first = tmp_path / "first"
    experiment.train_and_evaluate(dict(TINY, model_options={"widths": (8, 16)}), str(first), log=lambda s: None)
    again = tmp_path / "again"
    proc = run_train(f"--config=experiments/configs/rerun.py:{first}", f"--workdir={again}")
    assert proc.returncode == 0, proc.stderr
    assert (again / "config.json").read_text() == (first / "config.json").read_text()
    keys = ("epoch", "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy")
    assert [{k: r[k] for k in keys} for r in Workdir(again).metrics()] == \
           [{k: r[k] for k in keys} for r in Workdir(first).metrics()]
    for a, b in zip(jax.tree.leaves(runs.load_trained(str(first), "latest")[1]),
                    jax.tree.leaves(runs.load_trained(str(again), "latest")[1])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_summary_takes_the_same_config_words():
    proc = subprocess.run([sys.executable, "-m", "experiments.summary", "--config.model=mlp",
                           "--config.model_options.hidden=(35, 35)"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "total params: 29,095" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "experiments.summary", "--config.model_options.hiden=3"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: ") and "hiden" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_no_second_list_of_settings():
    """Each setting is declared once (cnnjax/train/config.py): no module that trains or sweeps defines an
    absl flag named like a setting or copies a setting's choices.  (Demos and benchmarks have knobs
    of their own, e.g. the demo image's --dataset.)"""
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    offenders = []
    trainers = [os.path.join(REPO, "experiments", n) for n in ("train.py", "summary.py", "common.py")]
    # (experiments.evaluate's --data_dir is where the data is on this machine, for any run's workdir)
    library = glob.glob(os.path.join(REPO, "cnnjax", "**", "*.py"), recursive=True)
    assert os.path.join(REPO, "cnnjax", "train", "step.py") in library  # the whole package, its sub-packages too
    for path in trainers + library + glob.glob(os.path.join(REPO, "launch", "*.py")):
        if True:
            if path == os.path.join(REPO, "cnnjax", "train", "config.py"):
                continue
            text = open(path).read()
            for name in names:
                if f'DEFINE_string("{name}"' in text or f'DEFINE_integer("{name}"' in text or \
                        f'DEFINE_float("{name}"' in text or f'DEFINE_enum("{name}"' in text:
                    offenders.append(f"{os.path.relpath(path, REPO)} defines --{name}")
            for choices in (config.OPTIMIZERS, config.SCHEDULES, config.AUGMENTATIONS, config.EPOCH_LOOPS):
                if repr(choices) in text or repr(list(choices)) in text:
                    offenders.append(f"{os.path.relpath(path, REPO)} copies {choices}")
    assert not offenders, offenders
