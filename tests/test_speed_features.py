"""Speedrun features (issue 15): weight EMA, test-time augmentation, batch-norm options and
airbench's data-dependent whitening init -- values checked by hand on tiny cases."""
import os
import shutil
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from cnnjax import data, models
from cnnjax.train import checkpoint, evaluation, experiment, optim, runs, state as train_state, whitening
from cnnjax.train import step as step_lib
from cnnjax.train import config as config_lib
from cnnjax.train.config import TrainConfig
from cnnjax.train.workdir import Workdir

TINY = dict(dataset="synthetic", num_train=320, num_test=100, batch_size=64, epochs=3, seed=0, progress="none",
            model_options={"widths": (4, 8)})
NUMBERS = ("epoch", "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy")


def numbers(workdir):
    s = Workdir(workdir).summary()
    return [{k: r[k] for k in NUMBERS} for r in Workdir(workdir).metrics()] + \
        [{k: s[k] for k in ("final_test_accuracy", "final_test_loss", "selected_epoch", "selected_test_accuracy")}]


def leaves(workdir, which="latest"):
    return [np.asarray(a) for a in jax.tree.leaves(runs.load_trained(str(workdir), which)[1])]


def train_quietly(cfg, workdir):
    return experiment.train_and_evaluate(cfg, str(workdir), log=lambda s: None)


def resume_from_epoch_1(workdir, cfg):
    """Pretend the run stopped after epoch 1, rerun it, return what it logged."""
    os.remove(workdir / "summary.json")
    for e in (2, 3):
        shutil.rmtree(workdir / "checkpoints" / str(e), ignore_errors=True)
    said = []
    experiment.train_and_evaluate(cfg, str(workdir), log=said.append)
    return said


# --------------------------------------------------------------------------- EMA


def test_ema_is_the_hand_computed_average_of_three_steps():
    """ema_3 = d^3 v_0 + (1-d) (d^2 v_1 + d v_2 + v_3) for params and batch-norm statistics."""
    d = 0.5
    cfg = TrainConfig(model="vgg_bn", model_options={"widths": (2, 4)}, batch_size=16, optimizer="sgd",
                      learning_rate=0.1, ema_decay=d)
    ds = data.synthetic(48, 16, seed=0)
    model = models.create(cfg.model, **cfg.model_options)
    tx = optim.make_optimizer(cfg, 3)
    state = train_state.init_state(model, tx, 0, ds.image_shape, ema=True)
    spec = step_lib.StepSpec.from_config(cfg, model, tx, num_classes=10, mean=ds.mean, std=ds.std)
    seen = [state.variables()]
    for i in range(3):  # unjitted: nothing donated
        batch = (ds.train_images[i * 16:(i + 1) * 16], ds.train_labels[i * 16:(i + 1) * 16])
        state, _ = step_lib.train_step(spec, state, batch)
        seen.append(state.variables())
    want = jax.tree.map(lambda v0, v1, v2, v3: d ** 3 * v0 + (1 - d) * (d ** 2 * v1 + d * v2 + v3), *seen)
    assert set(state.ema) == {"params", "batch_stats"}
    for got, expected, last in zip(jax.tree.leaves(state.ema), jax.tree.leaves(want), jax.tree.leaves(seen[-1])):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert not np.allclose(jax.tree.leaves(state.ema["params"])[0], jax.tree.leaves(seen[-1]["params"])[0])
    assert state.eval_variables() is state.ema


def test_ema_off_keeps_no_average_and_evaluates_the_weights():
    ds = data.synthetic(32, 8, seed=0)
    model = models.create("padded_cnn", widths=(4, 8))
    state = train_state.init_state(model, optim.make_optimizer(TrainConfig(), 1), 0, ds.image_shape)
    assert state.ema is None and state.eval_variables() == state.variables()


def test_ema_run_evaluates_the_average_and_resumes_bit_identically(tmp_path):
    cfg = dict(TINY, ema_decay=0.9)
    train_quietly(cfg, tmp_path / "ref")
    # every evaluation used the average: the reported test accuracy is the EMA's, not the weights'
    model, ema_vars, loaded, _ = runs.load_trained(str(tmp_path / "ref"), "latest")
    assert loaded.ema_decay == 0.9
    ds = experiment.build(loaded).data
    assert evaluation.evaluate(model, ema_vars, ds)["accuracy"] == Workdir(tmp_path / "ref").summary()["final_test_accuracy"]
    target = train_state.abstract_state(model, optim.make_optimizer(loaded, 1), 0, ds.image_shape, ema=True)
    ckpt = checkpoint.Checkpoints(str(tmp_path / "ref" / "checkpoints"))
    state, _ = ckpt.restore(3, target)
    ckpt.close()
    assert not np.array_equal(state.params["fc"]["kernel"], state.ema["params"]["fc"]["kernel"])
    # stopped after epoch 1 and resumed: the same numbers and bits
    shutil.copytree(tmp_path / "ref", tmp_path / "resumed")
    said = resume_from_epoch_1(tmp_path / "resumed", cfg)
    assert any("from the checkpoint of epoch 1" in s for s in said), said
    assert numbers(tmp_path / "resumed") == numbers(tmp_path / "ref")
    for a, b in zip(leaves(tmp_path / "resumed"), leaves(tmp_path / "ref")):
        np.testing.assert_array_equal(a, b)


