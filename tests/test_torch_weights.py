"""cnnjax.torch_weights: random-init PyTorch models give the same logits after conversion."""
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks import torch_twins as twins  # noqa: E402
from cnnjax import freeze, init_from, models, torch_weights  # noqa: E402
from tests import torchvision_layout as tv  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


def _randomise(net, seed=0):
    """Random weights everywhere, batch-norm statistics included; eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if t.dtype.is_floating_point:
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if name.endswith("running_var")
                        else torch.randn(t.shape, generator=g) * (1.0 / max(1, t[0].numel()) ** 0.5 if t.ndim > 1
                                                                   else 0.3))
    return net.eval()


def _compare(net, name, image_shape, num_classes=10, **options):
    net = _randomise(net)
    model = models.create(name, num_classes, **options)
    target = freeze.variable_shapes(model, image_shape)
    flat = torch_weights.to_cnnjax(net.state_dict(), name, target)
    loaded, _ = init_from.match(flat, target)
    variables = {c: jax.tree_util.tree_map_with_path(lambda p, _: loaded[c][freeze.path_str(p)], target[c])
                 for c in target}
    x = np.random.default_rng(0).normal(size=(4, *image_shape)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    got = np.asarray(model.apply(variables, x, train=False))
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max(), (np.abs(got - want).max(), np.abs(want).max())


@pytest.mark.parametrize("name", ["lenet5", "padded_cnn", "separable_cnn", "dilated_cnn", "grouped_cnn", "vgg_bn",
                                  "airbench28_s"])
def test_project_twins_convert_to_the_same_logits(name):
    _compare(twins.torch_model(name), name, (28, 28, 1))


def test_resnet20_twin_converts():
    _compare(twins.torch_resnet20(), "resnet20", (32, 32, 3))


def test_torchvision_resnet18_converts():
    _compare(tv.ResNet((2, 2, 2, 2), 10), "tv_resnet18", (64, 64, 3))


def test_torchvision_vgg11_bn_converts_with_nchw_flatten_and_adaptive_pool():
    _compare(tv.VGG(VGG11, 10, hidden=64), "tv_vgg11_bn", (32, 32, 3), hidden=64)  # 1x1 map pooled to 7x7
    small = (8, "M", 16)  # 10x10 map: overlapping 7x7 bins, 16*49 inputs reordered from NCHW
    _compare(tv.VGG(small, 5, hidden=32), "tv_vgg11_bn", (20, 20, 3), num_classes=5, layers=small, hidden=32)


def test_published_parameter_counts():
    count = lambda name, shape=(1, 224, 224, 3): sum(
        x.size for x in jax.tree.leaves(freeze.variable_shapes(models.create(name, 1000), shape[1:])["params"]))
    assert count("tv_resnet18") == 11_689_512 and count("tv_resnet34") == 21_797_672
    assert count("tv_vgg11_bn") == 132_868_840 and count("tv_vgg16_bn") == 138_365_992


def test_a_file_for_another_architecture_names_the_first_key(tmp_path):
    state = _randomise(tv.ResNet((2, 2, 2, 2), 10)).state_dict()
    target = freeze.variable_shapes(models.create("tv_vgg11_bn", 10, hidden=64), (32, 32, 3))
    with pytest.raises(torch_weights.ConversionError, match=r"key 'conv1.weight' does not map to a variable of "
                                                            r"tv_vgg11_bn"):
        torch_weights.to_cnnjax(state, "tv_vgg11_bn", target)
    lenet = freeze.variable_shapes(models.create("lenet5"), (28, 28, 1))
    with pytest.raises(torch_weights.ConversionError, match=r"key '0.weight' has shape \(16, 1, 5, 5\), lenet5's "
                                                            r"conv1/kernel is \(5, 5, 1, 6\)"):
        torch_weights.to_cnnjax(twins.torch_model("padded_cnn").state_dict(), "lenet5", lenet)


def test_safetensors_without_torch_equals_pth(tmp_path):
    from safetensors.numpy import save_file
    state = _randomise(twins.torch_model("vgg_bn")).state_dict()
    torch.save(state, tmp_path / "w.pth")
    save_file({k: v.numpy() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    a = torch_weights.load(str(tmp_path / "w.pth"), "vgg_bn", 10, (28, 28, 1))
    b = torch_weights.load(str(tmp_path / "w.safetensors"), "vgg_bn", 10, (28, 28, 1))
    assert jax.tree.structure(a) == jax.tree.structure(b) and set(a) == {"params", "batch_stats"}
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a["batch_stats"]["bn2_2"]["var"], state["11.running_var"].numpy())


def _run(tmp_path, path, model):
    return subprocess.run([sys.executable, "-m", "experiments.train", f"--workdir={tmp_path / 'w'}",
                           "--config.dataset=synthetic", "--config.num_train=64", "--config.num_test=32",
                           "--config.epochs=1", f"--config.model={model}", f"--config.init_from={path}",
                           "--config.progress=plain"], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_a_pth_file_starts_a_run_and_another_architecture_is_one_error(tmp_path):
    net = _randomise(twins.torch_model("padded_cnn"))
    torch.save(net.state_dict(), tmp_path / "twin.pth")
    proc = _run(tmp_path, tmp_path / "twin.pth", "lenet5")
    assert proc.returncode == 2 and not os.path.exists(tmp_path / "w")
    assert proc.stderr.strip().splitlines() == [f"error: config.init_from: {tmp_path / 'twin.pth'}: key '0.weight' has "
                                                f"shape (16, 1, 5, 5), lenet5's conv1/kernel is (5, 5, 1, 6)"]
    proc = _run(tmp_path, tmp_path / "twin.pth", "padded_cnn")
    assert proc.returncode == 0, proc.stderr
    assert "6 loaded, 0 new, 0 skipped" in proc.stdout
