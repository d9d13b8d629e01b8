"""Training epochs over an in-memory dataset on the device.

  cfg   = TrainConfig(model="padded_cnn", epochs=10)      # cnnjax.train.config, the run's schema
  model = models.create(cfg.model, ds.num_classes, **cfg.model_options)
  tx    = optim.make_optimizer(cfg, steps_per_epoch)
  state = init_state(model, tx, cfg.seed, ds.image_shape)                    # cnnjax.train.state
  spec  = StepSpec.from_config(cfg, model, tx, num_classes=ds.num_classes, mean=ds.mean, std=ds.std)
  run   = make_epoch_runner(spec)
  state, metrics = run(state, images, labels, epoch)

One epoch loop (:func:`run_epoch`) over a *batch source*: :class:`InMemoryBatches` (the whole
training set on the device as uint8 NHWC; each step gathers its batch by index from a per-epoch
permutation, :func:`epoch_permutation`, a pure function of the run's key and the epoch) or
:class:`cnnjax.train.streaming.StreamedBatches` (the same batches from a Grain pipeline).  Both hand
each batch to :func:`cnnjax.train.step.train_step`; given the seed, everything is deterministic, so an
epoch re-run after a restore is bit-identical.

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

from cnnjax.train import rng as rng_lib
from cnnjax.train.sharding import split_batch
from cnnjax.train.state import TrainState
from cnnjax.train.step import StepSpec, on_accelerator, train_step


def epoch_permutation(rng, epoch: int, n: int):
    """The data order of ``epoch``: a permutation of range(n), a pure function of (rng, epoch)."""
    return jax.random.permutation(rng_lib.epoch_key(rng, epoch), n)


def fused_epoch_default(backend: str | None = None) -> bool:
    """Whether an epoch should run as one ``lax.scan``: on GPU/TPU yes; on the CPU no (XLA's CPU
    while-loop runs it slower than per-step dispatch; benchmarks/RESULTS.md)."""
    return on_accelerator(backend)


def _indexed_step(spec: StepSpec) -> Callable:
    """``step(state, images, labels, order, index)``: :func:`cnnjax.train.step.train_step` on the batch
    ``order[index*B:(index+1)*B]`` gathered from the device-resident ``images``/``labels``."""
    def indexed_train_step(state: TrainState, images, labels, order, index):
        idx = split_batch(jax.lax.dynamic_slice_in_dim(order, index * spec.batch_size, spec.batch_size), spec.mesh)
        return train_step(spec, state, (images[idx], labels[idx]))
    return indexed_train_step


def make_indexed_step(spec: StepSpec) -> Callable:
    """:func:`_indexed_step` jitted, the old state donated: one step of a per-step epoch."""
    return jax.jit(_indexed_step(spec), donate_argnums=(0,))


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Full batches of ``batch_size`` in a training split of ``n`` images (the last incomplete
    batch is dropped); ValueError when not even one fits -- the one place this is checked."""
    if n // batch_size == 0:
        raise ValueError(f"config.batch_size {batch_size} is larger than the training set ({n} images)")
    return n // batch_size


class InMemoryBatches:
    """A batch source over a training split that lives on the device (uint8 (N, H, W, C), int32
    (N,)): batch ``s`` of ``epoch`` is ``epoch_permutation(state.rng, epoch, N)[s*B:(s+1)*B]``,
    gathered inside the jitted step.  ``fused``: the epoch's steps in one ``lax.scan`` (one
    advance per epoch); otherwise one jitted step per batch.  The jitted functions are built
    once, in :class:`EpochRunner`, and shared by every source of that runner."""

    def __init__(self, runner: "EpochRunner", images, labels):
        self.runner, self.images, self.labels = runner, images, labels
        self.batch_size = runner.spec.batch_size
        self.steps = steps_per_epoch(labels.shape[0], self.batch_size)

    def epoch(self, state: TrainState, epoch: int):
        order = epoch_permutation(state.rng, epoch, self.labels.shape[0])
        images, labels = self.images, self.labels
        if self.runner.fused:
            yield lambda s: (*self.runner.epoch_fn(s, images, labels, order), self.steps)
            return
        step = self.runner.step
        for i in range(self.steps):
            yield lambda s, i=i: (*step(s, images, labels, order, i), 1)


