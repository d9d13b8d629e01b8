r"""Export a finished run's classifier to a file that runs without cnnjax.

  python -m experiments.export --workdir=W --format=stablehlo --out=model.stablehlo
  python -m experiments.export --workdir=W --format=onnx --out=model.onnx [--which=latest]

The file computes ``logits = f(images)``: uint8 images (B, H, W, C) of the run's size, any batch
size B, the run's normalisation inside, float32 logits (B, classes) of the model's evaluation
forward pass (no test-time augmentation); see cnnjax/weights/export.py.  Before writing, the export is
reloaded (jax.export.deserialize / onnxruntime) and checked against the JAX logits on the
run's test images (max |difference| / max |logit| <= 1e-5); the check and the class names are
printed.  Reload in Python:

  jax.export.deserialize(bytearray(open(F, "rb").read())).call(images)
  onnxruntime.InferenceSession(F).run(["logits"], {"images": images})[0]

Exit 2 with one ``error:`` line and nothing written: a workdir with no finished training, --out
already existing (--overwrite replaces it), a model the format cannot express, or an export that
does not reproduce the logits.  The file is written whole or not at all (a temporary file, renamed).
"""
from __future__ import annotations

import os

import numpy as np
from absl import flags

from experiments import common

_WORKDIR = flags.DEFINE_string("workdir", None, "Finished training workdir to export.")
_FORMAT = flags.DEFINE_enum("format", None, ["stablehlo", "onnx"], "Export format.")
_OUT = flags.DEFINE_string("out", None, "File to write.")
_WHICH = flags.DEFINE_enum("which", "best", ["best", "latest"], "Checkpoint to export.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing --out file.")
TOLERANCE = 1e-5


def check_images(run, n: int = 16) -> np.ndarray:
    """Up to ``n`` of the run's test images (the dataset it trained on), uint8 NHWC; random
    pixels of the run's shape when the dataset cannot be read here."""
    from cnnjax.train import experiment
    try:  # the run's own data settings (an image folder's size and channels, classes)
        images = experiment.load_data(run.config).test_images[:n]
        if images.shape[1:] == run.image_shape:
            return images
    except (OSError, ValueError):
        pass
    return np.random.default_rng(0).integers(0, 256, (n, *run.image_shape), dtype=np.uint8)


def main(argv):
    from cnnjax.weights import export
    from cnnjax.interpret import inference
    for flag in (_WORKDIR, _FORMAT, _OUT):
        if not flag.value:
            raise common.UsageError(f"--{flag.name} is required")
    out = _OUT.value
    if os.path.exists(out) and not _OVERWRITE.value:
        raise common.UsageError(f"--out {out} already exists (--overwrite replaces it)")
    if os.path.isdir(out) or not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise common.UsageError(f"--out {out}: not a file in an existing directory")
    run = inference.load_run(_WORKDIR.value, _WHICH.value)
    blob = export.export(_FORMAT.value, run.model, run.variables, run.image_shape, run.mean, run.std, run.config.model)
    images = check_images(run)
    want = np.asarray(export.logits_function(run.model, run.variables, run.mean, run.std)(images))
    got = (export.run_stablehlo if _FORMAT.value == "stablehlo" else export.run_onnx)(blob, images)
    error = export.relative_error(got, want)
    if not error <= TOLERANCE:
        raise common.UsageError(f"the {_FORMAT.value} export of {run.config.model} does not reproduce its logits "
                                f"(relative error {error:.2e} > {TOLERANCE:g}); nothing written")
    tmp = f"{out}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(blob)
        os.replace(tmp, out)
    except OSError as e:
        raise common.UsageError(f"cannot write {out}: {e.strerror or e}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    h, w, c = run.image_shape
    print(f"wrote {out} ({len(blob):,} bytes): {run.config.model} (epoch {run.epoch}), {_FORMAT.value}, "
          f"uint8 images (B, {h}, {w}, {c}) -> float32 logits (B, {len(run.class_names)}); reload checked on "
          f"{len(images)} images, relative error {error:.1e}")
    print("classes: " + ", ".join(f"{i}={name}" for i, name in enumerate(run.class_names)))


if __name__ == "__main__":
    common.run(main)