class _StateBeforeEMA(NamedTuple):
    """TrainState as checkpoints were written before the ema field existed."""
    step: Any
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: Any


def test_a_checkpoint_written_before_ema_existed_resumes(tmp_path):
    """Rewrite epoch 1's checkpoint exactly as the code before EMA saved it (a 5-field
    NamedTuple), drop the later ones: the run resumes from it and ends as the uninterrupted one."""
    train_quietly(TINY, tmp_path / "ref")
    shutil.copytree(tmp_path / "ref", tmp_path / "old")
    cfg = TrainConfig(**{k: v for k, v in TINY.items()})
    model = models.create(cfg.model, **cfg.model_options)
    target = train_state.abstract_state(model, optim.make_optimizer(cfg, 1), 0, (28, 28, 1))
    ckpt = checkpoint.Checkpoints(str(tmp_path / "old" / "checkpoints"))
    state, meta = ckpt.restore(1, target)
    old = _StateBeforeEMA(*state[:5])
    for e in ckpt.epochs():
        ckpt.manager.delete(e)
    ckpt.manager.save(1, args=ocp.args.Composite(state=ocp.args.StandardSave(old), meta=ocp.args.JsonSave(meta)))
    ckpt.close()
    os.remove(tmp_path / "old" / "summary.json")
    said = []
    experiment.train_and_evaluate(TINY, str(tmp_path / "old"), log=said.append)
    assert any("from the checkpoint of epoch 1" in s for s in said), said
    assert numbers(tmp_path / "old") == numbers(tmp_path / "ref")
    for a, b in zip(leaves(tmp_path / "old"), leaves(tmp_path / "ref")):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- test-time augmentation


