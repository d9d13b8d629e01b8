"""The 32x32 colour nets of the literature: CIFAR ResNets (He et al. 2016; kuangliu's
ResNet-18) and VGG with batch norm.  Parameter counts are pinned to the published ones in
tests/test_cifar_models.py.  ``block_conv`` swaps the blocks' 3x3 convs for any conv kind
(:data:`cnnjax.blocks.CONV_KINDS`; ``groups`` for 'grouped'); the first conv stays plain."""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from cnnjax import blocks
from cnnjax.models.common import (check_activation, check_conv_kind, check_pool, check_widths, flatten,
                                  pos_int, pos_ints, require)


class ShortcutConv(blocks.Conv):
    """The 1x1 projection of a residual shortcut (option B): a branch beside the main path, so
    the summary's receptive-field walk (which follows the main path) treats it as neutral."""

    def geometry(self):
        return (1, 1), (1, 1), (1, 1)


class BasicBlock(nn.Module):
    """He et al. 2016's basic residual block (post-activation): conv3x3(stride) BN act,
    conv3x3 BN, plus the shortcut, act.  Shortcut where the shape changes: option 'A'
    (parameter-free: stride-2 subsampling, zero channels padded on both sides) or 'B'
    (1x1 conv with the stride + BN).  The 3x3 convs are ``conv``'s ``block_conv`` kind."""
    features: int
    stride: int = 1
    shortcut: str = "A"
    block_conv: str = "conv"
    groups: int = 4
    activation: str = "relu"
    conv: blocks.ConvDef = blocks.ConvDef()
    norm: blocks.NormDef = blocks.NormDef()

    @nn.compact
    def __call__(self, x, train: bool = False):
        act = blocks.activation_fn(self.activation)

        def conv3x3(stride, name):
            return self.conv(self.features, 3, kind=self.block_conv, stride=stride, padding=1, groups=self.groups,
                             use_bias=False, kernel_init=nn.initializers.he_normal(), name=name)

        y = act(self.norm(train, "bn1")(conv3x3(self.stride, "conv1")(x)))
        y = self.norm(train, "bn2")(conv3x3(1, "conv2")(y))
        c_in = x.shape[-1]
        if self.stride != 1 or c_in != self.features:
            if self.shortcut == "A":
                x = x[:, ::self.stride, ::self.stride, :]
                extra = self.features - c_in
                x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))
            else:
                x = self.conv.bind(ShortcutConv)(self.features, 1, stride=self.stride, use_bias=False,
                                                 kernel_init=nn.initializers.he_normal(), name="shortcut")(x)
                x = self.norm(train, "shortcut_bn")(x)
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

    ``block_conv`` swaps the blocks' 3x3 convs for any conv kind; the stem stays a plain conv."""
    num_classes: int = 10
    stage_sizes: Sequence[int] = (3, 3, 3)
    widths: Sequence[int] = (16, 32, 64)
    shortcut: str = "A"
    block_conv: str = "conv"
    groups: int = 4
    activation: str = "relu"
    conv: blocks.ConvDef = blocks.ConvDef()
    norm: blocks.NormDef = blocks.NormDef()

    def __post_init__(self):
        check_widths(self.widths)
        check_activation(self.activation)
        check_conv_kind(self, "block_conv", self.widths)
        require(self.shortcut in ("A", "B"), "shortcut", "'A' (parameter-free) or 'B' (1x1 conv + BN)", self.shortcut)
        require(pos_ints(self.stage_sizes, len(self.widths)) and bool(self.stage_sizes), "stage_sizes",
                f"{len(self.widths)} positive integers (one per width)", self.stage_sizes)
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train: bool = False):
        act = blocks.activation_fn(self.activation)
        x = self.conv(self.widths[0], 3, padding=1, use_bias=False, kernel_init=nn.initializers.he_normal(),
                      name="stem")(x)
        x = act(self.norm(train, "stem_bn")(x))
        for s, (n, width) in enumerate(zip(self.stage_sizes, self.widths)):
            for b in range(n):
                x = BasicBlock(width, stride=2 if (s > 0 and b == 0) else 1, shortcut=self.shortcut,
                               block_conv=self.block_conv, groups=self.groups, activation=self.activation,
                               conv=self.conv, norm=self.norm, name=f"stage{s + 1}_block{b + 1}")(x, train)
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
    conv: blocks.ConvDef = blocks.ConvDef()
    norm: blocks.NormDef = blocks.NormDef()

    def __post_init__(self):
        check_activation(self.activation)
        check_pool(self.pool)
        require(bool(self.layers) and all(v == "M" or pos_int(v) for v in self.layers), "layers",
                "conv widths (positive integers) and 'M' (max pool)", self.layers)
        check_conv_kind(self, "block_conv", [w for w in self.layers if w != "M"])
        super().__post_init__()

    @nn.compact
    def __call__(self, x, train: bool = False):
        act = blocks.activation_fn(self.activation)
        i = p = 0
        for layer in self.layers:
            if layer == "M":
                p += 1
                x = self.conv.pool(self.pool, window=2, name=f"pool{p}")(x)
                continue
            i += 1
            kind = "conv" if i == 1 else self.block_conv
            # kuangliu's VGG convs have biases (the pinned counts); the other kinds have none
            conv = self.conv(int(layer), 3, kind=kind, padding=1, groups=self.groups, use_bias=kind == "conv",
                             kernel_init=nn.initializers.he_normal(), name=f"conv{i}")
            x = act(self.norm(train, f"bn{i}")(conv(x)))
        return nn.Dense(self.num_classes, name="fc")(flatten(x))
