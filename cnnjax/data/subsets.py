"""Class subsets and few-shot training sets of an in-memory :class:`cnnjax.data.Dataset`
(``config.classes``, ``config.train_per_class``), as one pure function, :func:`restrict`."""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from cnnjax.data import DataError, Dataset

#: mixed into the seed so the per-class draw is another random stream than the validation hold-out's
_STREAM = 28


def restrict(ds: Dataset, classes: Sequence[int] = (), train_per_class: int = 0, seed: int = 0) -> Dataset:
    """``ds`` with only the images of ``classes`` (every split), relabelled 0, 1, ... in the order
    given (class names follow), and then, with ``train_per_class`` = N > 0, N training images of
    each class drawn without replacement by ``seed`` (kept in their original order; validation and
    test splits untouched).  Empty ``classes`` / N = 0 keep everything.  Pixel statistics are
    recomputed on the remaining training images.  DataError naming the setting for a class index
    out of range or a class with fewer than N training images."""
    if classes:
        bad = [c for c in classes if not 0 <= c < ds.num_classes]
        if bad:
            raise DataError(f"config.classes: {ds.name} has classes 0..{ds.num_classes - 1}, not {bad}")
        new_label = np.full(ds.num_classes, -1, np.int64)
        new_label[list(classes)] = np.arange(len(classes))
        splits = {}
        for split in ("train", "test", "val"):
            images, labels = getattr(ds, f"{split}_images"), getattr(ds, f"{split}_labels")
            if images is None:
                continue
            keep = new_label[labels] >= 0
            splits.update({f"{split}_images": images[keep], f"{split}_labels": new_label[labels[keep]].astype(np.int32)})
        ds = dataclasses.replace(ds, class_names=tuple(ds.class_names[c] for c in classes), **splits)
    if train_per_class:
        rng = np.random.default_rng([seed, _STREAM])
        chosen = []
        for k in range(ds.num_classes):
            where = np.flatnonzero(ds.train_labels == k)
            if len(where) < train_per_class:
                raise DataError(f"config.train_per_class={train_per_class}: class {k} ({ds.class_names[k]}) has "
                                f"{len(where)} training images")
            chosen.append(rng.choice(where, train_per_class, replace=False))
        keep = np.sort(np.concatenate(chosen))
        ds = dataclasses.replace(ds, train_images=ds.train_images[keep], train_labels=ds.train_labels[keep])
    return ds
