"""cnnjax.train.freeze: path patterns, frozen parameters and batch-norm statistics, learning-rate multipliers."""
import functools
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import data, models
from cnnjax.train import experiment, freeze, optim, loop
from cnnjax.train import step as step_lib
from cnnjax.train.state import init_state
from cnnjax.train import config as config_lib
from cnnjax.train.config import TrainConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VGG = dict(model="vgg_bn", model_options={"widths": (4, 8)}, batch_size=16, optimizer="sgd", learning_rate=0.1,
           label_smoothing=0.0)


def test_paths_and_pattern_rules():
    params = {"conv1": {"kernel": 0, "bias": 0}, "conv10": {"kernel": 0}, "stage1": {"block1": {"conv": {"kernel": 0}}},
              "fc": {"kernel": 0, "bias": 0}}
    assert freeze.paths(params) == ["conv1/bias", "conv1/kernel", "conv10/kernel", "fc/bias", "fc/kernel",
                                    "stage1/block1/conv/kernel"]
    pick = lambda patterns: [p for p in freeze.paths(params) if freeze.selected(patterns, p)]
    assert pick(["conv1"]) == ["conv1/bias", "conv1/kernel"]  # a layer, not conv10
    assert pick(["conv1*"]) == ["conv1/bias", "conv1/kernel", "conv10/kernel"]
    assert pick(["*/kernel"]) == ["conv1/kernel", "conv10/kernel", "fc/kernel", "stage1/block1/conv/kernel"]
    assert pick(["stage1"]) == ["stage1/block1/conv/kernel"]  # everything below
    assert pick(["*", "!fc"]) == ["conv1/bias", "conv1/kernel", "conv10/kernel", "stage1/block1/conv/kernel"]
    assert pick(["*", "!fc", "fc/bias"]) == ["conv1/bias", "conv1/kernel", "conv10/kernel", "fc/bias",
                                             "stage1/block1/conv/kernel"]  # the last match decides
    assert pick(["Conv1"]) == []  # case-sensitive


def _setup(**over):
    cfg = TrainConfig(**{**VGG, **over})
    ds = data.synthetic(64, 16, seed=0)
    model = models.create(cfg.model, ds.num_classes, **cfg.model_options)
    tx = optim.make_optimizer(cfg, 4)
    state = init_state(model, tx, cfg.seed, ds.image_shape)
    return ds, state, _step(cfg, model, tx, ds)


def _step(cfg, model, tx, ds):
    """``step(state, (images, labels))``: the training step jitted without donating the state."""
    spec = step_lib.StepSpec.from_config(cfg, model, tx, num_classes=ds.num_classes, mean=ds.mean, std=ds.std)
    return jax.jit(functools.partial(step_lib.train_step, spec))


def _train(ds, state, step, steps=4, batch=16):
    order = np.asarray(loop.epoch_permutation(state.rng, 1, len(ds.train_labels)))
    for i in range(steps):
        idx = order[i * batch:(i + 1) * batch]
        state, _ = step(state, (ds.train_images[idx], ds.train_labels[idx]))
    return state


