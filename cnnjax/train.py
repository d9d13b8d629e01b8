"""Training epochs over an in-memory dataset on the device.

  cfg   = TrainConfig(model="padded_cnn", epochs=10)      # cnnjax.config, the run's schema
  model = models.create(cfg.model, ds.num_classes, **cfg.model_options)
  tx    = optim.make_optimizer(cfg, steps_per_epoch)
  state = init_state(model, tx, cfg.seed, ds.image_shape)                    # cnnjax.train_state
  spec  = StepSpec.from_config(cfg, model, tx, num_classes=ds.num_classes, mean=ds.mean, std=ds.std)
  run   = make_epoch_runner(spec)
  state, metrics = run(state, images, labels, epoch)

The whole training set lives on the device as uint8 NHWC; each step gathers its batch by index
from a per-epoch permutation (:func:`epoch_permutation`, a pure function of the run's key and the
epoch) and hands it to :func:`cnnjax.step.train_step`.  Given the seed, everything is
deterministic, so an epoch re-run after a restore is bit-identical.  An input pipeline that
yields the same batches calls :func:`cnnjax.step.make_train_step`'s step itself.

One switch (``fused``, ``config.epoch_loop``) picks how an epoch runs, with the same updates in
the same order: one jitted step per batch (no host sync between them; the CPU default), or every
step of the epoch in one ``lax.scan`` inside one jit (one dispatch per epoch; the GPU/TPU
default, where per-step launch overhead dominates a small model).
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

from cnnjax import rng as rng_lib
from cnnjax.sharding import split_batch
from cnnjax.train_state import TrainState
from cnnjax.step import StepSpec, on_accelerator, train_step


def epoch_permutation(rng, epoch: int, n: int):
    """The data order of ``epoch``: a permutation of range(n), a pure function of (rng, epoch)."""
    return jax.random.permutation(rng_lib.epoch_key(rng, epoch), n)


def fused_epoch_default(backend: str | None = None) -> bool:
    """Whether an epoch should run as one ``lax.scan``: on GPU/TPU yes; on the CPU no (XLA's CPU
    while-loop runs it slower than per-step dispatch; benchmarks/RESULTS.md)."""
    return on_accelerator(backend)


def _indexed_step(spec: StepSpec) -> Callable:
    """``step(state, images, labels, order, index)``: :func:`cnnjax.step.train_step` on the batch
    ``order[index*B:(index+1)*B]`` gathered from the device-resident ``images``/``labels``."""
    def indexed_train_step(state: TrainState, images, labels, order, index):
        idx = split_batch(jax.lax.dynamic_slice_in_dim(order, index * spec.batch_size, spec.batch_size), spec.mesh)
        return train_step(spec, state, (images[idx], labels[idx]))
    return indexed_train_step


def make_indexed_step(spec: StepSpec) -> Callable:
    """:func:`_indexed_step` jitted, the old state donated: one step of a per-step epoch."""
    return jax.jit(_indexed_step(spec), donate_argnums=(0,))


def make_epoch_runner(spec: StepSpec, fused: bool | None = None) -> Callable:
    """``run(state, images_u8, labels, epoch, on_step=None) -> (state, {"train_loss", "train_accuracy"})``:
    one pass over the training set (uint8 (N, H, W, C) and int32 (N,), on the device) in the order
    :func:`epoch_permutation` ``(state.rng, epoch, N)``, the last incomplete batch dropped.
    ValueError when not even one batch fits.

    ``fused`` False: one jitted step per batch, ``on_step(i, steps, metrics)`` after each (device
    arrays: reading them waits for the step).  True: the epoch in one ``lax.scan`` (compiled once per
    epoch length), ``on_step(steps - 1, steps, None)`` once after it.  None: :func:`fused_epoch_default`."""
    fused = fused_epoch_default() if fused is None else fused
    batch = spec.batch_size
    if fused:
        step = _indexed_step(spec)

        @functools.partial(jax.jit, donate_argnums=(0,))
        def epoch_fn(state, images, labels, order):
            def body(carry, index):
                state, loss_sum, correct = carry
                state, m = step(state, images, labels, order, index)
                return (state, loss_sum + m["loss"], correct + m["correct"]), None

            init = (state, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))
            steps = jnp.arange(order.shape[0] // batch, dtype=jnp.int32)
            (state, loss_sum, correct), _ = jax.lax.scan(body, init, steps)
            return state, loss_sum, correct
    else:
        step = make_indexed_step(spec)

    def run(state: TrainState, images, labels, epoch: int, on_step: Callable[[int, int, Any], None] | None = None):
        n = labels.shape[0]
        steps = n // batch
        if steps == 0:
            raise ValueError(f"batch_size {batch} is larger than the training set ({n} images)")
        order = epoch_permutation(state.rng, epoch, n)
        if fused:
            state, loss_sum, correct = epoch_fn(state, images, labels, order)
            if on_step is not None:
                on_step(steps - 1, steps, None)
        else:
            loss_sum, correct = jnp.zeros(()), jnp.zeros((), jnp.int32)
            for i in range(steps):
                state, m = step(state, images, labels, order, i)
                loss_sum, correct = loss_sum + m["loss"], correct + m["correct"]
                if on_step is not None:
                    on_step(i, steps, m)
        return state, {"train_loss": float(loss_sum) / steps, "train_accuracy": int(correct) / (steps * batch)}

    return run
