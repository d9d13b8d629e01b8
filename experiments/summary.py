r"""Print a per-layer summary of a registered model.

  python -m experiments.summary --model=padded_cnn [--input_shape=28,28,1] [--num_classes=10]

Nothing is allocated (jax.eval_shape), so huge inputs such as --input_shape=1000,1000,3 work.
"""
from absl import flags

from experiments import common

from cnnjax import models, summary

_MODEL = flags.DEFINE_string("model", "padded_cnn", "Registered model name (see --list).")
_INPUT_SHAPE = flags.DEFINE_list("input_shape", ["28", "28", "1"], "Input H,W,C.")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", 10, "Number of output classes.")
_LIST = flags.DEFINE_bool("list", False, "List the registered models and exit.")


def main(argv):
    if _LIST.value:
        print("\n".join(models.available()))
        return
    try:
        shape = tuple(int(d) for d in _INPUT_SHAPE.value)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError
    except ValueError:
        common.fail(f"--input_shape must be three positive integers H,W,C, got {','.join(_INPUT_SHAPE.value)}")
    model = models.create(_MODEL.value, num_classes=_NUM_CLASSES.value)
    print(summary.summarize(model, shape, _MODEL.value).table())


if __name__ == "__main__":
    common.run(main)
