"""Models as pure functions: ``variables = model.init(rng, x)``, ``logits = model.apply(variables, x)``.

Input x: float NHWC (normalised images); output: logits (N, num_classes), or for the
autoencoder an image of the input's shape.  Every model takes ``train: bool = False``
(used by models with dropout / batch norm; ignored by the others).

Use the registry: ``cnnjax.models.create("padded_cnn")``; ``available()`` lists names,
``options(name)`` a model's options.  ``create`` validates option values (ValueError naming
the model and the option).  Every model with convs or pools has ``conv_impl`` ('auto' |
'lax' | 'fast' | 'gemm', see :mod:`cnnjax.fastconv`), passed to those blocks: same
parameters and values (to float rounding), different XLA programs.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from cnnjax import blocks, fastconv, ops


def _flatten(x):
    return x.reshape(x.shape[0], -1)


class LeNet5(nn.Module):
    """LeCun et al. 1998 as taught: conv 6@5x5 pad 2, sigmoid, avg pool 2; conv 16@5x5,
    sigmoid, avg pool 2; dense 120, 84, num_classes (sigmoid between). 61,706 params on 28x28x1."""
    num_classes: int = 10
    activation: str = "sigmoid"
    pool: str = "avg"
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x, train: bool = False):
        act = blocks.activation_fn(self.activation)
        impl = self.conv_impl
        x = blocks.Conv(6, 5, padding=2, activation=self.activation, impl=impl, name="conv1")(x)
        x = blocks.pool_block(self.pool, window=2, impl=impl, name="pool1")(x)
        x = blocks.Conv(16, 5, activation=self.activation, impl=impl, name="conv2")(x)
        x = blocks.pool_block(self.pool, window=2, impl=impl, name="pool2")(x)
        x = act(nn.Dense(120, name="fc1")(_flatten(x)))
        x = act(nn.Dense(84, name="fc2")(x))
        return nn.Dense(self.num_classes, name="fc3")(x)


class SeedNet(nn.Module):
    """The seed tutorial's "Net": conv 1->10 5x5, max pool 2, relu; conv 10->20 5x5, max
    pool 2, relu; dense 320->num_classes.  8,490 params on 28x28x1."""
    num_classes: int = 10
    activation: str = "relu"
    pool: str = "max"
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x, train: bool = False):
        act = blocks.activation_fn(self.activation)
        conv = functools.partial(blocks.Conv, kernel_size=5, impl=self.conv_impl)
        pool = functools.partial(blocks.pool_block, self.pool, impl=self.conv_impl)
        x = act(pool(name="pool1")(conv(10, name="conv1")(x)))
        x = act(pool(name="pool2")(conv(20, name="conv2")(x)))
        return nn.Dense(self.num_classes, name="fc")(_flatten(x))


class MLP(nn.Module):
    """Fully connected baseline: flatten -> dense ``hidden`` sizes with ``activation`` -> classes.
    (256, 128) on 28x28x1: 784*256+256 + 256*128+128 + 128*10+10 = 235,146 params."""
    num_classes: int = 10
    hidden: Sequence[int] = (256, 128)
    activation: str = "relu"

    @nn.compact
    def __call__(self, x, train: bool = False):
        act = blocks.activation_fn(self.activation)
        x = _flatten(x)
        hidden = (self.hidden,) if isinstance(self.hidden, int) else self.hidden  # hidden=1000: one layer
        for i, width in enumerate(hidden):
            x = act(nn.Dense(int(width), name=f"fc{i + 1}")(x))
        return nn.Dense(self.num_classes, name="out")(x)


CONV2_BLOCKS = ("conv", "separable", "dilated", "grouped")


class PaddedCNN(nn.Module):
    """conv 16@5x5 pad 2, act, pool 2; <conv2> 32, act, pool 2; dense 1568->num_classes.

    ``conv2`` picks the second conv block so an ablation changes exactly one thing:
      'conv'      5x5 pad 2                      (28,938 params on 28x28x1)
      'separable' depthwise 5x5 + pointwise 1x1  (17,050)
      'dilated'   3x3 dilation 2 ('same'): the same 5x5 extent with 9/25 of the weights (20,746)
      'grouped'   5x5, ``groups`` groups          (19,338 with groups=4)

    ``groups`` applies only to 'grouped' and ``dilation`` only to 'dilated' (``create``
    refuses a non-default value with another block).

    ``padding`` (default 2, any cnnjax padding spec) pads conv1 and a 5x5 conv2 ('conv',
    'separable', 'grouped'; the 'dilated' block keeps its 'same' padding, which depends on
    ``dilation``): 2 keeps HxW, 0 shrinks each by 4.  ``stride`` (default 1) is conv1's stride:
    2 halves HxW.  The dense layer follows: padding=0 -> 28-24-12-8-4, dense 512->10 (18,378
    params); stride=2 -> 28-14-7-7-3, dense 288->10 (16,138).
    """
    num_classes: int = 10
    conv2: str = "conv"
    activation: str = "relu"
    pool: str = "max"
    widths: Sequence[int] = (16, 32)
    groups: int = 4
    dilation: int = 2
    padding: ops.Pad2D = 2
    stride: int = 1
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x, train: bool = False):
        c1, c2 = self.widths
        x = blocks.Conv(c1, 5, stride=self.stride, padding=self.padding, activation=self.activation,
                        impl=self.conv_impl, name="conv1")(x)
        x = blocks.pool_block(self.pool, window=2, impl=self.conv_impl, name="pool1")(x)
        x = self._conv2(c2)(x)
        x = blocks.pool_block(self.pool, window=2, impl=self.conv_impl, name="pool2")(x)
        return nn.Dense(self.num_classes, name="fc")(_flatten(x))

    def _conv2(self, features):
        kw = dict(features=features, activation=self.activation, impl=self.conv_impl, name="conv2")
        if self.conv2 == "conv":
            return blocks.Conv(kernel_size=5, padding=self.padding, **kw)
        if self.conv2 == "separable":
            return blocks.SeparableConv(kernel_size=5, padding=self.padding, **kw)
        if self.conv2 == "dilated":
            return blocks.DilatedConv(kernel_size=3, dilation=self.dilation, padding="same", **kw)
        if self.conv2 == "grouped":
            return blocks.GroupedConv(kernel_size=5, padding=self.padding, groups=self.groups, **kw)
        raise ValueError(f"unknown conv2 block {self.conv2!r}; choose from {CONV2_BLOCKS}")


class VGGBN(nn.Module):
    """Small VGG-style net for the accuracy target under 100K params: two stages of
    [3x3 conv, batch norm, act] x 2 + max pool 2 (widths 24, 48; one stage per width), dropout, dense.
    60,322 params on 28x28x1 (batch-norm scale/bias included; running stats are not params).
    ``bn_momentum``, ``bn_scale``: as in :class:`Airbench`."""
    num_classes: int = 10
    widths: Sequence[int] = (24, 48)
    activation: str = "relu"
    pool: str = "max"
    dropout: float = 0.3
    bn_momentum: float = 0.9
    bn_scale: bool = True
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x, train: bool = False):
        act = blocks.activation_fn(self.activation)
        for stage, width in enumerate(self.widths, start=1):
            for j in (1, 2):
                x = blocks.Conv(width, 3, padding="same", use_bias=False, impl=self.conv_impl,
                                name=f"conv{stage}_{j}")(x)
                x = act(_batch_norm(train, f"bn{stage}_{j}", momentum=self.bn_momentum, use_scale=self.bn_scale)(x))
            x = blocks.pool_block(self.pool, window=2, impl=self.conv_impl, name=f"pool{stage}")(x)
        x = nn.Dropout(self.dropout, deterministic=not train)(_flatten(x))
        return nn.Dense(self.num_classes, name="fc")(x)


class ConvAutoencoder(nn.Module):
    """Encoder: two stride-2 3x3 convs (H -> H/2 -> H/4).  Decoder: ``decoder='transpose'``
    (3x3 stride-2 transposed convs) or ``'upsample'`` (nearest x2 then 3x3 conv).  The
    output has the input's shape (cropped when H or W is not a multiple of 4); no
    activation on the last layer.  ``num_classes`` is unused (kept for the registry).
    ``conv_impl`` applies to the encoder and the 'upsample' decoder (transposed convs run lax's)."""
    num_classes: int = 10
    decoder: str = "transpose"
    widths: Sequence[int] = (16, 32)
    activation: str = "relu"
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x, train: bool = False):
        c1, c2 = self.widths
        h, w, c = x.shape[-3:]
        enc = functools.partial(blocks.Conv, kernel_size=3, stride=2, padding="same", activation=self.activation,
                                impl=self.conv_impl)
        y = enc(c1, name="enc1")(x)
        y = enc(c2, name="enc2")(y)
        if self.decoder == "transpose":
            up = functools.partial(blocks.ConvTranspose, kernel_size=3, stride=2, padding=1, output_padding=1)
        elif self.decoder == "upsample":
            up = functools.partial(blocks.UpsampleConv, kernel_size=3, factor=2, impl=self.conv_impl)
        else:
            raise ValueError(f"unknown decoder {self.decoder!r}; choose 'transpose' or 'upsample'")
        y = up(features=c1, activation=self.activation, name="dec1")(y)
        y = up(features=c, name="dec2")(y)
        return y[:, :h, :w, :]


