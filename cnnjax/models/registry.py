"""Models by name: ``create(name, num_classes, **options)``, ``available()``, ``options(name)``.

An entry is a factory called as ``factory(num_classes=..., **options)``: a model class or a
``functools.partial`` of one (a variant is one partial).  A model class's options are its
dataclass fields (a partial's keywords set other defaults); its ``conv`` field (a
:class:`cnnjax.blocks.ConvDef`) is offered as the option ``conv_impl``; its ``norm`` field (a
:class:`cnnjax.blocks.NormDef`) is set in code (``Model(norm=...)`` or a partial), not an option.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import flax.linen as nn

from cnnjax import blocks, fastconv
from cnnjax.models.airbench import Airbench
from cnnjax.models.cifar import VGG, ResNet
from cnnjax.models.common import OptionError, pos_int
from cnnjax.models.course import MLP, VGGBN, ConvAutoencoder, LeNet5, PaddedCNN, SeedNet
from cnnjax.models.torchvision import VGG11, VGG16, TVResNet, TVVGG

REGISTRY: dict[str, Callable[..., nn.Module]] = {
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
    # torchvision's layouts, so that its state_dicts convert key by key (cnnjax.weights.pytorch)
    "tv_resnet18": functools.partial(TVResNet, stage_sizes=(2, 2, 2, 2)),
    "tv_resnet34": functools.partial(TVResNet, stage_sizes=(3, 4, 6, 3)),
    "tv_vgg11_bn": functools.partial(TVVGG, layers=VGG11),
    "tv_vgg16_bn": functools.partial(TVVGG, layers=VGG16),
}

#: the option that stands for a model's ``conv`` field
CONV_OPTION = "conv_impl"


def register(name: str, factory: Callable[..., nn.Module]) -> None:
    """Add a model factory (called as ``factory(num_classes=..., **kw)``) to the registry."""
    REGISTRY[name] = factory


def available() -> list[str]:
    """Registered model names, sorted."""
    return sorted(REGISTRY)


def _factory(name: str):
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available())}") from None


def _fields(factory) -> dict:
    """A factory's options -> their defaults (a partial's keywords included); {} when unknown."""
    cls = factory.func if isinstance(factory, functools.partial) else factory
    if not dataclasses.is_dataclass(cls):
        return {}
    out = {f.name: f.default for f in dataclasses.fields(cls) if f.name not in ("parent", "name", "num_classes", "norm")}
    out.update(factory.keywords if isinstance(factory, functools.partial) else {})
    if "conv" in out:
        out[CONV_OPTION] = out.pop("conv").impl
    return out


def options(name: str) -> list[str]:
    """The option names ``create(name, ..., **options)`` accepts (num_classes is not one)."""
    return sorted(_fields(_factory(name)))


_UNSET = object()


def create(name: str, num_classes=_UNSET, /, **kw) -> nn.Module:
    """A model by name for ``num_classes`` outputs (default 10; set by the dataset, also
    accepted as a keyword); ``kw`` sets its options (e.g. ``activation='sigmoid'``,
    ``pool='avg'``, ``conv_impl='lax'``; :func:`options` lists them).

    Unknown names, unknown options and invalid option values raise ValueError naming the
    model and the option ("padded_cnn: widths must be 2 positive integers, got 8")."""
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
        if not pos_int(num_classes):
            raise ValueError(f"{name}: num_classes must be a positive integer, got {num_classes!r}")
        if CONV_OPTION in kw:
            impl = kw.pop(CONV_OPTION)
            if impl not in fastconv.IMPLS:
                raise ValueError(f"{name}: {CONV_OPTION} must be one of {fastconv.IMPLS}, got {impl!r}")
            kw["conv"] = blocks.ConvDef(impl)
    try:
        return factory(num_classes=num_classes, **kw)
    except OptionError as e:
        raise ValueError(f"{name}: {e}") from None
