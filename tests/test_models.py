"""Blocks and models: parameter counts by formula, shapes, equivalences, registry, summary."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import blocks, models, ops, summary


def n_params(variables):
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(variables["params"]))


def init(module, shape, seed=0):
    x = jax.random.normal(jax.random.key(seed + 1), shape)
    return module.init(jax.random.key(seed), x), x


@pytest.mark.parametrize("k,c_in,c_out,groups", [(3, 4, 8, 1), (5, 16, 32, 4), (3, 6, 6, 6), (1, 8, 4, 2)])
def test_conv_and_grouped_param_formula(k, c_in, c_out, groups):
    v, _ = init(blocks.Conv(c_out, k, groups=groups), (1, 9, 9, c_in))
    assert n_params(v) == k * k * (c_in // groups) * c_out + c_out
    v, _ = init(blocks.Conv(c_out, k, groups=groups, use_bias=False), (1, 9, 9, c_in))
    assert n_params(v) == k * k * (c_in // groups) * c_out


@pytest.mark.parametrize("k,c_in,c_out,bias", [(3, 4, 8, True), (5, 16, 32, True), (3, 3, 5, False)])
def test_separable_param_formula(k, c_in, c_out, bias):
    v, _ = init(blocks.SeparableConv(c_out, k, use_bias=bias), (1, 9, 9, c_in))
    assert n_params(v) == k * k * c_in + c_in * c_out + (c_out if bias else 0)


def test_grouped_block_rejects_groups_not_dividing_channels():
    with pytest.raises(ValueError, match=r"groups=3 must divide the input channels \(4\)"):
        init(blocks.GroupedConv(6, 3, groups=3), (1, 8, 8, 4))
    with pytest.raises(ValueError, match=r"features \(5\)"):
        init(blocks.GroupedConv(5, 3, groups=2), (1, 8, 8, 4))


def test_conv_block_equals_op_plus_bias_and_activation():
    v, x = init(blocks.Conv(5, 3, padding="same", activation="relu"), (2, 7, 7, 3))
    v = jax.tree.map(lambda a: a + 0.1, v)  # non-zero bias
    p = v["params"]
    expected = jnp.maximum(ops.conv2d(x, p["kernel"], padding="same") + p["bias"], 0)
    np.testing.assert_allclose(blocks.Conv(5, 3, padding="same", activation="relu").apply(v, x), expected, rtol=1e-6)


def test_dilated_block_defaults_keep_size_and_spread_taps():
    blk = blocks.DilatedConv(2, 3)
    v, x = init(blk, (1, 10, 10, 1))
    assert blk.apply(v, x).shape == (1, 10, 10, 2)
    assert blk.geometry()[0] == (5, 5)


def test_transposed_and_upsample_blocks_double_size():
    v, x = init(blocks.ConvTranspose(3, 3, stride=2, padding=1, output_padding=1), (2, 7, 7, 4))
    assert blocks.ConvTranspose(3, 3, stride=2, padding=1, output_padding=1).apply(v, x).shape == (2, 14, 14, 3)
    assert n_params(v) == 3 * 3 * 4 * 3 + 3
    blk = blocks.UpsampleConv(3, 3, factor=2)
    v, x = init(blk, (2, 7, 7, 4))
    y = blk.apply(v, x)
    assert y.shape == (2, 14, 14, 3)
    ref = ops.conv2d(ops.upsample_nearest(x, 2), v["params"]["kernel"], padding="same") + v["params"]["bias"]
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)


def test_activation_and_pool_names_are_validated():
    with pytest.raises(ValueError, match="unknown activation 'swishy'"):
        blocks.activation_fn("swishy")
    with pytest.raises(ValueError, match="unknown pooling 'median'"):
        blocks.pool_block("median")


# --- models -------------------------------------------------------------------------

PINNED_PARAMS = {
    "padded_cnn": 28_938,      # 416 + 12,832 + 15,690
    "seed_net": 8_490,         # 260 + 5,020 + 3,210
    "lenet5": 61_706,          # 156 + 2,416 + 48,120 + 10,164 + 850
    "separable_cnn": 17_050,   # 416 + (25*16 + 16*32 + 32) + 15,690
    "dilated_cnn": 20_746,     # 416 + (9*16*32 + 32) + 15,690
    "grouped_cnn": 19_338,     # 416 + (25*4*32 + 32) + 15,690
    "conv_autoencoder": 9_569,  # 160 + 4,640 + 4,624 + 145
    "mlp": 235_146,            # 784*256+256 + 256*128+128 + 128*10+10
    "vgg_bn": 60_322,          # convs 216+5,184+10,368+20,736, BN 2*(24+24+48+48), fc 23,530
    # airbench on 28x28x1, widths (w1, w2, w3), whiten 2*2*1*8+8 = 40; group i: 9*c_in*w + 9*w*w + 2w BN biases;
    # fc w3*10 (no bias)
    "airbench28_s": 9_496,     # 40 + (576+576+16) + (1,152+2,304+32) + (2,304+2,304+32) + 160
    "airbench28_m": 36_232,    # 40 + (1,152+2,304+32) + (4,608+9,216+64) + (9,216+9,216+64) + 320
    "airbench28_l": 141_544,   # 40 + (2,304+9,216+64) + (18,432+36,864+128) + (36,864+36,864+128) + 640
}


@pytest.mark.parametrize("name", sorted(PINNED_PARAMS))
def test_model_param_counts_and_output_shapes(name):
    model = models.create(name)
    v, x = init(model, (3, 28, 28, 1))
    assert n_params(v) == PINNED_PARAMS[name]
    out = model.apply(v, x)
    assert out.shape == ((3, 28, 28, 1) if name == "conv_autoencoder" else (3, 10))
    assert bool(jnp.all(jnp.isfinite(out)))


def test_models_are_pure_functions_of_variables():
    """The output depends on the variables and the input only: another instance given a copy of
    the variables agrees bit for bit, also after the first one ran on other variables."""
    model = models.create("padded_cnn")
    v, x = init(model, (2, 28, 28, 1))
    first = np.asarray(model.apply(v, x))
    v2, _ = init(model, (2, 28, 28, 1), seed=5)
    assert not np.allclose(model.apply(v2, x), first)
    np.testing.assert_array_equal(models.create("padded_cnn").apply(jax.tree.map(np.array, v), x), first)


def test_padded_cnn_applies_the_documented_layers():
    model = models.create("padded_cnn")
    v, x = init(model, (2, 28, 28, 1))
    p = v["params"]
    h = ops.max_pool2d(jax.nn.relu(ops.conv2d(x, p["conv1"]["kernel"], padding=2) + p["conv1"]["bias"]), 2)
    h = ops.max_pool2d(jax.nn.relu(ops.conv2d(h, p["conv2"]["kernel"], padding=2) + p["conv2"]["bias"]), 2)
    logits = h.reshape(2, -1) @ p["fc"]["kernel"] + p["fc"]["bias"]
    np.testing.assert_allclose(model.apply(v, x), logits, rtol=1e-4, atol=1e-5)


def test_num_classes_options_and_autoencoder_odd_sizes():
    v, x = init(models.create("padded_cnn", num_classes=3), (1, 28, 28, 1))
    assert v["params"]["fc"]["kernel"].shape == (1568, 3)
    for decoder in ("transpose", "upsample"):
        ae = models.create("conv_autoencoder", decoder=decoder)
        v, x = init(ae, (2, 30, 26, 3))
        assert ae.apply(v, x).shape == (2, 30, 26, 3)


def test_registry_errors_list_what_exists():
    with pytest.raises(ValueError, match="available: .*padded_cnn"):
        models.create("resnet9000")
    with pytest.raises(ValueError, match="no option"):
        models.create("padded_cnn", colour="blue")
    assert models.options("padded_cnn") == ["activation", "conv2", "conv_impl", "dilation", "groups", "head",
                                            "padding", "pool", "stride", "widths"]
    assert models.options("mlp") == ["activation", "hidden"]  # no convs: no conv_impl


BAD_OPTIONS = [  # (model, num_classes, options, message)
    ("padded_cnn", 10, dict(widths=(-8, 16)), r"padded_cnn: widths must be 2 positive integers, got \(-8, 16\)"),
    ("padded_cnn", 10, dict(widths=(0, 16)), r"padded_cnn: widths must be 2 positive integers, got \(0, 16\)"),
    ("padded_cnn", 10, dict(widths=8), "padded_cnn: widths must be 2 positive integers, got 8"),
    ("padded_cnn", 10, dict(widths=("a", "b")), "padded_cnn: widths must be 2 positive"),
    ("padded_cnn", 10, dict(widths=(8, 16, 32)), r"padded_cnn: widths must be 2 .*got \(8, 16, 32\)"),
    ("vgg_bn", 10, dict(widths=(-8, 16)), "vgg_bn: widths must be one or more positive integers"),
    ("vgg_bn", 10, dict(widths=8), "vgg_bn: widths must be one or more positive integers, got 8"),
    ("vgg_bn", 10, dict(widths=()), "vgg_bn: widths"),
    ("conv_autoencoder", 10, dict(widths=(0, 16)), "conv_autoencoder: widths must be 2 positive integers"),
    ("conv_autoencoder", 10, dict(widths=("a", "b")), "conv_autoencoder: widths must be 2 positive integers"),
    ("conv_autoencoder", 10, dict(widths=(8, 16, 32)), "conv_autoencoder: widths must be 2"),
    ("mlp", 10, dict(hidden=-5), "mlp: hidden must be a positive integer or a list of them.*got -5"),
    ("mlp", 10, dict(hidden=(0,)), r"mlp: hidden must be .*got \(0,\)"),
    ("padded_cnn", 10, dict(num_classes=5), "padded_cnn: num_classes is set by the dataset, not a model option"),
    ("padded_cnn", 0, {}, "padded_cnn: num_classes must be a positive integer, got 0"),
    ("mlp", -3, {}, "mlp: num_classes must be a positive integer, got -3"),
    ("padded_cnn", 10, dict(groups=3), "padded_cnn: groups applies only to conv2='grouped', but conv2='conv'"),
    ("separable_cnn", 10, dict(groups=2), "separable_cnn: groups applies only to conv2='grouped'"),
    ("padded_cnn", 10, dict(dilation=3), "padded_cnn: dilation applies only to conv2='dilated', but conv2='conv'"),
    ("grouped_cnn", 10, dict(dilation=1), "grouped_cnn: dilation applies only to conv2='dilated'"),
    ("grouped_cnn", 10, dict(groups=3), r"grouped_cnn: groups=3 must divide both widths \(16, 32\)"),
    ("grouped_cnn", 10, dict(groups=0), "grouped_cnn: groups must be a positive integer, got 0"),
    ("padded_cnn", 10, dict(conv2="wide"), "padded_cnn: conv2 must be one of"),
    ("padded_cnn", 10, dict(padding=-1), "padded_cnn: padding: padding must be non-negative"),
    ("padded_cnn", 10, dict(stride=0), "padded_cnn: stride must be a positive integer"),
    ("padded_cnn", 10, dict(conv_impl="cudnn"), r"padded_cnn: conv_impl must be one of \('auto', 'lax', 'fast', "
                                                r"'gemm'\), got 'cudnn'"),
    ("lenet5", 10, dict(activation="swish"), "lenet5: activation must be one of"),
    ("seed_net", 10, dict(pool="median"), "seed_net: pool must be one of"),
    ("conv_autoencoder", 10, dict(decoder="pixelshuffle"), "conv_autoencoder: decoder must be"),
    ("vgg_bn", 10, dict(dropout=30), "vgg_bn: dropout must be a rate in"),
]


@pytest.mark.parametrize("name,num_classes,options,message", BAD_OPTIONS,
                         ids=[f"{m}-{sorted(o) or n}" for m, n, o, _ in BAD_OPTIONS])
def test_bad_model_options_raise_one_clear_value_error(name, num_classes, options, message):
    with pytest.raises(ValueError, match=message):
        models.create(name, num_classes, **options)


def test_options_that_apply_are_accepted_and_change_the_model():
    # the checks above must not refuse what works: groups on grouped_cnn, dilation on dilated_cnn,
    # a non-default number of VGG stages, widths as the list --model_options parses
    rows = lambda *a, **kw: summary.summarize(models.create(*a, **kw), (28, 28, 1)).rows
    assert rows("grouped_cnn", groups=2)[2].params == 25 * 8 * 32 + 32
    assert rows("padded_cnn", conv2="grouped", groups=8)[2].params == 25 * 2 * 32 + 32
    assert rows("dilated_cnn", dilation=3)[2].receptive_field == (18, 18)  # 6 + (7-1)*2
    vgg = rows("vgg_bn", widths=[8, 16, 32])
    assert vgg[-1].params == 3 * 3 * 32 * 10 + 10  # three stages: 28 -> 14 -> 7 -> 3
    assert rows("padded_cnn", 3, widths=[4, 8])[-1].params == 7 * 7 * 8 * 3 + 3


def test_every_conv_kind_is_an_option_of_every_kind_switch():
    # one table (blocks.CONV_KINDS, built by blocks.ConvDef) serves padded_cnn's conv2 and the
    # 32x32 nets' block_conv; 'transposed' keeps the plain conv's size and parameter count
    assert blocks.CONV_KINDS == ("conv", "separable", "dilated", "grouped", "transposed")
    kinds = {r.name: r.kind for r in summary.summarize(models.create("padded_cnn", conv2="transposed"), (28, 28, 1)).rows}
    assert kinds["conv2"] == "ConvTranspose"
    for padding, params in ((2, 28_938), (0, 18_378)):  # a 5x5 stride-1 transposed conv: 25*16*32 + 32
        rows = summary.summarize(models.create("padded_cnn", conv2="transposed", padding=padding), (28, 28, 1)).rows
        assert rows[2].params == 12_832 and sum(r.params for r in rows) == params
    with pytest.raises(ValueError, match="symmetric padding"):
        blocks.ConvDef()(4, 3, kind="transposed", padding=((0, 1), (0, 1)))
    with pytest.raises(ValueError, match="unknown conv kind 'wide'"):
        blocks.ConvDef()(4, 3, kind="wide")


def test_models_check_their_own_options_when_constructed():
    # the registry only adds the model's name: a model class built directly refuses the same values
    with pytest.raises(models.OptionError, match=r"^widths must be 2 positive integers, got 8$"):
        models.PaddedCNN(widths=8)
    with pytest.raises(models.OptionError, match="block_conv must be one of"):
        models.ResNet(block_conv="fancy")
    with pytest.raises(ValueError, match=r"^padded_cnn: widths must be 2 positive integers, got 8$"):
        models.create("padded_cnn", widths=8)
    assert models.create("padded_cnn", conv_impl="lax").conv == blocks.ConvDef("lax")


CONV_MODELS = ["padded_cnn", "separable_cnn", "dilated_cnn", "grouped_cnn", "lenet5", "seed_net", "vgg_bn",
               "conv_autoencoder"]


@pytest.mark.parametrize("name", CONV_MODELS)
def test_conv_impl_option_changes_the_program_not_the_model(name):
    lax_m, fast_m = models.create(name, conv_impl="lax"), models.create(name, conv_impl="fast")
    v, x = init(lax_m, (3, 28, 28, 1))
    assert n_params(init(fast_m, (3, 28, 28, 1))[0]) == n_params(v) == PINNED_PARAMS[name]
    y_lax, y_fast = lax_m.apply(v, x), fast_m.apply(v, x)
    scale = float(jnp.abs(y_lax).max())
    np.testing.assert_allclose(y_fast, y_lax, rtol=1e-5, atol=1e-5 * scale)
    # gradients: tests/test_fastconv.py::test_models_train_identically_on_both_paths


def _primitives(model, v, x):
    return {str(e.primitive) for e in jax.make_jaxpr(lambda a: model.apply(v, a))(x).eqns}


def test_conv_impl_reaches_every_block_and_beats_the_environment(monkeypatch):
    model = models.create("separable_cnn", conv_impl="lax")
    v, x = init(model, (2, 28, 28, 1))
    monkeypatch.setenv("CNNJAX_CONV_IMPL", "fast")
    prims = _primitives(model, v, x)
    assert "conv_general_dilated" in prims and "reduce_window_max" in prims
    # 'gemm': every conv as im2col + matmul (custom VJP), no lax conv left; pools stay 'fast' strided views
    prims = _primitives(models.create("separable_cnn", conv_impl="gemm"), v, x)
    assert "conv_general_dilated" not in prims and "reduce_window_max" not in prims
    # 'auto' follows the variable
    monkeypatch.setenv("CNNJAX_CONV_IMPL", "lax")
    assert "conv_general_dilated" in _primitives(models.create("separable_cnn"), v, x)


def test_block_impl_field_and_conv_transpose_groups():
    x = jax.random.normal(jax.random.key(1), (1, 6, 6, 4))
    blk = blocks.Conv(4, 3, groups=4, impl="nope")
    with pytest.raises(ValueError, match="impl must be one of"):
        blk.init(jax.random.key(0), x)
    v, x = init(blocks.ConvTranspose(6, 3, groups=2), (1, 5, 5, 4))
    assert v["params"]["kernel"].shape == (3, 3, 4, 3)
    assert n_params(v) == 3 * 3 * 4 * 3 + 6
    assert blocks.ConvTranspose(6, 3, groups=2).apply(v, x).shape == (1, 11, 11, 6)
    with pytest.raises(ValueError, match=r"groups=3 must divide the input channels \(4\)"):
        init(blocks.ConvTranspose(6, 3, groups=3), (1, 5, 5, 4))


# --- summary --------------------------------------------------------------------------

def test_padded_cnn_summary_by_hand():
    s = summary.summarize(models.create("padded_cnn"), (28, 28, 1))
    rows = {r.name: r for r in s.rows}
    assert [r.name for r in s.rows] == ["conv1", "pool1", "conv2", "pool2", "fc"]
    assert rows["conv1"].output_shape == (28, 28, 16) and rows["pool2"].output_shape == (7, 7, 32)
    # receptive field: conv5 -> 5 (jump 1); pool2 -> 5+1*1 = 6 (jump 2); conv5 -> 6+4*2 = 14; pool2 -> 14+1*2 = 16 (jump 4)
    assert [rows[n].receptive_field for n in ("conv1", "pool1", "conv2", "pool2")] == [(5, 5), (6, 6), (14, 14), (16, 16)]
    assert [rows[n].jump for n in ("conv1", "pool1", "conv2", "pool2")] == [(1, 1), (2, 2), (2, 2), (4, 4)]
    assert rows["fc"].receptive_field is None
    # FLOPs: 2 * out positions * out channels * k*k*C_in
    assert rows["conv1"].flops == 2 * 28 * 28 * 16 * 25 * 1
    assert rows["conv2"].flops == 2 * 14 * 14 * 32 * 25 * 16
    assert rows["fc"].flops == 2 * 1568 * 10
    assert rows["pool1"].flops == 14 * 14 * 16 * 4
    assert s.total_params == 28_938
    assert [r.params for r in s.rows] == [416, 0, 12_832, 0, 15_690]
    table = s.table()
    assert "28,938" in table and "conv2" in table


def test_summary_of_dilated_and_upsampling_layers():
    rows = {r.name: r for r in summary.summarize(models.create("dilated_cnn"), (28, 28, 1)).rows}
    assert rows["conv2"].receptive_field == (14, 14)  # 3x3 dilation 2 spans 5 like the 5x5 it replaces
    assert rows["conv2"].flops == 2 * 14 * 14 * 32 * 9 * 16
    rows = summary.summarize(models.create("conv_autoencoder"), (28, 28, 1)).rows
    # enc: 3 (j2), 3+2*2=7 (j4); dec transposed k3 s2: jump 4/2=2, rf 7+2*2 = 11; again: jump 1, rf 11+2*1 = 13
    assert [r.receptive_field[0] for r in rows] == [3, 7, 11, 13]
    assert [r.jump[0] for r in rows] == [2, 4, 2, 1]


def test_summary_of_huge_input_allocates_nothing():
    # A dense layer on a 1000x1000x3 image: seed_net's fc alone has 20 * 247 * 247 * 10 + 10 weights.
    s = summary.summarize(models.create("seed_net"), (1000, 1000, 3))
    assert s.rows[-1].params == 20 * 247 * 247 * 10 + 10


# --- one option changes one thing -------------------------------------------------------

def test_mlp_hidden_sizes_and_activation_options():
    v, _ = init(models.create("mlp", hidden=(100,)), (1, 28, 28, 1))
    assert n_params(v) == 784 * 100 + 100 + 100 * 10 + 10
    v, _ = init(models.create("mlp", hidden=100), (1, 28, 28, 1))  # an int is one hidden layer
    assert n_params(v) == 784 * 100 + 100 + 100 * 10 + 10
    v, _ = init(models.create("mlp", hidden=()), (1, 28, 28, 1))
    assert n_params(v) == 7850  # logistic regression


@pytest.mark.parametrize("name", ["padded_cnn", "lenet5", "seed_net", "mlp"])
def test_activation_option_changes_outputs_not_params(name):
    relu, sig = models.create(name, activation="relu"), models.create(name, activation="sigmoid")
    v, x = init(relu, (2, 28, 28, 1))
    assert n_params(v) == n_params(init(sig, (2, 28, 28, 1))[0])
    assert not np.allclose(relu.apply(v, x), sig.apply(v, x))


def test_pool_option_swaps_max_for_average_on_a_hand_made_input():
    mx, avg = models.create("padded_cnn", pool="max"), models.create("padded_cnn", pool="avg")
    kinds = [r.kind for r in summary.summarize(avg, (28, 28, 1)).rows]
    assert kinds == ["Conv", "AvgPool", "Conv", "AvgPool", "Dense"]
    assert n_params(init(mx, (1, 28, 28, 1))[0]) == n_params(init(avg, (1, 28, 28, 1))[0]) == 28_938
    # The pool blocks themselves on a 4x4 input: max [[4, 8], [9, 8]], mean [[3.25, 6.25], [5.75, 6.25]].
    x = jnp.array([3, 4, 6, 5, 2, 4, 6, 8, 1, 6, 7, 8, 9, 7, 4, 6], jnp.float32).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(blocks.pool_block("max").apply({}, x)[0, :, :, 0], [[4, 8], [9, 8]])
    np.testing.assert_allclose(blocks.pool_block("avg").apply({}, x)[0, :, :, 0], [[3.25, 6.25], [5.75, 6.25]])


def peak_memory_growth_mb(model, options, shape):
    """(params of the first layer, growth of the peak resident memory in MB) of summarising
    ``model`` on ``shape``, in a fresh process: the peak before it is only the imports (in the
    test process an earlier, higher peak would hide the growth)."""
    import json
    import os
    import subprocess
    import sys
    code = ("import json, resource, sys\n"
            "from cnnjax import models, summary\n"
            "model = models.create(sys.argv[1], **json.loads(sys.argv[2]))\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "s = summary.summarize(model, json.loads(sys.argv[3]))\n"
            "grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
            "print(json.dumps([s.rows[0].params, grown / 1024]))\n")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", code, model, json.dumps(options), json.dumps(shape)], cwd=repo,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_huge_input_summary_allocates_nothing():
    """The course's point: a 1000-unit dense layer on a 1000x1000x3 image needs 3*10^9 weights (12 GB)."""
    params, grown_mb = peak_memory_growth_mb("mlp", {"hidden": [1000]}, [1000, 1000, 3])
    assert params == 3 * 10**9 + 1000
    assert grown_mb < 200, f"summary allocated {grown_mb:.0f} MB"
