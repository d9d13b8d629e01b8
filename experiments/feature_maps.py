r"""Seeing convolution: a CNN's first-layer kernels and the feature maps of every conv layer.

  python -m experiments.feature_maps --model=padded_cnn               # fresh (random) init
  python -m experiments.feature_maps --workdir=workdirs/padded_cnn    # a trained model
  python -m experiments.feature_maps --model=lenet5 --dataset=synthetic --num_images=2

With --workdir the model, weights and dataset come from the training run
(cnnjax.train.runs.load_trained); a --workdir that does not exist or holds no trained run is
an error (exit status 2).  Without --workdir, --model is freshly initialised (a one-line note
says so).  Writes <out_dir>/kernels.png (the
first conv layer's kernels) and <out_dir>/feature_maps_<layer>.png for every conv block
(rows: test images, columns: up to --max_channels channels of the block's output).
"""
from __future__ import annotations

import os

import numpy as np
from absl import flags

from experiments import common, demo_flags

NAME = "feature_maps"

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir to load the model from (optional).",
                               allow_override=True)
_MODEL = flags.DEFINE_string("model", "padded_cnn", "Registered model for a fresh init (no --workdir).",
                             allow_override=True)
_DATASET = demo_flags.DATASET
_DATA_DIR = demo_flags.DATA_DIR
_NUM_IMAGES = flags.DEFINE_integer("num_images", 4, "Number of test images (rows of each figure).")
_MAX_CHANNELS = flags.DEFINE_integer("max_channels", 16, "Channels shown per layer.")
_SEED = demo_flags.SEED

DEFAULT_DATASET = "fashion_mnist"


def load_model(workdir: str | None, model_name: str):
    """(model, variables, config, data info, one-line note) of the trained run in ``workdir``
    (``cnnjax.train.runs.load_trained``); without a workdir, (None, None, None, {}, note): the
    caller initialises ``model_name``.  Raises FileNotFoundError naming ``workdir`` when it
    does not exist or holds no trained run (no config.json or no checkpoint)."""
    if not workdir:
        return None, None, None, {}, f"no --workdir: fresh (random) init of --model={model_name}"
    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"--workdir {workdir}: no such directory")
    from cnnjax.train import runs
    from cnnjax.train.workdir import Workdir

    try:
        model, variables, config, epoch = runs.load_trained(workdir)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"--workdir {workdir} holds no trained run: {e}") from e
    return model, variables, config, Workdir(workdir).data_info(), f"trained {config.model} from {workdir} (epoch {epoch})"


def conv_outputs(model, variables, x) -> tuple[list[tuple[str, object, np.ndarray]], np.ndarray]:
    """Run ``model`` on x (N, H, W, C), capturing the output of every conv block.

    Returns ([(layer path e.g. 'conv1', module, output (N, H', W', C') numpy)] in call
    order, the model's output).  Uses flax's ``nn.intercept_methods`` (as cnnjax.summary
    does) inside one ``jax.jit``: the modules are recorded while tracing, their outputs
    are returned from the compiled function."""
    import flax.linen as nn
    import jax

    from cnnjax import blocks

    modules = []

    def forward(variables, x):
        outputs = []

        def record(next_fun, args, kwargs, context):
            out = next_fun(*args, **kwargs)
            module = context.module
            if (context.method_name == "__call__" and isinstance(module, blocks._ConvBase)
                    and module.scope is not None):
                modules.append(("/".join(module.scope.path), module))
                outputs.append(out)
            return out

        with nn.intercept_methods(record):
            y = model.apply(variables, x)
        return outputs, y

    outputs, y = jax.jit(forward)(variables, x)
    return [(name, module, np.asarray(out)) for (name, module), out in zip(modules, outputs)], np.asarray(y)


def first_kernel(variables, layer: str, module) -> tuple[np.ndarray, str]:
    """The HWIO kernel of a conv block and what it is ('kernel' or 'depthwise')."""
    params = variables["params"]
    for name in layer.split("/"):
        params = params[name]
    for key in ("kernel", "depthwise"):
        if key in params:
            return np.asarray(params[key]), key
    raise ValueError(f"layer {layer} ({type(module).__name__}) has no kernel parameter")


