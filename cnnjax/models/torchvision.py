"""torchvision's ResNet and VGG (``torchvision.models.resnet18``, ``vgg16_bn``, ...) as cnnjax models,
laid out so that a torchvision ``state_dict`` converts key by key (:mod:`cnnjax.weights.pytorch`).

Module names follow torchvision's keys with a numeric index joined by '_': ``layer1.0.conv1.weight``
is ``layer1_0/conv1/kernel``, ``features.3.running_mean`` is ``features_3/mean`` (batch_stats),
``classifier.6.bias`` is ``classifier_6/bias``.  NHWC input (normalised images); batch norm as
torch's (epsilon 1e-5; Flax momentum 0.9 = torch's 0.1).

* ``tv_resnet18`` / ``tv_resnet34``: conv 7x7/2 pad 3, BN, ReLU, max pool 3x3/2 pad 1, four stages
  of basic blocks (64, 128, 256, 512; a 1x1 conv + BN ``downsample`` where the shape changes),
  global average pool, ``fc``.  11,689,512 / 21,797,672 params with 1,000 classes (torchvision's).
* ``tv_vgg11_bn`` / ``tv_vgg16_bn``: ``features`` (3x3 pad 1 conv, BN, ReLU; 'M' = max pool 2),
  adaptive average pool to ``pool_size`` x ``pool_size`` (7: torch's bins), ``classifier``
  (``hidden``, ReLU, dropout, ``hidden``, ReLU, dropout, classes).  132,868,840 / 138,365,992
  params with 1,000 classes on 224x224x3.  The first classifier layer reads the flattened NHWC map;
  the converter reorders torch's NCHW-flattened weights for it.
"""
from __future__ import annotations

import functools
import re
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from cnnjax import blocks

#: the registry names of the models laid out as torchvision's (cnnjax.models.registry)
MODELS = ("tv_resnet18", "tv_resnet34", "tv_vgg11_bn", "tv_vgg16_bn")


def torch_module_path(module: str) -> str:
    """torchvision's module name -> this module's path: 'layer1.0.downsample.1' -> 'layer1_0/downsample_1'."""
    return re.sub(r"\.(\d+)", r"_\1", module).replace(".", "/")


_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")  # torchvision's kaiming_normal_(fan_out)


class TVBasicBlock(nn.Module):
    """torchvision's ``BasicBlock``: conv1 3x3 (stride), bn1, ReLU, conv2 3x3, bn2, + identity or
    ``downsample`` (1x1 conv with the stride, BN), ReLU."""
    features: int
    stride: int = 1
    conv: blocks.ConvDef = blocks.ConvDef()
    norm: blocks.NormDef = blocks.NormDef()

    @nn.compact
    def __call__(self, x, train: bool = False):
        conv = functools.partial(self.conv, use_bias=False, kernel_init=_conv_init)
        y = nn.relu(self.norm(train, "bn1")(conv(self.features, 3, stride=self.stride, padding=1, name="conv1")(x)))
        y = self.norm(train, "bn2")(conv(self.features, 3, padding=1, name="conv2")(y))
        if self.stride != 1 or x.shape[-1] != self.features:
            x = self.norm(train, "downsample_1")(conv(self.features, 1, stride=self.stride, name="downsample_0")(x))
        return nn.relu(y + x)


class TVResNet(nn.Module):
    """torchvision's ResNet with basic blocks (module docstring)."""
    num_classes: int = 1000
    stage_sizes: Sequence[int] = (2, 2, 2, 2)
    widths: Sequence[int] = (64, 128, 256, 512)
    conv: blocks.ConvDef = blocks.ConvDef()
    norm: blocks.NormDef = blocks.NormDef()

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = self.conv(self.widths[0], 7, stride=2, padding=3, use_bias=False, kernel_init=_conv_init, name="conv1")(x)
        x = nn.relu(self.norm(train, "bn1")(x))
        x = nn.max_pool(x, window_shape=(3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        for s, (n, width) in enumerate(zip(self.stage_sizes, self.widths)):
            for b in range(n):
                x = TVBasicBlock(width, stride=2 if s > 0 and b == 0 else 1, conv=self.conv, norm=self.norm,
                                 name=f"layer{s + 1}_{b}")(x, train)
        return nn.Dense(self.num_classes, name="fc")(jnp.mean(x, axis=(1, 2)))


def adaptive_avg_pool(x, size: int):
    """torch's ``AdaptiveAvgPool2d(size)`` of NHWC ``x``: output bin i averages rows
    floor(i*H/size) .. ceil((i+1)*H/size) - 1 (bins may overlap or repeat a row), columns alike."""
    h, w = x.shape[1:3]
    bounds = lambda n: [(i * n // size, -(-(i + 1) * n // size)) for i in range(size)]
    rows = [jnp.stack([x[:, r0:r1, c0:c1].mean(axis=(1, 2)) for c0, c1 in bounds(w)], axis=1) for r0, r1 in bounds(h)]
    return jnp.stack(rows, axis=1)


class TVVGG(nn.Module):
    """torchvision's VGG with batch norm (module docstring)."""
    num_classes: int = 1000
    layers: Sequence = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
    hidden: int = 4096
    pool_size: int = 7
    dropout: float = 0.5
    conv: blocks.ConvDef = blocks.ConvDef()
    norm: blocks.NormDef = blocks.NormDef()

    @nn.compact
    def __call__(self, x, train: bool = False):
        pools = sum(layer == "M" for layer in self.layers)
        if min(x.shape[1:3]) < 2 ** pools:
            raise ValueError(f"TVVGG: {pools} max pools of 2 need images of at least {2 ** pools}x{2 ** pools} "
                             f"pixels, got {x.shape[1]}x{x.shape[2]}")
        i = 0
        for layer in self.layers:
            if layer == "M":
                x = nn.max_pool(x, window_shape=(2, 2), strides=(2, 2))
                i += 1
                continue
            x = self.conv(int(layer), 3, padding=1, kernel_init=_conv_init, name=f"features_{i}")(x)
            x = nn.relu(self.norm(train, f"features_{i + 1}")(x))
            i += 3
        x = adaptive_avg_pool(x, self.pool_size)
        x = x.reshape(x.shape[0], -1)
        for j in (0, 3):
            x = nn.relu(nn.Dense(self.hidden, name=f"classifier_{j}")(x))
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.num_classes, name="classifier_6")(x)


VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
