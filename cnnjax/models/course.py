"""The course's nets, for 28x28 grey images (any NHWC input works): LeNet-5, the seed
tutorial's net, an MLP baseline, the padded CNN whose second conv is an ablation switch, a
small VGG with batch norm, and a conv autoencoder.

Each conv model receives its conv as ``conv`` (a :class:`cnnjax.blocks.ConvDef`: it builds the
model's conv and pool blocks on one implementation) and checks its options when constructed
(:class:`~cnnjax.models.common.OptionError` naming the option).

The conv nets (lenet5, seed_net, padded_cnn, vgg_bn) take ``pool`` ('max', 'avg', or Zhang's
anti-aliased 'blurmax[-K]' / 'blur[-K]': :func:`cnnjax.blocks.parse_pool`) and ``head``:
'flatten' (the default: a dense layer on the flattened feature map, position-dependent) or 'gap'
(global average pooling over H x W first, as ResNets end; the dense layer then sees one value per
channel, so it has H*W times fewer weights).  The defaults keep the pinned parameter counts.
"""
from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn

from cnnjax import blocks, ops
from cnnjax.models.common import (blur_size, check_activation, check_batch_norm, check_conv_kind,
                                  check_head, check_padding, check_pool, check_widths, flatten, head_features, pos_int,
                                  pos_ints, require)


class LeNet5(nn.Module):
    """LeCun et al. 1998 as taught: conv 6@5x5 pad 2, sigmoid, avg pool 2; conv 16@5x5,
    sigmoid, avg pool 2; dense 120, 84, num_classes (sigmoid between). 61,706 params on 28x28x1."""
    num_classes: int = 10
    activation: str = "sigmoid"
    pool: str = "avg"
    head: str = "flatten"
    conv: blocks.ConvDef = blocks.ConvDef()

    def __post_init__(self):
        check_activation(self.activation)
        check_pool(self.pool)
        check_head(self.head)
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train: bool = False):
        act = blocks.activation_fn(self.activation)
        x = self.conv(6, 5, padding=2, activation=self.activation, name="conv1")(x)
        x = self.conv.pool(self.pool, window=2, name="pool1")(x)
        x = self.conv(16, 5, activation=self.activation, name="conv2")(x)
        x = self.conv.pool(self.pool, window=2, name="pool2")(x)
        x = act(nn.Dense(120, name="fc1")(head_features(x, self.head)))
        x = act(nn.Dense(84, name="fc2")(x))
        return nn.Dense(self.num_classes, name="fc3")(x)


class SeedNet(nn.Module):
    """The seed tutorial's "Net": conv 1->10 5x5, max pool 2, relu; conv 10->20 5x5, max
    pool 2, relu; dense 320->num_classes.  8,490 params on 28x28x1."""
    num_classes: int = 10
    activation: str = "relu"
    pool: str = "max"
    head: str = "flatten"
    conv: blocks.ConvDef = blocks.ConvDef()

    def __post_init__(self):
        check_activation(self.activation)
        check_pool(self.pool)
        check_head(self.head)
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train: bool = False):
        act = blocks.activation_fn(self.activation)
        x = act(self.conv.pool(self.pool, name="pool1")(self.conv(10, 5, name="conv1")(x)))
        x = act(self.conv.pool(self.pool, name="pool2")(self.conv(20, 5, name="conv2")(x)))
        return nn.Dense(self.num_classes, name="fc")(head_features(x, self.head))


class MLP(nn.Module):
    """Fully connected baseline: flatten -> dense ``hidden`` sizes with ``activation`` -> classes.
    (256, 128) on 28x28x1: 784*256+256 + 256*128+128 + 128*10+10 = 235,146 params.
    ``hidden`` may be one int (one hidden layer) or empty (logistic regression)."""
    num_classes: int = 10
    hidden: Sequence[int] = (256, 128)
    activation: str = "relu"

    def __post_init__(self):
        require(pos_int(self.hidden) or pos_ints(self.hidden), "hidden",
                "a positive integer or a list of them (empty: no hidden layer)", self.hidden)
        check_activation(self.activation)
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train: bool = False):
        act = blocks.activation_fn(self.activation)
        x = flatten(x)
        hidden = (self.hidden,) if isinstance(self.hidden, int) else self.hidden
        for i, width in enumerate(hidden):
            x = act(nn.Dense(int(width), name=f"fc{i + 1}")(x))
        return nn.Dense(self.num_classes, name="out")(x)


