r"""What a finished run looks at: attribution maps over chosen test images or image files.

  python -m experiments.explain --workdir=W --out=DIR [--indices=0,1,2,3] [--methods=gradients,grad_cam]
  python -m experiments.explain --workdir=W --out=DIR photo.png boot.jpg [--layer=conv1]

For each image and each method of cnnjax/interpret/attribution.py (default: all the model has; Grad-CAM needs a
conv layer, --layer, default the last one) writes ``DIR/<method>/<image>.png`` (the image, the
map, the map over the image; caption: true class -- test images only -- and predicted class with
its probability) and ``DIR/comparison.png`` (rows = images, columns = methods).  Maps explain the
predicted class; Integrated Gradients' baseline and occlusion's fill are a black image.  Method
settings are the library defaults (SmoothGrad 32 samples, noise 0.15; IG 64 steps; occlusion
4x4 patches every 2 px).

Exit 2 with one ``error:`` line and nothing written: a workdir with no finished training, a
--layer that is not a conv layer (the conv layers are listed), an unknown method, an index
outside the test set, an unreadable image file (named), DIR already holding files
(--overwrite writes into it).
"""
from __future__ import annotations

import os

import numpy as np
from absl import flags

from experiments import common

_WORKDIR = flags.DEFINE_string("workdir", None, "Finished training workdir.")
_OUT = flags.DEFINE_string("out", None, "Directory for the PNGs.")
_WHICH = flags.DEFINE_enum("which", "best", ["best", "latest"], "Checkpoint to restore.")
_INDICES = flags.DEFINE_list("indices", ["0", "1", "2", "3"], "Test-set images to explain (without image files).")
_METHODS = flags.DEFINE_list("methods", None, "Methods (default: every method the model has).")
_LAYER = flags.DEFINE_string("layer", None, "Grad-CAM's conv layer (default: the last conv layer).")
_CONVERT = flags.DEFINE_bool("convert_channels", False, "Convert image files of another channel count.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Write into a --out directory that already holds files.")


def _inputs(run, files):
    """(uint8 images, names, true class names or None)."""
    from cnnjax.train import experiment
    from cnnjax.data import imagefile
    from cnnjax.interpret import inference
    if files:
        experiment.check_run_data(_WORKDIR.value, "cannot explain")  # one line if its data changed
        try:
            images = np.stack([inference.read_image(f, run.image_shape, _CONVERT.value) for f in files])
        except imagefile.ImageError as e:
            raise common.UsageError(str(e)) from None
        names = [os.path.splitext(os.path.basename(f))[0] for f in files]
        return images, names, None
    # the run's own test split, classes and class names (one error line if its data changed)
    ds = experiment.load_run_data(run.config, _WORKDIR.value, "cannot explain")
    try:
        indices = [int(i) for i in _INDICES.value]
    except ValueError:
        raise common.UsageError(f"--indices must be integers, got {','.join(_INDICES.value)}") from None
    n = len(ds.test_labels)
    if not indices or any(not 0 <= i < n for i in indices):
        raise common.UsageError(f"--indices must lie in [0, {n}) (the test set), got {','.join(_INDICES.value)}")
    return ds.test_images[indices], [f"test{i}" for i in indices], [run.class_names[ds.test_labels[i]] for i in indices]


def main(argv):
    from cnnjax.interpret import attribution as explain, attribution_plots as explain_plots, features, inference
    for flag in (_WORKDIR, _OUT):
        if not flag.value:
            raise common.UsageError(f"--{flag.name} is required")
    out = _OUT.value
    if os.path.isdir(out) and os.listdir(out) and not _OVERWRITE.value:
        raise common.UsageError(f"--out {out} already holds files (--overwrite writes into it)")
    if os.path.exists(out) and not os.path.isdir(out):
        raise common.UsageError(f"--out {out} is not a directory")
    run = inference.load_run(_WORKDIR.value, _WHICH.value)
    has_conv = bool(features.conv_layers(run.model, run.image_shape))
    methods = _METHODS.value or [m for m in explain.METHODS if has_conv or m != "grad_cam"]
    for m in methods:
        if m not in explain.METHODS:
            raise common.UsageError(f"--methods: unknown method {m!r}; methods: {', '.join(explain.METHODS)}")
    settings = {"integrated_gradients": {"baseline": explain.black_baseline(run.mean, run.std)},
                "occlusion": {"fill": explain.black_baseline(run.mean, run.std)}}
    if "grad_cam" in methods:
        settings["grad_cam"] = {"layer": _LAYER.value or explain.default_layer(run.model, run.image_shape)}
        features.layer_shape(run.model, run.image_shape, settings["grad_cam"]["layer"], conv=True)
    elif _LAYER.value:
        raise common.UsageError("--layer is Grad-CAM's: add grad_cam to --methods")
    images, names, truth = _inputs(run, argv[1:])
    probs = np.asarray(inference.make_predict_fn(run)(images))
    predicted = probs.argmax(1)
    captions = [(f"true {truth[i]}, " if truth else f"{names[i]}: ") +
                f"predicted {run.class_names[p]} ({probs[i, p]:.2f})" for i, p in enumerate(predicted)]
    x = run.normalize(images)
    shown = images.astype(np.float32) / 255.0
    heats = {}
    for m in methods:
        maps = explain.attribute(m, run.model, run.variables, x, predicted, **settings.get(m, {}))
        heats[m] = explain.pixel_map(maps, m)
    os.makedirs(out, exist_ok=True)
    written = []
    for m in methods:
        for i, name in enumerate(names):
            label = m + (f" on {settings['grad_cam']['layer']}" if m == "grad_cam" else "")
            written.append(explain_plots.plot_attribution(shown[i], heats[m][i], label, captions[i],
                                                          os.path.join(out, m, f"{name}.png")))
    written.append(explain_plots.plot_comparison(shown, heats, captions, os.path.join(out, "comparison.png"),
                                                 f"{run.config.model} (epoch {run.epoch}): what it looks at"))
    print(f"wrote {len(written)} PNGs to {out} ({', '.join(methods)}; {len(names)} images), "
          f"comparison: {written[-1]}")


if __name__ == "__main__":
    common.run(main, positional=True)
