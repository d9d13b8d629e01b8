"""Fast CPU formulations of :func:`cnnjax.ops.conv2d` and the pooling ops.

Why this module exists
----------------------
On the CPU, XLA lowers ``lax.conv_general_dilated`` to a library convolution (YNNPACK or
Eigen); that is fine for a dense conv with many input channels, but several parts of a
small CNN's *training* step are lowered badly (measured on 2 cores, see
``benchmarks/RESULTS.md``):

  * the gradient of ``lax.reduce_window`` max pooling is ``select_and_scatter``, a scalar
    loop that costs more than all the convolutions together (6 ms for relu + one 2x2 pool at
    batch 50, 90 ms at batch 256: it grows faster than the batch);
  * grouped convs (1 < groups < C_in) and depthwise convs take a generic path that is
    20-70x slower than a dense conv of the same shape;

What the fast path does instead (all differentiable, ``jax.custom_vjp`` where the
autodiff of the formulation would be slow):

  * max / avg pooling with stride == window: the elementwise max / sum of the k*k strided
    views (one fused loop); the max-pool gradient goes to the first maximum of each window
    (exactly lax's ``select_and_scatter`` rule), computed elementwise;
  * depthwise conv: sum of k*k shifted, per-channel-scaled views (one fused loop); its
    gradients are the same kind of loop (input) and k*k reductions (weights);
  * grouped conv: the dense conv with a block-diagonal kernel (``groups`` times the FLOPs,
    but dense convs run 50x faster than grouped ones here);
  * a 1x1 conv: one matmul;
  * a dense conv with one input channel (the first layer), when differentiated: forward as
    the sum of k*k shifted views times weight rows (one fused loop, 4-8x faster than XLA's
    conv for one channel; 1.15-1.3x on the whole training step), backward by lax
    (:func:`conv2d_taps`; undifferentiated calls, i.e. eval, use lax's conv);
  * every other dense conv stays on ``lax.conv_general_dilated``: XLA's library conv beat
    im2col + GEMM (:func:`conv2d_gemm`, also with a GEMM backward pass) in every whole
    training step measured -- the patch matrix is k*k times the input, and writing and
    re-reading it costs more than the GEMM saves (``GEMM_MAX_K`` switches it on for short
    rows).

Choosing the implementation
---------------------------
``impl`` (the keyword of :func:`cnnjax.ops.conv2d`, ``max_pool2d``, ``avg_pool2d``; the
``impl`` field of the conv / pool blocks; the ``conv_impl`` option of the models, e.g.
``models.create("padded_cnn", conv_impl="lax")`` or a config's ``model_options``):

  * ``"auto"`` (default): the environment variable ``CNNJAX_CONV_IMPL`` if set (a
    process-wide default for everything left on "auto": how the benchmarks run the plain
    path in a worker process), otherwise ``"fast"`` when ``jax.default_backend()`` is
    ``"cpu"`` at trace time and ``"lax"`` elsewhere (GPU/TPU convolutions are already fast);
  * ``"lax"``: the plain ``lax`` path;
  * ``"fast"``: the per-case choice above;
  * ``"gemm"``: im2col + matmul for *every* conv (groups through a batched matmul); slower
    than ``"fast"`` for wide convs, kept for comparison and testing.

An explicit "lax" / "fast" / "gemm" beats the variable.  The choice is made when a function
is traced, so set the variable before the first ``jax.jit`` call (a cached trace keeps its
implementation).

Process-level XLA settings (flags, not kernels) live in :mod:`cnnjax.xla_cpu`.
"""
from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

ENV_VAR = "CNNJAX_CONV_IMPL"
IMPLS = ("auto", "lax", "fast", "gemm")

