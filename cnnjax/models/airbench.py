"""The net of Keller Jordan's airbench94 and its Fashion-MNIST sizes (the speedrun's nets)."""
from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from cnnjax import blocks, ops
from cnnjax.models.common import check_batch_norm, check_conv_kind, check_widths, flatten, pos_int, require


def dirac_init(base=nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")):
    """airbench's conv init: PyTorch's default uniform(+-1/sqrt(fan_in)), then the first
    min(C_in, C_out) filters set to identity (a Dirac delta at the centre): an implicit residual.
    For HWIO kernels (kh, kw, C_in, C_out)."""
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
    airbench runs in fp16 with channels-last; ``block_conv`` swaps the groups' 3x3 convs (as in
    :class:`~cnnjax.models.cifar.ResNet`).

    Batch norm: ``bn_momentum`` is Flax's (running = momentum * running + (1 - momentum) * batch;
    PyTorch's momentum is 1 minus it), ``bn_scale=True`` adds a trained scale per channel.

    ``airbench28_s`` / ``_m`` / ``_l``: the net sized for 28x28x1 (Fashion-MNIST) time budgets:
    whiten_width 8 = 2*2*2*1 (so config.whiten_init applies), group widths s (8, 16, 16), m (16, 32, 32),
    l (32, 64, 64).  Shapes (NHWC) on (N, 28, 28, 1): whiten 2x2 valid -> (N, 27, 27, 8); group 1 conv
    'same' then max pool 2 -> 13x13; group 2 -> 6x6; group 3 -> 3x3; max pool 3 -> (N, 1, 1, w3); dense
    -> (N, 10).  Params (10 classes, no BN scale): s 9,496, m 36,232, l 141,544.  Their training
    speed by batch size: docs/speedrun.md ("Where the time goes")."""
    num_classes: int = 10
    widths: Sequence[int] = (64, 256, 256)
    whiten_width: int = 24
    scaling_factor: float = 1 / 9
    block_conv: str = "conv"
    groups: int = 4
    bn_momentum: float = 0.6
    bn_scale: bool = False
    conv: blocks.ConvDef = blocks.ConvDef()
    norm: blocks.NormDef = blocks.NormDef()

    def __post_init__(self):
        check_widths(self.widths)
        check_conv_kind(self, "block_conv", self.widths)
        require(pos_int(self.whiten_width), "whiten_width", "a positive integer", self.whiten_width)
        check_batch_norm(self.bn_momentum, self.bn_scale)
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train: bool = False):
        act = ops.gelu  # exact, as torch.nn.GELU()
        bn = functools.partial(self.norm, train, momentum=self.bn_momentum, epsilon=1e-12, use_scale=self.bn_scale)
        x = act(self.conv(self.whiten_width, 2, padding=0, name="whiten")(x))
        for g, width in enumerate(self.widths, start=1):
            conv = functools.partial(self.conv, width, 3, kind=self.block_conv, padding=1, groups=self.groups,
                                     use_bias=False, kernel_init=dirac_init())
            x = conv(name=f"group{g}_conv1")(x)
            x = self.conv.pool("max", window=2, name=f"group{g}_pool")(x)
            x = act(bn(f"group{g}_bn1")(x))
            x = act(bn(f"group{g}_bn2")(conv(name=f"group{g}_conv2")(x)))
        x = self.conv.pool("max", window=3, name="pool")(x)
        x = nn.Dense(self.num_classes, use_bias=False, name="fc")(flatten(x))
        return x * self.scaling_factor
