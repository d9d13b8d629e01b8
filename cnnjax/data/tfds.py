"""A copy already prepared for TensorFlow Datasets, read with ``tfds.data_source`` (array_record
files; no TensorFlow, never downloaded).  Tried last, for any name no other source answers."""

from __future__ import annotations

import numpy as np

from cnnjax.data.dataset import DataError, Dataset

_CIFAR_TFDS = {"cifar10": ("cifar10", "label"), "cifar100": ("cifar100", "label"),
               "cifar100_coarse": ("cifar100", "coarse_label")}


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


def load_tfds(name: str, data_dir: str | None) -> Dataset:
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
