"""The PyTorch twins of cnnjax's models, in one place: the same layers, parameter counts and
module order in ``torch.nn`` (NCHW), for the benchmarks that time cnnjax against PyTorch eager
(:mod:`benchmarks.train_throughput`) and the speedrun's PyTorch mirror
(:mod:`benchmarks.speedrun_torch`).  torch is imported inside the functions (the ``bench`` extra).

* :data:`LAYOUTS` -- each twin's module names as cnnjax paths (:mod:`cnnjax.weights.pytorch` converts a
  twin's state_dict by them);
* :func:`torch_model` -- a registry name -> its twin with PyTorch's default init (throughput);
* :func:`make_model` -- a speedrun config's model (``config.model`` and the
  ``config.model_options`` in :data:`SUPPORTED_OPTIONS`) with Flax's init scheme: LeCun-normal
  (truncated at 2 sigma) weights, zero biases, BN scale 1 / bias 0; the airbench family with
  cnnjax's Dirac init (given Flax's weights, :func:`torch_airbench` computes cnnjax's logits:
  tests/test_speedrun.py).
"""
from __future__ import annotations

import math

AIRBENCH_OPTIONS = ("widths", "whiten_width", "bn_momentum", "bn_scale", "block_conv")
SUPPORTED_OPTIONS = {"padded_cnn": (), "vgg_bn": ("widths", "dropout"), "airbench": AIRBENCH_OPTIONS,
                     "airbench28_s": AIRBENCH_OPTIONS, "airbench28_m": AIRBENCH_OPTIONS,
                     "airbench28_l": AIRBENCH_OPTIONS}
#: cnnjax's registry defaults of the airbench family (cnnjax.models.registry.REGISTRY's Airbench partials)
AIRBENCH_DEFAULTS = {"airbench": dict(widths=(64, 256, 256), whiten_width=24),
                     "airbench28_s": dict(widths=(8, 16, 16), whiten_width=8),
                     "airbench28_m": dict(widths=(16, 32, 32), whiten_width=8),
                     "airbench28_l": dict(widths=(32, 64, 64), whiten_width=8)}


# --------------------------------------------------------------------------- layouts
# Each twin's module names -> cnnjax module paths: what cnnjax.weights.pytorch converts a twin's
# state_dict by.  A twin's layers are an nn.Sequential, so its names are the indices below.

def _sequential(names: dict[int, str]):
    return lambda module: names.get(int(module)) if module.isdigit() else None


def _vgg_bn_layout(stages: int = 2):
    """:func:`torch_vgg_bn`: per stage (conv, BN, ReLU) x 2 + max pool; then flatten, dropout, linear."""
    names, i = {}, 0
    for s in range(1, stages + 1):
        for j in (1, 2):
            names[i], names[i + 1] = f"conv{s}_{j}", f"bn{s}_{j}"
            i += 3
        i += 1  # max pool
    names[i + 2] = "fc"  # flatten, dropout, linear
    return _sequential(names)


def _resnet20_layout(module: str):
    """:func:`torch_resnet20`: stem conv, BN, ReLU, nine blocks (3..11), pool, flatten, linear (14)."""
    head, _, rest = module.partition(".")
    if not head.isdigit():
        return None
    i = int(head)
    if i in (0, 1, 14) and not rest:
        return {0: "stem", 1: "stem_bn", 14: "fc"}[i]
    if 3 <= i <= 11 and rest in ("conv1", "bn1", "conv2", "bn2"):
        return f"stage{(i - 3) // 3 + 1}_block{(i - 3) % 3 + 1}/{rest}"
    return None


_PADDED = _sequential({0: "conv1", 3: "conv2", 7: "fc"})

#: model -> (twin's torch module name -> cnnjax module path, or None when it does not map)
LAYOUTS = {
    "lenet5": _sequential({0: "conv1", 3: "conv2", 7: "fc1", 9: "fc2", 11: "fc3"}),
    "padded_cnn": _PADDED, "dilated_cnn": _PADDED, "grouped_cnn": _PADDED,
    "separable_cnn": lambda m: {"0": "conv1", "3.0": "conv2", "3.1": "conv2", "7": "fc"}.get(m),
    "vgg_bn": _vgg_bn_layout(),
    "resnet20": _resnet20_layout,
    # torch_airbench names its modules as cnnjax's Airbench does
    **{name: (lambda m: m if "." not in m else None) for name in AIRBENCH_DEFAULTS},
}


