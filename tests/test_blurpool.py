"""Anti-aliased subsampling (Zhang 2019): the binomial filters of his code, BlurPool / MaxBlurPool /
BlurConv against a PyTorch transcription of his reference layer, shapes, and the course nets'
options (pool kinds, global-average-pooling head) leaving the default parameter counts alone."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from cnnjax import blocks, models


def zhang_blurpool(x_nhwc: np.ndarray, filt_size: int, stride: int = 2) -> np.ndarray:
    """adobe/antialiased-cnns' BlurPool (antialiased_cnns/blurpool.py, pad_type='reflect',
    pad_off=0) in PyTorch: ReflectionPad2d([floor, ceil, floor, ceil] of (f-1)/2), then a depthwise
    conv with outer(a, a) / sum(outer) at the stride, a = the binomial row; f=1 subsamples."""
    rows = {1: [1.], 2: [1., 1.], 3: [1., 2., 1.], 4: [1., 3., 3., 1.], 5: [1., 4., 6., 4., 1.],
            6: [1., 5., 10., 10., 5., 1.], 7: [1., 6., 15., 20., 15., 6., 1.]}
    x = torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))).double()
    if filt_size == 1:
        return x[:, :, ::stride, ::stride].numpy().transpose(0, 2, 3, 1)
    a = torch.tensor(rows[filt_size], dtype=torch.float64)
    filt = a[:, None] * a[None, :]
    filt = filt / filt.sum()
    c = x.shape[1]
    pads = [int((filt_size - 1) / 2), int(np.ceil((filt_size - 1) / 2))] * 2
    y = torch.nn.functional.conv2d(torch.nn.ReflectionPad2d(pads)(x), filt[None, None].repeat(c, 1, 1, 1),
                                   stride=stride, groups=c)
    return y.numpy().transpose(0, 2, 3, 1)


def test_filters_are_zhangs_binomial_filters():
    np.testing.assert_allclose(blocks.blur_filter(3), np.outer([1, 2, 1], [1, 2, 1]) / 16)
    np.testing.assert_allclose(blocks.binomial_filter(3), [0.25, 0.5, 0.25])
    np.testing.assert_allclose(blocks.binomial_filter(5), np.array([1, 4, 6, 4, 1]) / 16)
    np.testing.assert_allclose(blocks.binomial_filter(2), [0.5, 0.5])
    np.testing.assert_allclose(blocks.blur_filter(1), [[1.0]])
    for f in blocks.BLUR_SIZES:
        assert blocks.blur_filter(f).sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="blur filter size must be one of"):
        blocks.binomial_filter(8)


@pytest.mark.parametrize("filt_size", [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize("hw", [(8, 8), (7, 9)])
def test_blur_downsample_equals_zhangs_layer(filt_size, hw):
    x = np.random.default_rng(filt_size).normal(size=(2, *hw, 3))
    want = zhang_blurpool(x, filt_size)
    got = np.asarray(blocks.blur_downsample(jnp.asarray(x, jnp.float32), filt_size, 2))
    assert got.shape == want.shape == (2, -(-hw[0] // 2), -(-hw[1] // 2), 3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_an_impulse_is_spread_as_the_2d_filter():
    """At stride 1 a single bright pixel in the middle comes out as the filter itself."""
    x = np.zeros((1, 9, 9, 1), np.float32)
    x[0, 4, 4, 0] = 1
    out = np.asarray(blocks.blur_downsample(x, 3, 1))[0, :, :, 0]
    np.testing.assert_allclose(out[3:6, 3:6], blocks.blur_filter(3), atol=1e-7)
    assert out.sum() == pytest.approx(1.0)


def test_pool_kinds_and_blocks():
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 4)).astype(np.float32)
    maxblur = blocks.pool_block("blurmax-5", window=2)
    assert isinstance(maxblur, blocks.MaxBlurPool) and maxblur.filter_size == 5
    want = zhang_blurpool(np.asarray(jax.lax.reduce_window(x, -np.inf, jax.lax.max, (1, 2, 2, 1), (1, 1, 1, 1),
                                                           "VALID")), 5)
    np.testing.assert_allclose(np.asarray(maxblur.apply({}, x)), want, rtol=1e-5, atol=1e-6)
    assert maxblur.apply({}, x).shape == blocks.MaxPool(2).apply({}, x).shape == (2, 4, 4, 4)
    blur = blocks.pool_block("blur", window=2)
    assert blur.filter_size == blocks.DEFAULT_BLUR == 3
    np.testing.assert_allclose(np.asarray(blur.apply({}, x)), zhang_blurpool(x, 3), rtol=1e-5, atol=1e-6)
    for bad in ("median", "blurmax-8", "max-3", "blur-", 3):
        with pytest.raises(ValueError, match="unknown pooling"):
            blocks.pool_block(bad)


def test_blurred_strided_conv_is_the_stride_1_conv_blurred_then_subsampled():
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 10, 10, 3)), jnp.float32)
    conv = blocks.ConvDef()
    blurred = conv(5, 3, stride=2, padding=1, activation="relu", blur=4, name="c")
    plain = conv(5, 3, stride=1, padding=1, activation="relu", name="c")
    assert isinstance(blurred, blocks.BlurConv) and type(conv(5, 3, stride=1, blur=4)) is blocks.Conv
    v = blurred.init(jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, v) == jax.tree.map(jnp.shape, plain.init(jax.random.key(0), x))
    want = zhang_blurpool(np.asarray(plain.apply(v, x), np.float64), 4)
    np.testing.assert_allclose(np.asarray(blurred.apply(v, x)), want, rtol=1e-5, atol=1e-5)
    assert blurred.apply(v, x).shape == conv(5, 3, stride=2, padding=1).apply(v, x).shape


def n_params(v):
    return sum(a.size for a in jax.tree.leaves(v["params"]))


@pytest.mark.parametrize("name,options,params", [
    ("padded_cnn", {}, 28_938), ("padded_cnn", {"pool": "blurmax"}, 28_938), ("padded_cnn", {"pool": "blur-5"}, 28_938),
    ("padded_cnn", {"pool": "blurmax", "stride": 2}, 16_138),  # conv1 a BlurConv: same weights, same sizes
    ("padded_cnn", {"head": "gap"}, 13_578),                   # 416 + 12,832 + dense 32->10 (330)
    ("lenet5", {"head": "gap"}, 15_626),                       # 61,706 - 48,120 + (16*120+120)
    ("seed_net", {"head": "gap", "pool": "blurmax"}, 5_490),   # 260 + 5,020 + 210
    ("vgg_bn", {"pool": "blurmax-4"}, 60_322), ("vgg_bn", {"head": "gap"}, 37_282),  # fc 48*10+10
])
def test_course_nets_take_blur_pools_and_a_gap_head(name, options, params):
    model = models.create(name, 10, **options)
    x = jnp.ones((2, 28, 28, 1))
    v = model.init(jax.random.key(0), x)
    assert n_params(v) == params
    assert model.apply(v, x).shape == (2, 10)


def test_gap_head_is_invariant_to_a_circular_shift_of_the_feature_map():
    """The head itself: global average pooling does not see where a feature is."""
    from cnnjax.models.common import head_features
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 3))
    np.testing.assert_allclose(head_features(x, "gap"), head_features(np.roll(x, (1, 2), (1, 2)), "gap"))
    assert head_features(x, "flatten").shape == (2, 48)


def test_bad_head_and_pool_options_name_the_option():
    with pytest.raises(ValueError, match=r"padded_cnn: head must be one of \('flatten', 'gap'\), got 'mean'"):
        models.create("padded_cnn", 10, head="mean")
    with pytest.raises(ValueError, match="padded_cnn: pool must be one of"):
        models.create("padded_cnn", 10, pool="blurmax-0")
