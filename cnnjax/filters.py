"""Classic hand-made 3x3 filters, test images, and applying a filter with :func:`cnnjax.ops.conv2d`.

Images here are single 2-D float arrays ``(H, W)`` in the source's own units (0..255 for
8-bit files, 0/100 for the seed tutorial's scene).  Every kernel is a ``(3, 3)`` float32
array used as a *cross-correlation* (no flip), like every conv in cnnjax:
``out[i, j] = sum(image[i:i+3, j:j+3] * kernel)``.  So ``sobel_x`` is positive where the
intensity increases to the right and ``sobel_y`` where it increases downward.

Layer: above :mod:`cnnjax.ops` and :mod:`cnnjax.data` (a dataset's image as a test image); for
the demos, beside :mod:`cnnjax.interpret`.
"""
from __future__ import annotations

import os
from typing import Union

import numpy as np

from cnnjax import data, ops

KERNELS: dict[str, np.ndarray] = {
    "laplacian": np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], np.float32),
    "sobel_x": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32),
    "sobel_y": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], np.float32),
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float32),
    "gaussian_blur": np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 16,
    "box_blur": np.ones((3, 3), np.float32) / 9,
}

DESCRIPTIONS: dict[str, str] = {
    "laplacian": "second derivative: weights sum to 0, so zero on flat regions (and linear ramps); "
                 "responds to edges in all directions, with opposite signs on the two sides of an edge",
    "sobel_x": "smoothed horizontal derivative d/dx: zero on flat regions, responds to vertical edges, "
               "positive where intensity increases to the right",
    "sobel_y": "smoothed vertical derivative d/dy: zero on flat regions, responds to horizontal edges, "
               "positive where intensity increases downward",
    "sharpen": "identity minus the 4-neighbour Laplacian: weights sum to 1, so flat regions are unchanged "
               "while edges get overshoot (more contrast)",
    "gaussian_blur": "weighted 1-2-1 average (sums to 1): keeps constants, smooths noise, softens edges",
    "box_blur": "plain 3x3 mean (sums to 1): keeps constants, spreads every edge over 3 pixels",
}

GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # ITU-R BT.601 luma, as in MATLAB's rgb2gray


def kernel(name_or_kernel: Union[str, np.ndarray]) -> np.ndarray:
    """A kernel by name (see :data:`KERNELS`), or a 2-D array passed through as float32.

    Raises ValueError listing the known names for an unknown name."""
    if isinstance(name_or_kernel, str):
        try:
            return KERNELS[name_or_kernel]
        except KeyError:
            raise ValueError(f"unknown filter {name_or_kernel!r}; known filters: {', '.join(KERNELS)}") from None
    k = np.asarray(name_or_kernel, np.float32)
    if k.ndim != 2:
        raise ValueError(f"a kernel must be a 2-D array, got shape {k.shape}")
    return k


def to_gray(rgb) -> np.ndarray:
    """(H, W, 3) RGB or (H, W, 4) RGBA (alpha ignored) -> (H, W) float32
    ``0.2989 R + 0.5870 G + 0.1140 B`` in the input's units.  (H, W) and (H, W, 1) pass
    through as float32."""
    a = np.asarray(rgb, np.float32)
    if a.ndim == 2:
        return a
    if a.ndim == 3 and a.shape[-1] == 1:
        return a[..., 0]
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        return a[..., :3] @ np.asarray(GRAY_WEIGHTS, np.float32)
    raise ValueError(f"to_gray wants (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {a.shape}")


def apply_filter(image2d, name_or_kernel: Union[str, np.ndarray], padding="valid") -> np.ndarray:
    """Cross-correlate a (H, W) image with a named or given (kh, kw) kernel via :func:`ops.conv2d`.

    ``padding`` is any cnnjax padding spec ('valid', 'same', int, ...); zeros are padded.
    Returns float32 (H', W'), H' = ops.conv_output_size(H, kh, padding=...).  A kernel
    larger than the padded image raises ValueError (from :func:`ops.conv_output_size`).
    """

    x = np.asarray(image2d, np.float32)
    if x.ndim != 2:
        raise ValueError(f"apply_filter wants a 2-D (H, W) image, got shape {x.shape}")
    k = kernel(name_or_kernel)
    out = ops.conv2d(x[None, :, :, None], k[:, :, None, None], padding=padding)
    return np.asarray(out[0, :, :, 0])


