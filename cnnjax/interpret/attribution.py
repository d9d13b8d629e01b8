"""Attribution maps: which input pixels a classifier's class score depends on.

Every method takes a registered classifier (``model``, ``variables``: e.g. from
:func:`cnnjax.train.runs.load_trained`), a batch ``x`` of float NHWC inputs **in the model's
input space** (normalised images, :func:`cnnjax.data.normalize`) and ``targets`` (int ``(N,)``,
the class each image's map explains; None: the predicted class), and returns float32 maps of
``x``'s shape ``(N, H, W, C)``.  The class score is the logit (before the softmax).  The model
runs with ``train=False``, so each image's map is independent of the rest of its batch.  Every
method is pure and jit-compiled (one compilation per model, batch shape and setting).

======================  ============================================  ==========================
method                  value at each input element                   units
======================  ============================================  ==========================
gradients               d score / d x  (Simonyan et al. 2014)         logit per input unit
smoothgrad              the mean gradient at ``samples`` copies of x  logit per input unit
                        plus Gaussian noise of std ``noise`` * (max
                        - min of the image)  (Smilkov et al. 2017)
integrated_gradients    (x - baseline) * the mean gradient along the  logit; they sum to
                        straight path baseline -> x (``steps``        score(x) - score(baseline)
                        midpoints; Sundararajan et al. 2017)
grad_cam                ReLU(sum_k alpha_k A_k) of a conv layer's     logit (per layer position)
                        channels A_k, alpha_k = spatial mean of
                        d score / d A_k, resized bilinearly to H x W
                        (Selvaraju et al. 2017); the same in every
                        channel of the map
occlusion               score(x) - score(x with a ``patch`` x         logit
                        ``patch`` square set to ``fill``), averaged
                        over the patches (every ``stride`` pixels)
                        covering the element (Zeiler & Fergus 2014);
                        the same in every channel
======================  ============================================  ==========================

"Input unit": one unit of the normalised input, i.e. ``std`` of a pixel in [0, 1] (divide a
gradient by ``std`` for "per unit of pixel intensity in [0, 1]").  Baselines and fill values are
in the model's input space too: a black image is ``(0 - mean) / std``
(:func:`black_baseline`).
"""
from __future__ import annotations

import functools
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cnnjax.interpret import features as features_lib

METHODS = ("gradients", "smoothgrad", "integrated_gradients", "grad_cam", "occlusion")


def black_baseline(mean, std):
    """The model-space value of a black pixel (0 in [0, 1]): ``-mean / std`` (per channel for
    per-channel statistics), a baseline or occlusion fill for images normalised that way."""
    return -jnp.asarray(mean, jnp.float32) / jnp.asarray(std, jnp.float32)


def _targets(model, variables, x, targets):
    if targets is None:
        return jnp.argmax(model.apply(variables, x, train=False), axis=-1)
    return jnp.asarray(targets, jnp.int32)


def _score_fn(model, variables, targets):
    """x -> the sum over the batch of each image's target logit (images do not interact, so its
    gradient holds every image's own gradient)."""
    def score(x):
        logits = model.apply(variables, x, train=False)
        return jnp.sum(jnp.take_along_axis(logits, targets[:, None], axis=1))
    return score


def _check(x):
    if x.ndim != 4:
        raise ValueError(f"x must be a batch of images (N, H, W, C), got shape {x.shape}")