# --------------------------------------------------------------------------- colour / 32x32 nets

#: the 3x3 conv of the residual / airbench blocks, by ``block_conv`` option: every block type
#: of :mod:`cnnjax.blocks`.  'dilated' is 3x3 with dilation 2 ('same'); 'grouped' has
#: ``groups`` groups; 'transposed' is a stride-1 ConvTranspose (padding 1: same size) where the
#: conv has stride 1, and a plain conv where it downsamples (a transposed conv upsamples).
BLOCK_CONVS = ("conv", "separable", "dilated", "grouped", "transposed")


def _conv3x3(kind: str, features: int, stride: int, *, groups: int, impl: str, name: str, kernel_init=None,
             use_bias: bool = False):
    kw = dict(features=features, use_bias=use_bias, name=name)
    if kernel_init is not None and kind == "conv":
        kw["kernel_init"] = kernel_init
    elif kind == "conv" or (kind == "transposed" and stride != 1):
        kw["kernel_init"] = nn.initializers.he_normal()
    if kind == "conv" or (kind == "transposed" and stride != 1):
        return blocks.Conv(kernel_size=3, stride=stride, padding=1, impl=impl, **kw)
    if kind == "separable":
        return blocks.SeparableConv(kernel_size=3, stride=stride, padding=1, impl=impl, **kw)
    if kind == "dilated":
        return blocks.DilatedConv(kernel_size=3, dilation=2, stride=stride, padding="same", impl=impl, **kw)
    if kind == "grouped":
        return blocks.GroupedConv(kernel_size=3, stride=stride, padding=1, groups=groups, impl=impl, **kw)
    if kind == "transposed":
        return blocks.ConvTranspose(kernel_size=3, stride=1, padding=1, **kw)
    raise ValueError(f"unknown block_conv {kind!r}; choose from {BLOCK_CONVS}")


