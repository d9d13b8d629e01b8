"""The 15 corruptions of MNIST-C (Mu & Gilmer 2019), generated on the fly from any dataset's images.

``corrupt(images, name, severity=None, seed=0)``: uint8 NHWC images (N, H, W, C), greyscale or
colour, in; uint8 images of the same shape out (values rounded, clipped to [0, 255]).  Pure and
seeded: the same images, name, severity and seed give the same output (a numpy Generator seeded
with ``(seed, index of the corruption)``, drawn from for the batch in order: an image's
corruption depends on the seed and its place in the batch).

The parameters are MNIST-C's (google-research/mnist-c, corruptions.py), with its five severities
where the corruption has a natural scale (1 mildest .. 5) and ``severity=None`` meaning the
severity MNIST-C's published dataset uses (:data:`CORRUPTIONS` ``default``).  Four have no scale
(stripe, dotted_line, zigzag, canny_edges): severity must be None.  Distances in pixels are
MNIST-C's for 28-pixel images, scaled by min(H, W) / 28 for other sizes.  MNIST-C's operations
come from scikit-image, ImageMagick (Wand) and OpenCV; here they are re-written on numpy and
scipy.ndimage (a JAX dependency), and the differences are stated per corruption:

  shot_noise     Poisson(x * c) / c, c = photons at full scale, 60 / 25 / 12 / 5 / 3
  impulse_noise  salt and pepper: a fraction .03 / .06 / .09 / .17 / .27 of the values set to 0 or
                 255, half each (skimage random_noise 's&p'); every channel on its own
  glass_blur     Gaussian blur sigma, then every pixel swapped with a random one up to delta away,
                 `iterations` times, then the blur again: (sigma, delta, iterations) =
                 (.7, 1, 2) / (.9, 2, 1) / (1, 2, 3) / (1.1, 3, 2) / (1.5, 4, 2); blur as
                 skimage.filters.gaussian (mode 'nearest', truncate 4)
  motion_blur    ImageMagick's one-sided motion blur: each pixel the Gaussian-weighted mean of the
                 pixels 0..2*ceil(radius) steps behind it along a random angle in [-45, 45] degrees,
                 (radius, sigma) = (10, 3) / (15, 5) / (15, 8) / (15, 12) / (20, 15), edge pixels
                 repeated (re-implemented after MagickMotionBlurImage, not bit-identical)
  shear          affine shear by .2 / .4 / .6 / .8 / 1 (skimage's shear angle, radians), random
                 sign, about the image centre; bilinear, zero outside
  scale          zoom out by .9 / .8 / .7 / .6 / .5 about the centre; bilinear, zero outside
  rotate         rotation by .2 / .4 / .6 / .8 / 1 radians, random sign, about the centre
  brightness     HSV value + .1 / .2 / .3 / .4 / .5 (clipped to 1); on greyscale images the same as
                 adding it to every pixel
  translate      1 / 2 / 3 / 4 / 5 pixels along each axis, random signs, zero fill
  stripe         the left and right quarters of the image inverted (255 - x)
  fog            a plasma fractal (diamond-square, decay 2 / 2 / 1.7 / 1.5 / 1.4) times
                 1.5 / 2 / 2.5 / 2.5 / 3 added, rescaled by max / (max + c)
  spatter        blobs of mud (grey 63) from thresholded, blurred Gaussian noise, MNIST-C's five
                 parameter sets (loc, scale, sigma, threshold, mask sigma)
  dotted_line    a dotted white line between two random points on the left and right edges
  zigzag         a white zigzag line (segment length 2, amplitude 2) across the image
  canny_edges    the image replaced by its Canny edges (Gaussian sigma 1, Sobel gradients,
                 non-maximum suppression in 4 directions, hysteresis at 0.1 / 0.2 of the range:
                 skimage.feature.canny's defaults, re-written, not bit-identical); colour images
                 use their luminance

Colour images: noise acts on every value, geometry and blurs on every channel alike, lines, fog
and mud are the same on every channel (white / grey), brightness acts on HSV value.

``corruption_evaluation`` scores a trained model on every (corruption, severity).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, NamedTuple, Sequence

import numpy as np
from scipy import ndimage

from cnnjax import data as data_lib
from cnnjax.train import evaluation
from cnnjax.interpret import shift as shift_lib


class Corruption(NamedTuple):
    fn: Callable            # fn(x float64 (N, H, W, C) in [0, 1], rng, param, scale) -> float (N, H, W, C)
    params: tuple | None    # one parameter per severity 1..5; None: no severity
    default: int | None     # the severity of MNIST-C's published dataset


# --------------------------------------------------------------------------- helpers


def _gaussian(x, sigma):
    """skimage.filters.gaussian per image and channel, mode 'nearest': x (N, H, W, C) or (H, W)."""
    sig = {4: (0, sigma, sigma, 0), 2: (sigma, sigma)}[x.ndim]
    return ndimage.gaussian_filter(x, sig, mode="nearest", truncate=4.0)


def _each(fn):
    """A corruption of one (H, W, C) image -> one of a batch, the images in order from one rng."""
    def batch(x, rng, c, s):
        return np.stack([fn(im, rng, c, s) for im in x]) if len(x) else x
    return batch


def _warp(x, matrix):
    """Output pixel (row, col) = input at ``matrix @ (col - cx, row - cy) + (cx, cy)`` (x = column,
    y = row, the centre fixed), bilinear, zero outside: skimage's warp with ``inverse_map`` an
    affine transform whose translation keeps the centre, as MNIST-C builds it."""
    h, w, _ = x.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    rr, cc = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    src = matrix @ np.stack([cc.ravel() - cx, rr.ravel() - cy])
    coords = [src[1] + cy, src[0] + cx]
    return np.stack([ndimage.map_coordinates(x[..., k], coords, order=1, mode="constant", cval=0.0).reshape(h, w)
                     for k in range(x.shape[-1])], -1)


def _line(h, w, c0, r0, c1, r1):
    """MNIST-C's line_from_points on an (h, w) grid whose coordinates run 0..27 (so the line is as
    thick, relative to the image, as on a 28-pixel one): intensity log(1 - d / 2.3) + 1 at distance
    d from the line, clipped to [0, 1], only between columns floor(c0) and ceil(c1)."""
    if c1 == c0:
        return np.zeros((h, w))
    cc = np.linspace(0, 27, w)[None, :]
    rr = np.linspace(0, 27, h)[:, None]
    m = (r1 - r0) / (c1 - c0)
    dist = np.clip(np.abs(rr - (m * (cc - c0) + r0)), 0, 2.3 - 1e-10)
    out = np.clip(np.log(1 - dist / 2.3) + 1, 0, 1)
    out[:, cc[0] < math.floor(c0)] = 0
    out[:, cc[0] >= math.ceil(c1)] = 0
    return out


def _plasma(rng, mapsize=256, decay=3.0):
    """MNIST-C's plasma_fractal (diamond-square), in [0, 1], (mapsize, mapsize)."""
    a = np.empty((mapsize, mapsize))
    a[0, 0] = 0
    step, wibble = mapsize, 100.0

    def wibbled(x):
        return x / 4 + wibble * rng.uniform(-wibble, wibble, x.shape)

    while step >= 2:
        corner = a[0:mapsize:step, 0:mapsize:step]
        sq = corner + np.roll(corner, -1, 0)
        sq += np.roll(sq, -1, 1)
        a[step // 2:mapsize:step, step // 2:mapsize:step] = wibbled(sq)
        dr = a[step // 2:mapsize:step, step // 2:mapsize:step]
        ul = a[0:mapsize:step, 0:mapsize:step]
        lt = dr + np.roll(dr, 1, 0) + ul + np.roll(ul, -1, 1)
        a[0:mapsize:step, step // 2:mapsize:step] = wibbled(lt)
        tt = dr + np.roll(dr, 1, 1) + ul + np.roll(ul, -1, 0)
        a[step // 2:mapsize:step, 0:mapsize:step] = wibbled(tt)
        step //= 2
        wibble /= decay
    a -= a.min()
    return a / a.max()


def _grey(x):
    """(H, W) luminance of a (H, W, C) image (ITU-R 601 weights for colour)."""
    return x[..., 0] if x.shape[-1] == 1 else x[..., :3] @ np.array([0.299, 0.587, 0.114])


def _canny(g, sigma=1.0, low=0.1, high=0.2):
    s = ndimage.gaussian_filter(g, sigma, mode="constant", truncate=4.0)
    gx, gy = ndimage.sobel(s, 1, mode="nearest"), ndimage.sobel(s, 0, mode="nearest")
    mag = np.hypot(gx, gy) / 4.0  # Sobel's weights sum to 4 per side: the gradient per pixel
    angle = (np.rad2deg(np.arctan2(gy, gx)) + 180) % 180
    q = (np.round(angle / 45).astype(int)) % 4  # 0: horizontal gradient, 1: 45, 2: vertical, 3: 135
    p = np.pad(mag, 1)
    h, w = mag.shape
    nb = {0: ((0, 1), (0, -1)), 1: ((1, 1), (-1, -1)), 2: ((1, 0), (-1, 0)), 3: ((1, -1), (-1, 1))}
    keep = np.zeros_like(mag, bool)
    for k, ((dy1, dx1), (dy2, dx2)) in nb.items():
        a = p[1 + dy1:1 + dy1 + h, 1 + dx1:1 + dx1 + w]
        b = p[1 + dy2:1 + dy2 + h, 1 + dx2:1 + dx2 + w]
        keep |= (q == k) & (mag >= a) & (mag >= b)
    thin = np.where(keep, mag, 0.0)
    strong, weak = thin >= high, thin >= low
    labels, n = ndimage.label(weak, structure=np.ones((3, 3)))
    good = np.zeros(n + 1, bool)
    good[np.unique(labels[strong])] = True
    good[0] = False
    return good[labels].astype(np.float64)


# --------------------------------------------------------------------------- the corruptions (x in [0, 1])


def _shot_noise(x, rng, c, s):
    return rng.poisson(x * c) / c


def _impulse_noise(x, rng, c, s):
    u = rng.random(x.shape)
    out = x.copy()
    out[u < c / 2] = 0.0
    out[(u >= c / 2) & (u < c)] = 1.0
    return out


def _glass_blur(x, rng, c, s):
    sigma, delta, iterations = c[0] * s, max(1, round(c[1] * s)), c[2]
    x = np.floor(np.clip(_gaussian(x, sigma), 0, 1) * 255).astype(np.uint8)  # MNIST-C's np.uint8(... * 255)
    n, h, w, _ = x.shape
    every = np.arange(n)
    for _ in range(iterations):  # MNIST-C's pixel loop, each step done for all images at once
        for i in range(h - delta, delta, -1):
            for j in range(w - delta, delta, -1):
                k = every[rng.random(n) < 0.5]
                dy, dx = rng.integers(-delta, delta, size=(2, len(k)))
                here = x[k, i, j].copy()
                x[k, i, j] = x[k, i + dy, j + dx]
                x[k, i + dy, j + dx] = here
    return _gaussian(x / 255.0, sigma)


def _motion_blur(x, rng, c, s):
    radius, sigma = c[0] * s, c[1] * s
    angle = np.deg2rad(rng.uniform(-45, 45))
    width = 2 * math.ceil(radius) + 1
    i = np.arange(width)
    weights = np.exp(-(i ** 2) / (2 * sigma ** 2))
    weights /= weights.sum()
    h, w, _ = x.shape
    out = np.zeros_like(x)
    for k, wk in zip(i, weights):
        dy, dx = int(round(k * math.sin(angle))), int(round(k * math.cos(angle)))
        rows = np.clip(np.arange(h) - dy, 0, h - 1)
        cols = np.clip(np.arange(w) - dx, 0, w - 1)
        out += wk * x[rows[:, None], cols[None, :]]
    return out


def _shear(x, rng, c, s):
    c = c * rng.choice([-1, 1])
    return _warp(x, np.array([[1.0, -math.sin(c)], [0.0, math.cos(c)]]))


def _scale(x, rng, c, s):
    return _warp(x, np.eye(2) / c)


def _rotate(x, rng, c, s):
    c = c * rng.choice([-1, 1])
    return _warp(x, np.array([[math.cos(c), -math.sin(c)], [math.sin(c), math.cos(c)]]))


def _brightness(x, rng, c, s):  # any leading axes
    v = x.max(-1, keepdims=True)
    v_new = np.clip(v + c, 0, 1)
    return np.where(v > 0, x * v_new / np.where(v > 0, v, 1), v_new)


def _translate(x, rng, c, s):
    d = max(1, round(c * s))
    dy, dx = rng.choice([-1, 1], 2) * d
    return shift_lib.shift_images(x[None], int(dy), int(dx))[0]


def _stripe(x, rng, c, s):
    w = x.shape[2]
    q = round(w / 4)
    out = x.copy()
    out[:, :, :q] = 1 - out[:, :, :q]
    out[:, :, w - q:] = 1 - out[:, :, w - q:]
    return out


def _fog(x, rng, c, s):
    h, w, _ = x.shape
    size = max(256, 1 << max(h, w - 1).bit_length())
    max_val = x.max()
    fog = _plasma(rng, size, c[1])[:h, :w, None]
    return (x + c[0] * fog) * max_val / (max_val + c[0])


def _spatter(x, rng, c, s):
    h, w, _ = x.shape
    liquid = _gaussian(rng.normal(c[0], c[1], (h, w)), c[2] * s)
    liquid[liquid < c[3]] = 0
    m = _gaussian(np.where(liquid > c[3], 1.0, 0.0), c[4] * s)
    m[m < 0.8] = 0
    m = m[..., None]
    return x * (1 - m) + 63 / 255 * m


def _dotted_line(x, rng, c, s):
    h, w, _ = x.shape
    r0, r1 = rng.integers(0, 27, size=2)
    line = _line(h, w, 0, r0, 27, r1)
    cc = np.linspace(0, 27, w)
    line[:, (np.floor(cc).astype(int) // 2) % 2 == 0] = 0  # MNIST-C blanks columns [0, 2), [4, 6), ...
    return x + line[..., None]


def _zigzag(x, rng, c, s):
    h, w, _ = x.shape
    a = b = 2.0
    c0, c1 = 2, 25
    r0 = rng.integers(0, 27)
    r1 = r0 + rng.integers(-5, 5)
    theta = math.atan((r1 - r0) / (c1 - c0))
    d = (c1 - c0) / math.cos(theta)
    ends = [(0.0, 0.0)]
    r_i = 0.0
    for i in range(int((d - a) // (2 * a)) + 1):
        r_i = (-1) ** i * b
        ends.append(((2 * i + 1) * a, r_i))
    max_c = (2 * a) * (d // (2 * a))
    if d != max_c:
        ends.append((d, r_i / (2 * (d - max_c))))
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    cs, rs = rot @ np.array(ends).T
    cs, rs = cs + c0, rs + r0
    out = x.copy()
    for i in range(1, len(cs)):
        out = np.clip(out + _line(h, w, cs[i - 1], rs[i - 1], cs[i], rs[i])[..., None], 0, 1)
    return out


def _canny_edges(x, rng, c, s):
    edges = _canny(_grey(x))
    return np.repeat(edges[..., None], x.shape[-1], -1)


_SEVERITY = (1, 2, 3, 4, 5)
#: name -> Corruption(function, parameter per severity 1..5 or None, MNIST-C's severity); MNIST-C's order
CORRUPTIONS: dict[str, Corruption] = {
    "shot_noise": Corruption(_shot_noise, (60, 25, 12, 5, 3), 5),
    "impulse_noise": Corruption(_impulse_noise, (.03, .06, .09, .17, .27), 4),
    "glass_blur": Corruption(_glass_blur, ((.7, 1, 2), (.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)), 1),
    "motion_blur": Corruption(_each(_motion_blur), ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)), 1),
    "shear": Corruption(_each(_shear), (.2, .4, .6, .8, 1.0), 2),
    "scale": Corruption(_each(_scale), (.9, .8, .7, .6, .5), 3),
    "rotate": Corruption(_each(_rotate), (.2, .4, .6, .8, 1.0), 2),
    "brightness": Corruption(_brightness, (.1, .2, .3, .4, .5), 5),
    "translate": Corruption(_each(_translate), (1, 2, 3, 4, 5), 3),
    "stripe": Corruption(_stripe, None, None),
    "fog": Corruption(_each(_fog), ((1.5, 2), (2., 2), (2.5, 1.7), (2.5, 1.5), (3., 1.4)), 5),
    "spatter": Corruption(_each(_spatter), ((.65, .3, 4, .69, .6), (.65, .3, 3, .68, .6), (.65, .3, 2, .68, .5),
                                     (.65, .3, 1, .65, 1.5), (.67, .4, 1, .65, 1.5)), 4),
    "dotted_line": Corruption(_each(_dotted_line), None, None),
    "zigzag": Corruption(_each(_zigzag), None, None),
    "canny_edges": Corruption(_each(_canny_edges), None, None),
}


def names() -> list[str]:
    """The 15 corruption names, in MNIST-C's order."""
    return list(CORRUPTIONS)


def severities(name: str) -> tuple[int, ...] | tuple[None]:
    """(1, 2, 3, 4, 5) for a corruption with a scale, (None,) for one without."""
    return _SEVERITY if _get(name).params is not None else (None,)


def _get(name: str) -> Corruption:
    try:
        return CORRUPTIONS[name]
    except KeyError:
        raise ValueError(f"unknown corruption {name!r}; choose from {', '.join(CORRUPTIONS)}") from None


def parse_names(text: str) -> list[str]:
    """'all' or 'NAME,NAME,...' -> the corruption names (ValueError naming an unknown one)."""
    if text.strip() == "all":
        return names()
    chosen = [t.strip() for t in text.split(",") if t.strip()]
    if not chosen:
        raise ValueError("give 'all' or corruption names separated by commas")
    for n in chosen:
        _get(n)
    return list(dict.fromkeys(chosen))


def corrupt(images, name: str, severity: int | None = None, seed: int = 0) -> np.ndarray:
    """``images`` (N, H, W, C) uint8 with corruption ``name`` at ``severity`` (1..5; None: MNIST-C's
    own; must be None for stripe, dotted_line, zigzag, canny_edges): uint8, same shape.  Seeded as
    the module docstring says.  ValueError for an unknown name, a bad severity or a non-uint8
    NHWC array."""
    spec = _get(name)
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"corrupt: images must be uint8 (N, H, W, C), got {images.dtype} {images.shape}")
    if spec.params is None:
        if severity is not None:
            raise ValueError(f"corruption {name} has no severity levels (give None), got {severity!r}")
        param = None
    else:
        severity = spec.default if severity is None else severity
        if severity not in _SEVERITY:
            raise ValueError(f"severity must be one of {_SEVERITY} for {name}, got {severity!r}")
        param = spec.params[severity - 1]
    rng = np.random.default_rng([seed, list(CORRUPTIONS).index(name)])
    scale = min(images.shape[1:3]) / 28
    y = spec.fn(images.astype(np.float64) / 255.0, rng, param, scale)
    return np.round(np.clip(y, 0, 1) * 255).astype(np.uint8)


def corruption_evaluation(model, variables, dataset: data_lib.Dataset, corruption_names: Sequence[str] | None = None,
                          severity_levels: Sequence[int] | None = None, seed: int = 0, batch_size: int = 1000,
                          compute_dtype: str = "float32", tta: str = "none", mean=None, std=None) -> dict:
    """Accuracy of a trained model on ``dataset``'s test split under each corruption (default all)
    at each severity (``severity_levels``, default 1..5; None in it: MNIST-C's own severity of each
    corruption, the benchmark's setting; the corruptions without a scale once):
    ``{"clean": {"accuracy", "loss"}, "rows": [{"corruption", "severity", "accuracy", "loss",
    "error", "relative_error"}], "per_corruption": {name: mean accuracy over its severities},
    "mean_accuracy": mean of per_corruption, "mean_error": 1 - that, "mean_relative_error"}``;
    relative_error = error / clean error (MNIST-C's "many-fold"; inf when the clean error is 0).
    Evaluated as :func:`cnnjax.train.evaluation.evaluate` (``mean`` / ``std`` default the dataset's)."""
    chosen = names() if corruption_names is None else [_get(n) and n for n in corruption_names]
    levels = tuple(_SEVERITY if severity_levels is None else severity_levels)
    for lv in levels:
        if lv is not None and lv not in _SEVERITY:
            raise ValueError(f"severity must be one of {_SEVERITY}, got {lv!r}")
    mean = dataset.mean if mean is None else mean
    std = dataset.std if std is None else std
    step = evaluation.make_eval_step(model, mean, std, dataset.num_classes, compute_dtype, tta)
    clean = evaluation.evaluate(model, variables, dataset, batch_size, "test", eval_step=step)
    clean_err = 1 - clean["accuracy"]
    rel = lambda err: err / clean_err if clean_err > 0 else (0.0 if err == 0 else math.inf)
    rows, per = [], {}
    for name in chosen:
        accs = []
        spec = CORRUPTIONS[name]
        own = tuple(dict.fromkeys(spec.default if lv is None else lv for lv in levels))
        for sev in (own if spec.params is not None else (None,)):
            bad = dataclasses.replace(dataset, test_images=corrupt(dataset.test_images, name, sev, seed))
            ev = evaluation.evaluate(model, variables, bad, batch_size, "test", eval_step=step)
            accs.append(ev["accuracy"])
            rows.append({"corruption": name, "severity": sev, "accuracy": ev["accuracy"], "loss": ev["loss"],
                         "error": 1 - ev["accuracy"], "relative_error": rel(1 - ev["accuracy"])})
        per[name] = float(np.mean(accs))
    mean_acc = float(np.mean(list(per.values())))
    return {"clean": {"accuracy": clean["accuracy"], "loss": clean["loss"]}, "seed": seed, "rows": rows,
            "per_corruption": per, "mean_accuracy": mean_acc, "mean_error": 1 - mean_acc,
            "mean_relative_error": rel(1 - mean_acc)}
