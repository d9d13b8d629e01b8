r"""Print a per-layer summary (shapes, parameters, FLOPs, receptive field) of a config's model.

  python -m experiments.summary                                   # the default config's model
  python -m experiments.summary --config.model=lenet5 --config.model_options.pool=max
  python -m experiments.summary --config=experiments/configs/recipes.py:vgg_bn --input_shape=32,32,3
  python -m experiments.summary --config=experiments/configs/cifar.py:resnet20   # 32x32x3: its dataset's shape

The same ``--config`` as experiments.train, so a summary and a training run take the same words.
Nothing is allocated (jax.eval_shape), so huge inputs work: ``--config.model=mlp
--config.model_options.hidden='(1000, 100)' --input_shape=1000,1000,3`` shows the course's point,
a 1000-unit dense layer on a 1000x1000x3 image has 3,000,001,000 parameters.
"""
from absl import flags

from experiments import common

_CONFIG = common.define_config_flag()
_INPUT_SHAPE = flags.DEFINE_list("input_shape", [], "Input H,W,C (default: the config's dataset's: 32,32,3 for "
                                  "cifar10/cifar100/synthetic_color, else 28,28,1).")
#: image shape of the datasets whose shape is not 28x28x1 (the summary loads no data)
_DATASET_SHAPES = {"cifar10": ("32", "32", "3"), "cifar100": ("32", "32", "3"), "cifar100_coarse": ("32", "32", "3"),
                   "synthetic_color": ("32", "32", "3")}
_NUM_CLASSES = flags.DEFINE_integer("num_classes", 10, "Number of output classes.")
_LIST = flags.DEFINE_bool("list", False, "List the registered models and exit.")


def main(argv):
    from cnnjax import models, summary
    if _LIST.value:
        print("\n".join(models.available()))
        return
    cfg = common.train_config(_CONFIG)
    given = _INPUT_SHAPE.value or _DATASET_SHAPES.get(cfg.dataset.strip().lower().replace("-", "_"), ("28", "28", "1"))
    try:
        shape = tuple(int(d) for d in given)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError
    except ValueError:
        raise common.UsageError(f"--input_shape must be three positive integers H,W,C, "
                                f"got {','.join(given)}") from None
    if _NUM_CLASSES.value < 1:
        raise common.UsageError(f"--num_classes must be >= 1, got {_NUM_CLASSES.value}")
    model = models.create(cfg.model, num_classes=_NUM_CLASSES.value, **cfg.model_options)
    print(summary.summarize(model, shape, cfg.model).table())


if __name__ == "__main__":
    common.run(main)