def _batch_norm(train: bool, name: str, **kw):
    return nn.BatchNorm(use_running_average=not train, momentum=kw.pop("momentum", 0.9),
                        epsilon=kw.pop("epsilon", 1e-5), name=name, **kw)


class ShortcutConv(blocks.Conv):
    """The 1x1 projection of a residual shortcut (option B): a branch beside the main path, so
    the summary's receptive-field walk (which follows the main path) treats it as neutral."""

    def geometry(self):
        return (1, 1), (1, 1), (1, 1)


class BasicBlock(nn.Module):
    """He et al. 2016's basic residual block (post-activation): conv3x3(stride) BN act,
    conv3x3 BN, plus the shortcut, act.  Shortcut where the shape changes: option 'A'
    (parameter-free: stride-2 subsampling, zero channels padded on both sides) or 'B'
    (1x1 conv with the stride + BN)."""
    features: int
    stride: int = 1
    shortcut: str = "A"
    block_conv: str = "conv"
    groups: int = 4
    activation: str = "relu"
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x, train: bool = False):
        act = blocks.activation_fn(self.activation)
        conv = functools.partial(_conv3x3, self.block_conv, groups=self.groups, impl=self.conv_impl)
        y = act(_batch_norm(train, "bn1")(conv(self.features, self.stride, name="conv1")(x)))
        y = _batch_norm(train, "bn2")(conv(self.features, 1, name="conv2")(y))
        c_in = x.shape[-1]
        if self.stride != 1 or c_in != self.features:
            if self.shortcut == "A":
                x = x[:, ::self.stride, ::self.stride, :]
                extra = self.features - c_in
                x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))
            else:
                x = ShortcutConv(self.features, 1, stride=self.stride, use_bias=False, impl=self.conv_impl,
                                 kernel_init=nn.initializers.he_normal(), name="shortcut")(x)
                x = _batch_norm(train, "shortcut_bn")(x)
        return act(y + x)


