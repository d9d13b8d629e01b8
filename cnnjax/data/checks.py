"""Degenerate data refused before training: a split that ends up empty, fewer than 2 classes.

:func:`empty_split` is called by :func:`cnnjax.train.experiment.build` on the data as the run will use
it (after num_train/num_test, the validation hold-out and class restriction), so the message can
name the classes that have too few images and the setting that would fix it.  Too-small images
are :func:`cnnjax.train.experiment.build`'s (it knows the model).
"""

from __future__ import annotations

import numpy as np

from cnnjax.data.dataset import DataError, Dataset


def _names(names: list[str], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check(ds: Dataset, *, validation: bool, flat_test_fraction: float | None = None) -> None:
    """DataError when ``ds`` has fewer than 2 classes, or its train or test split (or the
    validation split, when ``validation`` is asked for) is empty; the message names the classes
    with too few images and the setting that would fix it.  ``flat_test_fraction``: the data is a
    flat image folder, whose test split takes that fraction of each class with >= 2 images."""
    where = (ds.provenance or {}).get("root") or ds.source
    if ds.num_classes < 2:
        raise DataError(f"{where}: {ds.num_classes} class{'es' * (ds.num_classes != 1)} "
                        f"({_names(list(ds.class_names))}): a classifier needs at least 2 (config.classes chooses "
                        f"which are used)")
    per_class = np.zeros(ds.num_classes, np.int64)
    for split in ("train", "test", "val"):
        labels = getattr(ds, f"{split}_labels")
        if labels is not None:
            per_class += np.bincount(labels, minlength=ds.num_classes)
    few = [n for n, c in zip(ds.class_names, per_class) if c < 2]
    for split, asked in (("train", True), ("test", True), ("val", validation)):
        labels = getattr(ds, f"{split}_labels")
        if not asked or (labels is not None and len(labels)):
            continue
        if split == "test" and flat_test_fraction is not None:
            fix = (f"a flat folder's test split takes {flat_test_fraction:.0%} of each class with at least 2 "
                   f"images, and {'every class has' if len(few) == ds.num_classes else 'these classes have'} "
                   f"fewer ({_names(few)}): add images, or give the folder train/<class>/ and test/<class>/ "
                   f"folders")
        elif split == "train":
            fix = "config.num_train, config.classes and config.train_per_class choose the training images (0 = all)"
        elif split == "val":
            fix = "config.validation_size (images held out of the training split) must leave some"
        else:
            fix = "config.num_test and config.classes choose the test images (0 = all)"
        raise DataError(f"{where}: the {'validation' if split == 'val' else split} split is empty; {fix}")
