"""MNIST-style IDX files: four files (plain or gzipped) in one directory, e.g. Debian's
``dataset-fashion-mnist`` package at ``/usr/share/datasets/fashion-mnist``."""

from __future__ import annotations

import collections
import gzip
import hashlib
import math
import os
import zlib

import numpy as np

from cnnjax.data.dataset import DataError, Dataset, add_channel_axis, canonical
from cnnjax.data.registry import Source

# IDX type code -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MAX_IDX_DIMS = 4  # images are (N, H, W) or (N, H, W, C); more is a corrupt header

#: What this process decompressed last, by the sha256 of the gzipped bytes (the four files of a
#: dataset; at most GUNZIPPED_MAX_BYTES decompressed): a sweep's reused worker reads the same
#: dataset for every run and decompresses Fashion-MNIST (~0.2 s) once.  Keyed by content, so a
#: changed file is never served from it; the bytes are immutable and every read makes new arrays.
_gunzipped: collections.OrderedDict[bytes, bytes] = collections.OrderedDict()
GUNZIPPED_FILES, GUNZIPPED_MAX_BYTES = 4, 256 * 2 ** 20


def _gunzip(data: bytes) -> bytes:
    """gzip.decompress(data), from :data:`_gunzipped` when these bytes were decompressed last."""
    key = hashlib.sha256(data).digest()
    if key in _gunzipped:
        _gunzipped.move_to_end(key)
        return _gunzipped[key]
    out = gzip.decompress(data)
    if len(out) <= GUNZIPPED_MAX_BYTES:
        _gunzipped[key] = out
        while len(_gunzipped) > GUNZIPPED_FILES or sum(map(len, _gunzipped.values())) > GUNZIPPED_MAX_BYTES:
            _gunzipped.popitem(last=False)
    return out


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
            data = _gunzip(data)
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
    for directory in _idx_candidates(canonical(name), data_dir):
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
    name, directory = canonical(name), os.fspath(directory)
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
        train_images=add_channel_axis(arrays["train_images"]),
        train_labels=arrays["train_labels"],
        test_images=add_channel_axis(arrays["test_images"]),
        test_labels=arrays["test_labels"],
        class_names=class_names,
        source=f"idx:{directory}",
    )


def _find(name: str, data_dir: str | None):
    return find_idx_dir(name, data_dir)


SOURCE = Source("idx", find=_find, load=lambda name, data_dir, found, options: load_idx_dir(found, name))