#: The "fast" path uses im2col + GEMM for a dense conv when kh*kw*C_in is at most this.
#: 0 (off): in whole training steps it never won on the 2-core CPU -- even the first layer
#: (K = 25) was 0-2% faster at batch 50 and 10-30% slower at batch 256, where the patch
#: matrix (25x the input) falls out of the cache.  Kept as a knob for other machines.
GEMM_MAX_K = 0
#: grouped convs with at most this many groups run as a dense block-diagonal conv.
BLOCKDIAG_MAX_GROUPS = 8
#: dense convs with at most this many input channels compute their forward pass as a sum of
#: shifted views (XLA's library conv is 4-8x slower for a 1-channel input; 1.9x on fwd+dw).
TAPS_MAX_CIN = 1


def resolve_impl(impl: str = "auto") -> str:
    """'auto' | 'lax' | 'fast' | 'gemm' -> the concrete implementation ('lax', 'fast' or 'gemm').

    'auto' reads ``CNNJAX_CONV_IMPL`` (any of the four names; empty = unset), then falls
    back to 'fast' on the CPU backend and 'lax' elsewhere."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "auto":
        env = os.environ.get(ENV_VAR, "").strip().lower()
        if env and env not in IMPLS:
            raise ValueError(f"{ENV_VAR} must be one of {IMPLS}, got {env!r}")
        impl = env or "auto"
    if impl == "auto":
        impl = "fast" if jax.default_backend() == "cpu" else "lax"
    return impl


# ----------------------------------------------------------------------------------------
# geometry helpers (x NHWC, w HWIO; pads ((top, bottom), (left, right)))

def _out_len(n, k, s, lo, hi, d):
    return (n + lo + hi - d * (k - 1) - 1) // s + 1


def _taps(xp, kh, kw, oh, ow, stride, dilation):
    """The kh*kw strided windows of an already padded NHWC array, each (N, oh, ow, C), row-major."""
    n, _, _, c = xp.shape
    (sh, sw), (dh, dw) = stride, dilation
    out = []
    for a in range(kh):
        for b in range(kw):
            r0, c0 = a * dh, b * dw
            out.append(lax.slice(xp, (0, r0, c0, 0), (n, r0 + (oh - 1) * sh + 1, c0 + (ow - 1) * sw + 1, c),
                                 (1, sh, sw, 1)))
    return out


def _pad_hw(x, pads, value=0):
    if not any(p for pair in pads for p in pair):
        return x
    return lax.pad(x, np.array(value, x.dtype), ((0, 0, 0), (*pads[0], 0), (*pads[1], 0), (0, 0, 0)))


def _untaps(cols, h, w, kh, kw, stride, pads, dilation, weights=None):
    """Adjoint of pad + :func:`_taps` (col2im): sum the kh*kw (N, oh, ow, C) slabs back into
    an (N, h, w, C) array.  ``cols`` is a list of kh*kw slabs, or ONE slab used for every tap
    times ``weights[t]`` (the depthwise case)."""
    (sh, sw), (dh, dw) = stride, dilation
    (ph, _), (pw, _) = pads
    shared = not isinstance(cols, (list, tuple))
    n, oh, ow, c = (cols if shared else cols[0]).shape
    term = (lambda t, v: v * weights[t]) if weights is not None else (lambda t, v: v)
    acc = None
    if (sh, sw) == (1, 1):
        # Stride 1: a correlation of the padded slabs with the flipped taps: slices, which XLA
        # fuses into one fast loop (the pad-per-tap form below is ~10x slower).
        eh, ew = dh * (kh - 1), dw * (kw - 1)
        src = _pad_hw(cols, ((eh, eh), (ew, ew))) if shared else None
        for t in range(kh * kw):
            a, b = divmod(t, kw)
            # x[q] receives tap t's output at q + pad - a*dh.
            r0, c0 = eh - a * dh + ph, ew - b * dw + pw
            s_t = src if shared else _pad_hw(cols[t], ((eh, eh), (ew, ew)))
            v = term(t, lax.slice(s_t, (0, r0, c0, 0), (n, r0 + h, c0 + w, c)))
            acc = v if acc is None else acc + v
        return acc
    zero = np.array(0, (cols if shared else cols[0]).dtype)
    for t in range(kh * kw):
        a, b = divmod(t, kw)
        lo_h, lo_w = a * dh - ph, b * dw - pw
        hi_h, hi_w = h - lo_h - (oh - 1) * sh - 1, w - lo_w - (ow - 1) * sw - 1
        v = term(t, cols if shared else cols[t])
        v = lax.pad(v, zero, ((0, 0, 0), (lo_h, hi_h, sh - 1), (lo_w, hi_w, sw - 1), (0, 0, 0)))
        acc = v if acc is None else acc + v
    return acc


def _cfg(w, stride, padding, dilation, groups):
    return (int(w.shape[0]), int(w.shape[1]), tuple(int(s) for s in stride),
            tuple(tuple(int(p) for p in pr) for pr in padding), tuple(int(d) for d in dilation), int(groups))


def _out_hw(x, cfg):
    kh, kw, stride, pads, dilation, _ = cfg
    return (_out_len(x.shape[1], kh, stride[0], *pads[0], dilation[0]),
            _out_len(x.shape[2], kw, stride[1], *pads[1], dilation[1]))


def _patches(x, cfg):
    """im2col: (N, oh, ow, kh*kw, C), taps row-major (matching HWIO's (kh, kw) order)."""
    kh, kw, stride, pads, dilation, _ = cfg
    oh, ow = _out_hw(x, cfg)
    return jnp.stack(_taps(_pad_hw(x, pads), kh, kw, oh, ow, stride, dilation), axis=3)


# ----------------------------------------------------------------------------------------
# conv as im2col + GEMM; the backward pass is two GEMMs and col2im

@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_gemm(x, w, cfg):
    return _conv_gemm_fwd(x, w, cfg)[0]


def _conv_gemm_fwd(x, w, cfg):
    groups = cfg[5]
    p = _patches(x, cfg)
    n, oh, ow, t, c = p.shape
    o = w.shape[-1]
    if groups == 1:
        y = jnp.dot(p.reshape(n * oh * ow, t * c), w.reshape(t * c, o))
    else:
        cg, og = c // groups, o // groups
        y = jnp.einsum("mtgc,tcgo->mgo", p.reshape(n * oh * ow, t, groups, cg), w.reshape(t, cg, groups, og))
    return y.reshape(n, oh, ow, o), (x, w)


def _conv_gemm_bwd(cfg, res, g):
    x, w = res
    kh, kw, stride, pads, dilation, groups = cfg
    p = _patches(x, cfg)  # recomputed: XLA CSEs it with the forward's when both are in one jit
    n, oh, ow, t, c = p.shape
    o = w.shape[-1]
    m = n * oh * ow
    g2 = g.reshape(m, o)
    if groups == 1:
        dw = jnp.dot(p.reshape(m, t * c).T, g2).reshape(w.shape)
        cols = jnp.dot(g2, w.reshape(t * c, o).T).reshape(n, oh, ow, t, c)
    else:
        cg, og = c // groups, o // groups
        pg, gg, wg = p.reshape(m, t, groups, cg), g2.reshape(m, groups, og), w.reshape(t, cg, groups, og)
        dw = jnp.einsum("mtgc,mgo->tcgo", pg, gg).reshape(w.shape)
        cols = jnp.einsum("mgo,tcgo->mtgc", gg, wg).reshape(n, oh, ow, t, c)
    dx = _untaps([cols[:, :, :, i, :] for i in range(t)], x.shape[1], x.shape[2], kh, kw, stride, pads, dilation)
    return dx, dw


_conv_gemm.defvjp(_conv_gemm_fwd, _conv_gemm_bwd)


def conv2d_gemm(x, w, *, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1):
    """im2col + one matmul (a batched matmul over groups), with a GEMM backward pass.

    Same contract as :func:`cnnjax.ops.conv2d` with explicit geometry: ``stride`` and
    ``dilation`` int pairs, ``padding`` ((top, bottom), (left, right))."""
    return _conv_gemm(x, w.astype(x.dtype), _cfg(w, stride, padding, dilation, groups))


# ----------------------------------------------------------------------------------------
# depthwise conv (groups == C_in): shifted views times per-channel weights

@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_depthwise(x, w, cfg):
    return _conv_depthwise_fwd(x, w, cfg)[0]


def _dw_expand(x, mult):
    # output channel c*mult + j reads input channel c (HWIO with I=1, O = C_in*mult)
    return x if mult == 1 else jnp.repeat(x, mult, axis=-1)


def _conv_depthwise_fwd(x, w, cfg):
    kh, kw, stride, pads, dilation, _ = cfg
    mult = w.shape[-1] // x.shape[-1]
    oh, ow = _out_hw(x, cfg)
    taps = _taps(_pad_hw(_dw_expand(x, mult), pads), kh, kw, oh, ow, stride, dilation)
    wt = w.reshape(kh * kw, w.shape[-1])
    y = None
    for t, v in enumerate(taps):
        y = v * wt[t] if y is None else y + v * wt[t]
    return y, (x, w)


def _conv_depthwise_bwd(cfg, res, g):
    x, w = res
    kh, kw, stride, pads, dilation, _ = cfg
    mult = w.shape[-1] // x.shape[-1]
    oh, ow = _out_hw(x, cfg)
    xe = _dw_expand(x, mult)
    taps = _taps(_pad_hw(xe, pads), kh, kw, oh, ow, stride, dilation)
    wt = w.reshape(kh * kw, w.shape[-1])
    dw = jnp.stack([jnp.sum(v * g, axis=(0, 1, 2)) for v in taps]).reshape(w.shape)
    dxe = _untaps(g, x.shape[1], x.shape[2], kh, kw, stride, pads, dilation, weights=wt)
    if mult > 1:
        dxe = dxe.reshape(*x.shape, mult).sum(-1)
    return dxe, dw


_conv_depthwise.defvjp(_conv_depthwise_fwd, _conv_depthwise_bwd)


def conv2d_depthwise(x, w, *, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1)):
    """Depthwise conv (w: (kh, kw, 1, C_in*m)) as a sum of shifted views; elementwise backward."""
    return _conv_depthwise(x, w.astype(x.dtype), _cfg(w, stride, padding, dilation, x.shape[-1]))


