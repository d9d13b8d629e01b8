"""Time to a target accuracy: config.target_accuracy stops a run at the first evaluation whose
validation accuracy reaches it (the test set measured once, afterwards); benchmarks.speedrun times
seeds of a recipe and tabulates them; benchmarks.speedrun_torch is the PyTorch mirror."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cnnjax.train import config as config_lib
from cnnjax.train import evaluation, experiment, whitening
from cnnjax.train.workdir import Workdir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 576 training images after the 64 held out: 9 steps of 64 per epoch
TINY = dict(dataset="synthetic", num_train=640, num_test=200, validation_size=64, batch_size=64, epochs=12,
            learning_rate=1e-3, schedule="constant", seed=0, progress="none", checkpoint_every=100)
TARGET = 0.9  # epoch 1 reaches 0.84, epoch 2 0.95 of the 64 validation images


@pytest.fixture
def count_evaluations(monkeypatch):
    """{'val': n, 'test': n}: how often evaluation.evaluate ran on each split."""
    counts = {"val": 0, "test": 0}
    real = evaluation.evaluate

    def counting(model, variables, dataset, batch_size=1000, split="test", **kw):
        counts[split] += 1
        return real(model, variables, dataset, batch_size, split, **kw)

    monkeypatch.setattr(evaluation, "evaluate", counting)
    return counts


def test_run_stops_at_first_evaluation_at_or_above_target_and_tests_once(tmp_path, count_evaluations):
    workdir = tmp_path / "run"
    cfg = dict(TINY, target_accuracy=TARGET, compute_dtype="auto")  # as the recipes: float32 on this CPU
    result = experiment.train_and_evaluate(cfg, str(workdir), log=lambda s: None)
    rows = Workdir(workdir).metrics()
    stop = rows[-1]["epoch"]
    assert 1 < stop < TINY["epochs"], rows  # stopped early, and not trivially at the first evaluation
    assert rows[-1]["val_accuracy"] >= TARGET
    assert all(r["val_accuracy"] < TARGET for r in rows[:-1])
    assert count_evaluations == {"val": stop, "test": 1}  # one test evaluation, after the stop
    summary = Workdir(workdir).summary()
    assert {k: summary[k] for k in result} == result
    assert summary["target_reached"] is True and summary["target_epoch"] == stop == summary["epochs_trained"]
    assert summary["selected_epoch"] == stop and summary["final_test_accuracy"] == summary["selected_test_accuracy"]
    assert 0 < summary["time_to_target_seconds"] <= summary["this_session_seconds"]
    assert summary["compute_dtype"] == "float32"  # what 'auto' resolved to here
    # the clock covers the epochs up to the stop (compilation included), not the data loading
    assert summary["time_to_target_seconds"] >= sum(r["seconds"] for r in rows)
    assert summary["data_load_seconds"] > 0
    # finished: the same command trains no further and tests nothing
    again = experiment.train_and_evaluate(cfg, str(workdir), log=lambda s: None)
    assert again["epochs_trained"] == stop and len(Workdir(workdir).metrics()) == stop
    assert count_evaluations["test"] == 1
    # interrupted after the stop's checkpoint, before summary.json: resuming trains no further either,
    # and the time to target of a resumed run is not reported (only a run timed from scratch counts)
    os.remove(workdir / "summary.json")
    resumed = experiment.train_and_evaluate(cfg, str(workdir), log=lambda s: None)
    assert len(Workdir(workdir).metrics()) == stop and count_evaluations == {"val": stop, "test": 2}
    assert resumed["target_epoch"] == stop and resumed["time_to_target_seconds"] is None
    assert resumed["final_test_accuracy"] == summary["final_test_accuracy"]


def test_margin_stops_at_target_plus_margin_and_records_the_target(tmp_path):
    # epoch 1 (0.84) is above the target 0.8 but not above 0.8 + 0.1: the run goes on to epoch 2
    result = experiment.train_and_evaluate(dict(TINY, target_accuracy=0.8, target_margin=0.1), str(tmp_path / "r"),
                                           log=lambda s: None)
    rows = Workdir(tmp_path / "r").metrics()
    assert 0.8 <= rows[0]["val_accuracy"] < 0.9 <= rows[-1]["val_accuracy"] and len(rows) == 2, rows
    assert result["target_accuracy"] == 0.8 and result["target_epoch"] == 2 == result["epochs_trained"]


def test_evaluation_schedule_follows_eval_every_and_eval_delay():
    def evaluated(**kw):
        cfg = config_lib.from_dict(dict(TINY, epochs=10, **kw))
        return [e for e in range(1, 11) if cfg.evaluates_after(e)]
    assert evaluated() == list(range(1, 11))
    assert evaluated(eval_every=3) == [3, 6, 9, 10]
    assert evaluated(eval_delay=4) == [5, 6, 7, 8, 9, 10]
    assert evaluated(eval_every=3, eval_delay=4) == [6, 9, 10]
    assert evaluated(eval_delay=10) == evaluated(eval_delay=99) == [10]  # a fixed budget: once, at the end
    with pytest.raises(config_lib.ConfigError, match=r"^config\.eval_delay must be >= 0, got -1"):
        config_lib.from_dict(dict(TINY, eval_delay=-1))


def test_eval_delay_skips_evaluations_and_the_stop_before_it_without_changing_training(tmp_path, count_evaluations):
    # epoch 2 (0.95) would stop the run; with eval_delay=2 the first evaluation, and the stop, is after epoch 3
    delayed = experiment.train_and_evaluate(dict(TINY, target_accuracy=TARGET, eval_delay=2), str(tmp_path / "d"),
                                            log=lambda s: None)
    rows = Workdir(tmp_path / "d").metrics()
    assert [r["val_accuracy"] is None for r in rows] == [True, True, False] and rows[-1]["val_accuracy"] >= TARGET
    assert delayed["target_epoch"] == 3 == delayed["epochs_trained"] and count_evaluations == {"val": 1, "test": 1}
    # the same three epochs evaluated after each: the same training, bit for bit
    experiment.train_and_evaluate(dict(TINY, epochs=3), str(tmp_path / "e"), log=lambda s: None)
    every = Workdir(tmp_path / "e").metrics()
    assert [r["val_accuracy"] is None for r in every] == [False, False, False]
    for key in ("step", "train_loss", "train_accuracy"):
        assert [r[key] for r in rows] == [r[key] for r in every], key
    assert rows[-1]["val_accuracy"] == every[-1]["val_accuracy"]
    assert delayed["final_test_accuracy"] == Workdir(tmp_path / "e").summary()["final_test_accuracy"]


def test_stop_accuracy_is_target_plus_margin_exactly():
    cfg = config_lib.from_dict(dict(TINY, target_accuracy=0.94, target_margin=0.003))
    assert cfg.stop_accuracy == 0.943 and 4715 / 5000 >= cfg.stop_accuracy  # 0.94 + 0.003 is 0.9430000000000001
    assert config_lib.from_dict(dict(TINY, target_margin=0.003)).stop_accuracy == 0  # no target: never stops
    with pytest.raises(config_lib.ConfigError, match=r"^config\.target_margin must be >= 0"):
        config_lib.from_dict(dict(TINY, target_accuracy=0.9, target_margin=-0.01))
    with pytest.raises(config_lib.ConfigError, match=r"^config\.target_margin must be >= 0 with target_accuracy"):
        config_lib.from_dict(dict(TINY, target_accuracy=0.99, target_margin=0.02))


def test_target_never_reached_trains_the_whole_budget(tmp_path):
    result = experiment.train_and_evaluate(dict(TINY, epochs=2, target_accuracy=1.0), str(tmp_path / "r"),
                                           log=lambda s: None)
    assert result["target_reached"] is False and result["target_epoch"] is None
    assert result["time_to_target_seconds"] is None and result["epochs_trained"] == 2


def test_target_without_validation_split_is_a_config_error():
    with pytest.raises(config_lib.ConfigError, match=r"^config\.target_accuracy needs a validation split"):
        config_lib.from_dict(dict(TINY, validation_size=0, target_accuracy=0.9))
    with pytest.raises(config_lib.ConfigError, match=r"^config\.target_accuracy must be in \[0, 1\]"):
        config_lib.from_dict(dict(TINY, target_accuracy=91.5))


def test_train_cli_refuses_target_without_validation_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "experiments.train", f"--workdir={tmp_path}/w",
                           "--config.validation_size=0", "--config.target_accuracy=0.9"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: ")
    assert "config.target_accuracy" in proc.stderr
    assert not os.path.exists(tmp_path / "w")


@pytest.mark.parametrize("target,margin,delay", [(TARGET, 0.0, 0), (0.8, TARGET - 0.8, 0), (TARGET, 0.0, 2)])
def test_torch_mirror_trains_a_tiny_config_and_stops_at_the_target(target, margin, delay):
    import torch  # noqa: F401  ([dev] installs it: missing fails, never skips)
    from benchmarks import speedrun_torch
    lines = []
    rec = speedrun_torch.run(dict(TINY, target_accuracy=target, target_margin=margin, eval_delay=delay),
                             log=lines.append)
    assert rec["impl"] == "torch" and rec["target_reached"] is True
    assert delay < rec["epochs_trained"] == rec["target_epoch"] < TINY["epochs"]
    assert rec["final_val_accuracy"] >= TARGET
    epochs = [int(l.split()[2]) for l in lines if l.startswith("torch epoch")]
    evaluated = [float(l.split("val_acc ")[1].split()[0]) for l in lines if l.startswith("torch epoch")]
    assert epochs == list(range(delay + 1, rec["target_epoch"] + 1)) and all(a < TARGET for a in evaluated[:-1])
    assert rec["target_accuracy"] == target
    assert 0 <= rec["final_test_accuracy"] <= 1 and rec["time_to_target_seconds"] > 0
    assert sum(l.startswith("torch test accuracy") for l in lines) == 1


def test_torch_twins_have_cnnjax_parameter_counts_and_the_same_schedule():
    import torch  # noqa: F401  ([dev] installs it: missing fails, never skips)
    import numpy as np
    from benchmarks import speedrun_torch
    from cnnjax.weights import torch_twins
    from cnnjax import models, summary
    for name, options in (("padded_cnn", {}), ("vgg_bn", {"widths": (8, 16), "dropout": 0.1}), ("airbench28_s", {}),
                          ("airbench28_m", {}), ("airbench28_l", {}),
                          ("airbench28_s", {"bn_scale": True, "widths": (4, 8, 12), "whiten_width": 6})):
        cfg = config_lib.from_dict(dict(TINY, model=name, model_options=options))
        net = torch_twins.make_model(cfg, (28, 28, 1), 10)
        expected = summary.summarize(models.create(name, 10, **options), (28, 28, 1), name).total_params
        assert sum(p.numel() for p in net.parameters()) == expected
    cfg = config_lib.from_dict(dict(TINY, schedule="onecycle", epochs=3))
    lrs = speedrun_torch.learning_rates(cfg, 9)
    assert lrs.shape == (27,) and lrs.max() == pytest.approx(cfg.learning_rate, rel=1e-3)
    with pytest.raises(ValueError, match="config.model_options.activation"):
        speedrun_torch.check(config_lib.from_dict(dict(TINY, model_options={"activation": "tanh"})))
    assert np.all(np.diff(lrs[:8]) > 0)  # warming up
    with pytest.raises(ValueError, match="config.model_options.block_conv"):
        speedrun_torch.check(config_lib.from_dict(dict(TINY, model="airbench28_s",
                                                       model_options={"block_conv": "separable"})))


def test_torch_mirror_takes_auto_compute_dtype_where_it_is_float32(monkeypatch):
    import torch  # noqa: F401  ([dev] installs it: missing fails, never skips)
    import jax
    from benchmarks import speedrun_torch
    speedrun_torch.check(config_lib.from_dict(dict(TINY, compute_dtype="auto")))  # float32 on this CPU
    with pytest.raises(ValueError, match="config.compute_dtype: bfloat16; .* runs float32 only"):
        speedrun_torch.check(config_lib.from_dict(dict(TINY, compute_dtype="bfloat16")))
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    with pytest.raises(ValueError, match=r"bfloat16 \(what 'auto' means on this GPU/TPU\)"):
        speedrun_torch.check(config_lib.from_dict(dict(TINY, compute_dtype="auto")))


def _flax_into_torch(variables, net):
    """Copy Flax airbench variables into the torch twin (HWIO -> OIHW, dense (in, out) -> (out, in))."""
    import torch
    sd = {}
    for name, p in variables["params"].items():
        for k, a in p.items():
            a = np.asarray(a)
            key = {"kernel": "weight", "scale": "weight", "bias": "bias"}[k]
            sd[f"{name}.{key}"] = a.transpose(3, 2, 0, 1) if a.ndim == 4 else (a.T if k == "kernel" else a)
    for name, p in variables.get("batch_stats", {}).items():
        sd[f"{name}.running_mean"], sd[f"{name}.running_var"] = np.asarray(p["mean"]), np.asarray(p["var"])
    net.load_state_dict({k: torch.tensor(a) for k, a in sd.items()}, strict=False)
    assert {k for k, _ in net.named_parameters()} <= set(sd)


@pytest.mark.parametrize("options", [{}, {"bn_scale": True, "bn_momentum": 0.8}])
def test_torch_airbench_computes_cnnjax_airbench_given_its_weights(options):
    """Same layers, pools (27 -> 13 -> 6 -> 3 -> 1), exact GELU, 1/9 scaling, BN eps and momentum:
    with Flax's weights copied in, the same logits (eval and train mode) and running statistics."""
    import torch  # [dev] installs it: missing fails, never skips
    import jax
    import jax.numpy as jnp
    from cnnjax.weights import torch_twins
    from cnnjax import models
    cfg = config_lib.from_dict(dict(TINY, model="airbench28_s", model_options=options))
    net = torch_twins.make_model(cfg, (28, 28, 1), 10)
    w = net.group2_conv1.weight.detach()  # dirac init: the first min(C_in, C_out) = 8 filters the identity
    assert torch.equal(w[:8, :, 1, 1], torch.eye(8)) and float(w[:8].abs().sum()) == 8
    assert float(w[8:].abs().max()) <= 1 / (9 * 8) ** 0.5 and net.group1_bn1.momentum == pytest.approx(
        1 - options.get("bn_momentum", 0.6)) and net.group1_bn1.eps == 1e-12
    model = models.create("airbench28_s", 10, **options)
    variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))
    variables = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(jax.random.PRNGKey(1), a.shape), variables)
    variables["batch_stats"] = jax.tree.map(jnp.abs, variables["batch_stats"])  # variances stay positive
    _flax_into_torch(variables, net)
    x = np.random.default_rng(0).normal(size=(8, 28, 28, 1)).astype(np.float32)
    xt = torch.tensor(x.transpose(0, 3, 1, 2))
    net.eval()
    np.testing.assert_allclose(net(xt).detach().numpy(), model.apply(variables, x), atol=1e-5)
    net.train()
    logits, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(net(xt).detach().numpy(), logits, atol=1e-5)
    np.testing.assert_allclose(net.group3_bn2.running_mean.numpy(), updates["batch_stats"]["group3_bn2"]["mean"],
                               atol=1e-5)


