"""Every matplotlib figure of cnnjax.  Each function but :func:`log_axis` (which sets up an
axis of a figure being drawn) writes one PNG, closes its figure and returns the path (parent
directories are created).

Uses the non-interactive Agg backend, so it works without a display.  Imports only numpy
and matplotlib (arrays may be numpy or jax; they are converted with ``np.asarray``).
Figures are small by default (``dpi=90``) so they can be committed next to docs.
"""
from __future__ import annotations

import math
import os
from typing import Any, Mapping, Optional, Sequence, Union

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

DPI = 90
DIVERGING = "RdBu_r"  # signed values: blue negative, white zero, red positive


def _save(fig, path: str, dpi: int) -> str:
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    try:
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def _per_item(value, n: int, name: str) -> list:
    """A scalar option or one value per item -> a list of n values."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name} has {len(value)} entries for {n} images")
        return list(value)
    return [value] * n


def _symmetric_limits(a: np.ndarray) -> tuple[float, float]:
    m = float(np.max(np.abs(a))) if a.size else 0.0
    m = m if m > 0 else 1.0
    return -m, m


def image_grid(images: Sequence[Any], titles: Optional[Sequence[str]], path: str, cmap: Union[str, Sequence[str]] = "gray",
               ncols: Optional[int] = None, suptitle: Optional[str] = None, *,
               centered: Union[bool, Sequence[bool]] = False, limits=None, colorbar: bool = False,
               panel_size: float = 2.4, dpi: int = DPI) -> str:
    """Images side by side in a grid, one title each.

    images: 2-D ``(H, W)`` arrays (any units; each panel has its own colour scale) or
    ``(H, W, 3)`` RGB in [0, 1].  titles: one string per image (or None).  ``cmap`` and
    ``centered`` (colour scale symmetric about 0, for signed filter responses) may be one
    value or one per image; so may ``limits``, a ``(vmin, vmax)`` pair fixing the colour
    scale (values outside are clipped; None = the image's own range).  ``ncols`` defaults
    to at most 4 columns, balanced over the rows.  Pixels are drawn as
    squares (no interpolation).  ``colorbar`` adds a small value scale to each panel.
    """
    images = [np.asarray(im) for im in images]
    n = len(images)
    if n == 0:
        raise ValueError("image_grid needs at least one image")
    titles = list(titles) if titles is not None else [""] * n
    if len(titles) != n:
        raise ValueError(f"{len(titles)} titles for {n} images")
    cmaps, centers = _per_item(cmap, n, "cmap"), _per_item(centered, n, "centered")
    if limits is None or (len(limits) == 2 and not isinstance(limits[0], (tuple, list, type(None)))):
        limits = [limits] * n  # one (vmin, vmax) pair, or None, for every image
    elif len(limits) != n:
        raise ValueError(f"limits has {len(limits)} entries for {n} images")
    ncols = math.ceil(n / math.ceil(n / 4)) if ncols is None else max(1, min(int(ncols), n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size * ncols * (1.2 if colorbar else 1.0),
                                                    panel_size * nrows + (0.4 if suptitle else 0)),
                             squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, im, title, cm, centre, lim in zip(axes.flat, images, titles, cmaps, centers, limits):
        kw = {}
        if im.ndim == 2 and lim is not None:
            kw["vmin"], kw["vmax"] = lim
        elif im.ndim == 2 and centre:
            kw["vmin"], kw["vmax"] = _symmetric_limits(im)
        shown = ax.imshow(im, cmap=cm if im.ndim == 2 else None, interpolation="nearest", **kw)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if colorbar and im.ndim == 2:
            cb = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03)
            cb.ax.tick_params(labelsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    fig.tight_layout()
    return _save(fig, path, dpi)


def _annotate_cells(ax, a: np.ndarray, fmt: str = "{:.2g}", fontsize: float = 7.0) -> None:
    lo, hi = float(a.min()), float(a.max())
    mid = max(abs(lo), abs(hi))
    for (i, j), v in np.ndenumerate(a):
        strong = mid > 0 and abs(v) > 0.6 * mid
        ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=fontsize,
                color="white" if strong else "black")


def plot_kernels(kernels_hwio, path: str, title: str = "first-layer kernels", *, reduce: str = "first",
                 annotate: Optional[bool] = None, ncols: Optional[int] = None, dpi: int = DPI) -> str:
    """One small image per output channel of a conv kernel.

    kernels_hwio: ``(kh, kw, C_in, C_out)`` (a 2-D ``(kh, kw)`` kernel is one channel).
    ``reduce='first'`` shows input channel 0, ``'mean'`` the mean over input channels.
    Colours are symmetric about 0 per kernel (blue < 0 < red).  ``annotate`` writes each
    weight in its cell; by default when kernels are at most 3x3 and there are at most 16.
    """
    k = np.asarray(kernels_hwio, np.float64)
    if k.ndim == 2:
        k = k[:, :, None, None]
    if k.ndim != 4:
        raise ValueError(f"plot_kernels wants (kh, kw, C_in, C_out), got shape {k.shape}")
    if reduce == "first":
        k2 = k[:, :, 0, :]
    elif reduce == "mean":
        k2 = k.mean(axis=2)
    else:
        raise ValueError(f"reduce must be 'first' or 'mean', got {reduce!r}")
    kh, kw, c_out = k2.shape
    if annotate is None:
        annotate = kh * kw <= 9 and c_out <= 16
    ncols = min(c_out, 8) if ncols is None else max(1, int(ncols))
    nrows = math.ceil(c_out / ncols)
    cell = 1.3 if annotate else 0.9
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols + 0.3, (cell + 0.2) * nrows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.flat[c_out:]:
        ax.axis("off")
    for c in range(c_out):
        ax = axes.flat[c]
        vmin, vmax = _symmetric_limits(k2[:, :, c])
        ax.imshow(k2[:, :, c], cmap=DIVERGING, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(f"#{c}", fontsize=8)
        if annotate:
            _annotate_cells(ax, k2[:, :, c], fontsize=7)
    where = "input channel 0" if reduce == "first" or k.shape[2] == 1 else f"mean of {k.shape[2]} input channels"
    fig.suptitle(f"{title}\n{kh}x{kw}, {where}; blue < 0 < red", fontsize=10)
    fig.tight_layout(h_pad=1.2)
    return _save(fig, path, dpi)


def _mosaic(maps: np.ndarray, gap: int = 1) -> np.ndarray:
    """(H, W, C) maps -> (H, C*(W+gap)-gap) tiles side by side, each scaled to [0, 1] on its
    own (a constant map is 0); NaN gaps between tiles."""
    h, w, c = maps.shape
    lo = maps.min(axis=(0, 1), keepdims=True)
    span = maps.max(axis=(0, 1), keepdims=True) - lo
    scaled = np.where(span > 0, (maps - lo) / np.where(span > 0, span, 1.0), 0.0)
    out = np.full((h, c * (w + gap) - gap), np.nan)
    for j in range(c):
        out[:, j * (w + gap):j * (w + gap) + w] = scaled[:, :, j]
    return out


def plot_feature_maps(maps_nhwc_single, path: str, title: str, max_channels: int = 16, *,
                      inputs=None, row_labels: Optional[Sequence[str]] = None, dpi: int = DPI) -> str:
    """Feature maps of a layer: one row per image, one tile per channel (first ``max_channels``).

    maps_nhwc_single: ``(H, W, C)`` for one image or ``(N, H, W, C)`` for N images (one row
    each).  ``inputs``: optional ``(N, H0, W0)`` or ``(N, H0, W0, 1|3)`` input images shown
    in a first column; ``row_labels`` one string per row.  Each map is scaled to its own
    range (dark = its lowest, light = its highest value), so compare patterns, not
    brightness, across maps.
    """
    m = np.asarray(maps_nhwc_single, np.float64)
    if m.ndim == 3:
        m = m[None]
    if m.ndim != 4:
        raise ValueError(f"plot_feature_maps wants (H, W, C) or (N, H, W, C), got shape {m.shape}")
    n, h, w, c = m.shape
    shown_c = min(c, int(max_channels))
    tile = 0.75  # inches per map
    has_in = inputs is not None
    fig, axes = plt.subplots(n, 2 if has_in else 1, squeeze=False,
                             figsize=((shown_c + (1.3 if has_in else 0)) * tile + 0.6, n * tile * h / w * 1.05 + 0.9),
                             gridspec_kw={"width_ratios": [1, shown_c]} if has_in else None)
    cmap = matplotlib.colormaps["gray"].with_extremes(bad="white")  # white gaps between tiles
    for i in range(n):
        ax = axes[i, -1]
        ax.imshow(_mosaic(m[i, :, :, :shown_c]), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        ax.set_yticks([])
        if i == 0:
            ax.xaxis.tick_top()
            ax.set_xticks([j * (w + 1) + (w - 1) / 2 for j in range(shown_c)])
            ax.set_xticklabels([f"ch {j}" for j in range(shown_c)], fontsize=7)
            ax.tick_params(length=0)
        else:
            ax.set_xticks([])
        for side in ax.spines.values():
            side.set_visible(False)
        if has_in:
            im = np.asarray(inputs[i], np.float64)
            if im.ndim == 3 and im.shape[-1] == 1:
                im = im[..., 0]
            if im.ndim == 3:  # RGB: rescale to [0, 1] for display
                im = (im - im.min()) / max(im.max() - im.min(), 1e-12)
            axes[i, 0].imshow(im, cmap="gray", interpolation="nearest")
            axes[i, 0].set_xticks([])
            axes[i, 0].set_yticks([])
            if i == 0:
                axes[i, 0].set_title("input", fontsize=8)
        if row_labels is not None:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=7)
    more = f"first {shown_c} of {c} channels" if shown_c < c else f"{c} channels"
    fig.suptitle(f"{title}\n{more}, {h}x{w} each, each map scaled to its own range (dark = low)", fontsize=9)
    fig.tight_layout()
    return _save(fig, path, dpi)


def plot_loss_curve(steps, losses, path: str, log_y: bool = True, title: str = "training loss", *,
                    hline: Optional[float] = None, hline_label: str = "tolerance", ylabel: str = "loss",
                    dpi: int = DPI) -> str:
    """Loss against step (both 1-D, same length); log y-axis by default (non-positive
    losses are dropped from a log plot).  ``hline`` draws a dashed horizontal reference line."""
    steps, losses = np.asarray(steps, np.float64), np.asarray(losses, np.float64)
    if steps.shape != losses.shape or steps.ndim != 1:
        raise ValueError(f"steps and losses must be 1-D of the same length, got {steps.shape} and {losses.shape}")
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    keep = losses > 0 if log_y else np.isfinite(losses)
    ax.plot(steps[keep], losses[keep], lw=1.5, label=ylabel)
    if hline is not None:
        ax.axhline(hline, ls="--", color="gray", lw=1, label=f"{hline_label} = {hline:g}")
        ax.legend(fontsize=8)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel + (" (log scale)" if log_y else ""))
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path, dpi)


def _column(rows: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None and r.get("epoch") is not None]
    if not pts:
        return np.zeros(0), np.zeros(0)
    x, y = zip(*pts)
    return np.asarray(x, np.float64), np.asarray(y, np.float64)


def plot_curves(rows: Sequence[Mapping[str, Any]], path: str, title: Optional[str] = None, *, dpi: int = DPI) -> str:
    """Training curves: loss (left) and accuracy (right) against epoch, train and validation
    (and test, for rows of runs made before validation splits, which logged it per epoch).

    rows: dicts with keys ``epoch``, ``train_loss``, ``val_loss``, ``train_accuracy``,
    ``val_accuracy`` (accuracy as a fraction in [0, 1] or a percentage: plotted as given);
    a missing or None value just leaves that point out.  Epoch ticks are integers and
    the x range is the epochs +- 0.5.  ``title`` (e.g. the run's name: workdir and model)
    is shown above both panels.
    """
    epochs = [r["epoch"] for r in rows if r.get("epoch") is not None]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, metric in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        for split, style in (("train", "-o"), ("val", "--s"), ("test", ":^")):
            x, y = _column(rows, f"{split}_{metric}")
            if x.size:
                ax.plot(x, y, style, ms=3, lw=1.5, label=split)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True, min_n_ticks=1))
        if epochs:
            ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    ax_loss.set_title("loss", fontsize=10)
    ax_acc.set_title("accuracy", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path, dpi)


def plot_confusion(matrix, class_names: Sequence[str], path: str, title: str = "confusion matrix", *,
                   dpi: int = DPI) -> str:
    """Confusion matrix: rows = true class, columns = predicted class; returns the path written.

    matrix: ``(K, K)`` integer counts.  Each cell shows its count; the colour is the
    row-normalised fraction (recall for the diagonal), so classes of different sizes
    compare.  Rows with no examples stay white.  Beyond :data:`MAX_FIGURE_CLASSES` classes a
    figure would be unreadable and its size grows with K^2 (1,000 classes: tens of GB), so the
    counts go to a CSV file instead (``path`` with ``.csv``: a header row of the predicted
    classes, then one row per true class).
    """
    m = np.asarray(matrix)
    k = len(class_names)
    if m.shape != (k, k):
        raise ValueError(f"confusion matrix shape {m.shape} does not match {k} class names")
    if k > MAX_FIGURE_CLASSES:
        return write_confusion_csv(m, class_names, os.path.splitext(path)[0] + ".csv")
    totals = m.sum(axis=1, keepdims=True).astype(np.float64)
    frac = np.divide(m, totals, out=np.zeros(m.shape, np.float64), where=totals > 0)
    size = max(4.0, 0.5 * k + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    shown = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    cb = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03)
    cb.set_label("fraction of the true class", fontsize=8)
    fontsize = 8 if k <= 12 else 6
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, f"{int(v)}", ha="center", va="center", fontsize=fontsize,
                color="white" if frac[i, j] > 0.5 else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(class_names, rotation=45, ha="right", fontsize=fontsize)
    ax.set_yticklabels(class_names, fontsize=fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    total = int(m.sum())
    acc = float(np.trace(m)) / total if total else float("nan")
    ax.set_title(f"{title}\naccuracy {acc:.2%} of {total:,}", fontsize=10)
    fig.tight_layout()
    return _save(fig, path, dpi)


#: the most classes plot_confusion draws as a figure; more are written as CSV
MAX_FIGURE_CLASSES = 40


def write_confusion_csv(matrix, class_names: Sequence[str], path: str) -> str:
    """``matrix`` (rows = true class) as CSV with the class names as header and first column."""
    import csv
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["true \\ predicted", *class_names])
        for name, row in zip(class_names, np.asarray(matrix)):
            out.writerow([name, *map(int, row)])
    return path


def log_axis(ax, values, axis: str = "x", *, min_decades: float = 0.65) -> None:
    """Log scale for ``ax``'s ``"x"`` or ``"y"`` axis, fitted to the positive ``values``.

    The limits are the values' range padded by 5% of it (in log space), widened to at
    least ``min_decades``, so the data fill the panel.  Labelled ticks are at 1 x 10^k,
    or at 1, 3 / 1, 2, 5 / 1, 2, 3, 5, 7 x 10^k: the first of these with at least 3 ticks
    in view (always at least 2), so a narrow range is not left with one label.
    """
    v = np.asarray(values, np.float64).ravel()
    v = v[np.isfinite(v) & (v > 0)]
    getattr(ax, f"set_{axis}scale")("log")
    if not v.size:
        return
    lo, hi = np.log10(v.min()), np.log10(v.max())
    pad = max(0.05 * (hi - lo), (min_decades - (hi - lo)) / 2)
    lo, hi = lo - pad, hi + pad
    getattr(ax, f"set_{axis}lim")(10 ** lo, 10 ** hi)
    powers = 10.0 ** np.arange(np.floor(lo), np.ceil(hi) + 1)
    for subs in ((1.0,), (1.0, 3.0), (1.0, 2.0, 5.0), (1.0, 2.0, 3.0, 5.0, 7.0)):
        ticks = np.log10(np.outer(subs, powers))
        if ((ticks >= lo) & (ticks <= hi)).sum() >= 3:
            break
    ticker = matplotlib.ticker
    a = getattr(ax, f"{axis}axis")
    a.set_major_locator(ticker.LogLocator(subs=subs))
    a.set_major_formatter(ticker.LogFormatterSciNotation(labelOnlyBase=False, minor_thresholds=(np.inf, np.inf)))
    a.set_minor_formatter(ticker.NullFormatter())


def plot_scatter(rows: Sequence[Mapping[str, Any]], path: str, title: Optional[str] = None, *,
                 y_key: str = "final_acc_mean", err_key: str = "final_acc_std", dpi: int = DPI) -> Optional[str]:
    """A sweep's chart (``launch.report``'s results.png): accuracy against parameters and against
    FLOPs per example, both on log x axes (:func:`log_axis`), one labelled marker per
    configuration with the std over seeds as error bars.

    rows: dicts with ``config`` (the label), ``params``, ``flops``, ``y_key`` and ``err_key``
    (None = no bar); rows without a positive x or a y are left out of that panel.  Returns
    ``path``, or None (nothing written) when no row has a y."""
    pts = [r for r in rows if isinstance(r.get(y_key), (int, float))]
    if not pts:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for ax, key, xlabel in ((axes[0], "params", "parameters"), (axes[1], "flops", "FLOPs per example (forward)")):
        xs = []
        for r in pts:
            x = r.get(key)
            if not isinstance(x, (int, float)) or x <= 0:
                continue
            xs.append(x)
            err = r.get(err_key) or 0.0
            ax.errorbar([x], [r[y_key]], yerr=[[err], [err]], fmt="o", capsize=4, label=str(r.get("config", "")))
            ax.annotate(str(r.get("config", "")), (x, r[y_key]), textcoords="offset points", xytext=(5, 5),
                        fontsize=7)
        log_axis(ax, xs, "x")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("final test accuracy" if y_key == "final_acc_mean" else y_key)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_title("accuracy vs parameters")
    axes[1].set_title("accuracy vs FLOPs")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, dpi)



def plot_transfer(rows: Sequence[Mapping[str, Any]], path: str, *, dpi: int = DPI) -> str:
    """The transfer study's chart (``launch.transfer``'s transfer.png): test accuracy against
    training images per class (log x), one panel per ``model``, one line per ``way``, the 95% CI
    over seeds shaded.  rows: dicts with ``model``, ``per_class``, ``way``, ``acc_mean``,
    ``acc_ci95`` (None = no band).  Returns ``path``."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.5), squeeze=False)
    for ax, model in zip(axes[0], models):
        for way in dict.fromkeys(r["way"] for r in rows if r["model"] == model):
            rs = sorted((r for r in rows if r["model"] == model and r["way"] == way), key=lambda r: r["per_class"])
            x = np.array([r["per_class"] for r in rs], float)
            m = np.array([r["acc_mean"] for r in rs])
            h = np.array([r["acc_ci95"] or 0.0 for r in rs])
            line, = ax.plot(x, m, marker="o", markersize=4, label=way)
            ax.fill_between(x, m - h, m + h, color=line.get_color(), alpha=0.2)
        ax.set_xscale("log")
        ax.set_xticks(sorted({r["per_class"] for r in rows}))
        ax.set_xticklabels([f"{v:,}" for v in sorted({r["per_class"] for r in rows})])
        ax.set_xlabel("training images per class")
        ax.set_ylabel("test accuracy")
        ax.set_title(model)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("learning new classes from few images: scratch vs pretrained (mean, 95% CI over seeds)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path, dpi)

def curve_stats(metrics_runs: Sequence[Sequence[Mapping[str, Any]]], key: str = "val_accuracy"):
    """(epochs, mean, std) of ``key`` over runs (each a list of metrics rows), per epoch; std is
    0 where one run has that epoch."""
    by_epoch: dict[int, list[float]] = {}
    for rows in metrics_runs:
        for i, row in enumerate(rows, 1):
            v = row.get(key)
            if isinstance(v, (int, float)) and math.isfinite(v):
                by_epoch.setdefault(int(row.get("epoch", i)), []).append(float(v))
    epochs = sorted(by_epoch)
    means = [float(np.mean(by_epoch[e])) for e in epochs]
    stds = [float(np.std(by_epoch[e], ddof=1)) if len(by_epoch[e]) > 1 else 0.0 for e in epochs]
    return epochs, means, stds


def plot_sweep_curves(rows: Sequence[Mapping[str, Any]], path: str, *, dpi: int = DPI) -> Optional[str]:
    """A sweep's curves.png: validation accuracy vs epoch per configuration (rows with ``config``,
    ``n_seeds`` and ``curves``, a list of metrics rows per seed), mean over seeds with ± std
    shaded.  Returns ``path``, or None (nothing written) when no row has a curve."""
    fig, ax = plt.subplots(figsize=(8, 5))
    drawn = False
    for r in rows:
        epochs, mean, std = curve_stats(r["curves"])
        if not epochs:  # runs made before validation splits logged test accuracy per epoch
            epochs, mean, std = curve_stats(r["curves"], "test_accuracy")
        if not epochs:
            continue
        drawn = True
        line, = ax.plot(epochs, mean, marker="o", markersize=3, label=f"{r['config']} (n={r['n_seeds']})")
        ax.fill_between(epochs, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                        color=line.get_color(), alpha=0.2)
    if not drawn:
        plt.close(fig)
        return None
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title("validation accuracy vs epoch (mean ± std over seeds)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path, dpi)


def plot_cell_grids(panels: Sequence[Mapping[str, Any]], path: str, suptitle: Optional[str] = None, *,
                    legend: Optional[Sequence[tuple[str, str]]] = None, max_cell: float = 0.32,
                    overlay_alpha: float = 0.55,
                    dpi: int = DPI) -> str:
    """Diagrams of small integer grids side by side (e.g. convolution arithmetic).

    Each panel is a dict with
      ``cells``    (H, W) int array of categories;
      ``colors``   {category: matplotlib colour};
      ``title``    str (optional);
      ``labels``   optional (H, W) array of strings written in the cells ("" = none);
      ``overlays`` optional list of (cells, colour): a list of (row, col) shaded with a
                   semi-transparent colour over the category colour (overlaps mix);
      ``marks``    optional list of (row, col) cells that get a small black dot, in the
                   cell's top-left corner (``marks_at='corner'``, default) or centre;
      ``outlines`` optional list of (row0, col0, height, width, colour) rectangles (dashed);
      ``origin``   optional (row, col) of the panel's index 0 (tick labels count from it).
    ``legend``: (colour, text) pairs shown under the panels (colour ``"dot"``: the mark).
    Cells are squares of at most ``max_cell`` inches, shrunk so that wide panels fit
    (gridlines are dropped past 60 cells, labels past 40).
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    grids = [np.asarray(p["cells"]) for p in panels]
    if not grids or any(g.ndim != 2 or g.size == 0 for g in grids):
        raise ValueError("plot_cell_grids needs non-empty 2-D cell arrays")
    total_w = sum(g.shape[1] for g in grids) + 2 * (len(grids) - 1)
    tallest = max(g.shape[0] for g in grids)
    cell = min(max_cell, 11.0 / total_w, 7.0 / tallest)
    fig_w = max(4.5, cell * total_w + 1.2 * len(grids))
    fig_h = cell * tallest + 1.4 + (0.5 if legend else 0)
    fig, axes = plt.subplots(1, len(grids), figsize=(fig_w, fig_h), squeeze=False,
                             gridspec_kw={"width_ratios": [g.shape[1] for g in grids]})
    fontsize = max(5.0, min(9.0, cell * 26))
    for ax, panel, g in zip(axes[0], panels, grids):
        h, w = g.shape
        colors = dict(panel["colors"])
        rgb = np.ones((h, w, 3))
        for cat, col in colors.items():
            rgb[g == cat] = matplotlib.colors.to_rgb(col)
        for cells, col in panel.get("overlays") or []:
            tint = np.asarray(matplotlib.colors.to_rgb(col))
            for r, c in cells:
                rgb[r, c] = (1 - overlay_alpha) * rgb[r, c] + overlay_alpha * tint
        ax.imshow(rgb, interpolation="nearest", extent=(-0.5, w - 0.5, h - 0.5, -0.5))
        if max(h, w) <= 60:
            ax.set_xticks(np.arange(-0.5, w, 1), minor=True)
            ax.set_yticks(np.arange(-0.5, h, 1), minor=True)
            ax.grid(which="minor", color="#555555", lw=0.6)
            ax.tick_params(which="minor", length=0)
        labels = panel.get("labels")
        if labels is not None and max(h, w) <= 40:
            for (i, j), text in np.ndenumerate(np.asarray(labels, dtype=object)):
                if text:
                    ax.text(j, i, str(text), ha="center", va="center", fontsize=fontsize * 0.8)
        marks = panel.get("marks") or []
        if marks:
            rows, cols = (np.asarray(v, np.float64) for v in zip(*marks))
            if panel.get("marks_at", "corner") == "corner":
                rows, cols = rows - 0.27, cols - 0.27
            ax.scatter(cols, rows, s=max(3.0, (cell * 72 * 0.16) ** 2), c="black", zorder=4)
        for r0, c0, rh, cw, col in panel.get("outlines") or []:
            ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), cw, rh, fill=False, ec=col, lw=2.2, ls="--", zorder=5))
        o_r, o_c = panel.get("origin", (0, 0))
        step = max(1, int(np.ceil(max(h, w) / 16)))
        ax.set_xticks(np.arange(0, w, step))
        ax.set_yticks(np.arange(0, h, step))
        ax.set_xticklabels([str(c - o_c) for c in range(0, w, step)], fontsize=7)
        ax.set_yticklabels([str(r - o_r) for r in range(0, h, step)], fontsize=7)
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        ax.set_title(panel.get("title", ""), fontsize=9)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    if legend:
        handles = [Line2D([], [], ls="", marker="o", ms=5, color="black", label=t) if c == "dot"
                   else Patch(fc=c, ec="#555555", label=t) for c, t in legend]
        fig.legend(handles=handles, loc="lower center",
                   ncol=min(len(legend), 4), fontsize=8, frameon=False)
    bottom = min(0.3, 0.55 / fig_h) if legend else 0.0
    top = 1.0 - (min(0.2, 0.35 / fig_h) if suptitle else 0.0)
    fig.tight_layout(rect=(0, bottom, 1, top))
    return _save(fig, path, dpi)
