"""Convolution arithmetic as pure functions of arrays.

Layout conventions (everywhere in cnnjax):
  * images / feature maps are NHWC: (batch, height, width, channels);
  * conv kernels are HWIO: (kh, kw, in_channels // groups, out_channels).

Padding
-------
A 1-D padding spec is one of
  * an int ``p``          -> (p, p)
  * a pair ``(lo, hi)``   -> explicit, e.g. (0, 1) pads one row only at the bottom
  * ``'valid'``           -> (0, 0)
  * ``'same'``            -> :func:`same_padding`: total ``dilation*(k-1)``, the extra
    pixel of an even kernel at the *start* (top/left): lo = ceil(p/2), hi = floor(p/2).

A 2-D padding spec is a 1-D spec used for both axes, or a pair of 1-D specs
``(pad_h, pad_w)``; so ``(1, 2)`` pads 1 row top and bottom and 2 columns left and
right (PyTorch's meaning), and ``((0, 1), (0, 1))`` pads only bottom and right.

How cnnjax's ``'same'`` differs from ``lax``'s ``'SAME'``: lax puts the extra pixel of an
even total at the *end* (bottom/right) and, for stride > 1, pads only as much as
``ceil(n/stride)`` outputs need.  cnnjax's textbook rule pads ``dilation*(k-1)`` in total,
independent of the input size and stride; both give ``ceil(n/stride)`` outputs, but for
even kernels or stride > 1 the windows sit at different places.  For lax's rule pass its
pads explicitly: ``lax.padtype_to_pads((H, W), (kh_eff, kw_eff), stride, 'SAME')`` gives
the ((top, bottom), (left, right)) pair this module accepts (kh_eff = dilation*(kh-1)+1).

Implementation
--------------
:func:`conv2d` and the pools take ``impl`` ('auto', 'lax', 'fast' or 'gemm'; see
:mod:`cnnjax.fastconv`): same values and gradients, different XLA programs.  'auto' is
``CNNJAX_CONV_IMPL`` when that is set, otherwise 'fast' on the CPU backend and 'lax'
elsewhere, decided when the function is traced.  Blocks expose it as the field ``impl``;
models as the option ``conv_impl`` (their :class:`cnnjax.blocks.ConvDef`).
"""
from __future__ import annotations

from typing import Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from cnnjax import fastconv

Pad1D = Union[int, str, tuple]
Pad2D = Union[int, str, tuple]
IntOr2 = Union[int, Sequence[int]]


def _pair(v: IntOr2, name: str) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    v = tuple(int(x) for x in v)
    if len(v) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return v


def same_padding(k: int, dilation: int = 1) -> tuple[int, int]:
    """Textbook 'same' padding (lo, hi) for kernel size ``k``: total ``dilation*(k-1)``.

    The extra pixel of an odd total goes at the start (top/left): ``lo = ceil(p/2)``,
    ``hi = floor(p/2)``.  With stride 1 the output size equals the input size.
    """
    if k < 1 or dilation < 1:
        raise ValueError(f"kernel size and dilation must be >= 1, got k={k}, dilation={dilation}")
    p = dilation * (k - 1)
    return (p + 1) // 2, p // 2


