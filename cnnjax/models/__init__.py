"""Models as pure functions: ``variables = model.init(rng, x)``, ``logits = model.apply(variables, x)``.

Input x: float NHWC (normalised images); output: logits (N, num_classes), or for the
autoencoder an image of the input's shape.  Every model takes ``train: bool = False``
(used by models with dropout / batch norm; ignored by the others).

Use the registry (:mod:`cnnjax.models.registry`): ``models.create("padded_cnn")``;
``available()`` lists names, ``options(name)`` a model's options.  The families:

  * :mod:`~cnnjax.models.course`   lenet5, seed_net, mlp, padded_cnn (+ separable_ / dilated_ /
    grouped_cnn), vgg_bn, conv_autoencoder
  * :mod:`~cnnjax.models.cifar`    resnet20 / 56 / 18, vgg11_bn / vgg16_bn
  * :mod:`~cnnjax.models.airbench` airbench, airbench28_s / _m / _l
  * :mod:`~cnnjax.models.torchvision` tv_resnet18 / 34, tv_vgg11_bn / 16_bn (torchvision's layout)

A conv model receives its conv as the field ``conv`` (a :class:`cnnjax.blocks.ConvDef`, which
builds its conv and pool blocks on one implementation); ``create`` exposes it as the option
``conv_impl`` ('auto' | 'lax' | 'fast' | 'gemm', see :mod:`cnnjax.fastconv`): same parameters
and values (to float rounding), different XLA programs.  Each model checks its own options
when constructed; ``create`` reports a bad one as ValueError naming the model and the option.

Adding a model: a class in a family module (fields = options, checks in ``__post_init__``)
and one line in :data:`cnnjax.models.registry.REGISTRY`.
"""
from cnnjax.models.airbench import Airbench, dirac_init
from cnnjax.models.cifar import VGG, BasicBlock, ResNet, ShortcutConv
from cnnjax.models.common import OptionError
from cnnjax.models.course import MLP, VGGBN, ConvAutoencoder, LeNet5, PaddedCNN, SeedNet
from cnnjax.models.registry import REGISTRY, available, create, options, register
from cnnjax.models.torchvision import TVResNet, TVVGG

__all__ = ["Airbench", "dirac_init", "VGG", "BasicBlock", "ResNet", "ShortcutConv", "OptionError", "MLP", "VGGBN",
           "ConvAutoencoder", "LeNet5", "PaddedCNN", "SeedNet", "REGISTRY", "available", "create", "options",
           "register", "TVResNet", "TVVGG"]