WHITE = dict(TINY, model="airbench28_s", whiten_init=True, ema_decay=0.8, tta="flip_shift", learning_rate=1e-2,
             weight_decay=1e-3)


def _steps(cfg, model, ema, opt, ds, n):
    """``n`` training steps as the mirror's loop takes them; the weights after each (float64)."""
    import torch
    import torch.nn.functional as F
    x = torch.from_numpy(ds.train_images[:n * cfg.batch_size].transpose(0, 3, 1, 2).copy())
    y = torch.from_numpy(ds.train_labels[:n * cfg.batch_size].astype(np.int64))
    model.train()
    after = []
    for i in range(n):
        xb = (x[i * cfg.batch_size:(i + 1) * cfg.batch_size].float() / 255 - ds.mean) / ds.std
        opt.zero_grad()
        F.cross_entropy(model(xb), y[i * cfg.batch_size:(i + 1) * cfg.batch_size]).backward()
        opt.step()
        ema.update_parameters(model)
        after.append({k: v.detach().double().clone() for k, v in model.state_dict().items()})
    return after


def test_torch_whitening_init_is_cnnjax_kernel_frozen_and_ema_averages_every_step():
    import torch  # [dev] installs it: missing fails, never skips
    from benchmarks import speedrun_torch
    cfg = config_lib.from_dict(WHITE)
    ds = experiment.load_data(cfg)
    torch.manual_seed(0)
    model, ema, opt = speedrun_torch.setup(cfg, ds)
    # cnnjax's kernel, from the first WHITEN_IMAGES training images after the hold-out, HWIO -> OIHW
    kernel = whitening.whitening_kernel(ds.train_images[:whitening.WHITEN_IMAGES], ds.mean, ds.std, 2)
    assert torch.equal(model.whiten.weight, torch.from_numpy(kernel.transpose(3, 2, 0, 1)))
    assert not model.whiten.weight.requires_grad and model.whiten.bias.requires_grad
    start = {k: v.detach().double().clone() for k, v in model.state_dict().items()}
    assert all(torch.equal(start[k], v.double()) for k, v in ema.module.state_dict().items())  # starts here
    after = _steps(cfg, model, ema, opt, ds, 3)
    assert torch.equal(model.whiten.weight, torch.from_numpy(kernel.transpose(3, 2, 0, 1)))  # frozen
    assert not torch.equal(after[-1]["whiten.bias"], start["whiten.bias"])  # the bias trains
    d = cfg.ema_decay
    averaged = ema.module.state_dict()
    for k, w0 in start.items():
        if k.endswith("num_batches_tracked"):
            continue
        hand = d * (d * (d * w0 + (1 - d) * after[0][k]) + (1 - d) * after[1][k]) + (1 - d) * after[2][k]
        np.testing.assert_allclose(averaged[k].double().numpy(), hand.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
        if "running" in k or k.endswith(("conv1.weight", "fc.weight")):
            assert not torch.allclose(hand, after[2][k]), k  # an average, not the latest weights
    np.testing.assert_allclose(averaged["whiten.weight"].numpy(), kernel.transpose(3, 2, 0, 1), rtol=1e-6)


@pytest.mark.parametrize("tta", ["none", "flip", "flip_shift"])
def test_torch_tta_is_cnnjax_tta_logits(tta):
    """A linear model with the same weights on both sides: the same views with the same weights."""
    import torch  # [dev] installs it: missing fails, never skips
    import jax.numpy as jnp
    from benchmarks import speedrun_torch
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5, 6, 2)).astype(np.float32)  # NHWC, not square, 2 channels
    w = rng.normal(size=(5 * 6 * 2, 3)).astype(np.float32)
    jax_fn = lambda v: v.reshape(len(v), -1) @ jnp.asarray(w)
    torch_fn = lambda v: v.permute(0, 2, 3, 1).reshape(len(v), -1) @ torch.from_numpy(w)
    expected = np.asarray(evaluation.tta_logits(jax_fn, jnp.asarray(x), tta))
    got = speedrun_torch.tta_logits(torch_fn, torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), tta).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    if tta != "none":
        assert not np.allclose(got, jax_fn(jnp.asarray(x)), atol=1e-3)  # the views matter