def make_model(cfg, image_shape: tuple, num_classes: int):
    """The torch twin of ``cfg.model`` for ``image_shape`` = (H, W, C) images, taking float32
    (B, C, H, W) input, returning (B, num_classes) logits, with Flax's init scheme (module doc).
    ValueError for a model without a twin."""
    import torch
    import torch.nn as tnn

    h, w, c = image_shape
    if cfg.model in AIRBENCH_DEFAULTS:
        return torch_airbench(image_shape, num_classes, **{**AIRBENCH_DEFAULTS[cfg.model], **cfg.model_options})
    if cfg.model == "vgg_bn":
        opts = cfg.model_options
        net = torch_vgg_bn(tuple(opts.get("widths", (24, 48))), opts.get("dropout", 0.3), h, c, num_classes)
    else:
        if (h, w, c, num_classes) != (28, 28, 1, 10):
            raise ValueError(f"config.model {cfg.model}: the torch twin is built for 28x28x1 images and 10 classes")
        net = torch_model(cfg.model)
    for m in net.modules():
        if isinstance(m, (tnn.Conv2d, tnn.Linear)):
            lecun_normal_(m.weight)
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)
    return net


def lecun_normal_(weight) -> None:
    """Flax's default kernel init: LeCun normal truncated at 2 sigma (fan_in = weight[0].numel():
    (in / groups) * kh * kw for a conv, in_features for a linear layer)."""
    import torch
    std = 1.0 / math.sqrt(weight[0].numel()) / 0.87962566103423978
    torch.nn.init.trunc_normal_(weight, 0.0, std, -2 * std, 2 * std)


def torch_airbench(image_shape: tuple, num_classes: int, *, widths=(64, 256, 256), whiten_width: int = 24,
                   bn_momentum: float = 0.6, bn_scale: bool = False, block_conv: str = "conv"):
    """cnnjax's :class:`~cnnjax.models.airbench.Airbench` in torch.nn (NCHW), modules named as cnnjax's:
    ``whiten`` 2x2 valid conv (+bias) to ``whiten_width``, exact GELU; per width a group [``conv1``
    3x3 pad 1 no bias, max pool 2 (floor: 27 -> 13 -> 6 -> 3), ``bn1``, GELU, ``conv2``, ``bn2``,
    GELU]; max pool 3 (3 -> 1); ``fc`` without bias; times 1/9.  BN: eps 1e-12, torch momentum
    ``1 - bn_momentum`` (cnnjax's is Flax's), and without ``bn_scale`` no weight at all (bias only:
    the same parameter count as cnnjax, where airbench94 freezes a weight of ones).  Init as
    cnnjax's: whiten and fc LeCun normal (truncated), group convs :func:`cnnjax.models.airbench.dirac_init`
    (uniform +-1/sqrt(fan_in), the first min(C_in, C_out) filters the identity), zero biases."""
    from collections import OrderedDict

    import torch
    import torch.nn as tnn
    if block_conv != "conv":
        raise ValueError(f"block_conv {block_conv!r}: the torch airbench twin has block_conv='conv' only")

    class Scale(tnn.Module):
        def __init__(self, factor):
            super().__init__()
            self.factor = factor

        def forward(self, x):
            return x * self.factor

    def bn(width):
        m = tnn.BatchNorm2d(width, eps=1e-12, momentum=1 - bn_momentum)
        if not bn_scale:
            m.register_parameter("weight", None)  # F.batch_norm: no weight = scale 1, nothing to train
        return m

    h, w, c = image_shape
    h, w = h - 1, w - 1  # the 2x2 valid whitening conv
    layers, c_in = [("whiten", tnn.Conv2d(c, whiten_width, 2, padding=0, bias=True)), ("whiten_act", tnn.GELU())], \
        whiten_width
    for g, width in enumerate(widths, start=1):
        layers += [(f"group{g}_conv1", tnn.Conv2d(c_in, width, 3, padding=1, bias=False)),
                   (f"group{g}_pool", tnn.MaxPool2d(2)), (f"group{g}_bn1", bn(width)), (f"group{g}_act1", tnn.GELU()),
                   (f"group{g}_conv2", tnn.Conv2d(width, width, 3, padding=1, bias=False)),
                   (f"group{g}_bn2", bn(width)), (f"group{g}_act2", tnn.GELU())]
        c_in, h, w = width, h // 2, w // 2
    h, w = h // 3, w // 3
    if h < 1 or w < 1:
        raise ValueError(f"airbench: {image_shape[0]}x{image_shape[1]} images are too small for its pools")
    layers += [("pool", tnn.MaxPool2d(3)), ("flatten", tnn.Flatten()),
               ("fc", tnn.Linear(c_in * h * w, num_classes, bias=False)), ("scale", Scale(1 / 9))]
    net = tnn.Sequential(OrderedDict(layers))
    with torch.no_grad():
        lecun_normal_(net.whiten.weight)
        net.whiten.bias.zero_()
        lecun_normal_(net.fc.weight)
        for name, m in net.named_children():
            if name.endswith(("_conv1", "_conv2")):
                bound = 1.0 / math.sqrt(m.weight[0].numel())  # variance_scaling(1/3, fan_in, uniform)
                m.weight.uniform_(-bound, bound)
                n = min(m.in_channels, m.out_channels)
                m.weight[:n] = 0.0
                m.weight[torch.arange(n), torch.arange(n), 1, 1] = 1.0
    return net


