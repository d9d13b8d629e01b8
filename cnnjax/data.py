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
    validation split (:meth:`hold_out` makes one from the training set).  ``mean`` and ``std``
    are Python floats (tuples of C floats, per channel, when C > 1: :func:`channel_stats`): the mean and
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
        if self.train_images.shape[-1] > 1:  # colour: per-channel tuples (see channel_stats)
            means, stds = channel_stats(self.train_images)
            object.__setattr__(self, "mean", means)
            object.__setattr__(self, "std", stds)

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

    Pure and jit-friendly (works on tracers); same shape as the input.  ``mean`` / ``std``
    are scalars, or per-channel sequences (length C, broadcast over the last axis).
    """
    import jax.numpy as jnp

    x = jnp.asarray(images).astype(jnp.float32) / 255.0
    if np.ndim(mean) or np.ndim(std):  # per-channel (colour); scalars keep the exact old arithmetic
        return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)
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


def _add_channel_axis(images: np.ndarray) -> np.ndarray:
    """(N, H, W) -> (N, H, W, 1) with C-order strides.  (``images[..., None]`` gives the new axis
    stride 0: numpy does not mind, but ``torch.from_numpy`` keeps it and PyTorch then takes a
    slower conv path -- 40-50 instead of 28 ms per airbench28_m step on 2 cores.)"""
    return np.ascontiguousarray(images).reshape(*images.shape, 1)


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
        train_images=_add_channel_axis(arrays["train_images"]),
        train_labels=arrays["train_labels"],
        test_images=_add_channel_axis(arrays["test_images"]),
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
    return _add_channel_axis(np.clip(np.rint(ink * 255), 0, 255).astype(np.uint8))


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


# --------------------------------------------------------------------------- colour: CIFAR, stats


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 NHWC ``images`` scaled to [0, 1], exact
    (a 256-bin histogram per channel); std falls back to 1.0 where it is 0, both to 0.0/1.0
    for no images."""
    means, stds = [], []
    for c in range(images.shape[-1]):
        counts = np.bincount(images[..., c].reshape(-1), minlength=256).astype(np.float64)
        n = counts.sum()
        values = np.arange(256) / 255.0
        mean = float(counts @ values / n) if n else 0.0
        std = float(np.sqrt(counts @ (values - mean) ** 2 / n)) if n else 1.0
        means.append(mean)
        stds.append(std if std > 0 else 1.0)
    return tuple(means), tuple(stds)


CIFAR_IMAGE_BYTES = 3 * 32 * 32  # one record's pixels: R plane, G plane, B plane, each 32x32 row-major

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

#: The published layouts (https://www.cs.toronto.edu/~kriz/cifar.html), per dataset name.
#: ``label_key`` / ``label_byte``: which label a cifar100 variant uses (fine, or coarse for
#: ``cifar100_coarse``); CIFAR-100 binary records hold <coarse byte><fine byte><3072 pixels>.
CIFAR_FORMATS = {
    "cifar10": dict(
        python=dict(dir="cifar-10-batches-py", train=tuple(f"data_batch_{i}" for i in range(1, 6)),
                    test=("test_batch",), meta="batches.meta", names_key=b"label_names", label_key=b"labels"),
        binary=dict(dir="cifar-10-batches-bin", train=tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
                    test=("test_batch.bin",), meta="batches.meta.txt", label_bytes=1, label_byte=0),
        num_classes=10, default_names=CIFAR10_CLASSES),
    "cifar100": dict(
        python=dict(dir="cifar-100-python", train=("train",), test=("test",), meta="meta",
                    names_key=b"fine_label_names", label_key=b"fine_labels"),
        binary=dict(dir="cifar-100-binary", train=("train.bin",), test=("test.bin",), meta="fine_label_names.txt",
                    label_bytes=2, label_byte=1),
        num_classes=100, default_names=None),
    "cifar100_coarse": dict(
        python=dict(dir="cifar-100-python", train=("train",), test=("test",), meta="meta",
                    names_key=b"coarse_label_names", label_key=b"coarse_labels"),
        binary=dict(dir="cifar-100-binary", train=("train.bin",), test=("test.bin",), meta="coarse_label_names.txt",
                    label_bytes=2, label_byte=0),
        num_classes=20, default_names=None),
}
_CIFAR_TFDS = {"cifar10": ("cifar10", "label"), "cifar100": ("cifar100", "label"),
               "cifar100_coarse": ("cifar100", "coarse_label")}