def _flat(tree):
    return {freeze.path_str(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def test_frozen_parameters_and_batch_norm_statistics_are_bit_identical_while_the_rest_moved():
    ds, before, step = _setup(freeze=("conv1_1", "bn1_1"), weight_decay=0.1, momentum=0.9)
    after = _train(ds, jax.tree.map(jnp.copy, before), step)
    p0, p1 = _flat(before.params), _flat(after.params)
    s0, s1 = _flat(before.batch_stats), _flat(after.batch_stats)
    frozen = ["conv1_1/kernel", "bn1_1/scale", "bn1_1/bias"]
    for k in frozen:
        np.testing.assert_array_equal(p1[k], p0[k])  # no step, no weight decay
    for k in ("bn1_1/mean", "bn1_1/var"):
        np.testing.assert_array_equal(s1[k], s0[k])
    for k in set(p0) - set(frozen):
        assert not np.array_equal(p1[k], p0[k]), k
    for k in set(s0) - {"bn1_1/mean", "bn1_1/var"}:
        assert not np.array_equal(s1[k], s0[k]), k


def test_a_frozen_batch_norm_layer_normalises_with_its_running_statistics():
    """Training a probe of a BN net: the frozen features are the inference-mode features, so
    the loss of the training step equals the loss computed from eval-mode logits."""
    cfg = TrainConfig(**{**VGG, "freeze": ("*", "!fc"), "model_options": {"widths": (4, 8), "dropout": 0.0}})
    ds = data.synthetic(64, 16, seed=0)
    model = models.create(cfg.model, ds.num_classes, **cfg.model_options)
    tx = optim.make_optimizer(cfg, 4)
    state = init_state(model, tx, 0, ds.image_shape)
    state = state._replace(batch_stats=jax.tree.map(lambda a: a + 0.5, state.batch_stats))  # not the batch's
    _, m = _step(cfg, model, tx, ds)(state, (ds.train_images[:16], ds.train_labels[:16]))
    x = data.normalize(ds.train_images[:16], ds.mean, ds.std)
    logits = model.apply(state.variables(), x, train=False)
    want = step_lib.cross_entropy(logits, ds.train_labels[:16], 10).mean()
    np.testing.assert_allclose(float(m["loss"]), float(want), rtol=1e-6)


def test_a_linear_probe_trains_only_the_head():
    ds, before, step = _setup(freeze=("*", "!fc"))
    after = _train(ds, jax.tree.map(jnp.copy, before), step)
    p0, p1 = _flat(before.variables()), _flat(after.variables())
    moved = sorted(k for k in p0 if not np.array_equal(p0[k], p1[k]))
    assert moved == ["params/fc/bias", "params/fc/kernel"]


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_the_learning_rate_multiplier_scales_the_update_exactly(optimizer):
    cfg = TrainConfig(**{**VGG, "optimizer": optimizer, "weight_decay": 0.01, "schedule": "constant"})
    params = {"conv": {"kernel": jnp.arange(6.0).reshape(2, 3)}, "fc": {"kernel": jnp.ones((3,)) * 2}}
    grads = jax.tree.map(lambda p: jnp.sin(p) + 0.3, params)
    base = optim.make_optimizer(cfg, 4)
    scaled, same = (freeze.partition(base, lr_multipliers={"fc": f}) for f in (0.25, 1.0))  # one structure
    u_base, _ = base.update(grads, base.init(params), params)
    u_same, _ = same.update(grads, same.init(params), params)
    u_scaled, _ = scaled.update(grads, scaled.init(params), params)
    np.testing.assert_allclose(u_scaled["conv"]["kernel"], u_base["conv"]["kernel"], rtol=1e-6)  # the base's
    np.testing.assert_allclose(u_same["fc"]["kernel"], u_base["fc"]["kernel"], rtol=1e-6)
    np.testing.assert_array_equal(u_scaled["fc"]["kernel"], u_same["fc"]["kernel"] * np.float32(0.25))  # exact
    if optimizer == "sgd":  # by hand: p - lr * factor * (g + wd * p), momentum's first step is the gradient
        g = np.sin(2.0) + 0.3
        np.testing.assert_allclose(np.asarray(u_scaled["fc"]["kernel"]), -0.1 * 0.25 * (g + 0.01 * 2.0), rtol=1e-6)


def test_lr_multipliers_reach_the_training_step():
    ds, before, step = _setup(lr_multipliers={"fc": 0.5}, momentum=0.0, schedule="constant")
    ds, plain_state, plain = _setup(momentum=0.0, schedule="constant")
    a = _flat(_train(ds, jax.tree.map(jnp.copy, before), step, steps=1).params)
    b = _flat(_train(ds, plain_state, plain, steps=1).params)
    p0 = _flat(before.params)
    np.testing.assert_allclose(a["fc/kernel"] - p0["fc/kernel"], 0.5 * (b["fc/kernel"] - p0["fc/kernel"]),
                               rtol=1e-5, atol=1e-8)
    np.testing.assert_array_equal(a["conv1_1/kernel"], b["conv1_1/kernel"])


def test_whiten_init_is_a_freeze_pattern():
    cfg = TrainConfig(model="airbench", model_options={"widths": (4, 8, 8), "whiten_width": 8}, whiten_init=True)
    tx = optim.make_optimizer(cfg, 4)
    model = models.create(cfg.model, 10, **cfg.model_options)
    state = init_state(model, tx, 0, (28, 28, 1))
    groups = freeze.labels(state.params, (freeze.WHITEN,))
    assert [k for k, g in _flat(groups).items() if g == "frozen"] == ["whiten/kernel"]
    assert set(state.opt_state.inner_states) == {"trained", "frozen"}  # the checkpoint layout of earlier runs


@pytest.mark.parametrize("setting,message", [
    (dict(freeze=("conv9",)), "config.freeze: pattern 'conv9' matches no variable; the paths are bn1_1/{bias,mean,scale,var}, "
                              "bn1_2/{bias,mean,scale,var}, bn2_1/{bias,mean,scale,var}, bn2_2/{bias,mean,scale,var}, "
                              "conv1_1/kernel, conv1_2/kernel, conv2_1/kernel, conv2_2/kernel, fc/{bias,kernel}"),
    (dict(freeze=("*", "!head")), "config.freeze: pattern '!head' matches no variable"),
    (dict(lr_multipliers={"fc9": 0.1}), "config.lr_multipliers: pattern 'fc9' matches no variable"),
    (dict(freeze=("*",)), "config.freeze ['*'] freezes every parameter: nothing would train"),
    (dict(lr_multipliers={"fc": 0.1, "*/kernel": 0.2}), "fc/kernel is matched by patterns with different factors"),
])
def test_bad_patterns_are_refused_before_anything_is_written(tmp_path, setting, message):
    cfg = dict(VGG, dataset="synthetic", num_train=64, num_test=16, epochs=1, progress="none", **setting)
    with pytest.raises(ValueError) as e:
        experiment.train_and_evaluate(cfg, str(tmp_path / "w"), log=lambda s: None)
    assert message in str(e.value)
    assert not os.path.exists(tmp_path / "w")


def test_cli_error_is_one_line_with_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "experiments.train", f"--workdir={tmp_path / 'w'}",
                           "--config.dataset=synthetic", "--config.num_train=64", "--config.epochs=1",
                           "--config.freeze=('conv3',)"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: config.freeze: pattern 'conv3' matches no variable; "
                                                   "the paths are conv1/{bias,kernel}, conv2/{bias,kernel}, fc/{bias,kernel}"), lines
    assert not os.path.exists(tmp_path / "w")


def test_config_settings_are_validated():
    for value, message in (({"freeze": [3]}, "config.freeze must be a list of path patterns"),
                           ({"lr_multipliers": {"fc": 0}}, "config.lr_multipliers must map path patterns to factors > 0"),
                           ({"lr_multipliers": {"!fc": 2.0}}, "config.lr_multipliers must map path patterns"),
                           ({"freeze": "fc"}, "config.freeze must be a list")):
        with pytest.raises(config_lib.ConfigError, match=message):
            config_lib.from_dict(value)