def _group(count: int, x) -> int:
    """How many of ``count`` model evaluations on copies of ``x`` run vectorised at once: all of
    them up to ~2**22 input values (XLA's CPU loops are slow), then groups of that size."""
    return max(1, min(count, (1 << 22) // max(1, x.size)))


def _mean_gradient(model, variables, targets, points, params, x):
    """Mean over ``params`` of the gradient at ``points(params[chunk])`` ((S, N, H, W, C) inputs):
    each chunk of :func:`_group` size is one batch of S * N images through one gradient call
    (6-7x faster on the CPU than a scan or vmap over single gradients)."""
    count, group, total = params.shape[0], _group(params.shape[0], x), jnp.zeros_like(x)
    for start in range(0, count, group):
        inputs = points(params[start:start + group])
        s = inputs.shape[0]
        flat = inputs.reshape(s * x.shape[0], *x.shape[1:])
        g = jax.grad(_score_fn(model, variables, jnp.tile(targets, s)))(flat)
        total = total + g.reshape(inputs.shape).sum(0)
    return total / count


def _jit(*static):
    """jit with the model and ``static`` settings static; the model is made hashable first."""
    def wrap(fn):
        jitted = jax.jit(fn, static_argnames=("model", *static))

        @functools.wraps(fn)
        def call(model, variables, x, targets=None, **kw):
            x = jnp.asarray(x, jnp.float32)
            _check(x)
            return jitted(features_lib.hashable(model), variables, x, targets, **kw)
        return call
    return wrap


@_jit()
def gradients(model: nn.Module, variables, x, targets=None):
    """d score / d x (see the module's table)."""
    targets = _targets(model, variables, x, targets)
    return jax.grad(_score_fn(model, variables, targets))(x)


@_jit("samples")
def smoothgrad(model: nn.Module, variables, x, targets=None, *, key=None, samples: int = 32,
               noise: float = 0.15):
    """The mean of ``samples`` gradients at ``x + N(0, sigma^2)``, ``sigma = noise * (max - min)``
    of each image; ``key`` (default ``jax.random.key(0)``) draws the noise."""
    targets = _targets(model, variables, x, targets)
    key = jax.random.key(0) if key is None else key
    spread = jnp.max(x, axis=(1, 2, 3), keepdims=True) - jnp.min(x, axis=(1, 2, 3), keepdims=True)
    sigma = noise * spread
    noisy = lambda keys: x + sigma * jax.vmap(lambda k: jax.random.normal(k, x.shape, x.dtype))(keys)
    return _mean_gradient(model, variables, targets, noisy, jax.random.split(key, samples), x)


@_jit("steps")
def integrated_gradients(model: nn.Module, variables, x, targets=None, *, baseline=0.0, steps: int = 64):
    """``(x - baseline) * mean_k grad(baseline + a_k (x - baseline))``, ``a_k = (k + 1/2) / steps``
    (the midpoint rule).  ``baseline``: a scalar or an array broadcastable to ``x`` (model input
    space; :func:`black_baseline`).  The maps of one image sum to ``score(x) - score(baseline)``
    up to the rule's error, which shrinks with ``steps`` (:func:`completeness_gap`)."""
    targets = _targets(model, variables, x, targets)
    baseline = jnp.broadcast_to(jnp.asarray(baseline, x.dtype), x.shape)
    diff = x - baseline
    alphas = (jnp.arange(steps, dtype=x.dtype) + 0.5) / steps
    path = lambda a: baseline + a[:, None, None, None, None] * diff
    return diff * _mean_gradient(model, variables, targets, path, alphas, x)


def completeness_gap(model: nn.Module, variables, x, attributions, targets=None, *, baseline=0.0):
    """Per image, ``sum(attributions) - (score(x) - score(baseline))``: integrated gradients'
    error against its completeness axiom (0 for exact integration), float32 ``(N,)``."""
    x = jnp.asarray(x, jnp.float32)
    targets = _targets(model, variables, x, targets)
    base = jnp.broadcast_to(jnp.asarray(baseline, x.dtype), x.shape)
    score = lambda v: jnp.take_along_axis(model.apply(variables, v, train=False), targets[:, None], 1)[:, 0]
    return jnp.sum(attributions, axis=(1, 2, 3)) - (score(x) - score(base))


def default_layer(model: nn.Module, input_shape) -> str:
    """The last conv layer (Grad-CAM's usual choice: the most semantic with a spatial map);
    ValueError for a model without one (e.g. an MLP)."""
    convs = features_lib.conv_layers(model, input_shape)
    if not convs:
        raise ValueError(f"{type(model).__name__} has no conv layer: Grad-CAM needs one")
    return convs[-1]


def grad_cam(model: nn.Module, variables, x, targets=None, *, layer: Optional[str] = None):
    """Grad-CAM on conv ``layer`` (a name of :func:`cnnjax.interpret.features.conv_layers`, as in the
    model's summary; default :func:`default_layer`).  ValueError listing the conv layers for
    a name that is not one."""
    x = jnp.asarray(x, jnp.float32)
    _check(x)
    model = features_lib.hashable(model)
    layer = layer or default_layer(model, x.shape[1:])
    shape = features_lib.layer_shape(model, x.shape[1:], layer, conv=True)
    return _grad_cam(model, variables, x, targets, layer=layer, layer_shape=shape)


@functools.partial(jax.jit, static_argnames=("model", "layer", "layer_shape"))
def _grad_cam(model, variables, x, targets, *, layer, layer_shape):
    targets = _targets(model, variables, x, targets)

    def score(delta):
        logits, act = features_lib.layer_output(model, variables, x, layer, delta)
        return jnp.sum(jnp.take_along_axis(logits, targets[:, None], axis=1)), act

    grads, act = jax.grad(score, has_aux=True)(jnp.zeros((x.shape[0], *layer_shape), x.dtype))
    alpha = jnp.mean(grads, axis=(1, 2), keepdims=True)             # (N, 1, 1, K)
    cam = jax.nn.relu(jnp.sum(alpha * act, axis=-1))                 # (N, h, w)
    n, h, w, c = x.shape
    cam = jax.image.resize(cam, (n, h, w), method="linear")
    return jnp.broadcast_to(cam[..., None], x.shape)


def patch_starts(size: int, patch: int, stride: int) -> list[int]:
    """Top (or left) edges of the occlusion patches along one axis: every ``stride`` pixels from
    0, plus ``size - patch`` so the last row/column is covered too."""
    if not 1 <= patch <= size or stride < 1:
        raise ValueError(f"occlusion patch must be in [1, {size}] and stride >= 1, got patch={patch}, "
                         f"stride={stride}")
    return sorted(set(range(0, size - patch + 1, stride)) | {size - patch})


def occlusion(model: nn.Module, variables, x, targets=None, *, patch: int = 4, stride: int = 2,
              fill=0.0):
    """Occlusion sensitivity: for every ``patch`` x ``patch`` square at :func:`patch_starts`
    (all channels), the drop of the score when the square is set to ``fill`` (a scalar or an
    array broadcastable to ``x``); each element gets the mean drop over the squares covering it."""
    x = jnp.asarray(x, jnp.float32)
    _check(x)
    h, w = x.shape[1:3]
    positions = np.array([(t, l) for t in patch_starts(h, patch, stride) for l in patch_starts(w, patch, stride)],
                         np.int32)
    group = _group(len(positions), x)
    return _occlusion(features_lib.hashable(model), variables, x, targets, jnp.asarray(positions),
                      jnp.asarray(fill, x.dtype), patch=patch, group=group)


@functools.partial(jax.jit, static_argnames=("model", "patch", "group"))
def _occlusion(model, variables, x, targets, positions, fill, *, patch, group):
    targets = _targets(model, variables, x, targets)
    h, w = x.shape[1:3]
    score = lambda v: jnp.take_along_axis(model.apply(variables, v, train=False), targets[:, None], 1)[:, 0]
    rows, cols = jnp.arange(h), jnp.arange(w)

    def mask(pos):
        t, l = pos[0], pos[1]
        return ((rows >= t) & (rows < t + patch))[:, None] & ((cols >= l) & (cols < l + patch))[None, :]

    base = score(x)
    drops = jax.lax.map(lambda pos: base - score(jnp.where(mask(pos)[None, :, :, None], fill, x)), positions,
                        batch_size=group)                             # (P, N): each square's drop per image
    masks = jax.vmap(mask)(positions).astype(x.dtype)                  # (P, H, W)
    covered = jnp.maximum(masks.sum(0), 1.0)
    heat = jnp.einsum("pn,phw->nhw", drops, masks) / covered
    return jnp.broadcast_to(heat[..., None], x.shape)


def attribute(method: str, model: nn.Module, variables, x, targets=None, **settings):
    """``method`` (one of :data:`METHODS`) by name, with its keyword ``settings``."""
    fns = {"gradients": gradients, "smoothgrad": smoothgrad, "integrated_gradients": integrated_gradients,
           "grad_cam": grad_cam, "occlusion": occlusion}
    if method not in fns:
        raise ValueError(f"unknown attribution method {method!r}; methods: {', '.join(METHODS)}")
    return fns[method](model, variables, x, targets, **settings)


def pixel_map(maps, method: str) -> np.ndarray:
    """One value per pixel ``(N, H, W)`` for display: the largest absolute value over channels
    for the gradient methods (Simonyan et al.), the channel sum for integrated gradients (signed:
    its pixels sum to the score difference), the map itself for Grad-CAM and occlusion."""
    maps = np.asarray(maps)
    if method in ("gradients", "smoothgrad"):
        return np.abs(maps).max(-1)
    if method == "integrated_gradients":
        return maps.sum(-1)
    return maps[..., 0]