class ResNet(nn.Module):
    """ResNets for 32x32 inputs (no max pool after a 3x3 stem): stem conv3x3 ``widths[0]``,
    BN, act; stages of ``stage_sizes`` :class:`BasicBlock` s (the first of each later stage
    strides 2); global average pool; dense.

    * ``resnet20`` / ``resnet56``: He et al. 2016 sec. 4.2: widths 16/32/64, 3 stages of
      n = 3 / 9 blocks, option A shortcuts: 269,722 / 853,018 params ("0.27M" / "0.85M"
      in the paper's Table 6) on 32x32x3 with 10 classes;
    * ``resnet18``: the CIFAR ResNet-18 of kuangliu/pytorch-cifar (64/128/256/512, 2 blocks
      each, option B): 11,173,962 params (torchvision's count for the same layers).

    ``block_conv`` swaps the blocks' 3x3 convs for any block type (:data:`BLOCK_CONVS`);
    the stem stays a plain conv."""
    num_classes: int = 10
    stage_sizes: Sequence[int] = (3, 3, 3)
    widths: Sequence[int] = (16, 32, 64)
    shortcut: str = "A"
    block_conv: str = "conv"
    groups: int = 4
    activation: str = "relu"
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x, train: bool = False):
        act = blocks.activation_fn(self.activation)
        x = blocks.Conv(self.widths[0], 3, padding=1, use_bias=False, impl=self.conv_impl,
                        kernel_init=nn.initializers.he_normal(), name="stem")(x)
        x = act(_batch_norm(train, "stem_bn")(x))
        for s, (n, width) in enumerate(zip(self.stage_sizes, self.widths)):
            for b in range(n):
                x = BasicBlock(width, stride=2 if (s > 0 and b == 0) else 1, shortcut=self.shortcut,
                               block_conv=self.block_conv, groups=self.groups, activation=self.activation,
                               conv_impl=self.conv_impl, name=f"stage{s + 1}_block{b + 1}")(x, train)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes, name="fc")(x)


class VGG(nn.Module):
    """VGG with batch norm for 32x32 inputs (kuangliu/pytorch-cifar's VGG): ``layers`` lists
    conv widths (3x3 'same', BN, act) and 'M' (2x2 max pool); then a dense layer on the
    flattened 1x1 map.  ``vgg11_bn``: 9,231,114 params; ``vgg16_bn``: 14,728,266 (on 32x32x3,
    10 classes; the same counts as the PyTorch original).  ``block_conv`` as in :class:`ResNet`
    (the first conv stays plain)."""
    num_classes: int = 10
    layers: Sequence = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
    block_conv: str = "conv"
    groups: int = 4
    activation: str = "relu"
    pool: str = "max"
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x, train: bool = False):
        act = blocks.activation_fn(self.activation)
        i = p = 0
        for layer in self.layers:
            if layer == "M":
                p += 1
                x = blocks.pool_block(self.pool, window=2, impl=self.conv_impl, name=f"pool{p}")(x)
                continue
            i += 1
            kind = "conv" if i == 1 else self.block_conv
            # kuangliu's VGG convs have biases (the pinned counts); the other block types have none
            conv = _conv3x3(kind, int(layer), 1, groups=self.groups, impl=self.conv_impl, name=f"conv{i}",
                            use_bias=kind == "conv")
            x = act(_batch_norm(train, f"bn{i}")(conv(x)))
        return nn.Dense(self.num_classes, name="fc")(_flatten(x))


