"""cnnjax.fastconv: the fast CPU paths agree with the plain lax path in value AND gradient."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import fastconv, models, ops

RTOL, ATOL = 2e-5, 2e-5  # relative to the largest magnitude of the reference


def close(a, b, what=""):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    scale = max(1.0, float(np.abs(b).max()))
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL * scale, err_msg=what)


def value_and_grads(f, *args):
    """f(*args) undifferentiated AND as computed under differentiation (custom_vjp rules may
    compute the forward pass differently), and the gradient of a non-linear scalar of it
    w.r.t. every argument.  Returns (y, grads) after checking the two forward values agree."""
    y = f(*args)
    y_vjp = jax.jit(lambda *a: jax.vjp(f, *a)[0])(*args)
    close(y_vjp, y, "forward value under differentiation")
    v = jnp.asarray(np.random.default_rng(1).normal(size=y.shape).astype(np.float32))
    grads = jax.jit(jax.grad(lambda *a: jnp.sum(jnp.tanh(f(*a)) * v), argnums=tuple(range(len(args)))))(*args)
    return y, grads


def rnd(*shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


# (x shape, w shape, stride, padding, dilation, groups): every branch of fastconv.conv2d
CONV_CASES = [
    ((2, 9, 9, 1), (5, 5, 1, 4), 1, 2, 1, 1),                    # one input channel
    ((2, 10, 9, 1), (3, 3, 1, 3), 2, "same", 1, 1),              # stride 2, even/odd sizes
    ((2, 11, 10, 3), (3, 2, 3, 4), (2, 1), ((0, 1), 2), (1, 2), 1),  # asymmetric everything
    ((2, 12, 12, 2), (4, 4, 2, 3), 3, ((2, 0), (1, 3)), 1, 1),   # stride 3, odd pads
    ((2, 9, 9, 6), (3, 3, 6, 5), 1, 1, 1, 1),                    # dense -> lax in "fast"
    ((2, 9, 9, 6), (3, 3, 6, 5), 2, "same", 2, 1),               # lax, strided + dilated
    ((2, 8, 7, 6), (1, 1, 6, 4), 1, 0, 1, 1),                    # 1x1 -> matmul
    ((2, 8, 7, 6), (1, 1, 6, 4), 2, 1, 1, 1),                    # 1x1 strided + padded -> lax
    ((2, 9, 9, 8), (3, 3, 2, 8), 1, 1, 1, 4),                    # grouped -> block-diagonal
    ((2, 11, 9, 8), (3, 3, 4, 6), 2, "same", 2, 2),              # grouped, stride + dilation
    ((2, 9, 9, 18), (3, 3, 2, 9), 1, 1, 1, 9),                   # groups > BLOCKDIAG_MAX_GROUPS -> GEMM
    ((2, 9, 9, 5), (3, 3, 1, 5), 1, 1, 1, 5),                    # depthwise
    ((2, 9, 9, 4), (5, 5, 1, 4), 1, 2, 1, 4),                    # depthwise 5x5 (separable_cnn)
    ((2, 10, 11, 3), (3, 3, 1, 6), 2, ((1, 0), 1), 1, 3),        # depthwise multiplier 2, stride 2
    ((2, 12, 12, 4), (3, 2, 1, 4), (1, 2), "same", (2, 3), 4),   # depthwise dilated
    ((2, 28, 28, 1), (5, 5, 1, 16), 1, 2, 1, 1),                 # padded_cnn conv1
    ((2, 14, 14, 16), (5, 5, 16, 32), 1, 2, 1, 1),               # padded_cnn conv2
    ((2, 14, 14, 16), (3, 3, 16, 32), 1, "same", 2, 1),          # dilated_cnn conv2
    ((2, 14, 14, 16), (5, 5, 4, 32), 1, 2, 1, 4),                # grouped_cnn conv2
]


@pytest.mark.parametrize("impl", ["fast", "gemm"])
@pytest.mark.parametrize("xs,ws,stride,padding,dilation,groups", CONV_CASES)
def test_conv2d_fast_and_gemm_match_lax_in_value_and_gradient(impl, xs, ws, stride, padding, dilation, groups):
    x, w = rnd(*xs, seed=1), rnd(*ws, seed=2)

    def conv(which):
        return lambda a, k: ops.conv2d(a, k, stride=stride, padding=padding, dilation=dilation, groups=groups,
                                       impl=which)

    y_ref, g_ref = value_and_grads(conv("lax"), x, w)
    y, g = value_and_grads(conv(impl), x, w)
    close(y, y_ref, "value")
    close(g[0], g_ref[0], "d/dx")
    close(g[1], g_ref[1], "d/dw")


def test_fast_path_gemm_branch_for_short_rows(monkeypatch):
    # GEMM_MAX_K routes dense convs with kh*kw*C_in <= it through im2col + GEMM
    monkeypatch.setattr(fastconv, "GEMM_MAX_K", 32)
    x, w = rnd(2, 9, 9, 1, seed=5), rnd(5, 5, 1, 4, seed=6)
    f = lambda which: (lambda a, k: ops.conv2d(a, k, stride=2, padding="same", impl=which))
    assert _primitives(f("fast"), x, w) == {"custom_vjp_call"}  # conv2d_gemm, not lax's conv
    y_ref, g_ref = value_and_grads(f("lax"), x, w)
    y, g = value_and_grads(f("fast"), x, w)
    close(y, y_ref)
    for a, b in zip(g, g_ref):
        close(a, b)


def test_separable_and_depthwise_helpers_use_the_fast_path_and_match(monkeypatch):
    """ops.separable_conv2d / depthwise_conv2d with impl="fast" run fastconv's depthwise loop (one
    call each, seen by a counting wrapper) and the 1x1 pointwise conv as a matmul: no lax conv in
    the traced forward or backward pass; with impl="lax" the other way round.  Both give the same
    values and gradients."""
    calls = []
    real = fastconv.conv2d_depthwise
    monkeypatch.setattr(fastconv, "conv2d_depthwise", lambda x, w, **kw: calls.append(w.shape) or real(x, w, **kw))
    x, wd, wp = rnd(2, 9, 9, 4), rnd(5, 5, 1, 8, seed=3), rnd(1, 1, 8, 6, seed=4)
    sep = lambda impl: (lambda a, b, c: ops.separable_conv2d(a, b, c, padding=2, impl=impl))
    dw = lambda impl: (lambda a, b: ops.depthwise_conv2d(a, b, padding=2, impl=impl))
    grad = lambda f, n: jax.grad(lambda *a: jnp.sum(jnp.tanh(f(*a))), argnums=tuple(range(n)))

    assert _primitives(sep("fast"), x, wd, wp) == {"custom_vjp_call", "reshape", "dot_general"}
    assert calls == [wd.shape]
    assert "conv_general_dilated" not in _primitives(grad(sep("fast"), 3), x, wd, wp)
    calls.clear()
    assert _primitives(dw("fast"), x, wd) == {"custom_vjp_call"} and calls == [wd.shape]
    calls.clear()
    assert _primitives(sep("lax"), x, wd, wp) == {"conv_general_dilated"}
    assert "conv_general_dilated" in _primitives(grad(sep("lax"), 3), x, wd, wp) and calls == []

    for f, args in ((sep, (x, wd, wp)), (dw, (x, wd))):
        y_fast, g_fast = value_and_grads(f("fast"), *args)
        y_lax, g_lax = value_and_grads(f("lax"), *args)
        close(y_fast, y_lax)
        for a, b in zip(g_fast, g_lax):
            close(a, b)


POOL_CASES = [(2, None, 0), (2, None, 1), (3, None, 1), ((2, 3), None, ((1, 0), 0)), (2, 2, (0, 1)),
              (3, 2, 1), (2, 1, 0)]  # the last two overlap -> lax reduce_window


@pytest.mark.parametrize("window,stride,padding", POOL_CASES)
@pytest.mark.parametrize("shape", [(2, 8, 8, 3), (2, 7, 9, 2)])
def test_max_pool_fast_matches_lax_including_ties(window, stride, padding, shape):
    # integers after a relu: many windows hold equal maxima (all zeros), where the gradient
    # must go to the first maximum in row-major order exactly as lax's select_and_scatter.
    x = jax.nn.relu(jnp.asarray(np.random.default_rng(0).integers(-2, 3, size=shape).astype(np.float32)))
    f = lambda which: (lambda a: ops.max_pool2d(a, window, stride, padding, impl=which))
    y_ref, (g_ref,) = value_and_grads(f("lax"), x)
    y, (g,) = value_and_grads(f("fast"), x)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(g, g_ref)


@pytest.mark.parametrize("window,stride,padding", POOL_CASES)
def test_avg_pool_fast_matches_lax(window, stride, padding):
    x = rnd(2, 7, 9, 3)
    f = lambda which: (lambda a: ops.avg_pool2d(a, window, stride, padding, impl=which))
    y_ref, (g_ref,) = value_and_grads(f("lax"), x)
    y, (g,) = value_and_grads(f("fast"), x)
    close(y, y_ref)
    close(g, g_ref)


@pytest.mark.parametrize("name", ["padded_cnn", "separable_cnn", "dilated_cnn", "grouped_cnn", "lenet5", "seed_net"])
def test_models_train_identically_on_both_paths(name):
    x = rnd(4, 28, 28, 1)
    y = jnp.arange(4) % 10
    variables = models.create(name).init(jax.random.key(0), x)

    def loss(params, impl):
        logits = models.create(name, conv_impl=impl).apply({"params": params}, x)
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(4), y])

    l_lax, g_lax = jax.value_and_grad(loss)(variables["params"], "lax")
    l_fast, g_fast = jax.value_and_grad(loss)(variables["params"], "fast")
    close(l_fast, l_lax)
    for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_lax)):
        close(a, b)


def _primitives(f, *args):
    # a fresh wrapper each time: JAX caches traces per function, and the implementation is
    # chosen when tracing
    return {str(e.primitive) for e in jax.make_jaxpr(lambda *a: f(*a))(*args).eqns}


def test_env_var_forces_the_plain_path_and_auto_is_fast_on_cpu(monkeypatch):
    x, w = rnd(2, 8, 8, 4), rnd(3, 3, 1, 4)
    conv = lambda a, k: ops.conv2d(a, k, padding=1, groups=4)  # depthwise: differs between the paths
    pool = lambda a: ops.max_pool2d(a, 2)
    monkeypatch.delenv(fastconv.ENV_VAR, raising=False)
    assert fastconv.resolve_impl("auto") == ("fast" if jax.default_backend() == "cpu" else "lax")
    if jax.default_backend() == "cpu":
        assert "conv_general_dilated" not in _primitives(conv, x, w)
        assert "reduce_window_max" not in _primitives(pool, x)
    monkeypatch.setenv(fastconv.ENV_VAR, "lax")
    assert fastconv.resolve_impl("auto") == "lax"
    assert "conv_general_dilated" in _primitives(conv, x, w)
    assert "reduce_window_max" in _primitives(pool, x)
    # an explicit impl beats the variable
    assert "conv_general_dilated" not in _primitives(lambda a, k: ops.conv2d(a, k, padding=1, groups=4, impl="gemm"),
                                                     x, w)
    monkeypatch.setenv(fastconv.ENV_VAR, "GEMM ")
    assert fastconv.resolve_impl("auto") == "gemm"
    monkeypatch.setenv(fastconv.ENV_VAR, "cudnn")
    with pytest.raises(ValueError, match="CNNJAX_CONV_IMPL"):
        ops.conv2d(x, w, groups=4)
    with pytest.raises(ValueError, match="impl must be one of"):
        ops.conv2d(x, w, groups=4, impl="im2col!")