# ----------------------------------------------------------------------------------------
# dense conv with very few input channels: forward as shifted views, backward by lax

@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_taps(x, w, cfg):
    # Not differentiated (eval): lax's conv.  In a forward-only program XLA splits the tap sum
    # into several loops and its conv library fuses the following layers less well: padded_cnn
    # eval was 0.4-0.75x with the tap sum (lenet5 1.3-1.5x); lax keeps eval at parity.
    _, _, stride, pads, dilation, _ = cfg
    return _lax_conv(x, w, stride, pads, dilation, 1)


def _tap_sum(x, w, cfg):
    kh, kw, stride, pads, dilation, _ = cfg
    oh, ow = _out_hw(x, cfg)
    wt = w.reshape(kh * kw, x.shape[-1], w.shape[-1])
    y = None
    for t, v in enumerate(_taps(_pad_hw(x, pads), kh, kw, oh, ow, stride, dilation)):
        for c in range(x.shape[-1]):
            term = v[..., c:c + 1] * wt[t, c]  # (N, oh, ow, 1) * (C_out,)
            y = term if y is None else y + term
    return _materialise(y)


def _conv_taps_fwd(x, w, cfg):
    return _tap_sum(x, w, cfg), (x, w)


def _conv_taps_bwd(cfg, res, g):
    x, w = res
    _, _, stride, pads, dilation, _ = cfg
    _, vjp = jax.vjp(lambda a, k: _lax_conv(a, k, stride, pads, dilation, 1), x, w)
    return vjp(g)


