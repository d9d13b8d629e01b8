"""Peak memory of streaming a prepared image folder larger than the memory budget.

    nice python -m benchmarks.stream_memory --gb=1.2 --budget_mb=256

Writes a prepared cache entry (:mod:`cnnjax.data.cache`'s layout) of ``--gb`` of random uint8
64x64x3 training images directly (decoding a JPEG folder of that size would only add prepare
time), then, with ``CNNJAX_DATA_MEMORY_BUDGET`` set to ``--budget_mb``:

1. ``data.load("prepared", ENTRY)`` -- the per-channel statistics read the whole training file;
2. ``streaming.streams(config)`` -- whether ``data_in_memory='auto'`` streams it (it must);
3. one epoch of ``data.stream.batches`` (batch ``--batch_size``, the run's order, ``--workers``
   Grain worker processes), the batches consumed and dropped as a training loop does.

Reports the peak RSS (``VmHWM``) of this process and of the largest worker process,
next to the file's size and the budget: resident pages of the mapped file count in RSS, so this
shows whether reading the file keeps them (:func:`cnnjax.data.dataset.release_pages` drops them).
The model's own memory (JAX, parameters, activations) comes on top and is not measured here.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024


def _peak_mb(pid) -> float:
    """VmHWM (peak resident set) of a process, MiB."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024


def _reset_peak() -> None:
    """Reset this process's VmHWM to its current RSS (Linux: /proc/self/clear_refs)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _workers() -> list[int]:
    """This process's Grain worker processes (multiprocessing spawn children)."""
    me, found = os.getpid(), []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                spawned = b"spawn_main" in f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == me and spawned:
            found.append(int(entry))
    return found


def write_entry(entry: str, gb: float, size: int, channels: int, seed: int = 0) -> int:
    """A prepared entry of random images totalling about ``gb`` GB; returns the image count."""
    import numpy as np
    from cnnjax.data import cache
    shutil.rmtree(entry, ignore_errors=True)
    os.makedirs(entry)
    per = size * size * channels
    n = int(gb * 1e9) // per
    rng = np.random.default_rng(seed)
    for split, count in (("train", n), ("test", 1000)):
        images = np.lib.format.open_memmap(os.path.join(entry, f"{split}_images.npy"), "w+", np.uint8,
                                           (count, size, size, channels))
        for start in range(0, count, 4096):
            images[start:start + 4096] = rng.integers(0, 256, images[start:start + 4096].shape, dtype=np.uint8)
        images.flush()
        del images
        np.save(os.path.join(entry, f"{split}_labels.npy"), rng.integers(0, 10, count, dtype=np.int32))
    meta = {"format": cache.FORMAT, "fingerprint": "random", "root": entry, "class_names": [str(k) for k in range(10)],
            "files": {"train": [], "test": []}, "skipped": [], "image_size": size, "channels": channels}
    with open(os.path.join(entry, cache.META), "w") as f:
        json.dump(meta, f)
    return n


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entry", default="/tmp/cnnjax_stream_memory")
    p.add_argument("--gb", type=float, default=1.2)
    p.add_argument("--image_size", type=int, default=64)
    p.add_argument("--budget_mb", type=int, default=256)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    os.environ["CNNJAX_DATA_MEMORY_BUDGET"] = str(args.budget_mb * 2**20)

    import jax
    import numpy as np
    from cnnjax import config, data, streaming, train

    t0 = time.perf_counter()
    n = write_entry(args.entry, args.gb, args.image_size, 3)
    size_mb = os.path.getsize(os.path.join(args.entry, "train_images.npy")) / 2**20
    print(f"wrote {n} images, {size_mb:,.0f} MiB, in {time.perf_counter() - t0:.0f}s (load {os.getloadavg()[0]:.1f})")
    _reset_peak()  # writing the entry is not what is measured
    start_mb = _rss_mb()
    ds = data.load("prepared", args.entry)
    print(f"load + statistics: peak RSS {_peak_mb('self'):,.0f} MiB (before: {start_mb:,.0f} MiB); "
          f"mean {np.round(ds.mean, 3)}")
    jax.devices()  # JAX's runtime starts here, outside the streamed epoch's peak
    _reset_peak()
    before_mb = _rss_mb()
    cfg = config.TrainConfig(data_in_memory="auto", batch_size=args.batch_size)
    print(f"data_in_memory=auto streams it: {streaming.streams(cfg, ds)} (budget {args.budget_mb} MiB)")
    order = np.asarray(train.epoch_permutation(jax.random.PRNGKey(0), 1, n))[None]
    t0 = time.perf_counter()
    it = data.stream.batches(ds.train_images, ds.train_labels, order, args.batch_size, workers=args.workers,
                             shard=(0, 1))
    seen, steps = 0, len(ds.train_labels) // args.batch_size
    for step in range(steps):
        images, labels = next(it)
        seen += len(labels)
        if step == steps - 2:  # the workers have read all but the last batches: their high-water marks
            worker_peak = max([_peak_mb(pid) for pid in _workers()] or [0])
    it.close()
    seconds = time.perf_counter() - t0
    main_peak = _peak_mb("self")  # since the reset: the streamed epoch
    print(f"streamed {seen} images ({seen * 3 * args.image_size ** 2 / 2**20:,.0f} MiB) in {seconds:.0f}s "
          f"({seen / seconds:,.0f} images/s, {args.workers} workers): peak RSS of this process {main_peak:,.0f} MiB "
          f"({before_mb:,.0f} MiB before the epoch), "
          f"of the largest worker {worker_peak:,.0f} MiB; file {size_mb:,.0f} MiB, budget {args.budget_mb} MiB "
          f"(load {os.getloadavg()[0]:.1f})")
    shutil.rmtree(args.entry, ignore_errors=True)


if __name__ == "__main__":
    main()
