"""Training epochs fed by the Grain pipeline of :mod:`cnnjax.data.stream` (``config.data_in_memory``).

:class:`StreamedBatches` is a batch source of :func:`cnnjax.train.loop.run_epoch`, the one epoch loop,
like :class:`cnnjax.train.loop.InMemoryBatches`, and runs the same batch step
(:func:`cnnjax.train.step.train_step`, jitted by :func:`cnnjax.train.step.make_train_step`) on each streamed
batch as the in-memory path runs on the batch it gathers: batch ``s`` of ``epoch`` holds the examples
``epoch_permutation(state.rng, epoch, n)[s*B:(s+1)*B]`` in that order, so both paths see the
same examples in the same order, and the same step key (``state.step``) augments them.

Position and resume: the pipeline covers the epochs from the first one this process trains to
``config.epochs``; its position after an epoch is the start of the next epoch, which is what the
epoch's checkpoint records (``epoch``), so a run resumed from a checkpoint rebuilds the
pipeline at that epoch and continues exactly (a mid-epoch checkpoint would store
``iterator.get_state()`` and restore it with ``set_state`` instead).

Processes: with a mesh, each process's pipeline reads only the rows of every global batch that
its own devices train on (:func:`process_rows`; under ``jax.distributed`` each process reads its
shard and no process reads the whole batch), and the global batch is assembled from the
processes' parts by ``jax.make_array_from_process_local_data``.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from cnnjax.train import loop
from cnnjax.train import step as step_lib
from cnnjax.data import cache, stream


def default_workers(images) -> int:
    """Grain worker processes for a split: for a memory-mapped split on more than 2 cores, half
    the cores, at most 2 (each worker maps the file itself); otherwise 0, i.e. threads of this
    process read the batches: an in-memory split (no copy per worker), a main script that cannot
    spawn workers (:func:`cnnjax.data.cache.spawn_is_safe`), and a machine of 1-2 cores, where a
    worker process takes a core from the step's XLA threads and a batch read is one memory copy
    (benchmarks/RESULTS.md, "Image folders")."""
    cores = os.cpu_count() or 1
    mapped = isinstance(images, np.memmap) and cache.spawn_is_safe()
    return min(2, cores // 2) if mapped and cores > 2 else 0


def process_rows(mesh, batch_size: int) -> tuple[int, int]:
    """``(index, count)``: this process's rows of a global batch of ``batch_size`` split over
    ``mesh``'s 'data' axis are ``[index*B/count, (index+1)*B/count)``.  (0, 1) without a mesh.
    ValueError if this process's devices do not hold one contiguous block of rows."""
    if mesh is None:
        return 0, 1
    split = NamedSharding(mesh, P("data"))
    rows = sorted({(s[0].start or 0, batch_size if s[0].stop is None else s[0].stop)
                   for s in split.addressable_devices_indices_map((batch_size,)).values()})
    first, last = rows[0][0], rows[-1][1]
    part = last - first
    if any(a != b for (_, a), (b, _) in zip(rows, rows[1:])) or batch_size % part or first % part:
        raise ValueError(f"this process's devices hold rows {rows} of a batch of {batch_size}: not one block")
    return first // part, batch_size // part


def streams(cfg, dataset) -> bool:
    """Whether ``cfg``'s training batches are streamed: ``data_in_memory='false'``, or 'auto' and
    the training images do not fit :func:`cnnjax.data.stream.fits_in_memory`."""
    if cfg.data_in_memory == "auto":
        return not stream.fits_in_memory(dataset.train_images.nbytes)
    return cfg.data_in_memory == "false"


class StreamedBatches:
    """A batch source (:func:`cnnjax.train.loop.run_epoch`) streaming ``dataset``'s training split for a
    run of ``epochs`` epochs (see the module docstring); ``workers`` Grain worker processes
    (None: :func:`default_workers`)."""

    def __init__(self, spec: step_lib.StepSpec, dataset, epochs: int, workers: int | None = None):
        self.step = step_lib.make_train_step(spec)
        self.images, self.labels = dataset.train_images, dataset.train_labels
        self.batch_size, self.epochs, self.mesh = spec.batch_size, epochs, spec.mesh
        self.steps = loop.steps_per_epoch(len(self.labels), self.batch_size)
        self.workers = default_workers(self.images) if workers is None else workers
        self.shard = process_rows(spec.mesh, self.batch_size)
        self.next_epoch, self.iterator = None, None

    def epoch(self, state, epoch: int):
        if self.next_epoch != epoch:  # the first epoch this process trains (or a jump): build it there
            n = len(self.labels)
            orders = np.stack([np.asarray(loop.epoch_permutation(state.rng, e, n), np.int32)
                               for e in range(epoch, max(self.epochs, epoch) + 1)])
            self.iterator = stream.batches(self.images, self.labels, orders, self.batch_size, workers=self.workers,
                                           shard=self.shard)
        iterator = self.iterator
        for _ in range(self.steps):
            yield lambda s: (*self.step(s, _global_batch(next(iterator), self.mesh)), 1)
        self.next_epoch = epoch + 1
        if epoch >= self.epochs:  # its last batch: stop the workers and free their shared memory now
            iterator.close()
            self.next_epoch = None


def make_epoch_runner(spec: step_lib.StepSpec, dataset, epochs: int, workers: int | None = None):
    """``run(state, images, labels, epoch, on_step=None) -> (state, metrics)`` over
    :class:`StreamedBatches` of ``dataset`` (``images``/``labels`` are not used: the batches come
    from the dataset's training split); the signature of :func:`cnnjax.train.loop.make_epoch_runner`'s."""
    source = StreamedBatches(spec, dataset, epochs, workers)
    return lambda state, _images, _labels, epoch, on_step=None: loop.run_epoch(state, source, epoch, on_step)


def _global_batch(local, mesh):
    """The global batch, on the devices, from this process's rows of it (the whole batch without a mesh)."""
    if mesh is None:
        return jax.device_put(local)
    split = NamedSharding(mesh, P("data"))
    return tuple(jax.make_array_from_process_local_data(split, a) for a in local)