def _describe(module) -> str:
    k = module.kernel_size if isinstance(module.kernel_size, int) else "x".join(map(str, module.kernel_size))
    parts = [f"{type(module).__name__} {k}x{k}" if isinstance(k, int) else f"{type(module).__name__} {k}"]
    for attr, default in (("stride", 1), ("dilation", 1), ("groups", 1)):
        v = getattr(module, attr, default)
        if v != default:
            parts.append(f"{attr} {v}")
    if module.activation:
        parts.append(module.activation)
    return ", ".join(parts)


def main(argv):
    del argv
    import jax

    from cnnjax import data, plots

    if _NUM_IMAGES.value < 1:
        raise common.UsageError(f"--num_images must be >= 1, got {_NUM_IMAGES.value}")
    if _MAX_CHANNELS.value < 1:
        raise common.UsageError(f"--max_channels must be >= 1, got {_MAX_CHANNELS.value}")
    model, variables, config, info, note = load_model(_WORKDIR.value, _MODEL.value)
    print(note)
    dataset = _DATASET.value or (config.dataset if config else DEFAULT_DATASET)
    if config and _DATASET.value and _DATASET.value != config.dataset:
        print(f"note: the model was trained on {config.dataset}, showing {dataset} images")
    if config is not None and dataset == config.dataset and not _DATA_DIR.value:
        from cnnjax.train import experiment
        ds = experiment.load_data(config)  # the run's own data settings (a folder's size and channels, classes)
    else:
        ds = data.load(dataset, _DATA_DIR.value or (config.data_dir if config else None))
    n = min(_NUM_IMAGES.value, len(ds.test_images))
    images, labels = ds.test_images[:n], ds.test_labels[:n]
    # A trained model sees images normalised with its training set's statistics.
    same_data = config is not None and config.dataset == dataset
    mean, std = (info["mean"], info["std"]) if same_data and "mean" in info and "std" in info else (ds.mean, ds.std)
    x = data.normalize(images, mean, std)
    model_name = config.model if config else _MODEL.value
    if model is None:
        from cnnjax import models

        model = models.create(model_name, num_classes=ds.num_classes)
        variables = jax.jit(model.init)(jax.random.key(_SEED.value), x[:1])
    print(f"{n} test images of {ds.name} ({'x'.join(map(str, ds.image_shape))}), normalised with mean "
          f"{_stat(mean)}, std {_stat(std)}" + (" (the training run's)" if same_data else ""))
    captured, logits = conv_outputs(model, variables, x)
    if not captured:
        raise ValueError(f"model {model_name} has no conv blocks (cnnjax.blocks Conv/SeparableConv/...) to show")
    directory = demo_flags.out_dir(NAME)

    layer, module, _ = captured[0]
    kernel, kind = first_kernel(variables, layer, module)
    trained = "trained" if config else "random init"
    path = plots.plot_kernels(kernel, os.path.join(directory, "kernels.png"),
                              title=f"{model_name} {layer}: {'depthwise ' if kind == 'depthwise' else ''}kernels ({trained}), "
                                    f"{kernel.shape[0]}x{kernel.shape[1]}x{kernel.shape[2]} -> {kernel.shape[3]}",
                              reduce="mean")
    print(f"wrote {path}")
    names = [f"{i}: {ds.class_names[int(c)]}" for i, c in enumerate(labels)]
    print(f"{'layer':<12} {'block':<36} {'output':<12} {'mean':>8} {'std':>8}  file")
    for layer, module, out in captured:
        fname = f"feature_maps_{layer.replace('/', '_')}.png"
        shape = "x".join(map(str, out.shape[1:]))
        path = plots.plot_feature_maps(out, os.path.join(directory, fname),
                                       title=f"{model_name} {layer} ({_describe(module)}; {trained})",
                                       max_channels=_MAX_CHANNELS.value, inputs=images, row_labels=names)
        print(f"{layer:<12} {_describe(module):<36} {shape:<12} {out.mean():8.3f} {out.std():8.3f}  {path}")
    if logits.ndim == 2 and logits.shape[1] == ds.num_classes:
        preds = logits.argmax(axis=1)
        print("predictions: " + "; ".join(f"{ds.class_names[int(t)]} -> {ds.class_names[int(p)]}"
                                          for t, p in zip(labels, preds)))


def _stat(v) -> str:
    """A scalar mean/std as 0.2860; a per-channel one (colour data) as (0.4914, 0.4822, 0.4465)."""
    return f"{v:.4f}" if np.ndim(v) == 0 else "(" + ", ".join(f"{x:.4f}" for x in v) + ")"


if __name__ == "__main__":
    common.run(main)
