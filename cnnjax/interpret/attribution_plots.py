"""Figures of :mod:`cnnjax.interpret.attribution` (attribution maps over images) and :mod:`cnnjax.interpret.shift`
(accuracy versus shift), in the style of :mod:`cnnjax.plots` (Agg backend, small PNGs; each
function writes one PNG, closes its figure and returns the path)."""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from cnnjax.plots import DPI, DIVERGING, _save, plt

#: methods whose display map is signed (blue negative, red positive); the others are >= 0
SIGNED = ("integrated_gradients", "occlusion")


def _limits(m: np.ndarray, signed: bool) -> tuple[float, float]:
    top = float(np.percentile(np.abs(m), 99.5)) or float(np.abs(m).max()) or 1.0
    return (-top, top) if signed else (0.0, top)


def _overlay(ax, image: np.ndarray, heat: np.ndarray, signed: bool, title: str):
    shown = image[..., 0] if image.shape[-1] == 1 else image
    ax.imshow(shown, cmap="gray" if image.shape[-1] == 1 else None, interpolation="nearest")
    vmin, vmax = _limits(heat, signed)
    ax.imshow(heat, cmap=DIVERGING if signed else "inferno", vmin=vmin, vmax=vmax, alpha=0.6,
              interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_attribution(image, heat, method: str, caption: str, path: str, *, dpi: int = DPI) -> str:
    """One image: the image, the method's per-pixel map (``(H, W)``, :func:`cnnjax.interpret.attribution.pixel_map`)
    and the map over the image.  ``image`` in [0, 1], ``(H, W, C)``."""
    image, heat = np.asarray(image), np.asarray(heat)
    signed = method in SIGNED
    fig, axes = plt.subplots(1, 3, figsize=(7.2, 2.7))
    axes[0].imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", interpolation="nearest")
    axes[0].set_title("image", fontsize=8)
    vmin, vmax = _limits(heat, signed)
    shown = axes[1].imshow(heat, cmap=DIVERGING if signed else "inferno", vmin=vmin, vmax=vmax,
                           interpolation="nearest")
    fig.colorbar(shown, ax=axes[1], fraction=0.046, pad=0.03).ax.tick_params(labelsize=7)
    axes[1].set_title(method, fontsize=8)
    for ax in axes[:2]:
        ax.set_xticks([])
        ax.set_yticks([])
    _overlay(axes[2], image, heat, signed, "overlay")
    fig.suptitle(caption, fontsize=9)
    fig.tight_layout()
    return _save(fig, path, dpi)


def plot_comparison(images, heats: Mapping[str, Any], captions: Sequence[str], path: str,
                    title: Optional[str] = None, *, dpi: int = DPI) -> str:
    """Rows = images (``(N, H, W, C)`` in [0, 1]), columns = the image then each method's map
    over it (``heats[method]``: ``(N, H, W)``); ``captions`` label the rows."""
    images = np.asarray(images)
    methods = list(heats)
    n, cols = len(images), len(methods) + 1
    fig, axes = plt.subplots(n, cols, figsize=(1.9 * cols, 2.0 * n + (0.4 if title else 0)), squeeze=False)
    for i in range(n):
        image = images[i]
        axes[i, 0].imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", interpolation="nearest")
        axes[i, 0].set_title(captions[i], fontsize=7)
        axes[i, 0].set_xticks([])
        axes[i, 0].set_yticks([])
        for j, method in enumerate(methods, start=1):
            _overlay(axes[i, j], image, np.asarray(heats[method])[i], method in SIGNED, method if i == 0 else "")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, dpi)


def plot_shift_curves(rows: Sequence[Mapping[str, Any]], path: str, *, dpi: int = DPI) -> str:
    """Accuracy versus shift (pixels), one line per ``config`` (rows of
    :func:`launch.invariance.summarize`: ``shift_px``, ``acc_mean``, ``acc_ci95``), 95% CI shaded."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for config in dict.fromkeys(r["config"] for r in rows):
        rs = sorted((r for r in rows if r["config"] == config), key=lambda r: r["shift_px"])
        x = [r["shift_px"] for r in rs]
        m = np.array([r["acc_mean"] for r in rs])
        h = np.array([r["acc_ci95"] or 0.0 for r in rs])
        line, = ax.plot(x, m, marker="o", markersize=4, label=f"{config} (n={rs[0]['n_seeds']})")
        ax.fill_between(x, m - h, m + h, color=line.get_color(), alpha=0.2)
    ax.set_xticks(sorted({r["shift_px"] for r in rows}))
    ax.set_xlabel("shift (pixels, mean over up/down/left/right; zero fill)")
    ax.set_ylabel("test accuracy")
    ax.set_title("test accuracy vs shift (mean, 95% CI over seeds)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path, dpi)
