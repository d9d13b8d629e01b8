"""The published CIFAR-10 / CIFAR-100 archives, extracted: python pickles (``cifar-10-batches-py``,
``cifar-100-python``) or binary records (``cifar-10-batches-bin``, ``cifar-100-binary``)."""

from __future__ import annotations

import os

import numpy as np

from cnnjax.data.dataset import DataError, Dataset
from cnnjax.data.registry import Source

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


ALIASES = {"cifar_10": "cifar10", "cifar_100": "cifar100", "cifar_100_coarse": "cifar100_coarse"}


def _find(name: str, data_dir: str | None):
    name = ALIASES.get(name, name)
    if name not in CIFAR_FORMATS or data_dir is None:
        return None
    return find_cifar_dir(name, data_dir)


def _load(name, data_dir, found, options) -> Dataset:
    return load_cifar_dir(found[0], ALIASES.get(name, name), found[1])


SOURCE = Source("cifar", find=_find, load=_load)
