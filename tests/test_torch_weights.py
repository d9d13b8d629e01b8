"""cnnjax.weights.pytorch: PyTorch state_dicts, as real files come, give the PyTorch model's logits.

References.  torchvision does not import here (its wheel is a CUDA build that fails beside the CPU
torch), so its ResNet and VGG-BN are rebuilt in torch.nn in this repo (``tests/torchvision_layout.py``)
and pinned below to torchvision's published facts: the parameter counts of its weights' metadata
(``ResNet18_Weights.IMAGENET1K_V1.meta["num_params"]`` = 11,689,512, ResNet-34 21,797,672,
VGG11-BN 132,868,840, VGG16-BN 138,365,992) and the key names and shapes of torchvision's module
definitions (``conv1``, ``layer2.0.downsample.0``, ``features.N``, ``classifier.0/3/6``, ...).  The
other layouts' references are cnnjax's own PyTorch twins (``cnnjax/weights/torch_twins.py``), also
written in this repo.

Files as they come: ``torch.save`` keeps module order, a ``.safetensors`` file lists its keys
sorted (by dtype, then name), and training scripts nest and prefix them; the converter must not care.
"""
import os
import random
import subprocess
import sys

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cnnjax.weights import torch_twins as twins  # noqa: E402
from cnnjax import models  # noqa: E402
from cnnjax.weights import pytorch as torch_weights, variables
from tests import torchvision_layout as tv  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")

#: layout -> (torch reference, image shape, cnnjax model options).  VGG on 112x112 ends its features
#: at 3x3, which the adaptive pool spreads over 7x7 bins of different values: a wrongly ordered
#: flatten changes the logits (on 32x32 the map is 1x1 and every order gives the same logits).
CASES = {
    "tv_resnet18": (lambda: tv.ResNet((2, 2, 2, 2), 10), (64, 64, 3), {}),
    "tv_resnet34": (lambda: tv.ResNet((3, 4, 6, 3), 10), (64, 64, 3), {}),
    "tv_vgg11_bn": (lambda: tv.VGG(VGG11, 10, hidden=32), (112, 112, 3), {"hidden": 32}),
    "tv_vgg16_bn": (lambda: tv.VGG(VGG16, 10, hidden=32), (112, 112, 3), {"hidden": 32}),
    "resnet20": (twins.torch_resnet20, (32, 32, 3), {}),
    **{name: (lambda name=name: twins.torch_model(name), (28, 28, 1), {})
       for name in ("lenet5", "padded_cnn", "separable_cnn", "dilated_cnn", "grouped_cnn", "vgg_bn", "airbench",
                    "airbench28_s", "airbench28_m", "airbench28_l")},
}


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


def _variables(flat, model, image_shape):
    return {c: variables.fill(tree, flat[c]) for c, tree in variables.variable_shapes(model, image_shape).items()}