def dirac_init(base=nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")):
    """airbench's conv init: PyTorch's default uniform(+-1/sqrt(fan_in)), then the first
    min(C_in, C_out) filters set to identity (a Dirac delta at the centre): an implicit residual."""
    def init(key, shape, dtype=jnp.float32):
        w = base(key, shape, dtype)
        kh, kw, c_in, c_out = shape
        n = min(c_in, c_out)
        eye = jnp.zeros((kh, kw, c_in, n), dtype).at[kh // 2, kw // 2, jnp.arange(n), jnp.arange(n)].set(1)
        return w.at[..., :n].set(eye)
    return init


class Airbench(nn.Module):
    """The net of Keller Jordan's airbench94 (94% on CIFAR-10; github.com/KellerJordan/cifar10-airbench,
    airbench94.py ``make_net``): a 2x2 'whitening' conv to 2*3*2*2 = 24 channels (+bias), GELU;
    three groups [conv3x3 'same' (no bias, Dirac init), max pool 2, BN, GELU, conv3x3, BN, GELU]
    of widths 64, 256, 256; max pool 3; dense to classes without bias; times 1/9.  BN: momentum
    0.6, eps 1e-12, no trained scale (airbench freezes it at 1).

    1,971,640 params on 32x32x3 (airbench's PyTorch count is 1,972,792: it also counts the
    1,152 frozen BN weights).  The whitening conv is learned unless config.whiten_init sets it, as
    airbench does, from the training set's patch covariance and freezes its kernel (it needs
    whiten_width = 2*2*2*C; airbench also freezes the conv's bias after 3 epochs: not done here).
    airbench runs in fp16 with channels-last; ``block_conv`` swaps the groups' 3x3 convs (as in ResNet).

    Batch norm: ``bn_momentum`` is Flax's (running = momentum * running + (1 - momentum) * batch;
    PyTorch's momentum is 1 minus it), ``bn_scale=True`` adds a trained scale per channel.

    ``airbench28_s`` / ``_m`` / ``_l``: the net sized for 28x28x1 (Fashion-MNIST) time budgets on 2 CPU cores:
    whiten_width 8 = 2*2*2*1 (so config.whiten_init applies), group widths s (8, 16, 16), m (16, 32, 32),
    l (32, 64, 64).  Shapes (NHWC) on (N, 28, 28, 1): whiten 2x2 valid -> (N, 27, 27, 8); group 1 conv
    'same' then max pool 2 -> 13x13; group 2 -> 6x6; group 3 -> 3x3; max pool 3 -> (N, 1, 1, w3); dense
    -> (N, 10).  Params (10 classes, no BN scale): s 9,496, m 36,232, l 141,544.  Training
    throughput on this 2-core CPU (benchmarks.train_throughput, quiet): m 6,892 img/s at batch 64 and
    4,521 at 256, l 3,778 and 2,165 -- batch 64 keeps the activations in the caches (docs/speedrun.md)."""
    num_classes: int = 10
    widths: Sequence[int] = (64, 256, 256)
    whiten_width: int = 24
    scaling_factor: float = 1 / 9
    block_conv: str = "conv"
    groups: int = 4
    bn_momentum: float = 0.6
    bn_scale: bool = False
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x, train: bool = False):
        act = ops.gelu  # exact, as torch.nn.GELU()
        bn = functools.partial(_batch_norm, train, momentum=self.bn_momentum, epsilon=1e-12, use_scale=self.bn_scale)
        x = act(blocks.Conv(self.whiten_width, 2, padding=0, impl=self.conv_impl, name="whiten")(x))
        for g, width in enumerate(self.widths, start=1):
            conv = functools.partial(_conv3x3, self.block_conv, width, 1, groups=self.groups, impl=self.conv_impl,
                                     kernel_init=dirac_init())
            x = conv(name=f"group{g}_conv1")(x)
            x = blocks.pool_block("max", window=2, impl=self.conv_impl, name=f"group{g}_pool")(x)
            x = act(bn(f"group{g}_bn1")(x))
            x = act(bn(f"group{g}_bn2")(conv(name=f"group{g}_conv2")(x)))
        x = blocks.pool_block("max", window=3, impl=self.conv_impl, name="pool")(x)
        x = nn.Dense(self.num_classes, use_bias=False, name="fc")(_flatten(x))
        return x * self.scaling_factor


_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "lenet5": LeNet5,
    "seed_net": SeedNet,
    "padded_cnn": functools.partial(PaddedCNN, conv2="conv"),
    "separable_cnn": functools.partial(PaddedCNN, conv2="separable"),
    "dilated_cnn": functools.partial(PaddedCNN, conv2="dilated"),
    "grouped_cnn": functools.partial(PaddedCNN, conv2="grouped"),
    "conv_autoencoder": ConvAutoencoder,
    "mlp": MLP,
    "vgg_bn": VGGBN,
    "resnet20": functools.partial(ResNet, stage_sizes=(3, 3, 3)),
    "resnet56": functools.partial(ResNet, stage_sizes=(9, 9, 9)),
    "resnet18": functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), widths=(64, 128, 256, 512), shortcut="B"),
    "vgg11_bn": functools.partial(VGG, layers=(64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")),
    "vgg16_bn": functools.partial(VGG, layers=(64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                                               512, 512, 512, "M")),
    "airbench": Airbench,
    # Fashion-MNIST speedrun sizes (issue 15): see Airbench's docstring
    "airbench28_s": functools.partial(Airbench, widths=(8, 16, 16), whiten_width=8),
    "airbench28_m": functools.partial(Airbench, widths=(16, 32, 32), whiten_width=8),
    "airbench28_l": functools.partial(Airbench, widths=(32, 64, 64), whiten_width=8),
}



def register(name: str, factory: Callable[..., nn.Module]) -> None:
    """Add a model factory (called as ``factory(num_classes=..., **kw)``) to the registry."""
    _REGISTRY[name] = factory


def available() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def _factory(name: str):
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available())}") from None