_conv_taps.defvjp(_conv_taps_fwd, _conv_taps_bwd)


def _materialise(y):
    """y, computed by a matmul with the identity so that XLA keeps it as a buffer.

    XLA's CPU fusion copies an elementwise producer into each consumer; for the k*k-term tap
    sum that means recomputing the conv in every consumer (a max pool's strided views and
    the relu / pool gradients: a 2.5x slower training step).  ``optimization_barrier`` is
    dropped before fusion on the CPU and a size-1 reduction is simplified away; a dot is
    neither (it costs 1/k^2 of the conv's FLOPs).  Exact in float32 except that an inf in y
    becomes NaN (inf * 0 in the off-diagonal terms)."""
    o = y.shape[-1]
    eye = jnp.eye(o, dtype=y.dtype)
    return jnp.dot(y.reshape(-1, o), eye, precision=lax.Precision.HIGHEST).reshape(y.shape)


def conv2d_taps(x, w, *, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1)):
    """Dense conv for very few input channels.  Under differentiation the forward pass is the
    sum over taps and input channels of shifted views times weight rows (one fused loop, no
    im2col) and the backward pass is lax's; an undifferentiated call is lax's conv."""
    return _conv_taps(x, w.astype(x.dtype), _cfg(w, stride, padding, dilation, 1))