def torch_model(name: str, image_shape: tuple = (28, 28, 1)):
    """The cnnjax registry's ``name`` in torch.nn (NCHW input of ``image_shape`` = (H, W, C); 10
    classes; PyTorch's default init): same layers and parameter counts.  The airbench family
    takes any image shape, the others are built for 28x28x1 (resnet20: 32x32x3)."""
    import torch.nn as tnn
    if name == "resnet20":
        return torch_resnet20()
    if name.startswith("airbench"):  # the speedrun mirror's twin (cnnjax's parameter count: no BN weights)
        return torch_airbench(image_shape, 10, **AIRBENCH_DEFAULTS[name])
    if name == "vgg_bn":
        return torch_vgg_bn()
    if name == "lenet5":
        return tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), tnn.Sigmoid(), tnn.AvgPool2d(2),
                              tnn.Conv2d(6, 16, 5), tnn.Sigmoid(), tnn.AvgPool2d(2), tnn.Flatten(),
                              tnn.Linear(400, 120), tnn.Sigmoid(), tnn.Linear(120, 84), tnn.Sigmoid(),
                              tnn.Linear(84, 10))
    conv2 = {
        "padded_cnn": lambda: tnn.Conv2d(16, 32, 5, padding=2),
        "separable_cnn": lambda: tnn.Sequential(tnn.Conv2d(16, 16, 5, padding=2, groups=16, bias=False),
                                                tnn.Conv2d(16, 32, 1)),
        "dilated_cnn": lambda: tnn.Conv2d(16, 32, 3, padding=2, dilation=2),
        "grouped_cnn": lambda: tnn.Conv2d(16, 32, 5, padding=2, groups=4),
    }
    if name not in conv2:
        raise ValueError(f"no torch twin for model {name!r}")
    return tnn.Sequential(tnn.Conv2d(1, 16, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2), conv2[name](),
                          tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(), tnn.Linear(1568, 10))


def torch_resnet20():
    """cnnjax's ``resnet20`` in torch.nn: He et al. 2016's CIFAR ResNet-20, option A shortcuts
    (269,722 params), BN momentum 0.1 (= Flax 0.9), NCHW."""
    import torch.nn as tnn
    import torch.nn.functional as F

    class Block(tnn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.conv1, self.bn1 = tnn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), tnn.BatchNorm2d(c_out)
            self.conv2, self.bn2 = tnn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), tnn.BatchNorm2d(c_out)
            self.stride, self.extra = stride, c_out - c_in

        def forward(self, x):
            y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            if self.stride != 1 or self.extra:
                x = F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, self.extra // 2,
                                                                   self.extra - self.extra // 2))
            return F.relu(y + x)

    layers, c_in = [tnn.Conv2d(3, 16, 3, 1, 1, bias=False), tnn.BatchNorm2d(16), tnn.ReLU()], 16
    for s, width in enumerate((16, 32, 64)):
        for b in range(3):
            layers.append(Block(c_in, width, 2 if s > 0 and b == 0 else 1))
            c_in = width
    return tnn.Sequential(*layers, tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(64, 10))


def torch_vgg_bn(widths=(24, 48), dropout=0.3, image_size=28, channels=1, num_classes=10):
    """cnnjax's ``vgg_bn`` in torch.nn (NCHW): per width, [3x3 conv 'same' without bias, BN
    (momentum 0.1 = Flax 0.9, eps 1e-5), ReLU] x 2 and max pool 2; dropout; dense (60,322 params
    at the defaults on 28x28x1)."""
    import torch.nn as tnn
    layers, c_in, size = [], channels, image_size
    for width in widths:
        for _ in range(2):
            layers += [tnn.Conv2d(c_in, width, 3, padding=1, bias=False), tnn.BatchNorm2d(width), tnn.ReLU()]
            c_in = width
        layers.append(tnn.MaxPool2d(2))
        size //= 2
    return tnn.Sequential(*layers, tnn.Flatten(), tnn.Dropout(dropout), tnn.Linear(c_in * size * size, num_classes))
