"""cnnjax.ops against hand-computed values, the plain corr2d reference, and finite differences."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import ops

SEED_X = np.array([3, 4, 6, 5, 7, 2, 4, 6, 8, 2, 1, 6, 7, 8, 4, 9, 7, 4, 6, 2, 3, 7, 5, 4, 1], np.float32).reshape(5, 5)
SEED_K = np.arange(1, 10, dtype=np.float32).reshape(3, 3)


def nhwc(a):
    return jnp.asarray(a, jnp.float32)[None, :, :, None]


def hwio(k):
    return jnp.asarray(k, jnp.float32)[:, :, None, None]


def test_corr2d_seed_example():
    x = [[1, 2, 3, 0], [0, 1, 2, 3], [3, 0, 1, 2], [2, 3, 0, 1]]
    k = [[2, 0, 1], [0, 1, 2], [1, 0, 2]]
    np.testing.assert_array_equal(ops.corr2d(jnp.array(x), jnp.array(k)), [[15, 16], [6, 15]])


def test_conv2d_padding_1_seed_example():
    out = ops.conv2d(nhwc(SEED_X), hwio(SEED_K), padding=1)[0, :, :, 0]
    np.testing.assert_array_equal(out, [[91, 168, 224, 215, 127], [114, 211, 295, 262, 149],
                                        [192, 259, 282, 214, 122], [194, 251, 253, 169, 86],
                                        [96, 112, 110, 68, 31]])


def test_conv2d_stride_2_seed_example():
    out = ops.conv2d(nhwc(SEED_X), hwio(SEED_K), stride=2)[0, :, :, 0]
    np.testing.assert_array_equal(out, [[211, 262], [251, 169]])


def test_max_pool_seed_example():
    x = np.array([3, 4, 6, 5, 2, 4, 6, 8, 1, 6, 7, 8, 9, 7, 4, 6], np.float32).reshape(4, 4)
    np.testing.assert_array_equal(ops.max_pool2d(nhwc(x), 2)[0, :, :, 0], [[4, 8], [9, 8]])


def test_avg_pool_hand_values_and_padding_counts_zeros():
    x = np.array([3, 4, 6, 5, 2, 4, 6, 8, 1, 6, 7, 8, 9, 7, 4, 6], np.float32).reshape(4, 4)
    np.testing.assert_allclose(ops.avg_pool2d(nhwc(x), 2)[0, :, :, 0], [[13 / 4, 25 / 4], [23 / 4, 25 / 4]])
    # 3x3 window, stride 1, pad 1 on a ones image: the corner window holds 4 ones and 5 padded zeros.
    out = ops.avg_pool2d(jnp.ones((1, 3, 3, 1)), 3, 1, 1)[0, :, :, 0]
    np.testing.assert_allclose(out, [[4 / 9, 6 / 9, 4 / 9], [6 / 9, 1, 6 / 9], [4 / 9, 6 / 9, 4 / 9]], rtol=1e-6)
    # max pool padding behaves as -inf, so negative inputs stay negative.
    np.testing.assert_array_equal(ops.max_pool2d(-jnp.ones((1, 2, 2, 1)), 2, 1, 1)[0, :, :, 0], -np.ones((3, 3)))


# --- output-size rule ----------------------------------------------------------------

@pytest.mark.parametrize("n,k,s,p,d,expected", [
    (5, 3, 1, 0, 1, 3), (5, 3, 1, 1, 1, 5), (5, 3, 2, 0, 1, 2), (28, 5, 1, 2, 1, 28), (7, 3, 2, "same", 1, 4),
    (8, 4, 1, "same", 1, 8), (10, 3, 1, 0, 2, 6), (6, 2, 2, (0, 1), 1, 3), (4, 4, 1, "valid", 1, 1)])
def test_conv_output_size_hand_values(n, k, s, p, d, expected):
    assert ops.conv_output_size(n, k, s, p, d) == expected


@pytest.mark.parametrize("args,match", [
    ((3, 5), "does not fit"), ((5, 3, 0), "stride"), ((5, 3, 1, -1), "non-negative"),
    ((0, 3), "input size"), ((5, 3, 1, 0, 0), "dilation"), ((5, 3, 1, "full"), "padding"),
    ((5, 3, 1, (1, 2, 3)), "padding"), ((4, 3, 4, 0, 2), "does not fit")])
def test_conv_output_size_errors(args, match):
    with pytest.raises(ValueError, match=match):
        ops.conv_output_size(*args)


def test_same_padding_puts_extra_at_top_left():
    assert ops.same_padding(3) == (1, 1)
    assert ops.same_padding(4) == (2, 1)  # ceil at lo (lax 'SAME' would give (1, 2))
    assert ops.same_padding(2) == (1, 0)
    assert ops.same_padding(3, dilation=2) == (2, 2)
    assert ops.same_padding(4, dilation=3) == (5, 4)


def test_even_kernel_same_differs_from_lax_same():
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    w = jnp.ones((2, 2, 1, 1))
    ours = ops.conv2d(x, w, padding="same")
    lax_same = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    # ours pads top/left: output[0, 0] sees only x[0, 0]; lax pads bottom/right: output[0, 0] = x[0:2, 0:2].sum()
    assert float(ours[0, 0, 0, 0]) == 0.0
    assert float(lax_same[0, 0, 0, 0]) == 0 + 1 + 4 + 5
    assert ours.shape == lax_same.shape == x.shape


# --- the fast path equals the reference ------------------------------------------------

def reference_conv(x2d, k2d, stride, pads, dilation):
    """corr2d on the explicitly padded input with a dilated kernel, then striding."""
    (pt, pb), (pl, pr) = pads
    xp = jnp.pad(x2d, ((pt, pb), (pl, pr)))
    kh, kw = k2d.shape
    kd = jnp.zeros((dilation * (kh - 1) + 1, dilation * (kw - 1) + 1)).at[::dilation, ::dilation].set(k2d)
    return ops.corr2d(xp, kd)[::stride, ::stride]


CASES = list(itertools.product([1, 2, 3, 4, 5], [1, 2, 3], [0, 1, "same", ((0, 1), (2, 0)), "valid"], [1, 2]))


@pytest.mark.parametrize("k,stride,padding,dilation", CASES)
def test_conv2d_matches_corr2d(k, stride, padding, dilation):
    rng = np.random.default_rng(k * 100 + stride * 10 + dilation)
    x = rng.normal(size=(11, 9)).astype(np.float32)
    w = rng.normal(size=(k, k)).astype(np.float32)
    fast = ops.conv2d(nhwc(x), hwio(w), stride=stride, padding=padding, dilation=dilation)[0, :, :, 0]
    pads = ops.resolve_padding_2d(padding, k, dilation)
    np.testing.assert_allclose(fast, reference_conv(jnp.asarray(x), jnp.asarray(w), stride, pads, dilation),
                               rtol=1e-5, atol=1e-5)
    assert fast.shape == tuple(ops.conv_output_size(n, k, stride, p, dilation) for n, p in zip(x.shape, pads))


def test_conv2d_multichannel_is_sum_over_input_channels_and_1x1_is_matmul():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 7, 3)).astype(np.float32)
    w = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
    out = ops.conv2d(x, w, padding=1)
    for n, o in [(0, 0), (1, 3)]:
        ref = sum(reference_conv(jnp.asarray(x[n, :, :, c]), jnp.asarray(w[:, :, c, o]), 1, ((1, 1), (1, 1)), 1)
                  for c in range(3))
        np.testing.assert_allclose(out[n, :, :, o], ref, rtol=1e-5, atol=1e-5)
    w1 = rng.normal(size=(1, 1, 3, 5)).astype(np.float32)
    np.testing.assert_allclose(ops.conv2d(x, w1), x @ w1[0, 0], rtol=1e-5, atol=1e-5)


def test_conv2d_errors_are_clear():
    x = jnp.zeros((1, 5, 5, 6))
    with pytest.raises(ValueError, match="groups=4"):
        ops.conv2d(x, jnp.zeros((3, 3, 1, 8)), groups=4)
    with pytest.raises(ValueError, match="does not fit"):
        ops.conv2d(x, jnp.zeros((7, 7, 6, 1)))
    with pytest.raises(ValueError, match="NHWC"):
        ops.conv2d(jnp.zeros((5, 5)), jnp.zeros((3, 3, 1, 1)))


@pytest.mark.parametrize("x_shape,w_shape,padding,match", [
    ((1, 5, 9, 1), (7, 3, 1, 1), 0, r"kernel height 7 \(dilation 1, span 7\) .* padded input height 5 \+ 0 \+ 0 = 5"),
    ((1, 5, 9, 1), (7, 3, 1, 1), ((0, 1), 0), r"height 5 \+ 0 \+ 1 = 6"),
    ((1, 9, 4, 2), (3, 5, 2, 1), 0, r"kernel width 5 .* padded input width 4 \+ 0 \+ 0 = 4"),
])
def test_kernel_that_does_not_fit_names_the_axis_and_sizes(x_shape, w_shape, padding, match):
    with pytest.raises(ValueError, match=match):
        ops.conv2d(jnp.zeros(x_shape), jnp.zeros(w_shape), padding=padding)


def test_pool_and_transposed_errors_name_the_axis():
    with pytest.raises(ValueError, match=r"kernel width 3 .* input width 2 \+ 0 \+ 0 = 2"):
        ops.max_pool2d(jnp.zeros((1, 6, 2, 1)), 3)
    with pytest.raises(ValueError, match=r"transposed conv along the height: n=1, k=1, stride=1, padding=1"):
        ops.conv_transpose2d(jnp.zeros((1, 1, 4, 1)), jnp.zeros((1, 3, 1, 1)), padding=(1, 0))


# --- grouped / depthwise / separable ----------------------------------------------------

def test_grouped_conv_is_independent_convs_per_group():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 8, 8, 6)).astype(np.float32)
    w = rng.normal(size=(3, 3, 2, 9)).astype(np.float32)  # 3 groups: 2 in -> 3 out each
    out = ops.conv2d(x, w, padding=1, groups=3)
    for g in range(3):
        ref = ops.conv2d(x[..., 2 * g:2 * g + 2], w[..., 3 * g:3 * g + 3], padding=1)
        np.testing.assert_allclose(out[..., 3 * g:3 * g + 3], ref, rtol=1e-5, atol=1e-5)


def _windows_conv(x, w, stride, padding):
    """Independent reference: zero-pad, then out[n, i, j, o] = sum over the window (a, b) and
    the input channels c of x[n, s*i + a, s*j + b, c] * w[a, b, c, o], in float64 numpy."""
    x = np.pad(np.asarray(x, np.float64), ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(x, w.shape[:2], axis=(1, 2))[:, ::stride, ::stride]
    return np.einsum("nijcab,abco->nijo", win, np.asarray(w, np.float64))


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1)])
def test_groups_1_is_plain_and_groups_c_is_depthwise(stride, padding):
    """groups=1 is the plain multi-channel convolution: against a numpy sum over windows and
    against torch.nn.functional.conv2d (neither shares code with cnnjax.ops)."""
    import torch  # [dev] installs it: missing fails, never skips
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 7, 7, 4)).astype(np.float32)
    w = rng.normal(size=(3, 3, 4, 5)).astype(np.float32)
    out = np.asarray(ops.conv2d(x, w, stride=stride, padding=padding, groups=1))
    assert out.shape == (2, (7 + 2 * padding - 3) // stride + 1, (7 + 2 * padding - 3) // stride + 1, 5)
    np.testing.assert_allclose(out, _windows_conv(x, w, stride, padding), rtol=1e-5, atol=1e-5)
    ref = torch.nn.functional.conv2d(torch.from_numpy(x.transpose(0, 3, 1, 2)),
                                     torch.from_numpy(w.transpose(3, 2, 0, 1)), stride=stride, padding=padding)
    np.testing.assert_allclose(out, ref.numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)
    wd = rng.normal(size=(3, 3, 1, 4)).astype(np.float32)
    dw = ops.conv2d(x, wd, groups=4)
    np.testing.assert_allclose(ops.depthwise_conv2d(x, wd), dw)
    for c in range(4):  # channel c filtered by its own kernel only
        np.testing.assert_allclose(dw[0, :, :, c], ops.corr2d(x[0, :, :, c], wd[:, :, 0, c]), rtol=1e-5, atol=1e-5)


def test_separable_is_depthwise_then_pointwise():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 9, 9, 3)).astype(np.float32)
    wd = rng.normal(size=(5, 5, 1, 3)).astype(np.float32)
    wp = rng.normal(size=(1, 1, 3, 7)).astype(np.float32)
    out = ops.separable_conv2d(x, wd, wp, padding=2)
    ref = ops.depthwise_conv2d(x, wd, padding=2) @ wp[0, 0]
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)
    assert out.shape == (2, 9, 9, 7)


# --- transposed conv and upsampling ----------------------------------------------------

def transposed_by_scatter(x2d, k2d, stride):
    """The definition (d2l's trans_conv): every input pixel adds x[i, j] * K at (i*s, j*s)."""
    h, w = x2d.shape
    kh, kw = k2d.shape
    y = np.zeros(((h - 1) * stride + kh, (w - 1) * stride + kw))
    for i in range(h):
        for j in range(w):
            y[i * stride:i * stride + kh, j * stride:j * stride + kw] += x2d[i, j] * k2d
    return y


def transposed_by_zero_insertion(x2d, k2d, stride, padding):
    """As taught: insert stride-1 zeros between pixels, pad k-1-p, plain conv with the flipped kernel."""
    h, w = x2d.shape
    z = np.zeros(((h - 1) * stride + 1, (w - 1) * stride + 1))
    z[::stride, ::stride] = x2d
    e = k2d.shape[0] - 1 - padding
    return np.asarray(ops.corr2d(jnp.pad(jnp.asarray(z), e), jnp.asarray(k2d[::-1, ::-1])))


def test_transposed_conv_d2l_example():
    x = jnp.array([[0.0, 1.0], [2.0, 3.0]])
    k = jnp.array([[0.0, 1.0], [2.0, 3.0]])
    out = ops.conv_transpose2d(nhwc(x), hwio(k))[0, :, :, 0]
    np.testing.assert_array_equal(out, [[0, 0, 1], [0, 4, 6], [4, 12, 9]])


@pytest.mark.parametrize("k,stride,padding", [(2, 1, 0), (3, 2, 0), (3, 2, 1), (4, 2, 1), (2, 2, 0), (5, 3, 2)])
def test_transposed_conv_equals_zero_insertion_and_scatter(k, stride, padding):
    rng = np.random.default_rng(k + stride)
    x = rng.normal(size=(4, 5)).astype(np.float32)
    w = rng.normal(size=(k, k)).astype(np.float32)
    out = np.asarray(ops.conv_transpose2d(nhwc(x), hwio(w), stride=stride, padding=padding)[0, :, :, 0])
    np.testing.assert_allclose(out, transposed_by_zero_insertion(x, w, stride, padding), rtol=1e-5, atol=1e-5)
    full = transposed_by_scatter(x, w, stride)
    np.testing.assert_allclose(out, full[padding:full.shape[0] - padding, padding:full.shape[1] - padding],
                               rtol=1e-5, atol=1e-5)
    assert out.shape == tuple(ops.transposed_output_size(n, k, stride, padding) for n in x.shape)


def test_transposed_conv_output_padding_and_is_adjoint_of_conv():
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.normal(size=(1, 7, 7, 2)).astype(np.float32))
    w = jnp.asarray(rng.normal(size=(3, 3, 2, 3)).astype(np.float32))
    up = ops.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1)
    assert up.shape == (1, 14, 14, 3)
    # conv_transpose is the gradient (adjoint) of the strided conv with the same kernel layout (swap I/O).
    y = jnp.asarray(rng.normal(size=(1, 14, 14, 3)).astype(np.float32))
    conv = lambda z: ops.conv2d(z, jnp.swapaxes(w, 2, 3), stride=2, padding=((1, 1), (1, 1)))
    lhs = jnp.vdot(conv(y), x)
    rhs = jnp.vdot(y, ops.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-4)
    with pytest.raises(ValueError, match="output_padding"):
        ops.conv_transpose2d(x, w, stride=2, output_padding=2)


