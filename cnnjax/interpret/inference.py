"""A finished training run used on new inputs: ``run = load_run(workdir)``, then
``probabilities = make_predict_fn(run)(images_u8)`` or ``run.normalize(images_u8)`` for the
methods of :mod:`cnnjax.interpret.attribution`.

Images are treated exactly as the run's own evaluation treats its test set: uint8 NHWC of the
run's image size and channels (image files through :func:`cnnjax.data.imagefile.load_image`, the
rule image folders are read with), normalised with the run's training mean and std, the model
in the run's ``compute_dtype`` with its test-time augmentation (``config.tta``).
"""
from __future__ import annotations

import concurrent.futures
import os
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.train import config as config_lib
from cnnjax import data as data_lib
from cnnjax.train import evaluation, runs
from cnnjax.data import imagefile
from cnnjax.train import step as step_lib
from cnnjax.interpret.features import hashable
from cnnjax.train.workdir import Workdir


class TrainedRun(NamedTuple):
    model: Any
    variables: dict
    config: config_lib.TrainConfig
    epoch: int                          # the restored checkpoint's epoch
    image_shape: tuple[int, int, int]   # (H, W, C) the run trained on
    mean: Any                           # training pixel statistics (float, or per channel)
    std: Any
    class_names: tuple[str, ...]

    def normalize(self, images_u8) -> jax.Array:
        """uint8 NHWC -> the model's float32 input, as in training."""
        return data_lib.normalize(images_u8, self.mean, self.std)


def load_run(workdir: str, which: str = "best") -> TrainedRun:
    """The finished training run in ``workdir`` with its ``which`` checkpoint ('best': selected by
    validation accuracy; 'latest'), read without changing anything (:func:`cnnjax.train.runs.load_trained`;
    a damaged checkpoint skipped for 'latest' is named on stderr).
    FileNotFoundError (one line naming the directory) when it has no finished training."""
    wd = Workdir(workdir)
    if not os.path.isdir(wd.path):
        raise FileNotFoundError(f"--workdir {workdir}: no such directory")
    if wd.summary() is None:
        raise FileNotFoundError(f"--workdir {workdir} has no finished training (no summary.json); "
                                f"train it to the end with python -m experiments.train --workdir={workdir}")
    model, variables, cfg, epoch = runs.load_trained(workdir, which)
    info = wd.data_info()
    return TrainedRun(hashable(model), variables, cfg, epoch, tuple(int(d) for d in info["image_shape"]),
                      info["mean"], info["std"], tuple(info["class_names"]))


def make_logits_fn(run: TrainedRun) -> Callable:
    """jitted ``logits(images_u8) -> (N, classes) float32``: the run's evaluation forward pass
    (normalisation, compute dtype, test-time augmentation) of :func:`cnnjax.train.evaluation.make_eval_step`."""
    compute = jnp.dtype(step_lib.resolve_compute_dtype(run.config.compute_dtype))
    variables = run.variables if compute == jnp.float32 else step_lib.cast_floats(run.variables, compute)
    model, tta = run.model, run.config.tta

    @jax.jit
    def logits(variables, images):
        x = run.normalize(images).astype(compute)
        return evaluation.tta_logits(lambda v: model.apply(variables, v, train=False).astype(jnp.float32), x, tta)

    return lambda images: logits(variables, images)


def make_predict_fn(run: TrainedRun) -> Callable:
    """jitted ``probabilities(images_u8) -> (N, classes) float32``: softmax of :func:`make_logits_fn`."""
    logits = make_logits_fn(run)
    return lambda images: jax.nn.softmax(logits(images), axis=-1)


# --------------------------------------------------------------------------- image files


def image_files(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """(files, errors) for command-line arguments: a directory gives its image files
    (:func:`cnnjax.data.imagefile.is_image_name`, recursively, sorted), any other argument itself
    (it need not look like an image: reading it decides).  An error names a missing argument or
    a directory with no image file."""
    files, errors = [], []
    for arg in args:
        if os.path.isdir(arg):
            found = sorted(os.path.join(root, f) for root, dirs, names in os.walk(arg)
                           for f in names if imagefile.is_image_name(f))
            if not found:
                errors.append(f"{arg}: no image files ({', '.join(imagefile.IMAGE_EXTENSIONS)}) in this directory")
            files += found
        elif os.path.exists(arg):
            files.append(arg)
        else:
            errors.append(f"{arg}: no such file or directory")
    return files, errors


def file_channels(path: str) -> int | None:
    """1 for a greyscale image file, 3 for a colour one (from its header: palette, RGB, CMYK ...;
    transparency does not count); None when Pillow cannot open it (reading it reports why)."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            mode = im.mode
    except Exception:  # noqa: BLE001 - load_image gives the one-line reason
        return None
    return 1 if mode in ("1", "L", "LA", "La", "I", "F") or mode.startswith("I;") else 3


def read_image(path: str, image_shape: Sequence[int], convert_channels: bool = False) -> np.ndarray:
    """``path`` as the run's input: uint8 ``image_shape`` (H, W, C) by :func:`cnnjax.data.imagefile.load_image`
    (square H = W: shorter side resized, centre crop).  ImageError (one line naming the file)
    when it is unreadable, or has another channel count than C and ``convert_channels`` is False."""
    h, w, c = image_shape
    if h != w:
        raise ValueError(f"the run trained on {h}x{w} images: image files are read as squares only")
    found = file_channels(path)
    if found is not None and found != c and not convert_channels:
        kind = {1: "greyscale (1 channel)", 3: "colour (3 channels)"}
        raise imagefile.ImageError(f"{path}: a {kind[found]} image, the run was trained on {kind[c]} images "
                                   f"(--convert_channels converts it)")
    return imagefile.load_image(path, h, c)


def read_images(paths: Sequence[str], image_shape: Sequence[int], convert_channels: bool = False,
                workers: int | None = None) -> tuple[np.ndarray, list[str], list[str]]:
    """(images uint8 (M, H, W, C), their paths, one error line per file that could not be read),
    in ``paths``' order, decoded by ``workers`` threads (default: the CPU count; Pillow decodes
    without the GIL)."""
    def one(path):
        try:
            return read_image(path, image_shape, convert_channels), None
        except imagefile.ImageError as e:
            return None, str(e)

    with concurrent.futures.ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
        results = list(pool.map(one, paths))
    ok = [(p, im) for p, (im, err) in zip(paths, results) if err is None]
    images = np.stack([im for _, im in ok]) if ok else np.zeros((0, *image_shape), np.uint8)
    return images, [p for p, _ in ok], [err for _, err in results if err is not None]
