"""Data layer: image-classification datasets as uint8 NHWC arrays (:class:`Dataset`).

One module per source format, each declaring a :class:`~cnnjax.data.registry.Source`:

* :mod:`~cnnjax.data.synthetic`: ``"synthetic"`` / ``"synthetic_color"``, generated toy tasks;
* :mod:`~cnnjax.data.cache`: a prepared image folder (decoded, resized uint8 arrays on disk);
* :mod:`~cnnjax.data.folder`: ``"folder"``, a directory of images, one sub-folder per class;
* :mod:`~cnnjax.data.cifar`: the published CIFAR-10/100 archives, extracted;
* :mod:`~cnnjax.data.idx`: MNIST-style IDX files (e.g. ``/usr/share/datasets/fashion-mnist``);
* :mod:`~cnnjax.data.tfds`: a copy prepared for TensorFlow Datasets (tried last).

:func:`load` picks the source by name, else by what ``data_dir`` holds.  Adding a format is one
module plus one line in :data:`SOURCES`.  Streaming batches from a source that does not fit in
memory: :mod:`cnnjax.data.stream`.  This package imports nothing else from ``cnnjax`` but
:mod:`cnnjax.data.imagefile`.
"""

from __future__ import annotations

import os

from cnnjax.data import cache, cifar, folder, idx, stream, synthetic as _synthetic_source, tfds
from cnnjax.data.cifar import (CIFAR10_CLASSES, CIFAR_FORMATS, CIFAR_IMAGE_BYTES, find_cifar_dir, load_cifar_dir,
                               read_cifar_binary_batch, read_cifar_python_batch)
from cnnjax.data.dataset import DataError, Dataset, canonical, channel_stats, normalize, pixel_histograms
from cnnjax.data.idx import CLASS_NAMES, IDX_FILES, MAX_IDX_DIMS, SYSTEM_IDX_DIRS, find_idx_dir, load_idx_dir, read_idx
from cnnjax.data.registry import Options, Source
from cnnjax.data.synthetic import SYNTHETIC_COLOR_HUES, synthetic, synthetic_color

#: Every source, in the order :func:`load` asks them what ``data_dir`` holds; TFDS comes last.
SOURCES: tuple[Source, ...] = (
    _synthetic_source.SOURCE,
    cache.SOURCE,
    folder.SOURCE,
    cifar.SOURCE,
    idx.SOURCE,
)


def load(name: str, data_dir: str | None = None, *, image_size: int = 0, channels: int = 0,
         cache_dir: str | None = None, split: dict | None = None) -> Dataset:
    """Load a dataset by name (case-insensitive; ``-`` == ``_``).

    A source that answers to ``name`` itself (``"synthetic"``, ``"folder"``, ...) reads it;
    otherwise the first of :data:`SOURCES` that recognises ``data_dir`` (without a ``data_dir``:
    the system IDX copies), else a copy prepared for TFDS in ``data_dir`` (never downloaded; both
    "train" and "test" splits read fully into memory).  ``image_size``, ``channels`` and
    ``cache_dir`` are :class:`~cnnjax.data.registry.Options` of the sources that resize images
    (image folders); ``split`` pins a flat image folder's files to a run's recorded split
    (:class:`~cnnjax.data.registry.Options`).  Raises a one-line :class:`DataError` if none of these works.
    """
    name = canonical(name)
    options = Options(image_size, channels, cache_dir, split)
    for source in SOURCES:
        if name in source.names:
            return source.load(name, data_dir, None, options)
    if data_dir is not None and not os.path.isdir(data_dir):
        raise DataError(f"data_dir {data_dir!r} is not a directory")
    for source in SOURCES:
        if source.find is not None and (found := source.find(name, data_dir)) is not None:
            return source.load(name, data_dir, found, options)
    try:
        return tfds.load_tfds(cifar.ALIASES.get(name, name), data_dir)
    except Exception as e:  # noqa: BLE001 - any TFDS failure becomes one actionable line
        raise DataError(_not_found(cifar.ALIASES.get(name, name), data_dir, e)) from e


def _not_found(name: str, data_dir: str | None, error: Exception) -> str:
    """The one line that says where ``name`` was looked for and how to provide it."""
    where = data_dir or "the default TFDS data_dir"
    if isinstance(error, ImportError):
        tfds_said = "tensorflow_datasets cannot be imported"
    elif type(error).__name__ == "DatasetNotFoundError":
        tfds_said = "TFDS knows no such dataset"
    else:
        tfds_said = f"TFDS found no prepared copy in {where}"
    if name in CIFAR_FORMATS:
        spec = CIFAR_FORMATS[name]
        return (f"cannot load {name!r}: no {spec['python']['dir']} or {spec['binary']['dir']} files in "
                f"{data_dir or '(no --data_dir given)'}, and {tfds_said}; put the extracted "
                f"python or binary archive in --data_dir")
    dirs = " or ".join(idx._idx_candidates(name, data_dir))
    files = ", ".join(f"{stem}[.gz]" for stem in IDX_FILES.values())
    return (f"cannot load {name!r}: {f'no IDX files in {dirs}' if dirs else 'no --data_dir given'}, "
            f"and {tfds_said}; put {files} in --data_dir (or --data_dir/{name}), or images in "
            f"--data_dir/<class>/ (--config.dataset=folder)")
