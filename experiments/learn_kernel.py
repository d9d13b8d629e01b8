r"""Seeing convolution: learn a 3x3 kernel from an input X and its filtered output Y alone.

  python -m experiments.learn_kernel                        # recover the Laplacian from the test scene
  python -m experiments.learn_kernel --kernel=sobel_x --optimizer=sgd
  python -m experiments.learn_kernel --dataset=fashion_mnist --index=3 --kernel=sharpen

Y = corr2d(X, K_true) with K_true from cnnjax.filters.KERNELS.  The kernel K is fitted by
gradient descent (Optax) on the MSE loss mean((corr2d(X, K) - Y)^2); training stops as soon
as the loss is below --loss_tolerance (a criterion that uses only X and Y), and only then is
the learned K compared with K_true.  Writes <out_dir>/loss_curve.png (log y).
"""
from __future__ import annotations

import os
import time
from typing import Optional

import numpy as np
from absl import flags

from experiments import common, demo_flags

NAME = "learn_kernel"

_IMAGE = demo_flags.IMAGE
_DATASET = demo_flags.DATASET
_INDEX = demo_flags.INDEX
_DATA_DIR = demo_flags.DATA_DIR
_SEED = demo_flags.SEED
_KERNEL = flags.DEFINE_string("kernel", "laplacian", "True kernel that makes Y: a name in cnnjax.filters.KERNELS.")
_OPTIMIZER = flags.DEFINE_enum("optimizer", "adam", ["adam", "sgd"], "Optax optimizer.")
_LEARNING_RATE = flags.DEFINE_float(
    "learning_rate", None, "Learning rate (default: 0.1 for adam; for sgd the optimal constant step "
    "2/(L+m) of this quadratic loss, from the eigenvalues of X's 3x3-patch matrix).")
_STEPS = flags.DEFINE_integer("steps", 5000, "Maximum number of gradient steps.")
_LOSS_TOLERANCE = flags.DEFINE_float("loss_tolerance", 1e-11, "Stop once the MSE loss (X and Y scaled by "
                                     "1/max|X|) is below this.")
_TOLERANCE = flags.DEFINE_float("tolerance", 1e-4, "Report whether max |learned - true| is within this "
                                "(checked after training; not a stopping criterion).")
_PRINT_EVERY = flags.DEFINE_integer("print_every", 100, "Print the loss every this many steps (0: never).")

ADAM_LEARNING_RATE = 0.1


def _patch_matrix(x: np.ndarray, kh: int, kw: int) -> np.ndarray:
    """All (kh, kw) windows of a 2-D array as rows: (num_windows, kh*kw)."""
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw))
    return windows.reshape(-1, kh * kw)


def sgd_learning_rate(x, kernel_size: int = 3) -> float:
    """Optimal constant SGD step 2/(L+m) for the MSE of ``corr2d(x, K)``, whose Hessian is
    the constant 2/N P^T P (P: the matrix of x's windows); L, m = its largest and smallest
    eigenvalues.  ``x`` as passed to :func:`learn_kernel` (it is scaled the same way)."""
    x = np.asarray(x, np.float64)
    x = x / max(float(np.abs(x).max()), 1e-30)
    p = _patch_matrix(x, kernel_size, kernel_size)
    eig = np.linalg.eigvalsh(2.0 * p.T @ p / len(p))
    return float(2.0 / (eig[-1] + max(eig[0], 0.0)))


