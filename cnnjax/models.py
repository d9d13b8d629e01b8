"""Models as pure functions: ``variables = model.init(rng, x)``, ``logits = model.apply(variables, x)``.

Input x: float NHWC (normalised images); output: logits (N, num_classes), or for the
autoencoder an image of the input's shape.  Every model takes ``train: bool = False``
(used by models with dropout / batch norm; ignored by the others).

Use the registry: ``cnnjax.models.create("padded_cnn")``; ``available()`` lists names.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cnnjax import blocks, ops


def _flatten(x):
    return x.reshape(x.shape[0], -1)


class LeNet5(nn.Module):
    """LeCun et al. 1998 as taught: conv 6@5x5 pad 2, sigmoid, avg pool 2; conv 16@5x5,
    sigmoid, avg pool 2; dense 120, 84, num_classes (sigmoid between). 61,706 params on 28x28x1."""
    num_classes: int = 10
    activation: str = "sigmoid"
    pool: str = "avg"

    @nn.compact
    def __call__(self, x, train: bool = False):
        act = blocks.activation_fn(self.activation)
        x = blocks.Conv(6, 5, padding=2, activation=self.activation, name="conv1")(x)
        x = blocks.pool_block(self.pool, window=2, name="pool1")(x)
        x = blocks.Conv(16, 5, activation=self.activation, name="conv2")(x)
        x = blocks.pool_block(self.pool, window=2, name="pool2")(x)
        x = act(nn.Dense(120, name="fc1")(_flatten(x)))
        x = act(nn.Dense(84, name="fc2")(x))
        return nn.Dense(self.num_classes, name="fc3")(x)


class SeedNet(nn.Module):
    """The seed tutorial's "Net": conv 1->10 5x5, max pool 2, relu; conv 10->20 5x5, max
    pool 2, relu; dense 320->num_classes.  8,490 params on 28x28x1."""
    num_classes: int = 10
    activation: str = "relu"
    pool: str = "max"

    @nn.compact
    def __call__(self, x, train: bool = False):
        act = blocks.activation_fn(self.activation)
        x = act(blocks.pool_block(self.pool, name="pool1")(blocks.Conv(10, 5, name="conv1")(x)))
        x = act(blocks.pool_block(self.pool, name="pool2")(blocks.Conv(20, 5, name="conv2")(x)))
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

    @nn.compact
    def __call__(self, x, train: bool = False):
        c1, c2 = self.widths
        x = blocks.Conv(c1, 5, stride=self.stride, padding=self.padding, activation=self.activation,
                        name="conv1")(x)
        x = blocks.pool_block(self.pool, window=2, name="pool1")(x)
        x = self._conv2(c2)(x)
        x = blocks.pool_block(self.pool, window=2, name="pool2")(x)
        return nn.Dense(self.num_classes, name="fc")(_flatten(x))

    def _conv2(self, features):
        kw = dict(features=features, activation=self.activation, name="conv2")
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
    [3x3 conv, batch norm, act] x 2 + max pool 2 (widths 24, 48), dropout, dense.
    60,322 params on 28x28x1 (batch-norm scale/bias included; running stats are not params)."""
    num_classes: int = 10
    widths: Sequence[int] = (24, 48)
    activation: str = "relu"
    pool: str = "max"
    dropout: float = 0.3

    @nn.compact
    def __call__(self, x, train: bool = False):
        act = blocks.activation_fn(self.activation)
        for stage, width in enumerate(self.widths, start=1):
            for j in (1, 2):
                x = blocks.Conv(width, 3, padding="same", use_bias=False, name=f"conv{stage}_{j}")(x)
                x = act(nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"bn{stage}_{j}")(x))
            x = blocks.pool_block(self.pool, window=2, name=f"pool{stage}")(x)
        x = nn.Dropout(self.dropout, deterministic=not train)(_flatten(x))
        return nn.Dense(self.num_classes, name="fc")(x)


class ConvAutoencoder(nn.Module):
    """Encoder: two stride-2 3x3 convs (H -> H/2 -> H/4).  Decoder: ``decoder='transpose'``
    (3x3 stride-2 transposed convs) or ``'upsample'`` (nearest x2 then 3x3 conv).  The
    output has the input's shape (cropped when H or W is not a multiple of 4); no
    activation on the last layer.  ``num_classes`` is unused (kept for the registry)."""
    num_classes: int = 10
    decoder: str = "transpose"
    widths: Sequence[int] = (16, 32)
    activation: str = "relu"

    @nn.compact
    def __call__(self, x, train: bool = False):
        c1, c2 = self.widths
        h, w, c = x.shape[-3:]
        y = blocks.Conv(c1, 3, stride=2, padding="same", activation=self.activation, name="enc1")(x)
        y = blocks.Conv(c2, 3, stride=2, padding="same", activation=self.activation, name="enc2")(y)
        if self.decoder == "transpose":
            up = functools.partial(blocks.ConvTranspose, kernel_size=3, stride=2, padding=1, output_padding=1)
        elif self.decoder == "upsample":
            up = functools.partial(blocks.UpsampleConv, kernel_size=3, factor=2)
        else:
            raise ValueError(f"unknown decoder {self.decoder!r}; choose 'transpose' or 'upsample'")
        y = up(features=c1, activation=self.activation, name="dec1")(y)
        y = up(features=c, name="dec2")(y)
        return y[:, :h, :w, :]


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
}


def register(name: str, factory: Callable[..., nn.Module]) -> None:
    """Add a model factory (called as ``factory(num_classes=..., **kw)``) to the registry."""
    _REGISTRY[name] = factory


def available() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def create(name: str, num_classes: int = 10, **kw) -> nn.Module:
    """A model by name; ``kw`` sets its options (e.g. ``activation='sigmoid'``, ``pool='avg'``).

    Unknown names or options raise ValueError listing what exists."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available())}") from None
    cls = factory.func if isinstance(factory, functools.partial) else factory
    if dataclasses.is_dataclass(cls):
        fields = {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}
        unknown = set(kw) - fields
        if unknown:
            raise ValueError(f"model {name!r} has no option(s) {sorted(unknown)}; options: {sorted(fields)}")
    return factory(num_classes=num_classes, **kw)