TRANSPOSE_GROUP_CASES = [  # (C_in, C_out, groups, k, stride, padding, output_padding, dilation)
    (4, 6, 2, 3, 1, 0, 0, 1), (6, 3, 3, 3, 2, 1, 1, 1), (4, 8, 4, 2, 2, 0, 1, 2), (6, 4, 2, (3, 2), (2, 1), (1, 0), 0, 1),
]


@pytest.mark.parametrize("c_in,c_out,groups,k,stride,padding,output_padding,dilation", TRANSPOSE_GROUP_CASES)
def test_grouped_transposed_conv_is_independent_transposed_convs_per_group(c_in, c_out, groups, k, stride, padding,
                                                                         output_padding, dilation):
    kh, kw = ops._pair(k, "k")
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.normal(size=(2, 5, 6, c_in)).astype(np.float32))
    w = jnp.asarray(rng.normal(size=(kh, kw, c_in, c_out // groups)).astype(np.float32))
    geo = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation)
    out = ops.conv_transpose2d(x, w, groups=groups, **geo)
    cg = c_in // groups  # group g: input channels [g*cg, (g+1)*cg) -> output channels [g*og, (g+1)*og)
    ref = jnp.concatenate([ops.conv_transpose2d(x[..., g * cg:(g + 1) * cg], w[:, :, g * cg:(g + 1) * cg], **geo)
                           for g in range(groups)], axis=-1)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    assert out.shape[-1] == c_out


@pytest.mark.parametrize("c_in,c_out,groups,k,stride,padding,output_padding,dilation", TRANSPOSE_GROUP_CASES)
def test_grouped_transposed_conv_matches_torch(c_in, c_out, groups, k, stride, padding, output_padding, dilation):
    import torch  # [dev] installs it: missing fails, never skips
    kh, kw = ops._pair(k, "k")
    rng = np.random.default_rng(8)
    x_nchw = rng.normal(size=(2, c_in, 5, 6)).astype(np.float32)
    w_torch = rng.normal(size=(c_in, c_out // groups, kh, kw)).astype(np.float32)  # torch's ConvTranspose2d layout
    ref = torch.nn.functional.conv_transpose2d(torch.from_numpy(x_nchw), torch.from_numpy(w_torch), stride=stride,
                                               padding=padding, output_padding=output_padding, groups=groups,
                                               dilation=dilation).numpy()
    out = ops.conv_transpose2d(x_nchw.transpose(0, 2, 3, 1), w_torch.transpose(2, 3, 0, 1), stride=stride,
                               padding=padding, output_padding=output_padding, dilation=dilation, groups=groups)
    np.testing.assert_allclose(np.asarray(out).transpose(0, 3, 1, 2), ref, rtol=1e-4, atol=1e-4)


def test_grouped_transposed_conv_rejects_groups_not_dividing_inputs():
    with pytest.raises(ValueError, match=r"groups=3 must divide the input channels \(4\)"):
        ops.conv_transpose2d(jnp.zeros((1, 3, 3, 4)), jnp.zeros((3, 3, 4, 2)), groups=3)


def test_upsample_nearest_repeats_pixels():
    x = jnp.array([[1.0, 2.0], [3.0, 4.0]])[None, :, :, None]
    np.testing.assert_array_equal(ops.upsample_nearest(x, 2)[0, :, :, 0],
                                  [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
    assert ops.upsample_nearest(jnp.zeros((2, 3, 5, 4)), (2, 3)).shape == (2, 6, 15, 4)


@pytest.mark.parametrize("window,stride,padding", [(2, None, 0), (3, 2, 1), (3, 1, "same"), ((2, 3), (1, 2), 0)])
def test_pool_shapes_follow_output_size_rule(window, stride, padding):
    x = jnp.zeros((2, 9, 10, 3))
    wh, ww = ops._pair(window, "w")
    sh, sw = ops._pair(stride if stride is not None else window, "s")
    ph, pw = ops.resolve_padding_2d(padding, window)
    expected = (2, ops.conv_output_size(9, wh, sh, ph), ops.conv_output_size(10, ww, sw, pw), 3)
    assert ops.max_pool2d(x, window, stride, padding).shape == expected
    assert ops.avg_pool2d(x, window, stride, padding).shape == expected


# --- gradients against finite differences ----------------------------------------------

def _check_grad(f, *args, eps=1e-3, tol=2e-2):
    """Directional derivative along a random direction: autodiff vs central differences (float64-free)."""
    rng = np.random.default_rng(0)
    for i, a in enumerate(args):
        v = jnp.asarray(rng.normal(size=a.shape).astype(np.float32))
        g = jax.grad(lambda z: f(*args[:i], z, *args[i + 1:]))(a)
        auto = float(jnp.vdot(g, v))
        plus = f(*args[:i], a + eps * v, *args[i + 1:])
        minus = f(*args[:i], a - eps * v, *args[i + 1:])
        numeric = float((plus - minus) / (2 * eps))
        assert abs(auto - numeric) <= tol * max(1.0, abs(numeric)), (i, auto, numeric)


@pytest.mark.parametrize("name", ["conv2d", "grouped", "separable", "transpose", "upsample", "max_pool", "avg_pool"])
def test_gradients_match_finite_differences(name):
    rng = np.random.default_rng(7)
    r = lambda *s: jnp.asarray(rng.normal(size=s).astype(np.float32))
    x = r(2, 6, 6, 4)
    loss = lambda y: jnp.sum(jnp.sin(y))  # non-linear so the check is not trivially exact
    if name == "conv2d":
        _check_grad(lambda a, w: loss(ops.conv2d(a, w, stride=2, padding="same", dilation=1)), x, r(3, 3, 4, 5))
    elif name == "grouped":
        _check_grad(lambda a, w: loss(ops.conv2d(a, w, padding=1, dilation=2, groups=2)), x, r(3, 3, 2, 6))
    elif name == "separable":
        _check_grad(lambda a, wd, wp: loss(ops.separable_conv2d(a, wd, wp, padding=1)), x, r(3, 3, 1, 4), r(1, 1, 4, 3))
    elif name == "transpose":
        _check_grad(lambda a, w: loss(ops.conv_transpose2d(a, w, stride=2, padding=1)), x, r(3, 3, 4, 2))
    elif name == "upsample":
        _check_grad(lambda a: loss(ops.upsample_nearest(a, 2)), x)
    elif name == "max_pool":
        _check_grad(lambda a: loss(ops.max_pool2d(a, 2)), x, eps=1e-4)
    else:
        _check_grad(lambda a: loss(ops.avg_pool2d(a, 3, 1, 1)), x)


def test_gelu_is_exact_gelu_with_its_hand_derivative():
    # Phi(1) = 0.8413447, phi(1) = 0.2419707: gelu(1) = Phi(1), gelu'(1) = Phi(1) + phi(1);
    # gelu'(0) = 1/2; gelu(-1) = -(1 - Phi(1))
    x = jnp.array([-1.0, 0.0, 1.0])
    np.testing.assert_allclose(ops.gelu(x), [-0.1586553, 0.0, 0.8413447], atol=1e-6)
    np.testing.assert_allclose(jax.vmap(jax.grad(ops.gelu))(x), [1 - 0.8413447 - 0.2419707, 0.5, 1.0833154],
                               atol=1e-6)
    # the same function as jax's erfc form, values and gradients, over the range that matters
    z = jnp.linspace(-10.0, 10.0, 2001)
    exact = lambda v: jax.nn.gelu(v, approximate=False)
    np.testing.assert_allclose(ops.gelu(z), exact(z), atol=2e-6)
    np.testing.assert_allclose(jax.vmap(jax.grad(ops.gelu))(z), jax.vmap(jax.grad(exact))(z), atol=2e-6)
