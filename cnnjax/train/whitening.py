"""airbench94's data-dependent first layer: a patch-whitening conv set from the training images
and then frozen (``config.whiten_init``; the optimizer side: :func:`cnnjax.train.optim.make_optimizer`
freezes the pattern :data:`cnnjax.train.freeze.WHITEN`).

The conv is the parameter :data:`WHITEN_KERNEL` of the airbench models (``params['whiten']['kernel']``,
HWIO).  :func:`whitening_problem` says, before anything is allocated, why a model cannot take it;
:func:`init_whitening` fills it in a fresh :class:`cnnjax.train.state.TrainState`.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cnnjax import data as data_lib
from cnnjax.train.state import TrainState, restart_ema

#: the parameter that config.whiten_init sets from the data and then freezes
WHITEN_KERNEL = ("whiten", "kernel")

#: how many training images (the first ones) airbench94 estimates the patch covariance from
WHITEN_IMAGES = 5000


def whitening_kernel(images, mean: float, std: float, kernel_size: int = 2, eps: float = 5e-4) -> np.ndarray:
    """airbench94's data-dependent init of its patch-whitening conv, as an HWIO kernel
    (k, k, C, 2*k*k*C) float32.

    ``images``: uint8 (N, H, W, C), normalised as in training (:func:`cnnjax.data.normalize`:
    ``(x / 255 - mean) / std``, ``mean``/``std`` in units of the [0, 1] pixel range).  From every
    k x k patch p (flattened in (kh, kw, c) order, the kernel's HWI order; d = k*k*C values) the
    uncentred covariance S = E[p p^T] (d x d, float64) is eigendecomposed, S = sum l_i v_i v_i^T;
    output channel i < d is v_i / sqrt(l_i + eps) (largest eigenvalue first) and channel d + i its
    negative.  Channel i then has E[y_i y_j] = delta_ij * l_i / (l_i + eps): whitened patches
    (up to eps), the negatives letting the following GELU pass both signs."""
    x = np.asarray(data_lib.normalize(images, mean, std), np.float64)  # exactly what the model sees
    n, h, w, c = x.shape
    k = kernel_size
    patches = np.stack([x[:, i:h - k + 1 + i, j:w - k + 1 + j, :] for i in range(k) for j in range(k)], axis=3)
    patches = patches.reshape(-1, k * k * c)  # (N*H'*W', d) in (kh, kw, c) order
    cov = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = np.linalg.eigh(cov)  # ascending
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
    scaled = eigenvectors / np.sqrt(np.maximum(eigenvalues, 0) + eps)  # column i: v_i / sqrt(l_i + eps)
    kernel = np.concatenate([scaled, -scaled], axis=1)  # (d, 2d)
    return kernel.reshape(k, k, c, 2 * k * k * c).astype(np.float32)


def whitening_problem(model: nn.Module, image_shape) -> str | None:
    """Why ``config.whiten_init`` cannot initialise ``model`` on images of ``image_shape`` (None if it can)."""
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, *image_shape), jnp.float32))
    kernel = shapes["params"].get(WHITEN_KERNEL[0], {}).get(WHITEN_KERNEL[1])
    if kernel is None:
        return "config.whiten_init needs a model with a 'whiten' patch conv (the airbench family)"
    kh, kw, c, width = kernel.shape
    if kh != kw or width != 2 * kh * kw * c:
        return (f"config.whiten_init fills the 'whiten' conv's 2*{kh}*{kw}*{c} = {2 * kh * kw * c} channels "
                f"({kh}x{kw} patches of {c}-channel images, and their negatives); set "
                f"config.model_options.whiten_width={2 * kh * kw * c} (it is {width})")
    return None


def init_whitening(state: TrainState, images, mean: float, std: float) -> TrainState:
    """``state`` with its 'whiten' kernel from :func:`whitening_kernel` of the first
    :data:`WHITEN_IMAGES` of ``images`` (uint8 NHWC) and its moving average restarted from it."""
    params = dict(state.params)
    kh = params[WHITEN_KERNEL[0]][WHITEN_KERNEL[1]].shape[0]
    kernel = whitening_kernel(images[:WHITEN_IMAGES], mean, std, kh)
    params[WHITEN_KERNEL[0]] = {**params[WHITEN_KERNEL[0]], WHITEN_KERNEL[1]: jnp.asarray(kernel)}
    state = state._replace(params=params)
    return state if state.ema is None else restart_ema(state)
