"""Writers of the dataset file formats cnnjax reads, for tests (and benchmarks) that need files:
IDX (:func:`write_idx`), CIFAR python and binary batches, and image folders from arrays."""

import gzip
import os

import numpy as np

from cnnjax.data import cifar, idx

_IDX_CODES = {np.dtype(v).newbyteorder("="): k for k, v in idx._IDX_DTYPES.items()}


def write_idx(path, array) -> None:
    """Write ``array`` (uint8/int8/int16/int32/float32/float64, rank 1..idx.MAX_IDX_DIMS) as IDX.

    Gzipped if ``path`` ends with ``.gz``.
    """
    path = os.fspath(path)
    array = np.asarray(array)
    code = _IDX_CODES.get(array.dtype.newbyteorder("="))
    if code is None or not 1 <= array.ndim <= idx.MAX_IDX_DIMS:
        raise ValueError(f"{path}: cannot write {array.dtype} array of rank {array.ndim} as IDX")
    payload = (bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
               + np.ascontiguousarray(array, idx._IDX_DTYPES[code]).tobytes())
    if path.endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    with open(path, "wb") as f:
        f.write(payload)


def write_cifar_python_batch(path, images: np.ndarray, labels, *, label_key: bytes = b"labels",
                             extra_labels: dict | None = None, batch_label: bytes = b"batch") -> None:
    """Write (N, 32, 32, 3) uint8 ``images`` as a CIFAR python batch (the published layout:
    dict of byte-string keys b'batch_label', ``label_key``, b'data', b'filenames')."""
    import pickle
    images = np.asarray(images, np.uint8)
    d = {b"batch_label": batch_label, label_key: [int(v) for v in labels],
         b"data": np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(images), cifar.CIFAR_IMAGE_BYTES),
         b"filenames": [f"image_{i:05d}.png".encode() for i in range(len(images))]}
    for k, v in (extra_labels or {}).items():
        d[k] = [int(x) for x in v]
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)


def write_cifar_binary_batch(path, images: np.ndarray, *label_columns) -> None:
    """Write records of ``len(label_columns)`` label bytes (in the given order) + 3072 pixels."""
    images = np.asarray(images, np.uint8)
    pixels = np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(images), cifar.CIFAR_IMAGE_BYTES)
    cols = [np.asarray(c, np.uint8).reshape(-1, 1) for c in label_columns]
    with open(path, "wb") as f:
        f.write(np.concatenate([*cols, pixels], axis=1).tobytes())


def write_image_folder(root, splits: dict, class_names, *, ext: str = ".png", name_format: str = "{split}_{index:05d}"):
    """Write ``splits`` ({split: (uint8 (N, H, W, C) images, labels)}) as an image folder
    ``root/<split>/<class>/<name>.<ext>`` (a split called ``""`` writes ``root/<class>/``); the
    file name carries the example's index.  Returns {split: [paths in index order]}."""
    from PIL import Image
    written = {}
    for split, (images, labels) in splits.items():
        paths = []
        for i, (image, label) in enumerate(zip(images, labels)):
            directory = os.path.join(root, split, class_names[int(label)])
            os.makedirs(directory, exist_ok=True)
            path = os.path.join(directory, name_format.format(split=split or "all", index=i) + ext)
            Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path)
            paths.append(path)
        written[split] = paths
    return written
