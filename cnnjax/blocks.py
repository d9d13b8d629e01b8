"""Convolution blocks as Flax Linen modules: ``variables = blk.init(rng, x)``, ``blk.apply(variables, x)``.

Every block is a leaf (it owns its parameters, no sub-modules), takes NHWC input and
knows its own arithmetic for :mod:`cnnjax.summary`:

  * ``geometry()`` -> (effective kernel (h, w), stride (h, w), upsampling factor (h, w));
  * ``flops(in_shape, out_shape)`` -> FLOPs for ONE example, multiply-add = 2 FLOPs
    (bias and activation not counted; pooling counts one FLOP per window element).

The conv blocks that call :func:`cnnjax.ops.conv2d` (Conv and its variants, SeparableConv,
UpsampleConv) and the pools take ``impl`` ('auto' | 'lax' | 'fast' | 'gemm', see
:mod:`cnnjax.fastconv`): same values and parameters, different XLA programs.
ConvTranspose always runs lax's conv.  Models do not set ``impl`` block by block: they
receive a :class:`ConvDef`, which builds every conv and pool of a model on one ``impl`` and
is the one place that maps a conv *kind* (:data:`CONV_KINDS`) to a block.

Parameter counts (k x k kernel, C_in -> C_out, bias included):
  Conv            k*k*(C_in/groups)*C_out + C_out
  SeparableConv   k*k*C_in*m + C_in*m*C_out + C_out   (depthwise has no bias)
  ConvTranspose   k*k*C_in*(C_out/groups) + C_out
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cnnjax import ops

ACTIVATIONS: dict[str, Callable] = {
    "relu": nn.relu, "sigmoid": nn.sigmoid, "tanh": jnp.tanh, "gelu": nn.gelu, "silu": nn.silu,
}


def activation_fn(name: Optional[str]) -> Callable:
    """'relu' | 'sigmoid' | 'tanh' | 'gelu' | 'silu' | None (identity) -> function."""
    if name is None or name == "none":
        return lambda x: x
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}") from None


class _ConvBase(nn.Module):
    """Shared fields of the conv blocks."""
    features: int
    kernel_size: ops.IntOr2 = 3
    stride: ops.IntOr2 = 1
    padding: ops.Pad2D = 0
    dilation: ops.IntOr2 = 1
    use_bias: bool = True
    activation: Optional[str] = None
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros_init()

    def _kernel(self, name, shape):
        return self.param(name, self.kernel_init, shape)

    def _finish(self, y):
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,))
        return activation_fn(self.activation)(y)

    def geometry(self):
        k, d = ops._pair(self.kernel_size, "kernel_size"), ops._pair(self.dilation, "dilation")
        return tuple(di * (ki - 1) + 1 for ki, di in zip(k, d)), ops._pair(self.stride, "stride"), (1, 1)


class Conv(_ConvBase):
    """Conv (+bias, activation): (N, H, W, C_in) -> (N, H', W', features), kernel HWIO.

    ``groups`` > 1 makes a grouped conv: it must divide C_in and ``features``.
    """
    groups: int = 1
    impl: str = "auto"

    @nn.compact
    def __call__(self, x):
        kh, kw = ops._pair(self.kernel_size, "kernel_size")
        c_in = x.shape[-1]
        if self.groups < 1 or c_in % self.groups or self.features % self.groups:
            raise ValueError(f"{type(self).__name__} {self.name}: groups={self.groups} must divide the input "
                             f"channels ({c_in}) and features ({self.features})")
        w = self._kernel("kernel", (kh, kw, c_in // self.groups, self.features))
        y = ops.conv2d(x, w, stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups,
                       impl=self.impl)
        return self._finish(y)

    def flops(self, in_shape, out_shape):
        kh, kw = ops._pair(self.kernel_size, "kernel_size")
        return 2 * int(np.prod(out_shape[-3:])) * kh * kw * (in_shape[-1] // self.groups)


class DilatedConv(Conv):
    """Atrous conv: taps ``dilation`` apart, 'same' padding by default (k=3, d=2 covers 5x5)."""
    dilation: ops.IntOr2 = 2
    padding: ops.Pad2D = "same"


class GroupedConv(Conv):
    """Grouped conv: ``groups`` independent convs over channel slices (params / groups)."""
    groups: int = 2


class SeparableConv(_ConvBase):
    """Depthwise k x k conv (``depth_multiplier`` filters per channel, no bias) then a
    pointwise 1x1 conv to ``features`` (+bias, activation)."""
    depth_multiplier: int = 1
    impl: str = "auto"

    @nn.compact
    def __call__(self, x):
        kh, kw = ops._pair(self.kernel_size, "kernel_size")
        c_mid = x.shape[-1] * self.depth_multiplier
        w_dw = self._kernel("depthwise", (kh, kw, 1, c_mid))
        w_pw = self._kernel("pointwise", (1, 1, c_mid, self.features))
        y = ops.separable_conv2d(x, w_dw, w_pw, stride=self.stride, padding=self.padding, dilation=self.dilation,
                                 impl=self.impl)
        return self._finish(y)

    def flops(self, in_shape, out_shape):
        kh, kw = ops._pair(self.kernel_size, "kernel_size")
        positions = int(np.prod(out_shape[-3:-1]))
        c_mid = in_shape[-1] * self.depth_multiplier
        return 2 * positions * c_mid * (kh * kw + self.features)


class ConvTranspose(_ConvBase):
    """Transposed conv (PyTorch semantics, see :func:`cnnjax.ops.conv_transpose2d`):
    (N, H, W, C_in) -> (N, (H-1)*s - 2p + d(k-1) + op + 1, ..., features); kernel
    (kh, kw, C_in, features // groups)."""
    stride: ops.IntOr2 = 2
    output_padding: ops.IntOr2 = 0
    groups: int = 1

    @nn.compact
    def __call__(self, x):
        kh, kw = ops._pair(self.kernel_size, "kernel_size")
        if self.groups < 1 or x.shape[-1] % self.groups or self.features % self.groups:
            raise ValueError(f"ConvTranspose {self.name}: groups={self.groups} must divide the input "
                             f"channels ({x.shape[-1]}) and features ({self.features})")
        w = self._kernel("kernel", (kh, kw, x.shape[-1], self.features // self.groups))
        y = ops.conv_transpose2d(x, w, stride=self.stride, padding=self.padding,
                                 output_padding=self.output_padding, dilation=self.dilation, groups=self.groups)
        return self._finish(y)

    def geometry(self):
        k_eff, s, _ = super().geometry()
        return k_eff, (1, 1), s  # upsamples by the stride

    def flops(self, in_shape, out_shape):
        kh, kw = ops._pair(self.kernel_size, "kernel_size")
        return 2 * int(np.prod(in_shape[-3:])) * kh * kw * (self.features // self.groups)


class UpsampleConv(_ConvBase):
    """Nearest-neighbour upsampling by ``factor`` (pixel repeat) then a conv ('same' by default)."""
    factor: ops.IntOr2 = 2
    padding: ops.Pad2D = "same"
    impl: str = "auto"

    @nn.compact
    def __call__(self, x):
        kh, kw = ops._pair(self.kernel_size, "kernel_size")
        w = self._kernel("kernel", (kh, kw, x.shape[-1], self.features))
        y = ops.conv2d(ops.upsample_nearest(x, self.factor), w, stride=self.stride, padding=self.padding,
                       dilation=self.dilation, impl=self.impl)
        return self._finish(y)

    def geometry(self):
        k_eff, s, _ = super().geometry()
        return k_eff, s, ops._pair(self.factor, "factor")

    def flops(self, in_shape, out_shape):
        kh, kw = ops._pair(self.kernel_size, "kernel_size")
        return 2 * int(np.prod(out_shape[-3:])) * kh * kw * in_shape[-1]


class _Pool(nn.Module):
    window: ops.IntOr2 = 2
    stride: Optional[ops.IntOr2] = None
    padding: ops.Pad2D = 0
    impl: str = "auto"

    def geometry(self):
        w = ops._pair(self.window, "window")
        return w, (w if self.stride is None else ops._pair(self.stride, "stride")), (1, 1)

    def flops(self, in_shape, out_shape):
        wh, ww = ops._pair(self.window, "window")
        return int(np.prod(out_shape[-3:])) * wh * ww


class MaxPool(_Pool):
    """Max pooling, (N, H, W, C) -> (N, H', W', C); stride defaults to the window."""

    def __call__(self, x):
        return ops.max_pool2d(x, self.window, self.stride, self.padding, impl=self.impl)


class AvgPool(_Pool):
    """Average pooling (padded zeros counted), (N, H, W, C) -> (N, H', W', C)."""

    def __call__(self, x):
        return ops.avg_pool2d(x, self.window, self.stride, self.padding, impl=self.impl)


# --------------------------------------------------------------------------- anti-aliased subsampling
# Zhang, "Making Convolutional Networks Shift-Invariant Again" (ICML 2019), after his reference code
# (adobe/antialiased-cnns, antialiased_cnns/blurpool.py): a binomial low-pass filter, reflect padding
# (floor((f-1)/2) before, ceil((f-1)/2) after), then subsampling; filter size 1 subsamples only.

#: blur filter sizes Zhang's code defines (rows of Pascal's triangle)
BLUR_SIZES = (1, 2, 3, 4, 5, 6, 7)
DEFAULT_BLUR = 3  # Zhang's "Tri-3": [1, 2, 1] / 4 per axis


def binomial_filter(size: int) -> np.ndarray:
    """The 1-D binomial filter of ``size`` taps (row ``size - 1`` of Pascal's triangle, sum 1):
    3 -> [1, 2, 1] / 4, 5 -> [1, 4, 6, 4, 1] / 16.  Zhang's 2-D filter is its outer product with
    itself (:func:`blur_filter`).  ValueError outside :data:`BLUR_SIZES`."""
    if size not in BLUR_SIZES:
        raise ValueError(f"blur filter size must be one of {BLUR_SIZES}, got {size!r}")
    row = np.array([math.comb(size - 1, k) for k in range(size)], np.float64)
    return row / row.sum()


def blur_filter(size: int) -> np.ndarray:
    """Zhang's 2-D blur kernel: ``outer(a, a) / sum`` of the binomial row ``a`` (size x size)."""
    a = binomial_filter(size)
    return np.outer(a, a)


def blur_downsample(x, filter_size: int = DEFAULT_BLUR, stride: ops.IntOr2 = 2):
    """Zhang's BlurPool on NHWC ``x``: every channel blurred with :func:`blur_filter`
    (``filter_size``) over reflect padding, sampled every ``stride`` pixels: (N, H, W, C) ->
    (N, ceil(H / s), ceil(W / s), C), x's dtype.  The 2-D filter is separable, so it runs as two
    strided 1-D passes of shifted slices (no depthwise conv, which is slow on XLA's CPU backend);
    the values are those of the reference depthwise conv (tests/test_blurpool.py compares)."""
    sh, sw = ops._pair(stride, "stride")
    a = [float(v) for v in binomial_filter(filter_size)]
    if filter_size == 1:
        return x[:, ::sh, ::sw, :]
    lo, hi = (filter_size - 1) // 2, filter_size // 2
    x = jnp.pad(x, ((0, 0), (lo, hi), (lo, hi), (0, 0)), mode="reflect")
    for axis, s in ((1, sh), (2, sw)):
        n_out = (x.shape[axis] - filter_size) // s + 1
        taps = [jax.lax.slice_in_dim(x, k, k + s * (n_out - 1) + 1, s, axis) for k in range(filter_size)]
        x = sum(w * t for w, t in zip(a, taps)).astype(x.dtype)
    return x


class BlurPool(_Pool):
    """Zhang's BlurPool, his replacement for average pooling: blur (``filter_size``) and subsample by
    the stride (default the window, as for the other pools; the window itself is not used), no
    parameters.  (N, H, W, C) -> (N, ceil(H/s), ceil(W/s), C)."""
    filter_size: int = DEFAULT_BLUR

    def __call__(self, x):
        return blur_downsample(x, self.filter_size, self.geometry()[1])

    def geometry(self):
        f = self.filter_size
        return (f, f), _Pool.geometry(self)[1], (1, 1)

    def flops(self, in_shape, out_shape):
        return 2 * int(np.prod(out_shape[-3:])) * self.filter_size


class MaxBlurPool(_Pool):
    """Zhang's MaxBlurPool, the anti-aliased max pool: max over ``window`` at stride 1 (no padding),
    then :func:`blur_downsample` by the stride (default the window).  On an even size H it gives
    H / 2 for a 2x2 window, as MaxPool does; no parameters."""
    filter_size: int = DEFAULT_BLUR

    def __call__(self, x):
        if self.padding == 0:  # the stride-1 max as a max of shifted slices: same values, and on XLA's CPU
            kh, kw = ops._pair(self.window, "window")  # backend ~10x faster than reduce_window's gradient
            h, w = x.shape[1] - kh + 1, x.shape[2] - kw + 1  # (ties share the gradient instead of one taking it)
            y = functools.reduce(jnp.maximum, [x[:, i:i + h, j:j + w] for i in range(kh) for j in range(kw)])
        else:
            y = ops.max_pool2d(x, self.window, 1, self.padding, impl=self.impl)
        return blur_downsample(y, self.filter_size, _Pool.geometry(self)[1])

    def geometry(self):
        w, s, _ = _Pool.geometry(self)
        return tuple(wi + self.filter_size - 1 for wi in w), s, (1, 1)

    def flops(self, in_shape, out_shape):
        wh, ww = ops._pair(self.window, "window")
        return int(np.prod(in_shape[-3:])) * wh * ww + 2 * int(np.prod(out_shape[-3:])) * self.filter_size


POOLS = {"max": MaxPool, "avg": AvgPool, "blurmax": MaxBlurPool, "blur": BlurPool}
BLURRED_POOLS = ("blurmax", "blur")


def parse_pool(kind) -> tuple[str, int | None]:
    """A pool kind -> (name in :data:`POOLS`, blur filter size or None): 'max', 'avg', and the
    anti-aliased 'blurmax' / 'blur' with an optional filter size, 'blurmax-5' (default
    :data:`DEFAULT_BLUR`).  ValueError naming the kinds otherwise."""
    name, dash, size = kind.partition("-") if isinstance(kind, str) else ("", "", "")
    if name in BLURRED_POOLS:
        if not dash:
            return name, DEFAULT_BLUR
        if size.isdigit() and int(size) in BLUR_SIZES:
            return name, int(size)
    elif name in POOLS and not dash:
        return name, None
    raise ValueError(f"unknown pooling {kind!r}; choose from {sorted(POOLS)} ('blurmax' and 'blur' take a "
                     f"blur filter size {BLUR_SIZES[0]}-{BLUR_SIZES[-1]} as 'blurmax-5'; default {DEFAULT_BLUR})")


def pool_block(kind: str, **kw) -> _Pool:
    """A pool kind of :func:`parse_pool` -> a pooling module ('max' | 'avg' | 'blurmax[-K]' | 'blur[-K]')."""
    name, size = parse_pool(kind)
    return POOLS[name](**kw, **({} if size is None else {"filter_size": size}))


class BlurConv(Conv):
    """Zhang's ConvBlurPool, the anti-aliased strided conv: the conv at stride 1 (+bias, activation),
    then :func:`blur_downsample` (``filter_size``) by ``stride``.  Same parameters as the strided
    :class:`Conv`; the output size is ceil(H1 / s) of the stride-1 conv's H1 (the strided conv
    gives floor((H1 - 1) / s) + 1: the same)."""
    filter_size: int = DEFAULT_BLUR

    @nn.compact
    def __call__(self, x):
        kh, kw = ops._pair(self.kernel_size, "kernel_size")
        c_in = x.shape[-1]
        w = self._kernel("kernel", (kh, kw, c_in // self.groups, self.features))
        y = ops.conv2d(x, w, stride=1, padding=self.padding, dilation=self.dilation, groups=self.groups,
                       impl=self.impl)
        return blur_downsample(self._finish(y), self.filter_size, self.stride)

    def geometry(self):
        k, s, _ = super().geometry()
        return tuple(ki + self.filter_size - 1 for ki in k), s, (1, 1)

    def flops(self, in_shape, out_shape):
        s = ops._pair(self.stride, "stride")
        kh, kw = ops._pair(self.kernel_size, "kernel_size")
        dense = int(np.prod(out_shape[-3:-1])) * s[0] * s[1] * out_shape[-1]
        return 2 * dense * kh * kw * (in_shape[-1] // self.groups) + 2 * int(np.prod(out_shape[-3:])) * self.filter_size


#: the conv kinds a :class:`ConvDef` builds, each standing in for a plain k x k conv (see ConvDef).
CONV_KINDS = ("conv", "separable", "dilated", "grouped", "transposed")


@dataclasses.dataclass(frozen=True)
class ConvDef:
    """A model's conv (Flax's ``conv: ModuleDef``, with kinds and pools): builds every conv and
    pooling block of a model, all running the implementation ``impl`` (see :mod:`cnnjax.fastconv`).

    ``conv(features, kernel_size, kind='conv', stride=1, padding=0, groups=4, dilation=2,
    kernel_init=None, **kw)`` -> the block of ``kind`` that stands in for a plain
    ``kernel_size`` conv with that stride and padding (``kw``: ``use_bias``, ``activation``,
    ``name``, ...):

      'conv'        :class:`Conv`
      'separable'   :class:`SeparableConv` (depthwise k x k + pointwise 1x1)
      'dilated'     :class:`DilatedConv`: 3x3 with taps ``dilation`` apart and 'same' padding,
                    whatever ``kernel_size`` and ``padding`` (at dilation 2 it spans 5x5)
      'grouped'     :class:`GroupedConv` with ``groups`` groups
      'transposed'  :class:`ConvTranspose` at stride 1 with the padding that keeps the plain
                    conv's output size (symmetric ``padding`` <= k - 1 only); where the conv
                    strides, a plain :class:`Conv` (a transposed conv upsamples)

    ``kernel_init`` (None: the block's default) initialises the plain conv (also the strided
    'transposed' one); the other kinds keep their own default init.  ``groups`` and
    ``dilation`` apply only to their kind.  ValueError for an unknown kind.

    ``blur`` > 0 (a filter size of :data:`BLUR_SIZES`) makes a strided plain conv Zhang's
    anti-aliased one (:class:`BlurConv`: stride 1, blur, subsample; same parameters); 0, the
    default, or a stride of 1 changes nothing.

    ``conv.pool(kind, window=..., ...)`` -> :class:`MaxPool` / :class:`AvgPool` for 'max' / 'avg',
    the anti-aliased :class:`MaxBlurPool` / :class:`BlurPool` for 'blurmax[-K]' / 'blur[-K]'
    (:func:`parse_pool`; K the blur filter size);
    ``conv.bind(cls)`` -> ``cls`` (a block with an ``impl`` field, e.g. :class:`UpsampleConv`
    or a Conv subclass) on this implementation.  Adding a conv kind: a name in
    :data:`CONV_KINDS` and a branch in ``__call__``; every model with a kind option gets it.
    """
    impl: str = "auto"

    def __call__(self, features: int, kernel_size: ops.IntOr2 = 3, *, kind: str = "conv", stride: ops.IntOr2 = 1,
                 padding: ops.Pad2D = 0, groups: int = 4, dilation: ops.IntOr2 = 2,
                 kernel_init: Optional[Callable] = None, blur: int = 0, **kw) -> nn.Module:
        impl = self.impl
        init = {} if kernel_init is None else {"kernel_init": kernel_init}
        if blur and kind == "conv" and stride != 1:  # anti-aliased: conv at stride 1, blur, subsample
            return BlurConv(features, kernel_size, stride=stride, padding=padding, impl=impl, filter_size=blur,
                            **init, **kw)
        if kind == "conv" or (kind == "transposed" and stride != 1):
            return Conv(features, kernel_size, stride=stride, padding=padding, impl=impl, **init, **kw)
        if kind == "separable":
            return SeparableConv(features, kernel_size, stride=stride, padding=padding, impl=impl, **kw)
        if kind == "dilated":
            return DilatedConv(features, 3, stride=stride, padding="same", dilation=dilation, impl=impl, **kw)
        if kind == "grouped":
            return GroupedConv(features, kernel_size, stride=stride, padding=padding, groups=groups, impl=impl, **kw)
        if kind == "transposed":
            return ConvTranspose(features, kernel_size, stride=1, padding=_same_size_transposed_padding(
                padding, kernel_size), **kw)
        raise ValueError(f"unknown conv kind {kind!r}; choose from {CONV_KINDS}")

    def pool(self, kind: str, **kw) -> "_Pool":
        return pool_block(kind, impl=self.impl, **kw)

    def bind(self, cls: type[nn.Module]) -> Callable[..., nn.Module]:
        return functools.partial(cls, impl=self.impl)


@dataclasses.dataclass(frozen=True)
class NormDef:
    """A model's normalisation (Flax's ``norm: ModuleDef``), received as it receives its
    :class:`ConvDef`: ``norm(train, name, **overrides)`` -> a ``nn.BatchNorm`` that normalises
    with the batch's statistics when ``train`` and with its running ones otherwise.

    ``momentum`` is Flax's: running = momentum * running + (1 - momentum) * batch (torch's
    momentum 0.1 is 0.9 here); ``epsilon`` is added to the variance (torch's default 1e-5).
    ``overrides`` (``momentum``, ``epsilon``, ``use_scale``, ...) set one layer's own values, as a
    model's ``bn_momentum`` / ``bn_scale`` options do.  The variables are ``scale``/``bias``
    (params) and ``mean``/``var`` (batch_stats) of a layer named ``name``.
    """
    momentum: float = 0.9
    epsilon: float = 1e-5

    def __call__(self, train: bool, name: str, **overrides) -> nn.BatchNorm:
        kw = {"momentum": self.momentum, "epsilon": self.epsilon, **overrides}
        return nn.BatchNorm(use_running_average=not train, name=name, **kw)


def _same_size_transposed_padding(padding: ops.Pad2D, kernel_size: ops.IntOr2):
    """A stride-1 transposed conv's padding with the output size of a plain conv padded ``padding``."""
    (top, bottom), (left, right) = ops.resolve_padding_2d(padding, kernel_size)
    kh, kw = ops._pair(kernel_size, "kernel_size")
    if top != bottom or left != right or top > kh - 1 or left > kw - 1:
        raise ValueError(f"a 'transposed' conv stands in for a conv with symmetric padding of at most "
                         f"kernel_size - 1, not padding={padding!r} with kernel_size={kernel_size!r}")
    pad = (kh - 1 - top, kw - 1 - left)
    return pad[0] if pad[0] == pad[1] else pad
