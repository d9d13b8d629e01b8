"""The in-memory dataset every source produces, its one-line error, and normalisation.

This module imports nothing else from ``cnnjax``.
"""

from __future__ import annotations

import dataclasses

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
    and both fall back to 0.0/1.0 for an empty train split).  The image arrays may be
    ``np.memmap`` views of a prepared cache file (:mod:`cnnjax.data.cache`).  ``info`` holds
    source-specific facts for the work directory's data.json (e.g. an image folder's skipped
    files); it never changes the numbers.  ``provenance`` describes where the arrays came from
    for :mod:`cnnjax.data.fingerprint` (an image folder's listing; None: the arrays themselves
    are the fingerprint); kept by :meth:`subset` and :meth:`hold_out`, which describe the source.
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
    info: dict = dataclasses.field(default_factory=dict, repr=False)
    provenance: dict | None = dataclasses.field(default=None, repr=False)
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
        # Exact pixel statistics from 256-bin histograms, a chunk of images at a time: no float
        # copy, and a memory-mapped split is streamed through rather than read whole.
        if self.train_images.shape[-1] > 1:  # colour: per-channel tuples (see channel_stats)
            means, stds = channel_stats(self.train_images)
        else:
            means, stds = _stats(pixel_histograms(self.train_images).sum(0))
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


def release_pages(array: np.ndarray) -> None:
    """Drop the resident pages of a memory-mapped array from this process (``MADV_DONTNEED`` on
    its read-only file mapping; the kernel's page cache keeps them): reading a mapped file larger
    than memory then does not grow the process's RSS.  A no-op for an in-memory array."""
    import mmap
    mapping = getattr(array, "_mmap", None)
    if isinstance(mapping, mmap.mmap) and hasattr(mapping, "madvise") and not mapping.closed:
        mapping.madvise(mmap.MADV_DONTNEED)


def pixel_histograms(images: np.ndarray, chunk_bytes: int = 4 << 20) -> np.ndarray:
    """int64 ``(C, 256)``: per channel, how many pixels of uint8 NHWC ``images`` hold each value,
    counted about ``chunk_bytes`` of images at a time (a memory-mapped array is streamed, not
    loaded; ``np.bincount``'s 8-byte copy of a chunk's channel is the largest temporary)."""
    counts = np.zeros((images.shape[-1], 256), np.int64)
    chunk = max(1, chunk_bytes // max(1, int(np.prod(images.shape[1:]))))
    for start in range(0, len(images), chunk):
        block = np.asarray(images[start:start + chunk])
        for c in range(block.shape[-1]):
            counts[c] += np.bincount(block[..., c].reshape(-1), minlength=256)
        release_pages(images)
    return counts


def _stats(counts: np.ndarray) -> tuple[float, float]:
    """(mean, population std) of pixel values / 255 from a 256-bin histogram; 0.0/1.0 when
    empty, std 1.0 where it would be 0."""
    counts = counts.astype(np.float64)
    n = counts.sum()
    values = np.arange(256) / 255.0
    mean = float(counts @ values / n) if n else 0.0
    std = float(np.sqrt(counts @ (values - mean) ** 2 / n)) if n else 1.0
    return mean, std if std > 0 else 1.0


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 NHWC ``images`` scaled to [0, 1], exact
    (a 256-bin histogram per channel, streamed by :func:`pixel_histograms`); std falls back to
    1.0 where it is 0, both to 0.0/1.0 for no images."""
    per_channel = [_stats(h) for h in pixel_histograms(images)]
    return tuple(m for m, _ in per_channel), tuple(s for _, s in per_channel)


def add_channel_axis(images: np.ndarray) -> np.ndarray:
    """(N, H, W) -> (N, H, W, 1) with C-order strides.  (``images[..., None]`` gives the new axis
    stride 0: numpy does not mind, but ``torch.from_numpy`` keeps it and PyTorch then takes a
    slower conv path -- 40-50 instead of 28 ms per airbench28_m step on 2 cores.)"""
    return np.ascontiguousarray(images).reshape(*images.shape, 1)


def canonical(name: str) -> str:
    """A dataset name as the sources spell it: lower case, ``-`` -> ``_``."""
    return name.strip().lower().replace("-", "_")
