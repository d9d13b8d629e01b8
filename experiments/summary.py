r"""Print a per-layer summary of a registered model.

  python -m experiments.summary --model=padded_cnn [--model_options=padding=0,stride=2]
                                [--input_shape=28,28,1] [--num_classes=10]

Nothing is allocated (jax.eval_shape), so huge inputs such as --input_shape=1000,1000,3 work:
``--model=mlp --model_options=hidden=1000:100 --input_shape=1000,1000,3`` shows the course's
point, a 1000-unit dense layer on a 1000x1000x3 image has 3,000,001,000 parameters.

--model and --model_options are experiments.train's flags (same names, same key=value syntax:
``widths=8:16`` is a list), so a summary and a training run take the same words.
"""
from absl import flags

from experiments import common, model_flags  # --model, --model_options: the same words as experiments.train

from cnnjax import models, summary

flags.declare_key_flag("model")  # list them in this command's --help
flags.declare_key_flag("model_options")
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
    name = model_flags.MODEL.value
    options = model_flags.parse_options(model_flags.MODEL_OPTIONS.value)
    model = models.create(name, num_classes=_NUM_CLASSES.value, **options)
    try:
        table = summary.summarize(model, shape, name).table()
    except TypeError as e:  # an option of the right name but the wrong kind, e.g. widths=7 (not a pair)
        common.fail(f"model {name!r} cannot be built with options {options}: {e}")
    print(table)


if __name__ == "__main__":
    common.run(main)