def _assert_logits(model, variables, net, image_shape):
    x = np.random.default_rng(0).normal(size=(2, *image_shape)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    got = np.asarray(model.apply(variables, x, train=False))
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max(), (np.abs(got - want).max(), np.abs(want).max())


def test_every_layout_has_a_case():
    assert set(CASES) == set(torch_weights.LAYOUTS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_any_file_kind_and_key_order_gives_the_pytorch_logits(name, tmp_path):
    """.pth in module order equals PyTorch; .safetensors (sorted keys) and sorted, reversed and
    shuffled orders give bit-identical variables."""
    from safetensors.torch import save_file
    make, image_shape, options = CASES[name]
    net = _randomise(make())
    state = net.state_dict()
    model = models.create(name, 10, **options)
    torch.save(state, tmp_path / "w.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    reference = torch_weights.to_cnnjax(torch_weights.read_state_dict(str(tmp_path / "w.pth")), name, model,
                                        image_shape)
    _assert_logits(model, _variables(reference, model, image_shape), net, image_shape)
    keys = list(state)
    shuffled = keys[:]
    random.Random(0).shuffle(shuffled)
    orders = {"sorted": sorted(keys), "reversed": keys[::-1], "shuffled": shuffled}
    sources = {order: {k: state[k] for k in ks} for order, ks in orders.items()}
    sources["safetensors"] = torch_weights.read_state_dict(str(tmp_path / "w.safetensors"))
    assert sorted(sources["safetensors"]) == sorted(keys)  # its own order: by dtype, then by name
    for order, source in sources.items():
        got = torch_weights.to_cnnjax(source, name, model, image_shape)
        for c in reference:
            assert set(got[c]) == set(reference[c]), order
            for path in reference[c]:
                np.testing.assert_array_equal(got[c][path], reference[c][path], err_msg=f"{order}: {c}/{path}")


def test_flattened_inputs_come_from_the_model():
    """Which linear layers read a flattened map, and its channels: execution order, not key order."""
    assert torch_weights.flattened_inputs(models.create("lenet5"), (28, 28, 1)) == {"fc1": 16}
    assert torch_weights.flattened_inputs(models.create("vgg_bn"), (28, 28, 1)) == {"fc": 48}
    assert torch_weights.flattened_inputs(models.create("tv_resnet18", 10), (64, 64, 3)) == {"fc": 512}
    assert torch_weights.flattened_inputs(models.create("tv_vgg11_bn", 10, hidden=32), (64, 64, 3)) == {
        "classifier_0": 512}


@pytest.mark.parametrize("name", ["tv_vgg11_bn", "lenet5", "vgg_bn"])
def test_the_flatten_reorder_is_needed(name, monkeypatch):
    """Without the NCHW -> NHWC reorder the logits differ: the cases above can see a wrong order."""
    make, image_shape, options = CASES[name]
    net = _randomise(make())
    model = models.create(name, 10, **options)
    monkeypatch.setattr(torch_weights, "flattened_inputs", lambda *_: {})
    flat = torch_weights.to_cnnjax(net.state_dict(), name, model, image_shape)
    with pytest.raises(AssertionError):
        _assert_logits(model, _variables(flat, model, image_shape), net, image_shape)


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_torchvision_stand_ins_match_torchvision_published_facts():
    """The stand-ins (built on the meta device: no memory) have torchvision's published parameter
    counts and its key names and shapes; cnnjax's tv_* models have the same counts."""
    with torch.device("meta"):
        r18, r34 = tv.ResNet((2, 2, 2, 2)), tv.ResNet((3, 4, 6, 3))
        v11, v16 = tv.VGG(VGG11), tv.VGG(VGG16)
    assert (_count(r18), _count(r34), _count(v11), _count(v16)) == (11_689_512, 21_797_672, 132_868_840, 138_365_992)
    shapes = {k: tuple(v.shape) for k, v in r18.state_dict().items()}
    assert shapes["conv1.weight"] == (64, 3, 7, 7) and shapes["fc.weight"] == (1000, 512)
    assert shapes["layer2.0.downsample.0.weight"] == (128, 64, 1, 1)
    assert shapes["layer2.0.downsample.1.running_var"] == (128,) and "layer1.0.downsample.0.weight" not in shapes
    assert shapes["layer4.1.bn2.num_batches_tracked"] == ()
    shapes = {k: tuple(v.shape) for k, v in v16.state_dict().items()}
    assert shapes["features.0.weight"] == (64, 3, 3, 3) and shapes["features.1.running_mean"] == (64,)
    assert shapes["features.40.weight"] == (512, 512, 3, 3) and shapes["features.41.weight"] == (512,)
    assert shapes["classifier.0.weight"] == (4096, 25088) and shapes["classifier.3.weight"] == (4096, 4096)
    assert shapes["classifier.6.weight"] == (1000, 4096)
    count = lambda name: sum(x.size for x in jax.tree.leaves(
        variables.variable_shapes(models.create(name, 1000), (224, 224, 3))["params"]))
    assert count("tv_resnet18") == 11_689_512 and count("tv_resnet34") == 21_797_672
    assert count("tv_vgg11_bn") == 132_868_840 and count("tv_vgg16_bn") == 138_365_992


@pytest.mark.parametrize("wrap", ["state_dict", "model", "module.", "_orig_mod.", "lightning"])
def test_wrapped_files_load_as_the_plain_state_dict(wrap, tmp_path):
    net = _randomise(twins.torch_model("lenet5"))
    state = net.state_dict()
    if wrap in ("state_dict", "model"):
        saved = {wrap: state, "epoch": 7, "optimizer": {"lr": 0.1}}
    elif wrap == "lightning":  # a Lightning-style checkpoint of a DDP-wrapped model, beside training state
        saved = {"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3,
                 "global_step": 100, "hyper_parameters": {"lr": 1e-3}}
    else:
        saved = {wrap + k: v for k, v in state.items()}
    torch.save(saved, tmp_path / "w.pt")
    torch.save(state, tmp_path / "plain.bin")
    a = torch_weights.load(str(tmp_path / "w.pt"), "lenet5", 10, (28, 28, 1))
    b = torch_weights.load(str(tmp_path / "plain.bin"), "lenet5", 10, (28, 28, 1))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_a_file_for_another_architecture_names_the_first_key():
    state = _randomise(tv.ResNet((2, 2, 2, 2), 10)).state_dict()
    vgg = models.create("tv_vgg11_bn", 10, hidden=64)
    with pytest.raises(torch_weights.ConversionError, match=r"key 'conv1.weight' does not map to a variable of "
                                                            r"tv_vgg11_bn"):
        torch_weights.to_cnnjax(state, "tv_vgg11_bn", vgg, (32, 32, 3))
    with pytest.raises(torch_weights.ConversionError, match=r"key '0.weight' has shape \(16, 1, 5, 5\), lenet5's "
                                                            r"conv1/kernel is \(5, 5, 1, 6\)"):
        torch_weights.to_cnnjax(twins.torch_model("padded_cnn").state_dict(), "lenet5", models.create("lenet5"),
                                (28, 28, 1))


def test_files_that_are_not_state_dicts_are_one_error_naming_the_file(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(torch_weights.ConversionError, match=r"list.pth holds a list, not a state_dict"):
        torch_weights.read_state_dict(str(tmp_path / "list.pth"))
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "meta.pth")
    with pytest.raises(torch_weights.ConversionError, match=r"meta.pth holds no tensors .*not a state_dict"):
        torch_weights.read_state_dict(str(tmp_path / "meta.pth"))
    (tmp_path / "cut.safetensors").write_bytes(b"\x10\x00\x00")
    with pytest.raises(torch_weights.ConversionError, match=r"cut.safetensors is not a readable .safetensors file"):
        torch_weights.read_state_dict(str(tmp_path / "cut.safetensors"))


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch /tmp/cnnjax-pickle-ran",))


def _run(tmp_path, path, model):
    return subprocess.run([sys.executable, "-m", "experiments.train", f"--workdir={tmp_path / 'w'}",
                           "--config.dataset=synthetic", "--config.num_train=64", "--config.num_test=32",
                           "--config.epochs=1", f"--config.model={model}", f"--config.init_from={path}",
                           "--config.progress=plain"], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_a_pickle_that_would_run_code_is_one_whole_error_line(tmp_path):
    if os.path.exists("/tmp/cnnjax-pickle-ran"):
        os.remove("/tmp/cnnjax-pickle-ran")
    torch.save({"conv1.weight": _RunsCode()}, tmp_path / "evil.pth")
    proc = _run(tmp_path, tmp_path / "evil.pth", "lenet5")
    assert proc.returncode == 2 and not os.path.exists(tmp_path / "w")
    assert not os.path.exists("/tmp/cnnjax-pickle-ran")
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"error: config.init_from: {tmp_path / 'evil.pth'} is not a plain weights file, refused "
                     f"without running it (torch.load weights_only: Trying to load unsupported GLOBAL posix.system "
                     f"whose module posix is blocked.)"], lines


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


def test_a_sorted_safetensors_file_starts_a_run_with_the_pytorch_weights(tmp_path):
    """config.init_from goes through the same conversion: lenet5 from a .safetensors file (sorted
    keys) starts from exactly the weights of the module-order .pth."""
    from safetensors.torch import save_file
    from cnnjax.train import init_from
    from cnnjax.train.config import TrainConfig
    state = _randomise(twins.torch_model("lenet5")).state_dict()
    torch.save(state, tmp_path / "w.pth")
    save_file(dict(state), str(tmp_path / "w.safetensors"))
    model = models.create("lenet5", 10)
    a = init_from.prepare(TrainConfig(model="lenet5", init_from=str(tmp_path / "w.pth")), model, (28, 28, 1))
    b = init_from.prepare(TrainConfig(model="lenet5", init_from=str(tmp_path / "w.safetensors")), model, (28, 28, 1))
    for c in a.loaded:
        for path in a.loaded[c]:
            np.testing.assert_array_equal(a.loaded[c][path], b.loaded[c][path])