# ----------------------------------------------------------------------------------------
# grouped conv as a dense conv with a block-diagonal kernel

def block_diagonal_kernel(w, groups: int):
    """(kh, kw, C_in/groups, C_out) grouped kernel -> the equivalent dense (kh, kw, C_in, C_out)
    kernel, zero outside the diagonal blocks (differentiable: its gradient picks the blocks)."""
    kh, kw, cg, o = w.shape
    og = o // groups
    w5 = w.reshape(kh, kw, 1, cg, groups, og)
    eye = jnp.eye(groups, dtype=w.dtype).reshape(1, 1, groups, 1, groups, 1)
    return (w5 * eye).reshape(kh, kw, groups * cg, o)


# ----------------------------------------------------------------------------------------
# dispatcher used by cnnjax.ops.conv2d

_DN = ("NHWC", "HWIO", "NHWC")


def _lax_conv(x, w, stride, padding, dilation, groups):
    return lax.conv_general_dilated(x, w.astype(x.dtype), window_strides=tuple(stride), padding=tuple(padding),
                                    rhs_dilation=tuple(dilation), dimension_numbers=_DN, feature_group_count=groups)


def conv2d(x, w, *, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1, impl="fast"):
    """The conv of :func:`cnnjax.ops.conv2d` (validated arguments, explicit geometry) by
    ``impl`` 'fast' (per-case choice, see the module doc), 'gemm' (im2col for all) or 'lax'."""
    stride, dilation = tuple(stride), tuple(dilation)
    padding = tuple(tuple(p) for p in padding)
    if impl == "lax":
        return _lax_conv(x, w, stride, padding, dilation, groups)
    if impl == "gemm":
        return conv2d_gemm(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    if impl != "fast":
        raise ValueError(f"impl must be 'fast', 'gemm' or 'lax' here, got {impl!r}")
    kh, kw, cg, o = w.shape
    c = x.shape[-1]
    if groups > 1 and cg == 1:
        return conv2d_depthwise(x, w, stride=stride, padding=padding, dilation=dilation)
    if groups > 1:
        if groups <= BLOCKDIAG_MAX_GROUPS:
            w = block_diagonal_kernel(w.astype(x.dtype), groups)
            return conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=1, impl="fast")
        return conv2d_gemm(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    if (kh, kw) == (1, 1) and stride == (1, 1) and padding == ((0, 0), (0, 0)):
        n, h, wd, _ = x.shape
        return jnp.dot(x.reshape(n * h * wd, c), w.reshape(c, o).astype(x.dtype)).reshape(n, h, wd, o)
    if c <= TAPS_MAX_CIN:
        return conv2d_taps(x, w, stride=stride, padding=padding, dilation=dilation)
    if kh * kw * c <= GEMM_MAX_K:
        return conv2d_gemm(x, w, stride=stride, padding=padding, dilation=dilation, groups=1)
    return _lax_conv(x, w, stride, padding, dilation, 1)


# ----------------------------------------------------------------------------------------
# pooling over non-overlapping windows (stride == window): reshape + reduce

def _window_slices(x, window, pads, pad_value):
    """Pad, then the wh*ww strided views (N, oh, ow, C) of a non-overlapping pool, row-major:
    view (a, b) holds element (a, b) of every window.  Reducing these elementwise is one
    fused loop (3-4x faster than reshape + reduce, which XLA hands to a slow library reduce)."""
    wh, ww = window
    x = _pad_hw(x, pads, pad_value)
    n, h, w, c = x.shape
    oh, ow = h // wh, w // ww
    return [lax.slice(x, (0, a, b, 0), (n, a + (oh - 1) * wh + 1, b + (ow - 1) * ww + 1, c), (1, wh, ww, 1))
            for a in range(wh) for b in range(ww)]


def _reduce(op, views):
    acc = views[0]
    for v in views[1:]:
        acc = op(acc, v)
    return acc


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _max_pool(x, window, pads):
    # Not differentiated (eval): lax's reduce_window, which XLA can hand to its conv library
    # together with the neighbouring conv and dense layers.
    return lax.reduce_window(x, np.array(-np.inf, x.dtype), lax.max, (1, *window, 1), (1, *window, 1),
                             ((0, 0), *pads, (0, 0)))


def _max_pool_fwd(x, window, pads):
    y = _reduce(jnp.maximum, _window_slices(x, window, pads, -np.inf))
    return y, (x, y)


def _max_pool_bwd(window, pads, res, g):
    x, y = res
    wh, ww = window
    zero = np.array(0, g.dtype)
    # The gradient goes to the FIRST maximum of each window in row-major order, as lax's
    # select_and_scatter does (ties are common after a relu: a window of zeros).
    taken = None
    parts = []
    for v in _window_slices(x, window, pads, -np.inf):
        hit = v == y
        sel = hit if taken is None else hit & ~taken
        taken = hit if taken is None else taken | hit
        parts.append(jnp.where(sel, g, zero))
    n, oh, ow, c = g.shape
    # interleave: dx[n, i*wh + a, j*ww + b] = parts[a*ww + b][n, i, j]
    dx = jnp.stack(parts, axis=3).reshape(n, oh, ow, wh, ww, c).transpose(0, 1, 3, 2, 4, 5)
    dx = dx.reshape(n, oh * wh, ow * ww, c)
    # undo the crop (zeros) and the padding (a negative pad crops)
    (pt, pb), (pl, pr) = pads
    hp, wp = x.shape[1] + pt + pb, x.shape[2] + pl + pr
    dx = lax.pad(dx, zero, ((0, 0, 0), (-pt, hp - oh * wh - pb, 0), (-pl, wp - ow * ww - pr, 0), (0, 0, 0)))
    return (dx,)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def max_pool2d(x, window, stride, padding):
    """Max pool with explicit geometry; the fast reshape form when stride == window, else
    ``lax.reduce_window``.  padding: ((top, bottom), (left, right)), padded values -inf."""
    window, stride = tuple(window), tuple(stride)
    padding = tuple(tuple(p) for p in padding)
    if window == stride:
        return _max_pool(x, window, padding)
    return lax.reduce_window(x, np.array(-np.inf, x.dtype), lax.max, (1, *window, 1), (1, *stride, 1),
                             ((0, 0), *padding, (0, 0)))


def sum_pool2d(x, window, stride, padding):
    """Window sums (padded zeros count); the reshape form when stride == window."""
    window, stride = tuple(window), tuple(stride)
    padding = tuple(tuple(p) for p in padding)
    if window == stride:
        return _reduce(jnp.add, _window_slices(x, window, padding, 0))
    return lax.reduce_window(x, np.array(0, x.dtype), lax.add, (1, *window, 1), (1, *stride, 1),
                             ((0, 0), *padding, (0, 0)))
