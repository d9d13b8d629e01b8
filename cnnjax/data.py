"""Data layer: image-classification datasets as in-memory numpy arrays.

Every dataset is a :class:`Dataset` of uint8 NHWC images and int32 labels.
Sources, tried in order by :func:`load`:

* ``"synthetic"``: a deterministic, learnable toy task (:func:`synthetic`);
* a local directory with the four MNIST-style IDX files (plain or gzipped),
  e.g. Debian's ``dataset-fashion-mnist`` package at
  ``/usr/share/datasets/fashion-mnist`` (:func:`find_idx_dir`);
* TensorFlow Datasets via ``tfds.data_source``, which reads already-prepared
  array_record data without TensorFlow.

This module imports nothing else from ``cnnjax``.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import os
import zlib

import numpy as np


class DataError(ValueError):
    """One-line, user-facing error about a dataset or data file (names the file)."""


# --------------------------------------------------------------------------- Dataset


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test (and optionally validation) image-classification dataset held in memory.

    Images are uint8 NHWC ``(N, H, W, C)``; labels are int32 ``(N,)`` in
    ``[0, num_classes)``.  ``val_images``/``val_labels`` are None when the dataset has no
    validation split (:meth:`hold_out` makes one from the training set). ``mean`` and ``std`` are Python floats: the mean and
    (population) standard deviation of all train pixels scaled to ``[0, 1]``,
    computed once at construction (``std`` falls back to 1.0 when it would be 0,
    and both fall back to 0.0/1.0 for an empty train split).
    """

    name: str
    train_images: np.ndarray = dataclasses.field(repr=False)
    train_labels: np.ndarray = dataclasses.field(repr=False)
    test_images: np.ndarray = dataclasses.field(repr=False)
    test_labels: np.ndarray = dataclasses.field(repr=False)
    class_names: tuple[str, ...]
    source: str
    val_images: np.ndarray | None = dataclasses.field(default=None, repr=False)
    val_labels: np.ndarray | None = dataclasses.field(default=None, repr=False)
    mean: float = dataclasses.field(init=False)
    std: float = dataclasses.field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "class_names", tuple(self.class_names))
        shapes = set()
        if (self.val_images is None) != (self.val_labels is None):
            raise DataError(f"{self.name}: val_images and val_labels go together")
        for split in ("train", "test") + (("val",) if self.val_images is not None else ()):
            images = getattr(self, f"{split}_images")
            labels = np.asarray(getattr(self, f"{split}_labels"))
            if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
                raise DataError(f"{self.name}: {split}_images must be a uint8 (N, H, W, C) array, "
                                f"got {getattr(images, 'dtype', type(images))} {np.shape(images)}")
            if labels.ndim != 1 or len(labels) != len(images) or not (
                    labels.size == 0 or np.issubdtype(labels.dtype, np.integer)):
                raise DataError(f"{self.name}: {split}_labels must be integer ({len(images)},), "
                                f"got {labels.dtype} {labels.shape}")
            if labels.size and (labels.min() < 0 or labels.max() >= len(self.class_names)):
                raise DataError(f"{self.name}: {split}_labels must lie in [0, {len(self.class_names)}), "
                                f"got [{labels.min()}, {labels.max()}]")
            object.__setattr__(self, f"{split}_labels", labels.astype(np.int32, copy=False))
            shapes.add(images.shape[1:])
        if len(shapes) != 1:
            raise DataError(f"{self.name}: the splits' image shapes differ: {sorted(shapes)}")
        # Exact pixel statistics from a 256-bin histogram: fast, no float copy of the images.
        counts = np.bincount(self.train_images.reshape(-1), minlength=256).astype(np.float64)
        n = counts.sum()
        values = np.arange(256) / 255.0
        mean = float(counts @ values / n) if n else 0.0
        std = float(np.sqrt(counts @ (values - mean) ** 2 / n)) if n else 1.0
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std if std > 0 else 1.0)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)``."""
        return tuple(self.train_images.shape[1:])

    def subset(self, num_train: int | None, num_test: int | None) -> "Dataset":
        """The first ``num_train`` / ``num_test`` examples of each split (None keeps all).

        Pixel statistics are recomputed on the subset's train images.
        """
        def first(n, *arrays):
            if n is not None and n < 0:
                raise ValueError(f"subset sizes must be >= 0, got {n}")
            return [a[:n] for a in arrays]

        return dataclasses.replace(
            self,
            **dict(zip(("train_images", "train_labels"), first(num_train, self.train_images, self.train_labels))),
            **dict(zip(("test_images", "test_labels"), first(num_test, self.test_images, self.test_labels))),
        )

    @property
    def has_validation(self) -> bool:
        return self.val_images is not None and len(self.val_images) > 0

    def hold_out(self, size: float, seed: int) -> "Dataset":
        """A validation split taken from the training set: ``size`` images (``size >= 1``) or that
        fraction of them (``0 < size < 1``), chosen by ``seed``; the rest stay training images in
        their order.  ``size == 0``, or a dataset that has its own validation split: unchanged.
        Pixel statistics are recomputed on the remaining training images."""
        if size == 0 or self.val_images is not None:
            return self
        n = len(self.train_labels)
        count = int(size) if size >= 1 else int(round(size * n))
        if not 0 < count < n:
            raise ValueError(f"a validation split of {size} leaves {n - count} of {n} training images; "
                             f"choose a validation_size between 1 and {n - 1} images or a fraction in (0, 1)")
        chosen = np.zeros(n, bool)
        chosen[np.random.default_rng(seed).permutation(n)[:count]] = True
        return dataclasses.replace(self, train_images=self.train_images[~chosen], train_labels=self.train_labels[~chosen],
                                   val_images=self.train_images[chosen], val_labels=self.train_labels[chosen])


def normalize(images, mean: float, std: float):
    """uint8 NHWC images (numpy or jax) -> float32 jax array ``(x / 255 - mean) / std``.

    Pure and jit-friendly (works on tracers); same shape as the input.
    """
    import jax.numpy as jnp

    x = jnp.asarray(images).astype(jnp.float32) / 255.0
    return (x - jnp.float32(mean)) / jnp.float32(std)


# --------------------------------------------------------------------------- IDX files

# IDX type code -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_DTYPES.items()}
MAX_IDX_DIMS = 4  # images are (N, H, W) or (N, H, W, C); more is a corrupt header


def read_idx(path, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (plain, or gzipped: detected by the 1f 8b magic bytes).

    Returns a native-endian, writable array with the file's dtype and shape
    (e.g. uint8 ``(N, 28, 28)`` for MNIST images, uint8 ``(N,)`` for labels).
    Raises :class:`DataError` naming the file if it is missing, not IDX,
    corrupt, truncated, has trailing bytes, or its header is implausible: more
    than :data:`MAX_IDX_DIMS` dimensions, or not ``ndim`` of them when given.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from e
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt gzip data: {e}") from e
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _IDX_DTYPES or data[3] == 0:
        raise DataError(f"{path}: not an IDX file: bad magic bytes {data[:4].hex(' ') or '(empty file)'}")
    dtype, n = np.dtype(_IDX_DTYPES[data[2]]), data[3]
    if ndim is not None and n != ndim:
        raise DataError(f"{path}: header claims {n} dimensions, expected {ndim}")
    if n > MAX_IDX_DIMS:
        raise DataError(f"{path}: header claims {n} dimensions, at most {MAX_IDX_DIMS} are supported")
    header = 4 + 4 * n
    if len(data) < header:
        raise DataError(f"{path}: truncated: header of {n} dims needs {header} bytes, file holds {len(data)}")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", n, offset=4))
    expected = math.prod(dims) * dtype.itemsize  # Python ints: no overflow for absurd sizes
    held = len(data) - header
    if held != expected:
        what = "truncated" if held < expected else "trailing bytes"
        raise DataError(f"{path}: {what}: header says {'x'.join(map(str, dims))} ({expected} bytes) "
                        f"but file holds {held} bytes")
    return np.frombuffer(data, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path, array) -> None:
    """Write ``array`` (uint8/int8/int16/int32/float32/float64, rank 1..MAX_IDX_DIMS) as IDX.

    Gzipped if ``path`` ends with ``.gz``.
    """
    path = os.fspath(path)
    array = np.asarray(array)
    code = _IDX_CODES.get(array.dtype.newbyteorder("="))
    if code is None or not 1 <= array.ndim <= MAX_IDX_DIMS:
        raise DataError(f"{path}: cannot write {array.dtype} array of rank {array.ndim} as IDX")
    payload = (bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
               + np.ascontiguousarray(array, _IDX_DTYPES[code]).tobytes())
    if path.endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    with open(path, "wb") as f:
        f.write(payload)


IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

CLASS_NAMES = {
    "mnist": tuple(str(i) for i in range(10)),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "kmnist": ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
}

# System-wide IDX copies (Debian packages); checked after data_dir.
SYSTEM_IDX_DIRS = {
    "fashion_mnist": "/usr/share/datasets/fashion-mnist",
    "mnist": "/usr/share/datasets/mnist",
}


def _canonical(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def _idx_path(directory, stem: str) -> str | None:
    for candidate in (os.path.join(directory, stem), os.path.join(directory, stem + ".gz")):
        if os.path.isfile(candidate):
            return candidate
    return None


def _idx_candidates(name: str, data_dir: str | None) -> list[str]:
    """Where :func:`find_idx_dir` looks, in order."""
    if data_dir is None:
        return [SYSTEM_IDX_DIRS[name]] if name in SYSTEM_IDX_DIRS else []
    data_dir = os.fspath(data_dir)
    return list(dict.fromkeys([data_dir, os.path.join(data_dir, name), os.path.join(data_dir, name.replace("_", "-"))]))


def find_idx_dir(name: str, data_dir: str | None) -> str | None:
    """First directory holding all four :data:`IDX_FILES` (each plain or ``.gz``), or None
    if none holds any of them.

    Tries ``data_dir``, ``data_dir/<name>`` (underscore and hyphen spellings); without a
    ``data_dir``, :data:`SYSTEM_IDX_DIRS` for the name (a named directory is never silently
    replaced by the system copy). If no directory is complete but one holds some of the
    files, raises :class:`DataError` naming the missing ones (rather than trying TFDS).
    """
    partial = None
    for directory in _idx_candidates(_canonical(name), data_dir):
        if not os.path.isdir(directory):
            continue
        missing = [stem for stem in IDX_FILES.values() if _idx_path(directory, stem) is None]
        if not missing:
            return directory
        if len(missing) < len(IDX_FILES) and partial is None:
            partial = directory, missing
    if partial:
        directory, missing = partial
        raise DataError(f"{directory}: incomplete IDX dataset: missing "
                        f"{', '.join(stem + '[.gz]' for stem in missing)}")
    return None


def load_idx_dir(directory, name) -> Dataset:
    """Load the four IDX files in ``directory`` into a :class:`Dataset`.

    Images ``(N, H, W)`` uint8 become ``(N, H, W, 1)``. Class names come from
    :data:`CLASS_NAMES` (else ``"0".."K-1"`` with K = max label + 1).
    """
    name, directory = _canonical(name), os.fspath(directory)
    paths, arrays = {}, {}
    for key, stem in IDX_FILES.items():
        paths[key] = _idx_path(directory, stem)
        if paths[key] is None:
            raise DataError(f"{os.path.join(directory, stem)}[.gz]: no such file")
        arrays[key] = read_idx(paths[key], ndim=3 if key.endswith("images") else 1)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        img_path, lbl_path = paths[f"{split}_images"], paths[f"{split}_labels"]
        if images.dtype != np.uint8:
            raise DataError(f"{img_path}: expected uint8 images (N, H, W), got {images.dtype}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{lbl_path}: expected integer labels (N,), got {labels.dtype}")
        if len(images) != len(labels):
            raise DataError(f"{img_path} holds {len(images)} images but {lbl_path} holds {len(labels)} labels")
    class_names = CLASS_NAMES.get(name)
    if class_names is None:
        top = max(int(arrays[k].max(initial=0)) for k in ("train_labels", "test_labels"))
        class_names = tuple(str(i) for i in range(top + 1))
    for key in ("train_labels", "test_labels"):
        labels = arrays[key]
        if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
            raise DataError(f"{paths[key]}: labels must lie in [0, {len(class_names)}) for {name!r}, "
                            f"got [{labels.min()}, {labels.max()}]")
    return Dataset(
        name=name,
        train_images=arrays["train_images"][..., None],
        train_labels=arrays["train_labels"],
        test_images=arrays["test_images"][..., None],
        test_labels=arrays["test_labels"],
        class_names=class_names,
        source=f"idx:{directory}",
    )


# --------------------------------------------------------------------------- synthetic


def _bars(rng: np.random.Generator, labels: np.ndarray, size: int, num_classes: int) -> np.ndarray:
    """uint8 ``(n, size, size, 1)``: an oriented bar per image at angle label*180/num_classes deg."""
    n, s = len(labels), size / 28.0
    theta = np.deg2rad(labels * 180.0 / num_classes + rng.uniform(-2.0, 2.0, n))[:, None, None]
    cx, cy = (size - 1) / 2 + rng.uniform(-2 * s, 2 * s, (2, n, 1, 1))
    half_len = rng.uniform(7 * s, 11 * s, (n, 1, 1))
    half_width = rng.uniform(0.8 * s, 1.6 * s, (n, 1, 1))
    brightness = rng.uniform(0.7, 1.0, (n, 1, 1))
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    dx, dy = x - cx, cy - y  # y axis points up, so angles run counter-clockwise on screen
    along = np.abs(dx * np.cos(theta) + dy * np.sin(theta))
    across = np.abs(-dx * np.sin(theta) + dy * np.cos(theta))
    # Soft (1-pixel) edges across and at the ends of the bar.
    ink = np.clip(half_width + 0.5 - across, 0, 1) * np.clip(half_len + 0.5 - along, 0, 1) * brightness
    ink = ink + rng.normal(0.0, 0.05, ink.shape)
    return np.clip(np.rint(ink * 255), 0, 255).astype(np.uint8)[..., None]


def synthetic(num_train: int = 2000, num_test: int = 500, *, image_size: int = 28,
              num_classes: int = 10, seed: int = 0) -> Dataset:
    """Deterministic toy task: class k is a bar at k*180/num_classes degrees.

    Each bar passes near the image centre (random offset of up to 2 px at 28x28),
    with random length, thickness, brightness, +-2 deg angle jitter and gaussian
    pixel noise. Images uint8 ``(N, image_size, image_size, 1)``; classes are
    balanced (counts differ by at most 1) and shuffled. A small CNN gets well
    above 90% test accuracy within a few hundred steps.
    """
    rng = np.random.default_rng(seed)

    def split(n):
        labels = rng.permutation(np.arange(n) % num_classes).astype(np.int32)
        chunks = [_bars(rng, labels[i:i + 4096], image_size, num_classes) for i in range(0, max(n, 1), 4096)]
        return np.concatenate(chunks), labels

    train_images, train_labels = split(num_train)
    test_images, test_labels = split(num_test)
    names = tuple(f"bar_{k * 180 / num_classes:g}deg" for k in range(num_classes))
    return Dataset("synthetic", train_images, train_labels, test_images, test_labels, names, "synthetic")


# --------------------------------------------------------------------------- load


def _load_tfds(name: str, data_dir: str | None) -> Dataset:
    """A copy already prepared for TFDS (``download=False``: no network, no TensorFlow)."""
    import tensorflow_datasets as tfds  # lazy: slow import, optional at runtime
    from absl import logging as absl_logging

    level = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)  # e.g. "Variant folder ... has no dataset_info.json"
    try:
        train, test = tfds.data_source(name, split=["train", "test"], data_dir=data_dir, download=False)
    finally:
        absl_logging.set_verbosity(level)
    def arrays(source):  # per-record indexing (the Sequence protocol) works for real and mocked sources alike
        records = [source[i] for i in range(len(source))]
        return (np.stack([np.asarray(r["image"], np.uint8) for r in records]),
                np.asarray([r["label"] for r in records], np.int32))

    val = None
    if "validation" in getattr(train.dataset_info, "splits", {}):  # the dataset's own validation split
        val = arrays(tfds.data_source(name, split="validation", data_dir=data_dir, download=False))
    class_names = tuple(train.dataset_info.features["label"].names)
    where = data_dir or "the default TFDS data_dir"
    return Dataset(name, *arrays(train), *arrays(test), class_names=class_names, source=f"tfds:{name} ({where})",
                   val_images=val[0] if val else None, val_labels=val[1] if val else None)


def load(name: str, data_dir: str | None = None) -> Dataset:
    """Load a dataset by name (case-insensitive; ``-`` == ``_``).

    ``"synthetic"`` -> :func:`synthetic`; else the IDX files found by
    :func:`find_idx_dir`; else a copy prepared for TFDS in ``data_dir`` (never
    downloaded; both "train" and "test" splits read fully into memory). Raises a
    one-line :class:`DataError` if none of these works.
    """
    name = _canonical(name)
    if name == "synthetic":
        return synthetic()
    if data_dir is not None and not os.path.isdir(data_dir):
        raise DataError(f"data_dir {data_dir!r} is not a directory")
    directory = find_idx_dir(name, data_dir)
    if directory is not None:
        return load_idx_dir(directory, name)
    try:
        return _load_tfds(name, data_dir)
    except Exception as e:  # noqa: BLE001 - any TFDS failure becomes one actionable line
        where = data_dir or "the default TFDS data_dir"
        if isinstance(e, ImportError):
            tfds_said = "tensorflow_datasets cannot be imported"
        elif type(e).__name__ == "DatasetNotFoundError":
            tfds_said = "TFDS knows no such dataset"
        else:
            tfds_said = f"TFDS found no prepared copy in {where}"
        dirs = " or ".join(_idx_candidates(name, data_dir))
        files = ", ".join(f"{stem}[.gz]" for stem in IDX_FILES.values())
        raise DataError(f"cannot load {name!r}: {f'no IDX files in {dirs}' if dirs else 'no --data_dir given'}, "
                        f"and {tfds_said}; "
                        f"put {files} in --data_dir (or --data_dir/{name})") from e