def resolve_padding(padding: Pad1D, k: int, dilation: int = 1) -> tuple[int, int]:
    """A 1-D padding spec (see module doc) -> explicit non-negative (lo, hi)."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return 0, 0
        if mode == "same":
            return same_padding(k, dilation)
        raise ValueError(f"padding must be an int, a (lo, hi) pair, 'valid' or 'same'; got {padding!r}")
    if isinstance(padding, (int, np.integer)):
        lo = hi = int(padding)
    else:
        try:
            lo, hi = (int(p) for p in padding)
        except (TypeError, ValueError):
            raise ValueError(f"padding must be an int, a (lo, hi) pair, 'valid' or 'same'; got {padding!r}") from None
    if lo < 0 or hi < 0:
        raise ValueError(f"padding must be non-negative, got ({lo}, {hi})")
    return lo, hi


def resolve_padding_2d(padding: Pad2D, kernel: IntOr2, dilation: IntOr2 = 1) -> tuple[tuple[int, int], tuple[int, int]]:
    """A 2-D padding spec -> ((top, bottom), (left, right))."""
    kh, kw = _pair(kernel, "kernel_size")
    dh, dw = _pair(dilation, "dilation")
    if isinstance(padding, (str, int, np.integer)):
        ph = pw = padding
    else:
        padding = tuple(padding)
        if len(padding) != 2:
            raise ValueError(f"2-D padding must be an int, 'same', 'valid' or a pair (pad_h, pad_w); got {padding!r}")
        ph, pw = padding
    return resolve_padding(ph, kh, dh), resolve_padding(pw, kw, dw)


def conv_output_size(n: int, k: int, stride: int = 1, padding: Pad1D = 0, dilation: int = 1,
                     axis: str = "") -> int:
    """Output length of a convolution / pooling along one axis (``axis``, e.g. 'height',
    only names the axis in error messages).

    ``out = floor((n + pad_lo + pad_hi - dilation*(k-1) - 1) / stride) + 1``

    Raises ValueError for non-positive sizes, stride or dilation, negative padding, or
    when the (dilated) kernel does not fit in the padded input (empty output).
    """
    where = f" along the {axis}" if axis else ""
    for name, v, low in (("input size", n, 1), ("kernel size", k, 1), ("stride", stride, 1), ("dilation", dilation, 1)):
        if int(v) != v or v < low:
            raise ValueError(f"{name}{where} must be an integer >= {low}, got {v!r}")
    lo, hi = resolve_padding(padding, k, dilation)
    span = dilation * (k - 1) + 1
    if n + lo + hi < span:
        raise ValueError(
            f"kernel {axis or 'size'} {k} (dilation {dilation}, span {span}) does not fit in the padded input "
            f"{axis or 'size'} {n} + {lo} + {hi} = {n + lo + hi}: the output would be empty")
    return (n + lo + hi - span) // stride + 1


def transposed_output_size(n: int, k: int, stride: int = 1, padding: int = 0, output_padding: int = 0,
                           dilation: int = 1, axis: str = "") -> int:
    """Output length of :func:`conv_transpose2d` (PyTorch's ConvTranspose rule):
    ``(n - 1)*stride - 2*padding + dilation*(k-1) + output_padding + 1``."""
    where = f" along the {axis}" if axis else ""
    if output_padding >= max(stride, dilation):
        raise ValueError(f"output_padding{where} ({output_padding}) must be smaller than stride or dilation")
    out = (n - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1
    if n < 1 or k < 1 or stride < 1 or dilation < 1 or padding < 0 or out < 1:
        raise ValueError(f"invalid transposed conv{where}: n={n}, k={k}, stride={stride}, padding={padding}, "
                         f"output_padding={output_padding}, dilation={dilation} (output size {out})")
    return out


def corr2d(x, k):
    """Plain 2-D cross-correlation of a (H, W) array with a (kh, kw) kernel, no padding.

    The textbook definition ``Y[i, j] = sum(X[i:i+kh, j:j+kw] * K)``; the reference the fast
    :func:`conv2d` is tested against.  Returns (H-kh+1, W-kw+1).
    """
    x, k = jnp.asarray(x), jnp.asarray(k)
    if x.ndim != 2 or k.ndim != 2:
        raise ValueError(f"corr2d takes 2-D arrays, got shapes {x.shape} and {k.shape}")
    kh, kw = k.shape
    oh, ow = conv_output_size(x.shape[0], kh), conv_output_size(x.shape[1], kw)
    # Sum of kh*kw shifted views, each weighted by one kernel entry.
    out = jnp.zeros((oh, ow), jnp.result_type(x, k))
    for a in range(kh):
        for b in range(kw):
            out = out + k[a, b] * x[a:a + oh, b:b + ow]
    return out


_DN = ("NHWC", "HWIO", "NHWC")
_AXES = ("height", "width")


def conv2d(x, w, *, stride: IntOr2 = 1, padding: Pad2D = 0, dilation: IntOr2 = 1, groups: int = 1,
           impl: str = "auto"):
    """Multi-channel 2-D cross-correlation over ``lax.conv_general_dilated``.

    x: (N, H, W, C_in); w: (kh, kw, C_in // groups, C_out) -> (N, H', W', C_out) with
    H' = conv_output_size(H, kh, stride, pad_h, dilation).  ``groups`` splits the input and
    output channels into that many independent convolutions (groups == C_in with C_out a
    multiple of C_in is a depthwise conv).

    ``impl``: 'auto', 'lax', 'fast' or 'gemm' (module doc).  A kernel that does not fit the
    padded input raises ValueError naming the axis (height / width) and the sizes.
    """
    x, w = jnp.asarray(x), jnp.asarray(w)
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv2d wants x NHWC and w HWIO (4-D), got {x.shape} and {w.shape}")
    c_in, c_out = x.shape[-1], w.shape[-1]
    if groups < 1 or c_in % groups or c_out % groups:
        raise ValueError(f"groups={groups} must divide input channels ({c_in}) and output channels ({c_out})")
    if w.shape[2] * groups != c_in:
        raise ValueError(f"kernel expects {w.shape[2]}*{groups} input channels, input has {c_in}")
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    pads = resolve_padding_2d(padding, w.shape[:2], dilation)
    for n, k, s, p, d, axis in zip(x.shape[1:3], w.shape[:2], stride, pads, dilation, _AXES):
        conv_output_size(n, k, s, p, d, axis)  # validates: clear error instead of an empty array
    return fastconv.conv2d(x, w, stride=stride, padding=pads, dilation=dilation, groups=groups,
                           impl=fastconv.resolve_impl(impl))


def depthwise_conv2d(x, w, *, stride: IntOr2 = 1, padding: Pad2D = 0, dilation: IntOr2 = 1, impl: str = "auto"):
    """One k x k filter per input channel.  w: (kh, kw, 1, C_in * multiplier)."""
    return conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=x.shape[-1], impl=impl)


def separable_conv2d(x, w_depthwise, w_pointwise, *, stride: IntOr2 = 1, padding: Pad2D = 0, dilation: IntOr2 = 1,
                     impl: str = "auto"):
    """Depthwise k x k conv then a pointwise 1x1 conv mixing channels.

    w_depthwise: (kh, kw, 1, C_in * m); w_pointwise: (1, 1, C_in * m, C_out).
    """
    h = depthwise_conv2d(x, w_depthwise, stride=stride, padding=padding, dilation=dilation, impl=impl)
    return conv2d(h, w_pointwise, impl=impl)


def conv_transpose2d(x, w, *, stride: IntOr2 = 1, padding: IntOr2 = 0, output_padding: IntOr2 = 0,
                     dilation: IntOr2 = 1, groups: int = 1):
    """Transposed convolution ("deconvolution"), PyTorch's ConvTranspose2d semantics.

    x: (N, H, W, C_in); w: (kh, kw, C_in, C_out // groups) (PyTorch's weight
    (C_in, C_out // groups, kh, kw) transposed (2, 3, 0, 1)).  Definition: every input pixel
    scatters ``x[i, j] * w`` into the output at (i*stride, j*stride) (taps ``dilation``
    apart); the sum is then cropped by ``padding`` on each side (plus ``output_padding``
    extra at the bottom/right).  Equivalently: insert ``stride-1`` zeros between input
    pixels, pad ``dilation*(k-1) - padding`` around, and cross-correlate with the spatially
    flipped kernel.  ``groups``: input channel block g (of C_in / groups) feeds only output
    block g (of C_out / groups).  Output size :func:`transposed_output_size`.
    """
    x, w = jnp.asarray(x), jnp.asarray(w)
    if x.ndim != 4 or w.ndim != 4 or w.shape[2] != x.shape[-1]:
        raise ValueError(f"conv_transpose2d wants x NHWC and w (kh, kw, C_in, C_out // groups), "
                         f"got {x.shape} and {w.shape}")
    kh, kw, c_in, og = w.shape
    if groups < 1 or c_in % groups:
        raise ValueError(f"groups={groups} must divide the input channels ({c_in})")
    s, p, op, d = (_pair(v, n) for v, n in ((stride, "stride"), (padding, "padding"),
                                              (output_padding, "output_padding"), (dilation, "dilation")))
    pads = []
    for ax in range(2):
        k = w.shape[ax]
        transposed_output_size(x.shape[1 + ax], k, s[ax], p[ax], op[ax], d[ax], _AXES[ax])  # validates
        edge = d[ax] * (k - 1) - p[ax]
        pads.append((edge, edge + op[ax]))  # negative edge = crop, which lax supports
    # As a forward conv: HWIO kernel (kh, kw, C_in / groups, C_out), output block g reading
    # input block g: (kh, kw, [g, i], j) -> (kh, kw, i, [g, j]).
    wf = jnp.flip(w, (0, 1)).reshape(kh, kw, groups, c_in // groups, og)
    wf = wf.transpose(0, 1, 3, 2, 4).reshape(kh, kw, c_in // groups, groups * og)
    return lax.conv_general_dilated(
        x, wf.astype(x.dtype), window_strides=(1, 1), padding=pads, lhs_dilation=s,
        rhs_dilation=d, dimension_numbers=_DN, feature_group_count=groups)


def upsample_nearest(x, factor: IntOr2 = 2):
    """Nearest-neighbour upsampling: each pixel repeated ``factor`` times along H and W.
    (N, H, W, C) -> (N, H*fh, W*fw, C)."""
    fh, fw = _pair(factor, "factor")
    if fh < 1 or fw < 1:
        raise ValueError(f"upsample factor must be >= 1, got {factor!r}")
    return jnp.repeat(jnp.repeat(x, fh, axis=1), fw, axis=2)


def _pool(x, init, op, window, stride, padding, impl="lax"):
    x = jnp.asarray(x)
    window = _pair(window, "window")
    stride = window if stride is None else _pair(stride, "stride")
    pads = resolve_padding_2d(padding, window)
    for n, k, s, pd, axis in zip(x.shape[1:3], window, stride, pads, _AXES):
        conv_output_size(n, k, s, pd, axis=axis)
    if fastconv.resolve_impl(impl) != "lax":
        fast = fastconv.max_pool2d if op is lax.max else fastconv.sum_pool2d
        return fast(x, window, stride, pads)
    return lax.reduce_window(x, init, op, (1, *window, 1), (1, *stride, 1), ((0, 0), *pads, (0, 0)))


def max_pool2d(x, window: IntOr2 = 2, stride: IntOr2 | None = None, padding: Pad2D = 0, impl: str = "auto"):
    """Max over each ``window`` (stride defaults to the window). Padding counts as -inf.
    (N, H, W, C) -> (N, H', W', C).  ``impl`` as in :func:`conv2d` (the fast path reshapes
    when stride == window; ties send the gradient to the first maximum, like lax)."""
    x = jnp.asarray(x)
    # numpy (concrete) init value: under jit a jnp scalar is a tracer and lax would fall back to
    # the generic, non-differentiable reduce_window.
    return _pool(x, np.array(-np.inf, x.dtype), lax.max, window, stride, padding, impl)


def avg_pool2d(x, window: IntOr2 = 2, stride: IntOr2 | None = None, padding: Pad2D = 0, impl: str = "auto"):
    """Mean over each ``window`` (stride defaults to the window).  Padded zeros are counted
    in the mean (PyTorch's ``count_include_pad=True``).  (N, H, W, C) -> (N, H', W', C).
    ``impl`` as in :func:`conv2d`."""
    x = jnp.asarray(x)
    total = _pool(x, np.array(0, x.dtype), lax.add, window, stride, padding, impl)
    wh, ww = _pair(window, "window")
    return total / (wh * ww)


@jax.custom_jvp
def gelu(x):
    """Exact GELU, ``x * Phi(x)`` with Phi the standard normal CDF, written as PyTorch's
    ``nn.GELU()`` computes it: ``x / 2 * (1 + erf(x / sqrt(2)))``.  Elementwise, any shape.

    Same values as ``jax.nn.gelu(x, approximate=False)`` (to float32 rounding), but that one
    is ``x / 2 * erfc(-x / sqrt(2))`` and XLA's CPU erfc costs ~6x its erf; the derivative
    ``Phi(x) + x * phi(x)`` is given by hand so the backward pass is one elementwise loop
    (autodiff of the formula left XLA materialised broadcasts)."""
    return x * _normal_cdf(x)


def _normal_cdf(x):
    return 0.5 + 0.5 * lax.erf(x * np.asarray(_SQRT_HALF, x.dtype))


_SQRT_HALF = float(np.sqrt(0.5))
_INV_SQRT_2PI = float(1 / np.sqrt(2 * np.pi))


@gelu.defjvp
def _gelu_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    cdf = _normal_cdf(x)
    pdf = jnp.exp(-0.5 * x * x) * np.asarray(_INV_SQRT_2PI, x.dtype)
    return x * cdf, t * (cdf + x * pdf)