class _NumpyOnlyUnpickler:
    """pickle.Unpickler that resolves only what a numpy array needs (the CIFAR pickles hold
    dicts, lists, bytes and arrays): a file from elsewhere cannot run code."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("numpy.core.numeric", "_frombuffer"),
               ("numpy._core.numeric", "_frombuffer"), ("copy_reg", "_reconstructor"),
               ("copyreg", "_reconstructor"), ("__builtin__", "object"), ("builtins", "object"),
               ("_codecs", "encode")}  # protocol-2 pickles written by Python 3 spell bytes this way

    @classmethod
    def load(cls, f, path):
        import pickle

        class Unpickler(pickle.Unpickler):
            def find_class(self, module, name):
                if (module, name) not in cls.ALLOWED:
                    raise DataError(f"{path}: not a CIFAR pickle: it refers to {module}.{name}")
                return super().find_class(module, name)

        return Unpickler(f, encoding="bytes").load()


def _pick(d: dict, key: bytes):
    """d[key] for a byte-string key, or its str spelling (re-pickled copies); KeyError otherwise."""
    if key in d:
        return d[key]
    return d[key.decode()]


def _to_nhwc(pixels: np.ndarray) -> np.ndarray:
    """(N, 3072) uint8 rows (R, G, B planes of 32x32) -> (N, 32, 32, 3)."""
    return np.ascontiguousarray(pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def read_cifar_python_batch(path, label_key: bytes = b"labels") -> tuple[np.ndarray, np.ndarray]:
    """One ``cifar-*-python`` pickle (``data_batch_1``, ``test_batch``, CIFAR-100 ``train``):
    a dict with ``b'data'`` (N x 3072 uint8) and ``label_key`` (``b'labels'``;
    ``b'fine_labels'`` / ``b'coarse_labels'`` for CIFAR-100).  Returns (images (N, 32, 32, 3)
    uint8, labels (N,) int64).  One-line :class:`DataError` naming the file otherwise."""
    import pickle
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            d = _NumpyOnlyUnpickler.load(f, path)
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from e
    except DataError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError) as e:
        raise DataError(f"{path}: not a CIFAR python batch (truncated or not a pickle): "
                        f"{type(e).__name__}: {' '.join(str(e).split())}") from e
    if not isinstance(d, dict):
        raise DataError(f"{path}: not a CIFAR python batch: holds a {type(d).__name__}, not a dict")
    try:
        raw, labels = _pick(d, b"data"), _pick(d, label_key)
    except KeyError:
        keys = ", ".join(repr(k) for k in d)
        raise DataError(f"{path}: not a CIFAR python batch with {label_key!r}: its keys are {keys}") from None
    raw = np.asarray(raw)
    if raw.dtype != np.uint8 or raw.ndim != 2 or raw.shape[1] != CIFAR_IMAGE_BYTES:
        raise DataError(f"{path}: b'data' must be uint8 (N, {CIFAR_IMAGE_BYTES}), got {raw.dtype} {raw.shape}")
    try:
        labels = np.asarray(labels, np.int64)
    except (TypeError, ValueError) as e:
        raise DataError(f"{path}: {label_key!r} must be integer labels: {e}") from e
    if labels.shape != (len(raw),):
        raise DataError(f"{path}: {len(raw)} images but {label_key!r} holds {labels.size} labels")
    return _to_nhwc(raw), labels


def read_cifar_binary_batch(path, label_bytes: int = 1, label_byte: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One ``cifar-*-bin(ary)`` file: records of ``label_bytes`` label bytes then 3072 pixel
    bytes (CIFAR-10: <label>; CIFAR-100: <coarse><fine>), no header.  Returns (images
    (N, 32, 32, 3) uint8, labels (N,) from byte ``label_byte`` of each record)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from e
    record = label_bytes + CIFAR_IMAGE_BYTES
    if not data or len(data) % record:
        other = {3073: "CIFAR-10", 3074: "CIFAR-100"}
        hint = "".join(f"; it would fit {name}'s {size}-byte records" for size, name in other.items()
                       if size != record and data and len(data) % size == 0)
        raise DataError(f"{path}: truncated or not a {other.get(record, 'CIFAR')} binary file: {len(data)} bytes "
                        f"is not a whole number of {record}-byte records{hint}")
    records = np.frombuffer(data, np.uint8).reshape(-1, record)
    return _to_nhwc(records[:, label_bytes:]), records[:, label_byte].astype(np.int64)


def write_cifar_python_batch(path, images: np.ndarray, labels, *, label_key: bytes = b"labels",
                             extra_labels: dict | None = None, batch_label: bytes = b"batch") -> None:
    """Write (N, 32, 32, 3) uint8 ``images`` as a CIFAR python batch (the published layout:
    dict of byte-string keys b'batch_label', ``label_key``, b'data', b'filenames')."""
    import pickle
    images = np.asarray(images, np.uint8)
    d = {b"batch_label": batch_label, label_key: [int(v) for v in labels],
         b"data": np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(images), CIFAR_IMAGE_BYTES),
         b"filenames": [f"image_{i:05d}.png".encode() for i in range(len(images))]}
    for k, v in (extra_labels or {}).items():
        d[k] = [int(x) for x in v]
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)


def write_cifar_binary_batch(path, images: np.ndarray, *label_columns) -> None:
    """Write records of ``len(label_columns)`` label bytes (in the given order) + 3072 pixels."""
    images = np.asarray(images, np.uint8)
    pixels = np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(images), CIFAR_IMAGE_BYTES)
    cols = [np.asarray(c, np.uint8).reshape(-1, 1) for c in label_columns]
    with open(path, "wb") as f:
        f.write(np.concatenate([*cols, pixels], axis=1).tobytes())


def find_cifar_dir(name: str, data_dir) -> tuple[str, str] | None:
    """(directory, 'python' | 'binary') of the first complete CIFAR copy for ``name`` in
    ``data_dir`` or its published sub-directory (``cifar-10-batches-py``, ...); None if none
    holds any of the files; DataError naming the missing files for a partial copy."""
    fmt = CIFAR_FORMATS[name]
    partial = None
    for kind in ("python", "binary"):
        spec = fmt[kind]
        for directory in dict.fromkeys([os.fspath(data_dir), os.path.join(data_dir, spec["dir"]),
                                        os.path.join(data_dir, name)]):
            if not os.path.isdir(directory):
                continue
            files = spec["train"] + spec["test"]
            missing = [f for f in files if not os.path.isfile(os.path.join(directory, f))]
            if not missing:
                return directory, kind
            if len(missing) < len(files) and partial is None:
                partial = directory, missing
    if partial:
        raise DataError(f"{partial[0]}: incomplete {name} copy: missing {', '.join(partial[1])}")
    return None


def _cifar_names(directory, kind, spec, fmt) -> tuple[str, ...]:
    path = os.path.join(directory, spec["meta"])
    n = fmt["num_classes"]
    if not os.path.isfile(path):
        return fmt["default_names"] or tuple(str(i) for i in range(n))
    if kind == "binary":
        with open(path, "rb") as f:
            names = [line.strip().decode("utf-8", "replace") for line in f.read().splitlines() if line.strip()]
    else:
        import pickle
        try:
            with open(path, "rb") as f:
                meta = _NumpyOnlyUnpickler.load(f, path)
            names = [v.decode() if isinstance(v, bytes) else str(v) for v in _pick(meta, spec["names_key"])]
        except DataError:
            raise
        except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise DataError(f"{path}: not a CIFAR meta file with {spec['names_key']!r}: "
                            f"{type(e).__name__}: {' '.join(str(e).split())}") from e
    if len(names) != n:
        raise DataError(f"{path}: lists {len(names)} class names, {n} expected")
    return tuple(names)


def load_cifar_dir(directory, name: str, kind: str) -> Dataset:
    """A CIFAR copy in ``directory`` of format ``kind`` ('python' or 'binary') as a Dataset."""
    fmt = CIFAR_FORMATS[name]
    spec = fmt[kind]
    n = fmt["num_classes"]
    splits = []
    for files in (spec["train"], spec["test"]):
        images, labels = [], []
        for f in files:
            path = os.path.join(directory, f)
            if kind == "python":
                x, y = read_cifar_python_batch(path, spec["label_key"])
            else:
                x, y = read_cifar_binary_batch(path, spec["label_bytes"], spec["label_byte"])
            if y.size and (y.min() < 0 or y.max() >= n):
                raise DataError(f"{path}: labels must lie in [0, {n}) for {name}, got [{y.min()}, {y.max()}] "
                                f"(a file of another dataset?)")
            images.append(x)
            labels.append(y)
        splits += [np.concatenate(images), np.concatenate(labels).astype(np.int32)]
    return Dataset(name, *splits, class_names=_cifar_names(directory, kind, spec, fmt),
                   source=f"cifar-{kind}:{directory}")


def _tfds_keys(info, label_key=None) -> tuple[str, str]:
    """(image feature, label feature) of a TFDS image-classification dataset, from its info:
    the first Image feature, and ``label_key`` or 'label' or the first ClassLabel."""
    import tensorflow_datasets as tfds
    feats = info.features
    images = [k for k in feats.keys() if isinstance(feats[k], tfds.features.Image)]
    labels = [k for k in feats.keys() if isinstance(feats[k], tfds.features.ClassLabel)]
    if not images or not labels:
        raise DataError(f"TFDS {info.name}: not an image-classification dataset (features: {', '.join(feats.keys())})")
    return images[0], label_key or ("label" if "label" in labels else labels[0])


# --------------------------------------------------------------------------- synthetic colour

SYNTHETIC_COLOR_HUES = (0.0, 0.13, 0.33, 0.55, 0.75)  # red, yellow, green, cyan-blue, purple


def synthetic_color(num_train: int = 2000, num_test: int = 500, *, image_size: int = 32, seed: int = 0) -> Dataset:
    """Deterministic, learnable colour task (uint8 ``(N, image_size, image_size, 3)``, 10 classes):
    class k is a filled shape (k // 5: 0 = disc, 1 = square ring) of hue
    ``SYNTHETIC_COLOR_HUES[k % 5]`` (+-0.03 jitter) at a random position and size, on a
    random dim, desaturated background with pixel noise.  Needs colour (hue) and shape
    (edges vs a filled centre); balanced, shuffled classes."""
    rng = np.random.default_rng(seed)
    s = image_size

    def hsv_to_rgb(h, sat, v):
        i = np.floor(h * 6) % 6
        f = h * 6 - np.floor(h * 6)
        p, q, t = v * (1 - sat), v * (1 - f * sat), v * (1 - (1 - f) * sat)
        table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
        out = np.zeros(h.shape + (3,))
        for k, rgb in enumerate(table):
            out = np.where((i == k)[..., None], np.stack(rgb, -1), out)
        return out

    def split(n):
        labels = rng.permutation(np.arange(n) % 10).astype(np.int32)
        hue = (np.asarray(SYNTHETIC_COLOR_HUES)[labels % 5] + rng.uniform(-0.03, 0.03, n)) % 1.0
        colour = hsv_to_rgb(hue, rng.uniform(0.7, 1.0, n), rng.uniform(0.75, 1.0, n))[:, None, None, :]
        background = rng.uniform(0.1, 0.45, (n, 1, 1, 1)) * (1 + rng.uniform(-0.2, 0.2, (n, 1, 1, 3)))
        radius = rng.uniform(0.18, 0.3, (n, 1, 1)) * s
        cy, cx = (rng.uniform(0.35, 0.65, (2, n, 1, 1)) * s)
        y, x = np.mgrid[0:s, 0:s].astype(np.float64)
        disc = np.clip(radius + 0.5 - np.hypot(y - cy, x - cx), 0, 1)
        cheb = np.maximum(np.abs(y - cy), np.abs(x - cx))
        ring = np.clip(radius + 0.5 - cheb, 0, 1) * np.clip(cheb - 0.55 * radius + 0.5, 0, 1)
        mask = np.where((labels // 5 == 0)[:, None, None], disc, ring)[..., None]
        img = background * (1 - mask) + colour * mask + rng.normal(0, 0.04, (n, s, s, 3))
        return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8), labels

    train = split(num_train)
    test = split(num_test)
    names = tuple(f"{shape}_{c}" for shape in ("disc", "ring") for c in ("red", "yellow", "green", "blue", "purple"))
    return Dataset("synthetic_color", *train, *test, class_names=names, source="synthetic_color")


# --------------------------------------------------------------------------- load


def _load_tfds(name: str, data_dir: str | None) -> Dataset:
    """A copy already prepared for TFDS (``download=False``: no network, no TensorFlow)."""
    import tensorflow_datasets as tfds  # lazy: slow import, optional at runtime
    from absl import logging as absl_logging

    level = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)  # e.g. "Variant folder ... has no dataset_info.json"
    try:
        tfds_name, label_key = _CIFAR_TFDS.get(name, (name, None))
        train, test = tfds.data_source(tfds_name, split=["train", "test"], data_dir=data_dir, download=False)
    finally:
        absl_logging.set_verbosity(level)
    image_key, label_key = _tfds_keys(train.dataset_info, label_key)

    def arrays(source):  # per-record indexing (the Sequence protocol) works for real and mocked sources alike
        records = [source[i] for i in range(len(source))]
        return (np.stack([np.asarray(r[image_key], np.uint8) for r in records]),
                np.asarray([r[label_key] for r in records], np.int32))

    val = None
    if "validation" in getattr(train.dataset_info, "splits", {}):  # the dataset's own validation split
        val = arrays(tfds.data_source(name, split="validation", data_dir=data_dir, download=False))
    class_names = tuple(train.dataset_info.features[label_key].names)
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
    if name in ("synthetic_color", "synthetic_colour"):
        return synthetic_color()
    if data_dir is not None and not os.path.isdir(data_dir):
        raise DataError(f"data_dir {data_dir!r} is not a directory")
    name = {"cifar_10": "cifar10", "cifar_100": "cifar100", "cifar_100_coarse": "cifar100_coarse"}.get(name, name)
    found = find_cifar_dir(name, data_dir) if name in CIFAR_FORMATS and data_dir is not None else None
    if found:  # a local copy of the published CIFAR archives (python pickles or binary records)
        return load_cifar_dir(found[0], name, found[1])
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
        if name in CIFAR_FORMATS:
            spec = CIFAR_FORMATS[name]
            raise DataError(f"cannot load {name!r}: no {spec['python']['dir']} or {spec['binary']['dir']} files in "
                            f"{data_dir or '(no --data_dir given)'}, and {tfds_said}; put the extracted "
                            f"python or binary archive in --data_dir") from e
        dirs = " or ".join(_idx_candidates(name, data_dir))
        files = ", ".join(f"{stem}[.gz]" for stem in IDX_FILES.values())
        raise DataError(f"cannot load {name!r}: {f'no IDX files in {dirs}' if dirs else 'no --data_dir given'}, "
                        f"and {tfds_said}; "
                        f"put {files} in --data_dir (or --data_dir/{name})") from e