def learn_kernel(x, y, kernel_size: int = 3, steps: int = 5000, learning_rate: Optional[float] = None,
                 optimizer: str = "adam", loss_tolerance: float = 1e-11, seed: int = 0,
                 print_every: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fit K (kernel_size x kernel_size) so that corr2d(x, K) matches y, by gradient descent.

    x: (H, W) input; y: (H-k+1, W-k+1) target, in the same units.  Both are divided by
    max|x| (which leaves the best K unchanged and makes the default learning rates work
    for any image range); the loss is the MSE in those scaled units.  Starts from
    N(0, 0.1^2) weights (``seed``); runs at most ``steps`` updates and stops as soon as the
    loss is below ``loss_tolerance``.  ``optimizer``: 'adam' (default learning rate 0.1) or
    'sgd' (default :func:`sgd_learning_rate`).  The update is jitted and run in chunks of
    ``print_every`` (or 100; at most ``steps + 1``) steps with ``lax.scan``; ``print_every`` > 0 prints the loss.

    Returns (kernel (k, k) float32 numpy, losses): ``losses[i]`` is the loss before update
    i, so ``len(losses) - 1`` updates were made; when the tolerance was reached the last
    loss is the first one below it and ``kernel`` is the kernel that achieved it.
    """
    import jax
    import jax.numpy as jnp
    import optax

    from cnnjax import ops

    x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
    k = int(kernel_size)
    expected = (ops.conv_output_size(x.shape[0], k), ops.conv_output_size(x.shape[1], k))
    if y.shape != expected:
        raise ValueError(f"y has shape {y.shape}; corr2d of a {x.shape} input with a {k}x{k} kernel gives {expected}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    scale = max(float(np.abs(x).max()), 1e-30)
    xs, ys = jnp.asarray(x / scale), jnp.asarray(y / scale)
    if optimizer == "adam":
        tx = optax.adam(ADAM_LEARNING_RATE if learning_rate is None else learning_rate)
    elif optimizer == "sgd":
        tx = optax.sgd(sgd_learning_rate(x, k) if learning_rate is None else learning_rate)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")

    def loss_fn(kernel):
        return jnp.mean((ops.corr2d(xs, kernel) - ys) ** 2)

    def step(carry, _):
        kernel, state, i = carry
        loss, grad = jax.value_and_grad(loss_fn)(kernel)
        updates, new_state = tx.update(grad, state, kernel)
        new_kernel = optax.apply_updates(kernel, updates)
        # Converged or out of steps: keep this kernel (and state) for the rest of the chunk.
        done = (loss < loss_tolerance) | (i >= steps)
        keep = lambda old, new: jnp.where(done, old, new)
        return (keep(kernel, new_kernel), jax.tree.map(keep, state, new_state), i + 1 - done), loss

    chunk = min(int(print_every) if print_every and print_every > 0 else 100, steps + 1)

    @jax.jit
    def run_chunk(kernel, state, i):
        return jax.lax.scan(step, (kernel, state, i), None, length=chunk)

    kernel = 0.1 * jax.random.normal(jax.random.key(seed), (k, k), jnp.float32)
    state, i = tx.init(kernel), jnp.int32(0)
    losses: list[float] = []
    while True:
        start = len(losses)
        (kernel, state, i), chunk_losses = run_chunk(kernel, state, i)
        chunk_losses = np.asarray(chunk_losses, np.float64)
        index = start + np.arange(chunk)
        done = np.flatnonzero((chunk_losses < loss_tolerance) | (index >= steps))
        stop = int(done[0]) + 1 if done.size else chunk
        losses.extend(chunk_losses[:stop].tolist())
        if print_every and print_every > 0:
            for j in range(start, len(losses)):
                if j % print_every == 0 or (done.size and j == len(losses) - 1):
                    print(f"step {j:6d}  loss {losses[j]:.3e}")
        if done.size:
            break
    return np.asarray(kernel, np.float32), np.asarray(losses)


def _kernel_rows(k: np.ndarray) -> list[str]:
    return ["[" + " ".join(f"{v:9.5f}" for v in row) + " ]" for row in np.asarray(k, np.float64)]


def main(argv):
    del argv
    from cnnjax import filters, ops, plots

    if _KERNEL.value not in filters.KERNELS:
        raise common.UsageError(f"unknown kernel {_KERNEL.value!r}; known kernels: {', '.join(filters.KERNELS)}")
    if _STEPS.value < 0:
        raise common.UsageError(f"--steps must be >= 0, got {_STEPS.value}")
    true_k = filters.KERNELS[_KERNEL.value]
    x, source = filters.load_source(_IMAGE.value, _DATASET.value, _INDEX.value, _DATA_DIR.value)
    y = np.asarray(ops.corr2d(x, true_k))
    scale = float(np.abs(x).max())
    if scale == 0:
        raise ValueError(f"the input image is all zeros ({source}): Y is zero for every kernel, nothing to learn")
    lr = _LEARNING_RATE.value
    if lr is None:
        lr = ADAM_LEARNING_RATE if _OPTIMIZER.value == "adam" else sgd_learning_rate(x)
    print(f"X: {source}")
    print(f"Y = corr2d(X, {_KERNEL.value}) {y.shape[0]}x{y.shape[1]}; learning a 3x3 kernel from (X, Y) with "
          f"{_OPTIMIZER.value}, learning rate {lr:.4g}")
    print(f"loss = mean((corr2d(X, K) - Y)^2) with X, Y divided by max|X| = {scale:g}; "
          f"stop when loss < {_LOSS_TOLERANCE.value:g} or after {_STEPS.value} steps")
    t0 = time.perf_counter()
    learned, losses = learn_kernel(x, y, 3, steps=_STEPS.value, learning_rate=lr, optimizer=_OPTIMIZER.value,
                                   loss_tolerance=_LOSS_TOLERANCE.value, seed=_SEED.value,
                                   print_every=_PRINT_EVERY.value)
    seconds = time.perf_counter() - t0
    updates = len(losses) - 1
    converged = losses[-1] < _LOSS_TOLERANCE.value
    print(f"{'converged' if converged else 'NOT converged'}: loss {losses[-1]:.3e} after {updates} steps "
          f"in {seconds:.2f} s (including jit compilation)")
    print(f"{'learned kernel':<33}  true kernel ({_KERNEL.value})")
    for a, b in zip(_kernel_rows(learned), _kernel_rows(true_k)):
        print(f"{a:<33}  {b}")
    err = float(np.max(np.abs(learned - true_k)))
    ok = err <= _TOLERANCE.value
    print(f"max |learned - true| = {err:.2e}; within --tolerance {_TOLERANCE.value:g}: {'yes' if ok else 'no'}")
    directory = demo_flags.out_dir(NAME)
    path = plots.plot_loss_curve(
        np.arange(len(losses)), losses, os.path.join(directory, "loss_curve.png"), log_y=True,
        title=f"learning {_KERNEL.value} from (X, Y) with {_OPTIMIZER.value} (lr {lr:.3g}): "
              f"{updates} steps, max weight error {err:.1e}",
        hline=_LOSS_TOLERANCE.value, hline_label="--loss_tolerance", ylabel="MSE loss")
    print(f"wrote {path}")



if __name__ == "__main__":
    common.run(main)