def _fields(factory) -> dict:
    """A factory's options -> their defaults (a partial's keywords included); {} when unknown."""
    cls = factory.func if isinstance(factory, functools.partial) else factory
    if not dataclasses.is_dataclass(cls):
        return {}
    out = {f.name: f.default for f in dataclasses.fields(cls) if f.name not in ("parent", "name", "num_classes")}
    out.update(factory.keywords if isinstance(factory, functools.partial) else {})
    return out


def options(name: str) -> list[str]:
    """The option names ``create(name, ..., **options)`` accepts (num_classes is not one)."""
    return sorted(_fields(_factory(name)))


#: models whose ``widths`` is a fixed number of stages (VGGBN: one stage per width).
_FIXED_STAGES = {PaddedCNN: 2, ConvAutoencoder: 2}


def _pos_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1


def _pos_ints(v, n=None) -> bool:
    """A list / tuple of positive ints (exactly ``n`` of them when n is given)."""
    return isinstance(v, (list, tuple)) and all(_pos_int(i) for i in v) and (n is None or len(v) == n)


def _check(name: str, factory, num_classes, kw: dict) -> None:
    """ValueError naming the model and option for values that would fail later with a
    traceback, or be silently ignored."""
    opts = {**_fields(factory), **kw}
    cls = factory.func if isinstance(factory, functools.partial) else factory

    def bad(option, want, value=None):
        raise ValueError(f"{name}: {option} must be {want}, got {opts.get(option, value)!r}")

    if not _pos_int(num_classes):
        bad("num_classes", "a positive integer", num_classes)
    if "widths" in opts:
        n = _FIXED_STAGES.get(cls)
        if not _pos_ints(opts["widths"], n) or not opts["widths"]:
            bad("widths", f"{n or 'one or more'} positive integers")
    if "hidden" in opts and not (_pos_int(opts["hidden"]) or _pos_ints(opts["hidden"])):
        bad("hidden", "a positive integer or a list of them (empty: no hidden layer)")
    if "conv_impl" in opts and opts["conv_impl"] not in fastconv.IMPLS:
        bad("conv_impl", f"one of {fastconv.IMPLS}")
    if "activation" in opts and opts["activation"] not in (*blocks.ACTIVATIONS, None, "none"):
        bad("activation", f"one of {sorted(blocks.ACTIVATIONS)} or 'none'")
    if "pool" in opts and opts["pool"] not in blocks.POOLS:
        bad("pool", f"one of {sorted(blocks.POOLS)}")
    if "decoder" in opts and opts["decoder"] not in ("transpose", "upsample"):
        bad("decoder", "'transpose' or 'upsample'")
    if "dropout" in opts and not (isinstance(opts["dropout"], (int, float)) and 0 <= opts["dropout"] < 1):
        bad("dropout", "a rate in [0, 1)")
    if "stride" in opts and not (_pos_int(opts["stride"]) or _pos_ints(opts["stride"], 2)):
        bad("stride", "a positive integer or a pair of them")
    if "padding" in opts:
        try:
            ops.resolve_padding_2d(opts["padding"], 5)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{name}: padding: {e}") from None
    if "conv2" in opts:
        conv2 = opts["conv2"]
        if conv2 not in CONV2_BLOCKS:
            bad("conv2", f"one of {CONV2_BLOCKS}")
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        for option, block in (("groups", "grouped"), ("dilation", "dilated")):
            if not _pos_int(opts[option]):
                bad(option, "a positive integer")
            if conv2 != block and opts[option] != defaults[option]:
                raise ValueError(f"{name}: {option} applies only to conv2={block!r}, but conv2={conv2!r} "
                                 f"({option}={opts[option]!r} would be ignored)")
        groups, (c1, c2) = opts["groups"], opts["widths"]
        if conv2 == "grouped" and (c1 % groups or c2 % groups):
            raise ValueError(f"{name}: groups={groups} must divide both widths {tuple(opts['widths'])}")
    if "block_conv" in opts:
        _check_block_conv(name, cls, opts, bad)
    if "bn_momentum" in opts and not (isinstance(opts["bn_momentum"], (int, float)) and not
                                      isinstance(opts["bn_momentum"], bool) and 0 <= opts["bn_momentum"] < 1):
        bad("bn_momentum", "a number in [0, 1) (Flax's: the running statistics' weight on their old value)")
    if "bn_scale" in opts and not isinstance(opts["bn_scale"], (bool, np.bool_)):
        bad("bn_scale", "true or false")