class PaddedCNN(nn.Module):
    """conv 16@5x5 pad 2, act, pool 2; <conv2> 32, act, pool 2; dense 1568->num_classes.

    ``conv2`` is the second conv's kind (:data:`cnnjax.blocks.CONV_KINDS`), so an ablation
    changes exactly one thing:
      'conv'       5x5 pad 2                      (28,938 params on 28x28x1)
      'separable'  depthwise 5x5 + pointwise 1x1  (17,050)
      'dilated'    3x3 dilation 2 ('same'): the same 5x5 extent with 9/25 of the weights (20,746)
      'grouped'    5x5, ``groups`` groups          (19,338 with groups=4)
      'transposed' 5x5 stride-1 transposed conv of the same output size (28,938)

    ``groups`` applies only to 'grouped' and ``dilation`` only to 'dilated' (a non-default
    value with another kind is refused).

    ``padding`` (default 2, any cnnjax padding spec) pads conv1 and a 5x5 conv2 (all kinds
    but 'dilated', which keeps its 'same' padding, which depends on ``dilation``): 2 keeps
    HxW, 0 shrinks each by 4.  ``stride`` (default 1) is conv1's stride: 2 halves HxW.  The
    dense layer follows: padding=0 -> 28-24-12-8-4, dense 512->10 (18,378 params); stride=2
    -> 28-14-7-7-3, dense 288->10 (16,138).  With an anti-aliased ``pool`` ('blurmax[-K]' /
    'blur[-K]') a strided conv1 is anti-aliased too (:class:`cnnjax.blocks.BlurConv`, same
    parameters, the same sizes; 'blur' rounds an odd size up, as Zhang's BlurPool does: 7 -> 4).  ``head='gap'``: dense 32->10 (13,578 params).
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
    head: str = "flatten"
    conv: blocks.ConvDef = blocks.ConvDef()

    def __post_init__(self):
        check_widths(self.widths, 2)
        check_activation(self.activation)
        check_pool(self.pool)
        check_head(self.head)
        require(pos_int(self.stride) or pos_ints(self.stride, 2), "stride", "a positive integer or a pair of them",
                self.stride)
        check_padding(self.padding, 5)
        check_conv_kind(self, "conv2", self.widths)
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train: bool = False):
        c1, c2 = self.widths
        # an anti-aliased pool kind anti-aliases a strided conv1 too, with the same blur (Zhang's ConvBlurPool)
        x = self.conv(c1, 5, stride=self.stride, padding=self.padding, activation=self.activation,
                      blur=blur_size(self.pool), name="conv1")(x)
        x = self.conv.pool(self.pool, window=2, name="pool1")(x)
        x = self.conv(c2, 5, kind=self.conv2, padding=self.padding, groups=self.groups, dilation=self.dilation,
                      activation=self.activation, name="conv2")(x)
        x = self.conv.pool(self.pool, window=2, name="pool2")(x)
        return nn.Dense(self.num_classes, name="fc")(head_features(x, self.head))


class VGGBN(nn.Module):
    """Small VGG-style net for the accuracy target under 100K params: two stages of
    [3x3 conv, batch norm, act] x 2 + max pool 2 (widths 24, 48; one stage per width), dropout, dense.
    60,322 params on 28x28x1 (batch-norm scale/bias included; running stats are not params).
    ``bn_momentum``, ``bn_scale``: as in :class:`~cnnjax.models.airbench.Airbench`."""
    num_classes: int = 10
    widths: Sequence[int] = (24, 48)
    activation: str = "relu"
    pool: str = "max"
    dropout: float = 0.3
    bn_momentum: float = 0.9
    bn_scale: bool = True
    head: str = "flatten"
    conv: blocks.ConvDef = blocks.ConvDef()
    norm: blocks.NormDef = blocks.NormDef()

    def __post_init__(self):
        check_widths(self.widths)
        check_activation(self.activation)
        check_pool(self.pool)
        check_head(self.head)
        require(isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1, "dropout", "a rate in [0, 1)",
                self.dropout)
        check_batch_norm(self.bn_momentum, self.bn_scale)
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train: bool = False):
        act = blocks.activation_fn(self.activation)
        for stage, width in enumerate(self.widths, start=1):
            for j in (1, 2):
                x = self.conv(width, 3, padding="same", use_bias=False, name=f"conv{stage}_{j}")(x)
                x = act(self.norm(train, f"bn{stage}_{j}", momentum=self.bn_momentum, use_scale=self.bn_scale)(x))
            x = self.conv.pool(self.pool, window=2, name=f"pool{stage}")(x)
        x = nn.Dropout(self.dropout, deterministic=not train)(head_features(x, self.head))
        return nn.Dense(self.num_classes, name="fc")(x)


class ConvAutoencoder(nn.Module):
    """Encoder: two stride-2 3x3 convs (H -> H/2 -> H/4).  Decoder: ``decoder='transpose'``
    (3x3 stride-2 transposed convs) or ``'upsample'`` (nearest x2 then 3x3 conv).  The
    output has the input's shape (cropped when H or W is not a multiple of 4); no
    activation on the last layer.  ``num_classes`` is unused (kept for the registry).
    ``conv`` builds the encoder and the 'upsample' decoder (transposed convs run lax's)."""
    num_classes: int = 10
    decoder: str = "transpose"
    widths: Sequence[int] = (16, 32)
    activation: str = "relu"
    conv: blocks.ConvDef = blocks.ConvDef()

    def __post_init__(self):
        check_widths(self.widths, 2)
        check_activation(self.activation)
        require(self.decoder in ("transpose", "upsample"), "decoder", "'transpose' or 'upsample'", self.decoder)
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train: bool = False):
        c1, c2 = self.widths
        h, w, c = x.shape[-3:]
        y = self.conv(c1, 3, stride=2, padding="same", activation=self.activation, name="enc1")(x)
        y = self.conv(c2, 3, stride=2, padding="same", activation=self.activation, name="enc2")(y)
        if self.decoder == "transpose":
            up = functools.partial(blocks.ConvTranspose, kernel_size=3, stride=2, padding=1, output_padding=1)
        else:
            up = functools.partial(self.conv.bind(blocks.UpsampleConv), kernel_size=3, factor=2)
        y = up(features=c1, activation=self.activation, name="dec1")(y)
        y = up(features=c, name="dec2")(y)
        return y[:, :h, :w, :]
