r"""Seeing convolution: classic 3x3 filters (cnnjax.filters) applied to one image with cnnjax.ops.conv2d.

  python -m experiments.edge_detection                       # the test scene: a rectangle and a disc
  python -m experiments.edge_detection --filters=laplacian,sobel_x --padding=same
  python -m experiments.edge_detection --image=photo.jpg     # any PNG/JPEG, converted to gray
  python -m experiments.edge_detection --dataset=fashion_mnist --index=0

Writes <out_dir>/edge_detection.png (the original and each filtered result) and prints a table
of the filters: kernel, what it does, and the range of its response on this image.
"""
from __future__ import annotations

import os

from absl import flags

from experiments import common, demo_flags

NAME = "edge_detection"

_FILTERS = flags.DEFINE_list("filters", None, "Filters to apply (default: all), from cnnjax.filters.KERNELS.")
_IMAGE = demo_flags.IMAGE
_DATASET = demo_flags.DATASET
_INDEX = demo_flags.INDEX
_DATA_DIR = demo_flags.DATA_DIR
_PADDING = demo_flags.PADDING

# Responses that are signed (derivatives) get a blue-white-red colour scale centred on 0.
SIGNED = {"laplacian", "sobel_x", "sobel_y"}


def run_demo(x, filter_names, padding: str, directory: str, source: str = "image"):
    """Filter ``x`` (H, W) with each named filter, print the table, write edge_detection.png.

    Returns (path, {name: response}).  A kernel larger than the padded image raises
    ValueError (from cnnjax.ops.conv_output_size)."""
    import numpy as np

    from cnnjax import filters, plots

    results = {name: filters.apply_filter(x, name, padding=padding) for name in filter_names}
    kernels = {name: filters.format_kernel(filters.KERNELS[name]) for name in filter_names}
    print(f"input: {source}; padding: {padding}; values {x.min():g}..{x.max():g}")
    w_name, w_kernel = max(len("filter"), *map(len, filter_names)), max(len("kernel"), *map(len, kernels.values()))
    header = f"{'filter':<{w_name}}  {'kernel':<{w_kernel}}  {'output':>7}  {'response range':>18}  what it does"
    print(header)
    print("-" * len(header))
    for name in filter_names:
        r = results[name]
        rng = f"{r.min():.4g}..{r.max():.4g}"
        print(f"{name:<{w_name}}  {kernels[name]:<{w_kernel}}  {r.shape[0]:>3}x{r.shape[1]:<3}  {rng:>18}  "
              f"{filters.DESCRIPTIONS[name]}")
    images = [x] + [results[n] for n in filter_names]
    titles = [f"original {x.shape[0]}x{x.shape[1]}"] + [
        f"{n}\n{kernels[n]}" if len(kernels[n]) <= 30 else f"{n}\n{kernels[n][:28]}..." for n in filter_names]
    cmaps = ["gray"] + [plots.DIVERGING if n in SIGNED else "gray" for n in filter_names]
    centered = [False] + [n in SIGNED for n in filter_names]
    # Smoothing results are images within the original's grey range: show them on its scale.
    # A result that overshoots it (sharpen) gets its own scale: clipped, it would look unchanged.
    lo, hi = float(x.min()), float(x.max())
    tol = 1e-5 * max(hi - lo, 1.0)  # float32 rounding, e.g. a blur of a constant
    limits = [None] + [None if n in SIGNED or results[n].min() < lo - tol or results[n].max() > hi + tol
                       else (lo, hi) for n in filter_names]
    path = plots.image_grid(images, titles, os.path.join(directory, "edge_detection.png"), cmap=cmaps,
                            centered=centered, limits=limits, colorbar=True,
                            suptitle=f"3x3 filters, padding={padding}. Derivatives: blue < 0 < red; others on "
                                     f"the original's grey scale unless they overshoot it")
    assert all(np.isfinite(r).all() for r in results.values())
    print(f"wrote {path}")
    return path, results


def main(argv):
    del argv
    from cnnjax import filters

    names = _FILTERS.value or list(filters.KERNELS)
    unknown = [n for n in names if n not in filters.KERNELS]
    if unknown:
        raise common.UsageError(f"unknown filter(s) {', '.join(unknown)}; known filters: {', '.join(filters.KERNELS)}")
    padding = _PADDING.value.lower()
    if padding not in ("valid", "same"):
        raise common.UsageError(f"--padding must be 'valid' or 'same', got {_PADDING.value!r}")
    x, source = filters.load_source(_IMAGE.value, _DATASET.value, _INDEX.value, _DATA_DIR.value)
    run_demo(x, names, padding, demo_flags.out_dir(NAME), source)


if __name__ == "__main__":
    common.run(main)