def test_tta_averages_exactly_airbench_views():
    """A linear 'model' (logits = W . flattened image) on a 4x4 image: the TTA logits equal the
    weighted logits of explicitly built views (mirror = reversed columns; shifts by reflect padding)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 4, 1)).astype(np.float32)
    w = rng.normal(size=(16, 3)).astype(np.float32)
    f = lambda v: np.asarray(v).reshape(len(v), -1) @ w
    mirror = lambda v: v[:, :, ::-1, :]
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    down_right, up_left = padded[:, 0:4, 0:4], padded[:, 2:6, 2:6]
    assert down_right[0, 1, 1, 0] == x[0, 0, 0, 0] and up_left[0, 0, 0, 0] == x[0, 1, 1, 0]
    want = {
        "none": f(x),
        "flip": (f(x) + f(mirror(x))) / 2,
        "flip_shift": (f(x) + f(mirror(x))) / 4 + (f(down_right) + f(mirror(down_right)) + f(up_left)
                                                    + f(mirror(up_left))) / 8,
    }
    fj = lambda v: jnp.reshape(v, (v.shape[0], -1)) @ w
    for tta in config_lib.TTA:
        np.testing.assert_allclose(evaluation.tta_logits(fj, jnp.asarray(x), tta), want[tta], rtol=1e-5, atol=1e-5)
    # the views share one traced model: a jitted evaluation compiles the model once, not once per view
    traced = []
    counting = lambda v: (traced.append(v.shape), fj(v))[1]
    jax.jit(lambda v: evaluation.tta_logits(counting, v, "flip_shift"))(jnp.asarray(x))
    assert traced == [(2, 4, 4, 1)]


def test_evaluate_with_flip_tta_scores_the_averaged_logits():
    ds = data.synthetic(16, 20, seed=1)
    model = models.create("padded_cnn", widths=(2, 4))
    variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))
    x = data.normalize(ds.test_images, ds.mean, ds.std)
    logits = (model.apply(variables, x) + model.apply(variables, x[:, :, ::-1, :])) / 2
    loss = -jax.nn.log_softmax(logits)[np.arange(20), ds.test_labels]
    ev = evaluation.evaluate(model, variables, ds, batch_size=8, tta="flip")
    assert ev["accuracy"] == np.mean(np.argmax(logits, -1) == ds.test_labels)
    np.testing.assert_allclose(ev["loss"], float(np.mean(loss)), rtol=1e-5)
    assert ev["loss"] != pytest.approx(evaluation.evaluate(model, variables, ds, batch_size=8)["loss"])


# --------------------------------------------------------------------------- batch-norm options


def test_bn_momentum_and_scale_options():
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 28, 28, 1))
    def first_mean(**kw):
        m = models.create("airbench", whiten_width=8, widths=(4, 8, 8), **kw)
        v = m.init(jax.random.PRNGKey(0), x)
        _, new = m.apply(v, x, train=True, mutable=["batch_stats"])
        return np.asarray(new["batch_stats"]["group1_bn1"]["mean"]), v
    batch_mean, v = first_mean(bn_momentum=0.0)  # running stats start at 0: momentum 0 keeps the batch's
    half, _ = first_mean(bn_momentum=0.5)
    np.testing.assert_allclose(half, 0.5 * batch_mean, rtol=1e-6)
    assert "scale" not in v["params"]["group1_bn1"]
    _, scaled = first_mean(bn_scale=True)
    assert scaled["params"]["group1_bn1"]["scale"].shape == (4,)
    n = lambda v: sum(a.size for a in jax.tree.leaves(v["params"]))
    assert n(scaled) - n(v) == 2 * (4 + 8 + 8)  # one scale per BN channel, two BNs per group
    assert "scale" in models.create("vgg_bn").init(jax.random.PRNGKey(0), x)["params"]["bn1_1"]
    for kw, message in ((dict(bn_momentum=1.0), "bn_momentum must be a number in"),
                        (dict(bn_scale="yes"), "bn_scale must be true or false")):
        with pytest.raises(config_lib.ConfigError, match=f"config.model_options: airbench: {message}"):
            config_lib.from_dict({"model": "airbench", "model_options": kw})


# --------------------------------------------------------------------------- whitening init


def test_whitening_kernel_whitens_patches():
    """Correlated synthetic 2-channel images: the conv with the kernel gives 2x2-patch outputs
    whose second moments are diag(l / (l + eps)) = identity to ~1e-3, the second half the negatives."""
    rng = np.random.default_rng(0)
    smooth = rng.normal(size=(200, 9, 9, 2)).cumsum(axis=1).cumsum(axis=2) / 3  # strongly correlated pixels
    images = np.clip(smooth * 20 + 128, 0, 255).astype(np.uint8)
    mean, std = 0.5, 0.16  # of pixels / 255, as cnnjax.data.normalize takes them
    kernel = whitening.whitening_kernel(images, mean, std, kernel_size=2)
    assert kernel.shape == (2, 2, 2, 16)
    x = ((images.astype(np.float64) / 255 - mean) / std).astype(np.float32)  # what the model sees
    y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    y = np.asarray(y, np.float64).reshape(-1, 16)
    second = y.T @ y / len(y)
    patches = np.stack([x[:, i:i + 8, j:j + 8, :] for i in (0, 1) for j in (0, 1)], axis=3).reshape(-1, 8)
    eigenvalues = np.linalg.eigvalsh(patches.T.astype(np.float64) @ patches / len(patches))[::-1]
    np.testing.assert_allclose(second[:8, :8], np.diag(eigenvalues / (eigenvalues + 5e-4)), atol=1e-4)
    assert np.abs(second[:6, :6] - np.eye(6)).max() < 5e-3  # identity where l >> eps (all but the 2 smallest)
    np.testing.assert_allclose(y[:, 8:], -y[:, :8], atol=1e-6)


def test_whiten_init_sets_and_freezes_the_kernel_once(tmp_path):
    cfg = dict(TINY, model="airbench", model_options={"widths": (4, 8, 8), "whiten_width": 8}, whiten_init=True,
               epochs=2)
    train_quietly(cfg, tmp_path / "w")
    ds = experiment.build(config_lib.from_dict(cfg)).data
    want = whitening.whitening_kernel(ds.train_images, ds.mean, ds.std)
    got = runs.load_trained(str(tmp_path / "w"), "latest")[1]["params"]["whiten"]
    np.testing.assert_array_equal(got["kernel"], want)  # frozen through 2 epochs of training
    assert np.abs(np.asarray(got["bias"])).max() > 0  # the bias is trained
    said = resume_from_epoch_1(tmp_path / "w", cfg)
    assert any("from the checkpoint of epoch 1" in s for s in said), said
    np.testing.assert_array_equal(runs.load_trained(str(tmp_path / "w"), "latest")[1]["params"]["whiten"]
                                  ["kernel"], want)


def test_whiten_init_needs_a_whiten_conv_of_the_right_width(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="config.whiten_init needs a model with a 'whiten' patch conv"):
        config_lib.from_dict(dict(TINY, whiten_init=True))
    with pytest.raises(ValueError, match=r"set config.model_options.whiten_width=8 \(it is 24\)"):
        train_quietly(dict(TINY, model="airbench", model_options={}, whiten_init=True), tmp_path / "w")
    assert not os.path.exists(tmp_path / "w")  # nothing written


def test_new_settings_are_validated():
    for key, value, message in (("ema_decay", 1.0, "must be in \\[0, 1\\)"), ("ema_decay", -0.1, "must be in"),
                                ("tta", "crop", "must be one of none, flip, flip_shift"),
                                ("whiten_init", 1, "must be true or false")):
        with pytest.raises(config_lib.ConfigError, match=f"config.{key} {message}"):
            config_lib.from_dict({key: value})
