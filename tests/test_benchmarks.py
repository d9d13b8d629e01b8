"""The speed benchmarks run end to end on tiny settings (their figures live in
benchmarks/RESULTS.md; here only that they work and report consistent numbers)."""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bench(module, *args):
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_epoch_time_steps_and_scan_report_the_same_training(tmp_path):
    out = tmp_path / "epoch.json"
    proc = bench("benchmarks.epoch_time", "--num_train=200", "--num_test=100", "--batch_sizes=50",
                 "--epochs=1", "--loops=steps,scan", "--dtypes=float32", f"--json={out}")
    assert "| 50 | steps | float32 |" in proc.stdout and "| 50 | scan | float32 |" in proc.stdout
    cells = json.loads(out.read_text())["cells"]
    steps, scan = cells
    assert steps["steps"] == scan["steps"] == 4
    # same seed, same data order, same updates: the two loops trained the same model
    assert abs(steps["train_loss"] - scan["train_loss"]) < 1e-4
    assert steps["test_accuracy"] == scan["test_accuracy"]


def test_epoch_time_rejects_a_missing_data_dir(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.epoch_time", f"--data_dir={tmp_path / 'nope'}"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "is not a directory" in proc.stderr.strip().splitlines()[-1]


def test_train_throughput_prints_the_table(tmp_path):
    out = tmp_path / "tp.json"
    proc = bench("benchmarks.train_throughput", "--models=padded_cnn", "--batch_sizes=50", "--rounds=1",
                 "--steps=2", "--impls=fast,lax", "--no-epoch", "--data=random", f"--json={out}")
    assert "padded_cnn" in proc.stdout and "fast/lax" in proc.stdout
    assert "images: uniform random uint8 (padded_cnn)" in proc.stdout.splitlines()
    raw = json.loads(out.read_text())
    assert raw["workers"]["lax"]["impl"] == "lax" and raw["workers"]["lax"]["xla_flags"] == ""
    assert raw["workers"]["fast"]["impl"] == "auto" and "--xla_cpu" in raw["workers"]["fast"]["xla_flags"]
    for key in ("fast|padded_cnn|50", "lax|padded_cnn|50"):
        assert len(raw["train"][key]) == 1 and raw["train"][key][0] > 0


def test_resnet20_throughput_against_its_torch_twin(tmp_path):
    import torch  # noqa: F401  ([dev] installs it: missing fails, never skips)
    from cnnjax.weights.torch_twins import torch_model
    from tests.test_cifar_models import CIFAR_PINNED
    assert sum(p.numel() for p in torch_model("resnet20").parameters()) == CIFAR_PINNED["resnet20"]
    out = tmp_path / "tp.json"
    proc = bench("benchmarks.train_throughput", "--models=resnet20", "--batch_sizes=8", "--rounds=1",
                 "--steps=2", "--impls=fast,torch", "--no-epoch", f"--json={out}")
    assert "| resnet20 | 8 |" in proc.stdout and "fast/torch" in proc.stdout
    assert "images: uniform random uint8 (resnet20)" in proc.stdout.splitlines()  # no CIFAR-10 here: noise
    assert json.loads(out.read_text())["train"]["fast|resnet20|8"][0] > 0


def test_step_profile_lists_the_steps_operations_with_shapes_and_sources():
    proc = bench("benchmarks.step_profile", "--config=experiments/configs/default.py", "--set", "dataset=\"synthetic\"",
                 "--set", "batch_size=32", "--steps=2", "--rounds=1", "--top=5")
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("padded_cnn, batch 32: ") and "ms/step" in lines[0] and "load average" in lines[0]
    once = dict(part.rsplit(" ", 2)[:2] for part in lines[1].split(" (evaluation")[0][len("once per run: "):].split(", "))
    assert list(once) == ["init_state", "first training step (compiles)", "first evaluation batch (compiles)",
                          "next evaluation batch"] and all(float(v) > 0 for v in once.values()), lines[1]
    rows = lines[4:]
    assert len(rows) == 5 and lines[3].split()[:3] == ["ms/step", "share", "operation"]
    times = [float(r.split()[0]) for r in rows]
    assert times == sorted(times, reverse=True) and times[0] > 0
    # shapes of padded_cnn's step (batch 32) and model sources come from the dumped HLO
    assert any("f32[32," in r for r in rows) and any("jvp(PaddedCNN)" in r for r in rows)


def test_throughput_workers_all_train_on_the_first_fashion_mnist_images(monkeypatch):
    """--data=fashion_mnist (the default): every worker gathers from the same real images; the
    colour models, for which no real data exists here, and --data=random get uniform noise."""
    import numpy as np
    from benchmarks import train_throughput as tt
    from cnnjax import data
    ds = data.synthetic(num_train=tt.POOL_IMAGES + 7, num_test=10)  # stands in for Fashion-MNIST
    monkeypatch.setattr(data, "load", lambda name, data_dir=None: ds)
    images, labels, order = tt.pool_arrays(tt.IMAGE_SHAPE, "fashion_mnist")
    np.testing.assert_array_equal(images, ds.train_images[:tt.POOL_IMAGES])
    np.testing.assert_array_equal(labels, ds.train_labels[:tt.POOL_IMAGES])
    assert labels.dtype == order.dtype == np.int32 and sorted(order) == list(range(tt.POOL_IMAGES))
    noise, _, same_order = tt.pool_arrays(tt.IMAGE_SHAPE, "random")
    assert noise.shape == images.shape and noise.dtype == np.uint8 and (noise != images).mean() > 0.9
    np.testing.assert_array_equal(same_order, order)
    colour, _, _ = tt.pool_arrays((32, 32, 3), "fashion_mnist")
    assert colour.shape == (tt.POOL_IMAGES, 32, 32, 3)
    assert tt.pool_source((32, 32, 3), "fashion_mnist") == tt.pool_source(tt.IMAGE_SHAPE, "random") == \
        "uniform random uint8" != tt.pool_source(tt.IMAGE_SHAPE, "fashion_mnist")
    import torch  # [dev] installs it: missing fails, never skips
    bench = tt._TorchBench("fashion_mnist")
    bench._pool("padded_cnn")  # NCHW tensors of the same images, labels and order
    np.testing.assert_array_equal(bench.images.numpy(), images.transpose(0, 3, 1, 2))
    assert torch.equal(bench.labels, torch.from_numpy(labels.astype(np.int64)))
    assert torch.equal(bench.order, torch.from_numpy(order.astype(np.int64)))


def test_throughput_without_fashion_mnist_says_so_in_one_line(monkeypatch, capsys):
    import pytest
    from benchmarks import train_throughput as tt
    from cnnjax import data

    def missing(name, data_dir=None):
        raise data.DataError(f"cannot load {name!r}: no IDX files")
    monkeypatch.setattr(data, "load", missing)
    with pytest.raises(SystemExit) as e:
        tt.main(["--models=padded_cnn", "--batch_sizes=8", "--rounds=1", "--steps=1", "--impls=fast"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("error: --data=fashion_mnist: cannot load")


def test_train_throughput_times_a_recipe_column_side_by_side(tmp_path):
    """--recipe NAME=JSON: a fast-path column trained with other settings (issue 38's augmentation
    cost); a bad setting is one error line before any worker starts."""
    out = tmp_path / "tp.json"
    proc = bench("benchmarks.train_throughput", "--models=padded_cnn", "--batch_sizes=50", "--rounds=1",
                 "--steps=2", "--impls=fast,ra", '--recipe=ra={"augment_policy": "randaugment"}', "--no-epoch",
                 "--data=random", f"--json={out}")
    assert "fast/ra" in proc.stdout
    raw = json.loads(out.read_text())
    assert len(raw["train"]["ra|padded_cnn|50"]) == 1 and raw["train"]["ra|padded_cnn|50"][0] > 0
    bad = subprocess.run([sys.executable, "-m", "benchmarks.train_throughput", "--models=padded_cnn",
                          "--impls=fast,ra", '--recipe=ra={"augment_policy": "autoaugment"}'], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: --recipe ra: config.augment_policy")
