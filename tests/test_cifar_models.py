"""The 32x32 colour nets: parameter counts pinned to the published figures, block-type options,
fast == lax, and the summary's FLOPs / receptive field at 32x32x3."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import models, summary

# (params on 32x32x3 with 10 classes, what it matches)
CIFAR_PINNED = {
    "resnet20": 269_722,    # He et al. 2016, Table 6: 0.27M (option A shortcuts)
    "resnet56": 853_018,    # ... 0.85M
    "resnet18": 11_173_962,  # kuangliu/pytorch-cifar ResNet18: 11.17M
    "vgg11_bn": 9_231_114,  # kuangliu/pytorch-cifar VGG('VGG11')
    "vgg16_bn": 14_728_266,  # kuangliu/pytorch-cifar VGG('VGG16')
    "airbench": 1_971_640,  # airbench94 make_net: 1,972,792 less its 1,152 frozen BN weights
    # torchvision's counts with 1,000 classes (11,689,512 / 21,797,672 / 132,868,840 / 138,365,992, pinned in
    # tests/test_torch_weights.py) less the 990 classes' head weights: 513*990 (ResNet), 4097*990 (VGG)
    "tv_resnet18": 11_181_642, "tv_resnet34": 21_289_802, "tv_vgg11_bn": 128_812_810, "tv_vgg16_bn": 134_309_962,
}


def n_params(model, shape=(1, 32, 32, 3)):
    v = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros(shape))
    return sum(x.size for x in jax.tree.leaves(v["params"]))


def test_every_registered_model_is_pinned_somewhere():
    from tests.test_models import PINNED_PARAMS
    assert set(models.available()) == set(PINNED_PARAMS) | set(CIFAR_PINNED)


@pytest.mark.parametrize("name", sorted(CIFAR_PINNED))
def test_param_counts_match_the_published_ones(name):
    assert n_params(models.create(name)) == CIFAR_PINNED[name]


def test_resnet20_and_airbench_run_train_and_eval_with_batch_norm():
    for name in ("resnet20", "airbench"):
        model = models.create(name, 10)
        x = jax.random.normal(jax.random.key(1), (4, 32, 32, 3))
        v = model.init(jax.random.key(0), x)
        y, upd = model.apply(v, x, train=True, mutable=["batch_stats"])
        assert y.shape == (4, 10) and bool(jnp.all(jnp.isfinite(y)))
        assert jax.tree.structure(upd["batch_stats"]) == jax.tree.structure(v["batch_stats"])
        assert model.apply(v, x).shape == (4, 10)
    # the small nets also take 28x28x1 (every registered model does)
    assert models.create("resnet20").apply(v := models.create("resnet20").init(
        jax.random.key(0), jnp.zeros((1, 28, 28, 1))), jnp.zeros((2, 28, 28, 1))).shape == (2, 10)


def resnet20_params(conv3x3):
    """resnet20's parameters by hand, given a 3x3 block conv's count conv3x3(c_in, c_out) (no bias):
    the stem (a plain 3x3x3x16 conv) and its BN (scale and bias: 2 x 16); 3 stages of 3 blocks of
    widths 16, 32, 64, each block two 3x3 convs (the first of a stage from the previous width) and
    two BNs (2 x 2w); option A shortcuts have no parameters; fc 64 x 10 + 10."""
    total, c_in = 3 * 3 * 3 * 16 + 2 * 16 + 64 * 10 + 10, 16
    for width in (16, 32, 64):
        for _ in range(3):
            total += conv3x3(c_in, width) + conv3x3(width, width) + 2 * 2 * width
            c_in = width
    return total


BLOCK_CONV_PARAMS = {  # a 3x3 conv from c_in to c_out channels, no bias
    "conv": lambda ci, co: 9 * ci * co,
    "dilated": lambda ci, co: 9 * ci * co,  # 3x3 taps spread by dilation 2: the same weights
    "transposed": lambda ci, co: 9 * ci * co,
    "separable": lambda ci, co: 9 * ci + ci * co,  # depthwise 3x3 per input channel + pointwise 1x1
    "grouped": lambda ci, co: 9 * (ci // 4) * co,  # groups=4: each output sees a quarter of the inputs
}


def test_resnet20_param_formula_by_hand():
    assert resnet20_params(BLOCK_CONV_PARAMS["conv"]) == CIFAR_PINNED["resnet20"]


@pytest.mark.parametrize("block_conv,params", [("separable", 37_770), ("dilated", 269_722), ("grouped", 69_274),
                                               ("transposed", 269_722)])
def test_every_block_type_is_an_option(block_conv, params):
    model = models.create("resnet20", block_conv=block_conv)
    assert n_params(model) == params == resnet20_params(BLOCK_CONV_PARAMS[block_conv])
    x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
    v = model.init(jax.random.key(0), x)
    assert model.apply(v, x).shape == (2, 10)
    s = summary.summarize(model, (32, 32, 3))
    kinds = {r.kind for r in s.rows}
    want = {"separable": "SeparableConv", "dilated": "DilatedConv", "grouped": "GroupedConv",
            "transposed": "ConvTranspose"}[block_conv]
    assert want in kinds
    for name in ("airbench", "vgg11_bn"):
        assert models.create(name, block_conv=block_conv) is not None


def test_block_options_are_validated():
    with pytest.raises(ValueError, match="block_conv must be one of"):
        models.create("resnet20", block_conv="fancy")
    with pytest.raises(ValueError, match="groups=3 must divide every width"):
        models.create("airbench", block_conv="grouped", groups=3)
    with pytest.raises(ValueError, match="groups applies only to block_conv='grouped'"):
        models.create("resnet18", groups=8)
    with pytest.raises(ValueError, match="shortcut must be"):
        models.create("resnet20", shortcut="C")


@pytest.mark.parametrize("name", ["resnet20", "airbench"])
def test_fast_and_lax_paths_agree(name):
    x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
    fast, lax_ = models.create(name, conv_impl="fast"), models.create(name, conv_impl="lax")
    v = fast.init(jax.random.key(0), x)
    np.testing.assert_allclose(fast.apply(v, x), lax_.apply(v, x), rtol=1e-4, atol=1e-4)
    loss = lambda m: lambda p: jnp.sum(m.apply({**v, "params": p}, x, train=True, mutable=["batch_stats"])[0] ** 2)
    g1, g2 = jax.grad(loss(fast))(v["params"]), jax.grad(loss(lax_))(v["params"])
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4)


def test_summary_flops_and_receptive_field_at_32x32x3():
    s = summary.summarize(models.create("resnet20"), (32, 32, 3), "resnet20")
    assert s.total_params == 269_722
    assert s.total_flops == 81_102_080  # 40.55M multiply-adds: the ~41M usually quoted for ResNet-20
    assert s.receptive_field == (81, 81)  # 19 3x3 convs, strides 1,1,2,2 at the stage starts
    # option B's 1x1 projections sit beside the main path: they do not double the jump
    r18 = summary.summarize(models.create("resnet18"), (32, 32, 3))
    assert r18.rows[-1].kind == "Dense" and [r for r in r18.rows if r.receptive_field][-1].jump == (8, 8)
    a = summary.summarize(models.create("airbench"), (32, 32, 3))
    # receptive field (rf += (k - 1) * jump; a pool of window k multiplies the jump by k): whiten 2x2 -> 2;
    # group 1: conv 4, pool2 5 (jump 2), conv 9; group 2: conv 13, pool2 15 (jump 4), conv 23;
    # group 3: conv 31, pool2 35 (jump 8), conv 51; pool3: 51 + 2 * 8 = 67
    assert a.receptive_field == (67, 67)
    conv = lambda hw, c_out, k, c_in: 2 * hw * hw * c_out * k * k * c_in  # 2 x positions x out x taps
    pool = lambda hw, c, k: hw * hw * c * k * k  # one comparison per input of each window
    flops = (conv(31, 24, 2, 3)  # whiten 2x2 valid: 32 -> 31
             + conv(31, 64, 3, 24) + pool(15, 64, 2) + conv(15, 64, 3, 64)  # group 1 at 31, pooled to 15
             + conv(15, 256, 3, 64) + pool(7, 256, 2) + conv(7, 256, 3, 256)  # group 2: 15 -> 7
             + conv(7, 256, 3, 256) + pool(3, 256, 2) + conv(3, 256, 3, 256)  # group 3: 7 -> 3
             + pool(1, 256, 3) + 2 * 256 * 10)  # max pool 3 -> 1x1x256, fc without bias
    assert a.total_flops == flops == 236_414_016
    assert "total params: 1,971,640" in a.table()


def test_experiments_summary_uses_the_configs_colour_shape():
    import os
    import subprocess
    import sys
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-m", "experiments.summary", "--config=experiments/configs/cifar.py:resnet20"],
                         cwd=repo, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "resnet20  input 32x32x3" in out.stdout
    assert "total params: 269,722   total FLOPs per example: 81.10M (81,102,080)   receptive field: 81" in out.stdout