def test_torch_mirror_runs_airbench_with_whitening_ema_and_tta_to_a_target():
    import torch  # noqa: F401  ([dev] installs it: missing fails, never skips)
    from benchmarks import speedrun_torch
    lines = []
    rec = speedrun_torch.run(dict(WHITE, target_accuracy=0.5), log=lines.append)
    assert rec["target_reached"] is True and 1 <= rec["target_epoch"] == rec["epochs_trained"] < WHITE["epochs"]
    assert rec["final_val_accuracy"] >= 0.5 and rec["time_to_target_seconds"] > 0
    assert sum(l.startswith("torch test accuracy") for l in lines) == 1
    with pytest.raises(ValueError, match="whiten_width=8"):
        speedrun_torch.run(dict(WHITE, model_options={"whiten_width": 6}, target_accuracy=0.5))


SPEEDRUN_FLAGS = [f"--config.{k}={v}" for k, v in TINY.items() if k != "progress"] + \
    ["--config.model=padded_cnn", "--config.model_options={}", "--config.augment=none", "--config.label_smoothing=0.0",
     "--config.whiten_init=False", "--config.ema_decay=0.0", "--config.tta=none"]  # the recipe, made tiny


def run_speedrun(*args):
    return subprocess.run([sys.executable, "-m", "benchmarks.speedrun", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600)


def test_speedrun_driver_refuses_a_recipe_the_torch_mirror_cannot_run_before_running(tmp_path):
    """--torch with a model the mirror has no twin of: one error line before any run, nothing
    written (the check sat after a raise and never ran: the cnnjax run trained first)."""
    out = tmp_path / "out"
    proc = run_speedrun("--config=experiments/configs/speedrun.py:0.915", f"--target={TARGET}", "--seeds=1",
                        "--torch", "--noisolate", f"--out={out}", *SPEEDRUN_FLAGS, "--config.model=lenet5")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines() == [
        "error: config.model 'lenet5': benchmarks.speedrun_torch has no twin of it; models: padded_cnn, vgg_bn, "
        "airbench, airbench28_s, airbench28_m, airbench28_l"]
    assert not out.exists()


def test_speedrun_driver_tabulates_seeds_with_the_torch_ratio(tmp_path):
    import torch  # noqa: F401  ([dev] installs it: missing fails, never skips)
    out = tmp_path / "out"
    proc = run_speedrun("--config=experiments/configs/speedrun.py:0.915", f"--target={TARGET}", "--seeds=2",
                        "--torch", "--noisolate", f"--out={out}", *SPEEDRUN_FLAGS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    assert result["target"] == TARGET and result["seeds"] == [0, 1]
    for row in result["runs"]:
        for impl in ("cnnjax", "torch"):
            rec = row[impl]
            assert rec["impl"] == impl and rec["seed"] == row["seed"] and rec["target_reached"]
            assert rec["final_val_accuracy"] >= TARGET and rec["time_to_target_seconds"] > 0
        summary = json.loads((out / "runs" / f"seed={row['seed']}" / "summary.json").read_text())
        assert row["cnnjax"]["time_to_target_seconds"] == summary["time_to_target_seconds"]
        assert row["cnnjax"]["final_test_accuracy"] == summary["final_test_accuracy"]
    cnnjax = result["summary"]["cnnjax"]
    times = sorted(r["cnnjax"]["time_to_target_seconds"] for r in result["runs"])
    assert cnnjax["median_seconds"] == pytest.approx(sum(times) / 2)
    tests = [100 * r["cnnjax"]["final_test_accuracy"] for r in result["runs"]]
    assert cnnjax["test_mean"] == pytest.approx(sum(tests) / 2)
    assert cnnjax["test_reached_fraction"] == sum(t >= 100 * TARGET for t in tests) / 2
    assert cnnjax["median_load_seconds"] > 0
    ratio = result["summary"]["ratio"]["median_of_medians"]
    assert ratio == pytest.approx(cnnjax["median_seconds"] / result["summary"]["torch"]["median_seconds"])
    md = (out / "results.md").read_text()
    for text in ("| seed | cnnjax s to target | epoch | val % | test % | torch s to target", "median s to target",
                 "test % mean ± std", "seeds with test >= 90%", "median data load s", f"**{ratio:.2f}x**"):
        assert text in md and text in proc.stdout, text
    assert "Load average" in md and "load average before / after each seed" in proc.stdout
    assert f"`python -m benchmarks.speedrun --config=experiments/configs/speedrun.py:0.915 --target={TARGET}" in md
    assert "jax " in md and "torch " in md


@pytest.mark.parametrize("args, message", [
    (["--target=0.92"], "--config: ValueError: no speedrun recipe for target '0.92'"),
    (["--target=93", "--config=experiments/configs/speedrun.py"], "--target must be a fraction"),
    (["--target=0.93", "--config.validation_size=0"], "config.target_accuracy needs a validation split"),
    (["--config=experiments/configs/default.py"], "no target"),
    (["--seeds=0"], "--seeds must be >= 1"),
])
def test_speedrun_driver_bad_input_is_one_error_line_and_writes_nothing(tmp_path, args, message):
    proc = run_speedrun(*args, f"--out={tmp_path}/out")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("error: ") and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert message in proc.stderr
    assert not os.path.exists(tmp_path / "out")


def test_speedrun_config_variants_are_valid_recipes_the_torch_mirror_takes():
    import importlib.util
    spec = importlib.util.spec_from_file_location("speedrun_cfg", os.path.join(REPO, "experiments/configs/speedrun.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, (target, _) in module.GOALS.items():
        cfg = config_lib.from_dict(module.get_config(name))  # model and options checked too
        assert cfg.target_accuracy == target and cfg.validation_size > 0
        assert cfg.checkpoint_every >= cfg.epochs  # a checkpoint only at the stop / the end of the budget
        assert module.variant(str(100 * target).rstrip("0").rstrip(".")) == name
        if importlib.util.find_spec("torch") is not None:
            from benchmarks import speedrun_torch
            speedrun_torch.check(cfg)
    with pytest.raises(ValueError, match="no speedrun recipe for target '0.92'"):
        module.get_config("0.92")


def test_torch_augmentation_flips_and_shifts_like_cnnjax():
    import torch  # [dev] installs it: missing fails, never skips
    import numpy as np
    from benchmarks import speedrun_torch
    x = torch.randint(1, 256, (64, 2, 6, 5), dtype=torch.uint8)  # no zeros: padding is recognisable
    g = torch.Generator().manual_seed(0)
    flipped = speedrun_torch.augment(x, "flip", 2, g)
    same, mirrored = (flipped == x).flatten(1).all(1), (flipped == x.flip(3)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 10 < int(mirrored.sum()) < 54
    cropped = speedrun_torch.augment(x, "crop", 2, g).numpy()
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)))
    shifts = set()
    for i in range(64):
        hits = [(dy, dx) for dy in range(5) for dx in range(5)
                if np.array_equal(cropped[i], padded[i, :, dy:dy + 6, dx:dx + 5])]
        assert len(hits) == 1
        shifts.add(hits[0])
    assert len(shifts) > 10  # offsets 0..2*pad in both directions


def test_speedrun_driver_refuses_an_out_dir_holding_another_recipe(tmp_path):
    out = tmp_path / "out"
    run_dir = out / "runs" / "seed=0"
    experiment.train_and_evaluate(dict(TINY, epochs=1, target_accuracy=TARGET), str(run_dir), log=lambda s: None)
    before = sorted(p.name for p in out.rglob("*"))
    proc = run_speedrun("--config=experiments/configs/speedrun.py:0.915", f"--target={TARGET}", "--seeds=1",
                        f"--out={out}", *SPEEDRUN_FLAGS, "--config.learning_rate=0.01")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert proc.stderr.startswith("error: ") and "holds a different run" in proc.stderr
    assert sorted(p.name for p in out.rglob("*")) == before and not (out / "results.json").exists()


def test_aggregate_counts_unreached_and_untimed_seeds_as_slowest():
    """(In a subprocess: benchmarks.speedrun defines --config, as experiments.summary does.)"""
    code = """
import json
from benchmarks import speedrun
rec = lambda s, reached, test: {"time_to_target_seconds": s, "target_reached": reached, "target_epoch": 3 if reached
    else None, "final_test_accuracy": test, "data_load_seconds": 1.0, "train_images_per_sec": 100.0}
runs = [rec(10.0, True, 0.95), rec(None, False, 0.85), rec(30.0, True, 0.91), rec(None, True, 0.93)]
print(json.dumps([speedrun.aggregate(runs, 0.92), speedrun.aggregate(runs[:3], 0.92)]))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    four, three = json.loads(proc.stdout)
    assert four["median_seconds"] is None  # half of the seeds have no time: the median is not finite
    assert three["median_seconds"] == 30.0 and three["reached_val"] == 2 and three["median_epochs"] == 3
    assert four["test_reached_fraction"] == 0.5 and three["test_mean"] == pytest.approx(90.333, abs=1e-3)


def test_speedrun_driver_isolates_each_run_in_a_fresh_process_by_default(tmp_path):
    out = tmp_path / "out"
    proc = run_speedrun("--config=experiments/configs/speedrun.py:0.915", f"--target={TARGET}", "--seeds=1",
                        f"--out={out}", *SPEEDRUN_FLAGS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    rec = result["runs"][0]["cnnjax"]
    assert rec["target_reached"] and rec["time_to_target_seconds"] > 0 and "torch" not in result["summary"]
    assert "stopped after" in proc.stdout  # the child's log reaches this process's stdout


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                if entry.isdigit() and int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.append(int(entry))
        except (OSError, IndexError, ValueError):
            pass
    return kids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_launcher_takes_its_training_worker_with_it(tmp_path):
    import signal
    import time
    log = open(tmp_path / "log", "w")
    never = ["--target=1.0", "--config.epochs=100000", "--config.learning_rate=1e-12"]  # trains until killed
    launcher = subprocess.Popen([sys.executable, "-m", "benchmarks.speedrun", "--config=experiments/configs/speedrun.py:0.915",
                                 "--seeds=1", f"--out={tmp_path / 'out'}", *SPEEDRUN_FLAGS, *never],
                                cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while "epoch 2 " not in (tmp_path / "log").read_text():  # the worker is training
        assert launcher.poll() is None and time.time() < deadline, (tmp_path / "log").read_text()[-3000:]
        time.sleep(0.5)
    workers = [k for k in _children(launcher.pid) if "spawn_main" in open(f"/proc/{k}/cmdline").read()]
    assert workers
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    assert "stopped" not in (tmp_path / "log").read_text()
    deadline = time.time() + 30
    while any(os.path.exists(f"/proc/{k}") and open(f"/proc/{k}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
              for k in workers):
        assert time.time() < deadline, "the worker outlived its launcher by 30 s"
        time.sleep(0.2)


def test_a_diverged_seed_counts_as_not_reached_and_the_other_seeds_are_kept(tmp_path):
    """A NaN loss in one seed (SGD at learning rate 1e30 for seed 1 only) is recorded as diverged, the
    sweep goes on and results.md/json are written with the other seeds' numbers."""
    code = f"""
import json, sys
from benchmarks import speedrun
from cnnjax.train import config as config_lib
run = speedrun.run_cnnjax
def run_cnnjax(config, workdir):
    return run(dict(config, learning_rate=1e30, optimizer="sgd") if config["seed"] == 1 else config, workdir)
speedrun.run_cnnjax = run_cnnjax
cfg = config_lib.from_dict(dict({TINY!r}, target_accuracy={TARGET}))
result = speedrun.speedrun(cfg, [0, 1], {str(tmp_path / "out")!r}, isolate=False, echo=lambda s: None)
print(json.dumps(result["summary"]))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])["cnnjax"]
    assert summary["seeds"] == 2 and summary["reached_val"] == 1 and summary["diverged"] == 1
    assert summary["median_seconds"] is None  # one of two seeds has no time
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    good, bad = result["runs"][0]["cnnjax"], result["runs"][1]["cnnjax"]
    assert good["target_reached"] and summary["test_mean"] == pytest.approx(100 * good["final_test_accuracy"])
    assert bad["final_test_accuracy"] is None and bad["time_to_target_seconds"] is None and "loss is nan" in bad["error"]
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| 1 | diverged |" in md and "1/2 (1 diverged)" in md and "seed 1 (cnnjax):" in md


@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_speedrun_driver_times_runs_with_a_cold_or_a_warm_compilation_cache(tmp_path, cache):
    """cold: each timed run starts from an empty cache and compiles; warm: an untimed warm-up run
    fills OUT/compile_cache first and each timed run loads every executable from it."""
    out = tmp_path / "out"
    proc = run_speedrun("--config=experiments/configs/speedrun.py:0.915", f"--target={TARGET}", "--seeds=2",
                        "--noisolate", f"--out={out}", f"--compile_cache={cache}", *SPEEDRUN_FLAGS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    assert result["compile_cache"] == cache
    for seed in (0, 1):
        record = json.loads((out / "runs" / f"seed={seed}" / "summary.json").read_text())["compile_cache"]
        assert record["compiles"] > 0
        if cache == "warm":  # the warm-up ran seed 0: all of its executables; of another seed's, those
            # that do not hold the seed as a constant
            assert record["dir"] == str(out / "compile_cache") and record["from_cache"] > 0
            assert record["from_cache"] == record["compiles"] or seed != 0
        else:
            assert record["dir"] != str(out / "compile_cache") and record["from_cache"] < record["compiles"]
            assert not os.path.exists(record["dir"])  # each cold run's cache is removed after it
    assert not (out / "warmup").exists()
    words = "warm compilation cache" if cache == "warm" else "cold compilation cache"
    assert words in (out / "results.md").read_text()