# --------------------------------------------------------------------------- test images


def seed_scene() -> np.ndarray:
    """The seed tutorial's 9x12 test scene: 0 background, a 100-valued rectangle at rows
    3..5 and columns 3..8 (inclusive).  float32 (9, 12)."""
    x = np.zeros((9, 12), np.float32)
    x[3:6, 3:9] = 100.0
    return x


def scene(size: int = 64) -> np.ndarray:
    """A bigger version of :func:`seed_scene`: a 100-valued rectangle and a disc on 0
    background, float32 (size, size).  Straight horizontal/vertical edges, corners and
    curved edges, so every 3x3 filter has something to respond to."""
    if size < 16:
        raise ValueError(f"scene size must be >= 16, got {size}")
    x = np.zeros((size, size), np.float32)
    s = size / 64.0
    x[round(8 * s):round(26 * s), round(6 * s):round(38 * s)] = 100.0  # rectangle, top left
    yy, xx = np.mgrid[0:size, 0:size]
    cy, cx, r = 44 * s, 42 * s, 13 * s
    x[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 100.0  # disc, bottom right
    return x


def load_image(path: str) -> np.ndarray:
    """Any image file PIL can read (PNG, JPEG, ...) -> (H, W) float32 gray via :func:`to_gray`
    (0..255 for 8-bit images).  Missing file -> FileNotFoundError, unreadable -> ValueError,
    both one line naming the file."""
    from PIL import Image, UnidentifiedImageError  # lazy: only needed for files

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such image file")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I", "I;16", "I;16B", "I;16L", "F", "L"):
                return np.asarray(im, np.float32)
            return to_gray(np.asarray(im.convert("RGB"), np.float32))
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{path}: cannot read as an image: {e}") from None


def dataset_image(name: str, index: int = 0, data_dir: str | None = None) -> tuple[np.ndarray, str]:
    """Test image ``index`` of a dataset (via :func:`cnnjax.data.load`) -> ((H, W) float32
    gray in 0..255, its class name)."""

    ds = data.load(name, data_dir)
    n = len(ds.test_images)
    if not 0 <= index < n:
        raise ValueError(f"index {index} out of range: {ds.name} has {n} test images (0..{n - 1})")
    return to_gray(ds.test_images[index]), ds.class_names[int(ds.test_labels[index])]


def load_source(image: str | None = None, dataset: str | None = None, index: int = 0,
                data_dir: str | None = None) -> tuple[np.ndarray, str]:
    """A demo's input image -> ((H, W) float32 gray, one-line description of where it came from).

    ``image``: a file (:func:`load_image`); ``dataset``: its test image ``index``
    (:func:`dataset_image`); neither: the 64x64 :func:`scene`.  Both -> ValueError."""
    if image and dataset:
        raise ValueError("give either an image file or a dataset, not both")
    if image:
        x = load_image(image)
        return x, f"{image} ({x.shape[0]}x{x.shape[1]} gray, values {x.min():g}..{x.max():g})"
    if dataset:
        x, label = dataset_image(dataset, index, data_dir)
        return x, f"{dataset} test image {index} ({label}, {x.shape[0]}x{x.shape[1]})"
    return scene(64), "test scene: 100-valued rectangle and disc on 0 background (64x64)"


def format_kernel(k) -> str:
    """A small kernel as one line: ``[-1 -1 -1; -1 8 -1; -1 -1 -1]`` (fractions as ``/16`` when exact)."""
    k = np.asarray(k, np.float64)
    for den in (1, 9, 16):
        scaled = k * den
        if np.allclose(scaled, np.round(scaled), atol=1e-6):
            rows = "; ".join(" ".join(f"{int(round(v))}" for v in row) for row in scaled)
            return f"[{rows}]" + (f" / {den}" if den > 1 else "")
    return "[" + "; ".join(" ".join(f"{v:.3g}" for v in row) for row in k) + "]"
