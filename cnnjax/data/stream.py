"""Training batches streamed by a Grain pipeline instead of the whole split on the device.

:func:`batches` turns a random-access split (uint8 NHWC images -- typically a memory-mapped
prepared image folder, :mod:`cnnjax.data.cache` -- and int32 labels) and the run's data order
into a Grain iterator of ``(images (B, H, W, C) uint8, labels (B,) int32)`` numpy batches:

* the order is given, one row per epoch (``orders[e]`` = the in-memory path's
  ``train.epoch_permutation(state.rng, first_epoch + e, n)``): batch ``s`` of epoch ``e`` holds
  exactly the examples ``orders[e][s*B:(s+1)*B]`` that the in-memory step gathers, in that order;
  an epoch's last incomplete batch is dropped, as there;
* a batch is read with one fancy-indexing call on the (memory-mapped) array, in ``workers``
  worker processes (Grain's ``mp_prefetch``; 0: threads of this process) with ``prefetch``
  batches read ahead per worker;
* the iterator's position is Grain's checkpointable state: ``it.get_state()`` (a small dict,
  JSON-able) saved with a checkpoint and ``it.set_state(state)`` on a fresh iterator of the same
  arguments resume at the same batch;
* ``shard=(index, count)`` (default: Grain's ``ShardByJaxProcess``, i.e. this JAX process of
  all) gives each process only its rows ``[index*B/count, (index+1)*B/count)`` of every global
  batch: under ``jax.distributed`` a process reads only what its devices train on.

Worker processes receive a memory-mapped array as its file name and offset (each opens the file
itself); an in-memory array is copied to each worker.  :func:`fits_in_memory` is the rule of
``config.data_in_memory='auto'``.
"""

from __future__ import annotations

import os

import numpy as np

from cnnjax.data.dataset import release_pages


class _Mapped:
    """A file-backed ``np.memmap`` that pickles as (file, offset, dtype, shape), not its bytes."""

    def __init__(self, array: np.ndarray):
        self.array = array

    def __getstate__(self):
        a = self.array
        if isinstance(a, np.memmap) and getattr(a, "filename", None) and a.base is not None:
            base = a
            while isinstance(base.base, np.memmap):  # a view (e.g. subset's a[:n]) of the mapped file
                base = base.base
            offset = base.offset + (a.__array_interface__["data"][0] - base.__array_interface__["data"][0])
            if a.flags.c_contiguous:
                return {"file": a.filename, "offset": offset, "dtype": a.dtype.str, "shape": a.shape}
        return {"array": np.asarray(a)}

    def __setstate__(self, state):
        if "array" in state:
            self.array = state["array"]
        else:
            self.array = np.memmap(state["file"], np.dtype(state["dtype"]), "r", state["offset"],
                                   tuple(state["shape"]))


class EpochBatches:
    """Grain random-access source: record ``k`` = batch ``k % steps`` of epoch ``k // steps``
    (relative to ``orders``' first row), this shard's rows of it."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, orders: np.ndarray, batch_size: int,
                 shard: tuple[int, int] = (0, 1)):
        orders = np.asarray(orders)
        if orders.ndim != 2 or orders.shape[1] != len(labels):
            raise ValueError(f"orders must be (epochs, {len(labels)}), got {orders.shape}")
        index, count = shard
        if batch_size % count:
            raise ValueError(f"batch_size {batch_size} must be a multiple of the number of shards ({count})")
        self.images, self.labels = _Mapped(images), np.asarray(labels, np.int32)
        self.orders = orders.astype(np.int64, copy=False)
        self.batch_size, self.steps = batch_size, len(labels) // batch_size
        part = batch_size // count
        self.rows = slice(index * part, (index + 1) * part)

    def __len__(self) -> int:
        return self.orders.shape[0] * self.steps

    def __getitem__(self, k: int):
        epoch, step = divmod(int(k), self.steps)
        b = self.batch_size
        rows = self.orders[epoch, step * b:(step + 1) * b][self.rows]
        # sorted reads touch a memory-mapped file in order; the batch keeps the epoch's order
        ascending = np.argsort(rows, kind="stable")
        images = np.empty((len(rows), *self.images.array.shape[1:]), np.uint8)
        images[ascending] = self.images.array[rows[ascending]]
        release_pages(self.images.array)  # a worker's RSS stays a few batches, whatever the file's size
        return images, self.labels[rows]


def _exit_with_parent(worker_index: int, worker_count: int) -> None:
    """In a Grain worker: end it when the training process is gone (a SIGKILLed run would
    otherwise leave its workers behind, re-parented to init)."""
    import threading
    import time
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def batches(images: np.ndarray, labels: np.ndarray, orders: np.ndarray, batch_size: int, *, workers: int = 0,
            prefetch: int = 4, shard: tuple[int, int] | None = None):
    """A Grain iterator over every batch of ``orders``' epochs (``len(orders) * steps`` batches,
    ``steps = len(labels) // batch_size``); see the module docstring.  ``it.get_state()`` /
    ``it.set_state(state)`` save and restore its position."""
    import grain
    if shard is None:
        sharding = grain.sharding.ShardByJaxProcess()
        shard = (sharding.shard_index, sharding.shard_count)
    source = EpochBatches(images, labels, orders, batch_size, shard)
    if source.steps == 0:
        raise ValueError(f"batch_size {batch_size} is larger than the training set ({len(labels)} images)")
    ds = grain.MapDataset.source(source).to_iter_dataset(
        grain.ReadOptions(num_threads=max(1, min(prefetch, 4)) if not workers else 1, prefetch_buffer_size=prefetch))
    if workers:
        from absl import flags
        if not flags.FLAGS.is_parsed():  # Grain's workers read its absl flags; outside an absl program: defaults
            flags.FLAGS.mark_as_parsed()
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers, per_worker_buffer_size=prefetch),
                            worker_init_fn=_exit_with_parent)
    return iter(ds)


#: the fraction of the memory available at the start that ``data_in_memory='auto'`` lets the
#: training images take
MEMORY_BUDGET_FRACTION = 0.5


def available_memory() -> int | None:
    """Bytes of memory the system can still give (Linux MemAvailable); None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def fits_in_memory(nbytes: int, budget: int | None = None) -> bool:
    """``config.data_in_memory='auto'``: whether ``nbytes`` of training images fit the budget
    (default: :data:`MEMORY_BUDGET_FRACTION` of the available memory; $CNNJAX_DATA_MEMORY_BUDGET
    bytes when set).  Unknown memory counts as fitting."""
    if budget is None and os.environ.get("CNNJAX_DATA_MEMORY_BUDGET"):
        budget = int(float(os.environ["CNNJAX_DATA_MEMORY_BUDGET"]))
    if budget is None:
        free = available_memory()
        if free is None:
            return True
        budget = int(MEMORY_BUDGET_FRACTION * free)
    return nbytes <= budget