def _check_block_conv(name, cls, opts, bad) -> None:
    """Options of the 32x32 nets (ResNet, VGG, Airbench)."""
    kind, groups = opts["block_conv"], opts["groups"]
    if kind not in BLOCK_CONVS:
        bad("block_conv", f"one of {BLOCK_CONVS}")
    if not _pos_int(groups):
        bad("groups", "a positive integer")
    default_groups = next(f.default for f in dataclasses.fields(cls) if f.name == "groups")
    if kind != "grouped" and groups != default_groups:
        raise ValueError(f"{name}: groups applies only to block_conv='grouped', but block_conv={kind!r} "
                         f"(groups={groups!r} would be ignored)")
    widths = [w for w in opts.get("widths", opts.get("layers", ())) if w != "M"]
    if kind == "grouped" and any(int(w) % groups for w in widths):
        raise ValueError(f"{name}: groups={groups} must divide every width {tuple(widths)}")
    if "layers" in opts and not (opts["layers"] and all(v == "M" or _pos_int(v) for v in opts["layers"])):
        bad("layers", "conv widths (positive integers) and 'M' (max pool)")
    if "shortcut" in opts and opts["shortcut"] not in ("A", "B"):
        bad("shortcut", "'A' (parameter-free) or 'B' (1x1 conv + BN)")
    if "stage_sizes" in opts and not (_pos_ints(opts["stage_sizes"], len(opts["widths"])) and opts["stage_sizes"]):
        bad("stage_sizes", f"{len(opts['widths'])} positive integers (one per width)")
    if "whiten_width" in opts and not _pos_int(opts["whiten_width"]):
        bad("whiten_width", "a positive integer")


_UNSET = object()


def create(name: str, num_classes=_UNSET, /, **kw) -> nn.Module:
    """A model by name for ``num_classes`` outputs (default 10; set by the dataset, also
    accepted as a keyword); ``kw`` sets its options (e.g. ``activation='sigmoid'``,
    ``pool='avg'``, ``conv_impl='lax'``; :func:`options` lists them).

    Unknown names, unknown options and invalid option values raise ValueError naming the
    model and the option."""
    factory = _factory(name)
    if "num_classes" in kw:
        if num_classes is not _UNSET:
            raise ValueError(f"{name}: num_classes is set by the dataset, not a model option")
        num_classes = kw.pop("num_classes")
    num_classes = 10 if num_classes is _UNSET else num_classes
    fields = _fields(factory)
    if fields:
        unknown = set(kw) - set(fields)
        if unknown:
            raise ValueError(f"model {name!r} has no option(s) {sorted(unknown)}; options: {sorted(fields)}")
        _check(name, factory, num_classes, kw)
    return factory(num_classes=num_classes, **kw)


from cnnjax import models_torchvision  # noqa: E402,F401 -- registers the torchvision-layout tv_* models