def run_epoch(state: TrainState, source, epoch: int, on_step: Callable[[int, int, Any], None] | None = None):
    """The one epoch loop: ``(state, {"train_loss", "train_accuracy"})`` after one pass of
    ``source`` (a batch source: :class:`InMemoryBatches`, or :class:`cnnjax.train.streaming.StreamedBatches`)
    over ``epoch``.  A source has ``steps`` and ``batch_size`` and ``epoch(state, epoch)``, an
    iterable of advances, each ``advance(state) -> (state, metrics, steps done)`` with metrics
    ``{"loss", "correct"}`` (device arrays, summed over its steps: one step, or the whole epoch
    in one ``lax.scan``).  ``on_step(i, steps, metrics)`` after each advance (i: the last step
    done; metrics None for an advance of several steps; reading them waits for the step)."""
    steps, done = source.steps, 0
    loss_sum, correct = jnp.zeros(()), jnp.zeros((), jnp.int32)
    for advance in source.epoch(state, epoch):
        state, m, n = advance(state)
        loss_sum, correct, done = loss_sum + m["loss"], correct + m["correct"], done + n
        if on_step is not None:
            on_step(done - 1, steps, m if n == 1 else None)
    return state, {"train_loss": float(loss_sum) / steps, "train_accuracy": int(correct) / (steps * source.batch_size)}


class EpochRunner:
    """``run(state, images_u8, labels, epoch, on_step=None) -> (state, {"train_loss", "train_accuracy"})``:
    :func:`run_epoch` over :class:`InMemoryBatches` of ``images``/``labels`` (on the device).
    ``fused`` False: one jitted step per batch; True: the epoch in one ``lax.scan`` (compiled once
    per epoch length); None: :func:`fused_epoch_default`."""

    def __init__(self, spec: StepSpec, fused: bool | None = None):
        self.spec = spec
        self.fused = fused_epoch_default() if fused is None else fused
        if self.fused:
            step, batch = _indexed_step(spec), spec.batch_size

            @functools.partial(jax.jit, donate_argnums=(0,))
            def epoch_fn(state, images, labels, order):
                def body(carry, index):
                    state, loss_sum, correct = carry
                    state, m = step(state, images, labels, order, index)
                    return (state, loss_sum + m["loss"], correct + m["correct"]), None

                init = (state, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))
                steps = jnp.arange(order.shape[0] // batch, dtype=jnp.int32)
                (state, loss_sum, correct), _ = jax.lax.scan(body, init, steps)
                return state, {"loss": loss_sum, "correct": correct}

            self.epoch_fn = epoch_fn
        else:
            self.step = make_indexed_step(spec)

    def source(self, images, labels) -> InMemoryBatches:
        return InMemoryBatches(self, images, labels)

    def __call__(self, state: TrainState, images, labels, epoch: int,
                 on_step: Callable[[int, int, Any], None] | None = None):
        return run_epoch(state, self.source(images, labels), epoch, on_step)


def make_epoch_runner(spec: StepSpec, fused: bool | None = None) -> EpochRunner:
    """``run(state, images_u8, labels, epoch, on_step=None) -> (state, {"train_loss", "train_accuracy"})``:
    one pass over the training set (uint8 (N, H, W, C) and int32 (N,), on the device) in the order
    :func:`epoch_permutation` ``(state.rng, epoch, N)``, the last incomplete batch dropped
    (:class:`EpochRunner`).  ValueError when not even one batch fits.

    ``fused`` False: one jitted step per batch, ``on_step(i, steps, metrics)`` after each (device
    arrays: reading them waits for the step).  True: the epoch in one ``lax.scan`` (compiled once per
    epoch length), ``on_step(steps - 1, steps, None)`` once after it.  None: :func:`fused_epoch_default`."""
    return EpochRunner(spec, fused)
