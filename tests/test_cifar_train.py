"""Training options for the colour nets: gradient accumulation, per-channel normalisation,
crop-with-padding on colour batches, and a ResNet-20 learning the synthetic colour set."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import data, models
from cnnjax.train import config, evaluation, optim, loop, state as train_state
from cnnjax.train import step as step_lib
from cnnjax.train.config import TrainConfig
import datafiles


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_accumulating_k_micro_batches_equals_one_large_batch(optimizer):
    ds = data.synthetic(256, 10, image_size=12)
    model = models.create("mlp", 10, hidden=(32,))  # no batch norm, no dropout
    big = TrainConfig(model="mlp", batch_size=32, optimizer=optimizer, learning_rate=1e-2, epochs=2,
                      weight_decay=1e-3, schedule="cosine", warmup_epochs=0.5)
    acc = dataclasses.replace(big, batch_size=8, grad_accum_steps=4)
    n = len(ds.train_labels)
    images, labels = jax.device_put((ds.train_images, ds.train_labels))
    results = []
    for cfg in (big, acc):
        steps = n // cfg.batch_size
        tx = optim.make_optimizer(cfg, steps)
        state = train_state.init_state(model, tx, 0, ds.image_shape)
        spec = step_lib.StepSpec.from_config(cfg, model, tx, num_classes=10, mean=ds.mean, std=ds.std)
        update = step_lib.make_train_step(spec)
        b = cfg.batch_size
        for i in range(3 * 32 // b):  # three large steps' worth of data
            state, _ = update(state, (images[i * b:(i + 1) * b], labels[i * b:(i + 1) * b]))
        results.append(state.params)
    for a, b in zip(jax.tree.leaves(results[0]), jax.tree.leaves(results[1])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # and it changed something (three real updates, not zero)
    fresh = train_state.init_state(model, optim.make_optimizer(big, 8), 0, ds.image_shape).params
    assert not np.allclose(jax.tree.leaves(fresh)[0], jax.tree.leaves(results[0])[0])


def test_grad_accum_steps_is_a_validated_setting():
    assert config.from_dict({"grad_accum_steps": 4}).grad_accum_steps == 4
    with pytest.raises(config.ConfigError, match="config.grad_accum_steps must be >= 1"):
        config.from_dict({"grad_accum_steps": 0})
    with pytest.raises(config.ConfigError, match="config.crop_padding"):
        config.from_dict({"crop_padding": -1})
    assert "grad_accum_steps" in config.describe() and "crop_padding" in config.describe()


def test_crop_with_padding_and_flip_on_colour_batches():
    x = np.random.default_rng(0).integers(1, 256, (64, 32, 32, 3), dtype=np.uint8)
    out = np.asarray(step_lib.augment_batch(jax.random.key(0), jnp.asarray(x), "flip_crop", pad=4))
    assert out.shape == x.shape
    shifts = set()
    for a, b in zip(x, out):  # each output is the (maybe flipped) input shifted by <= 4 px, zeros entering
        found = False
        for src in (a, a[:, ::-1]):
            padded = np.pad(src, ((4, 4), (4, 4), (0, 0)))
            for dy in range(9):
                for dx in range(9):
                    if np.array_equal(padded[dy:dy + 32, dx:dx + 32], b):
                        found = True
                        shifts.add((dy, dx))
        assert found
    assert len(shifts) > 10 and any(max(abs(dy - 4), abs(dx - 4)) > 2 for dy, dx in shifts)


def test_per_channel_normalisation_in_the_step():
    ds = data.synthetic_color(40, 10)
    x = np.asarray(data.normalize(ds.train_images, ds.mean, ds.std))
    np.testing.assert_allclose(x.reshape(-1, 3).mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(x.reshape(-1, 3).std(0), 1, atol=1e-4)


def test_resnet20_learns_the_synthetic_colour_set_in_seconds():
    ds = data.synthetic_color(500, 500, image_size=16)  # 16x16: a quarter of the FLOPs of 32x32
    cfg = TrainConfig(model="resnet20", epochs=3, batch_size=50, learning_rate=3e-3, augment="flip_crop",
                      crop_padding=2)
    model = models.create("resnet20", ds.num_classes)
    steps = len(ds.train_labels) // cfg.batch_size
    tx = optim.make_optimizer(cfg, steps)
    state = train_state.init_state(model, tx, cfg.seed, ds.image_shape)
    images, labels = jax.device_put((ds.train_images, ds.train_labels))
    spec = step_lib.StepSpec.from_config(cfg, model, tx, num_classes=ds.num_classes, mean=ds.mean, std=ds.std)
    run = loop.make_epoch_runner(spec, fused=False)
    for epoch in range(1, cfg.epochs + 1):
        state, m = run(state, images, labels, epoch)
    acc = evaluation.evaluate(model, state.variables(), ds, batch_size=500)["accuracy"]
    assert acc > 0.7, acc  # chance: 0.1


@pytest.mark.parametrize("name", ["resnet20", "resnet56", "airbench"])
def test_cifar_recipes_are_valid_configs(name):
    from experiments.configs import cifar
    cfg = config.from_dict(cifar.get_config(name))  # validates the settings and the model options
    assert cfg.dataset == "cifar10" and cfg.model == name and cfg.augment == "flip_crop"
    # ready to run on a CIFAR-format copy: the same config on a tiny set in the published layout


@pytest.mark.parametrize("name", ["resnet20", "airbench"])
def test_bfloat16_compute_and_accumulation_run_the_colour_nets(name):
    ds = data.synthetic_color(32, 8, image_size=16 if name == "resnet20" else 32)  # airbench needs >= 32
    cfg = TrainConfig(model=name, batch_size=8, compute_dtype="bfloat16", grad_accum_steps=2, epochs=1,
                      augment="flip_crop", crop_padding=4)
    model = models.create(name, ds.num_classes)
    tx = optim.make_optimizer(cfg, 4)
    state = train_state.init_state(model, tx, 0, ds.image_shape)
    spec = step_lib.StepSpec.from_config(cfg, model, tx, num_classes=ds.num_classes, mean=ds.mean, std=ds.std)
    run = loop.make_epoch_runner(spec, fused=False)
    state, m = run(state, *jax.device_put((ds.train_images, ds.train_labels)), 1)
    assert np.isfinite(m["train_loss"])
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves((state.params, state.batch_stats)))
    # evaluation in bfloat16 computes the float32 evaluation's function to bfloat16 precision -- and does
    # run in bfloat16 (not bit-identical)
    bf16, f32 = (evaluation.evaluate(model, state.variables(), ds, batch_size=8, compute_dtype=dtype)
                 for dtype in ("bfloat16", "float32"))
    assert bf16["loss"] != f32["loss"] and bf16["loss"] == pytest.approx(f32["loss"], rel=0.03)
    assert abs(bf16["accuracy"] - f32["accuracy"]) <= 2 / len(ds.test_labels)


def test_cifar_recipe_trains_end_to_end_on_a_cifar_binary_copy(tmp_path):
    """experiments.train with cifar.py:resnet20 on a tiny copy in the published binary layout."""
    import json
    import os
    import subprocess
    import sys
    d = tmp_path / "cifar-10-batches-bin"
    d.mkdir()
    ds = data.synthetic_color(60, 20)
    for i in range(5):
        datafiles.write_cifar_binary_batch(d / f"data_batch_{i + 1}.bin", ds.train_images[i * 12:(i + 1) * 12],
                                      ds.train_labels[i * 12:(i + 1) * 12])
    datafiles.write_cifar_binary_batch(d / "test_batch.bin", ds.test_images, ds.test_labels)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    wd = tmp_path / "wd"
    proc = subprocess.run([sys.executable, "-m", "experiments.train", "--config=experiments/configs/cifar.py:resnet20",
                           f"--config.data_dir={tmp_path}", "--config.epochs=1", "--config.batch_size=20",
                           "--config.grad_accum_steps=3", "--config.validation_size=0",  # 60 images: 3 micro-batches
                           "--config.progress=none", f"--workdir={wd}"],
                          cwd=repo, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads((wd / "data.json").read_text())
    assert info["image_shape"] == [32, 32, 3] and len(info["mean"]) == 3 and info["source"].startswith("cifar-binary")
    assert info["class_names"][0] == "airplane"  # no batches.meta.txt: the published names
    metrics = [json.loads(line) for line in (wd / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["epoch"] == 1 and metrics[-1]["step"] == 3
