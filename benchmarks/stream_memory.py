"""Peak memory of streaming an image folder larger than the memory budget.

    nice python -m benchmarks.stream_memory --gb=1.2 --budget_mb=256
    nice python -m benchmarks.stream_memory --jpeg_gb=3 --budget_mb=1000     # end to end

**Streamed epoch** (``--gb``): writes a prepared cache entry (:mod:`cnnjax.data.cache`'s layout) of ``--gb`` of random uint8
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

**End to end** (``--jpeg_gb``): writes a folder of about ``--jpeg_gb`` GB of 256x256 RGB JPEGs
(smooth random pictures with noise, ~30 kB each; ``train/``, ``val/`` and ``test/`` with 10
classes: a ``val/`` folder keeps the training split memory-mapped), then runs the user's command,
``python -m experiments.train --config.dataset=folder --config.data_dir=DIR --config.image_size=64
--config.channels=3 --config.epochs=1`` with ``CNNJAX_DATA_MEMORY_BUDGET`` = ``--budget_mb``:
the prepare step decodes and resizes every JPEG to 64x64 into the cache, ``data_in_memory=auto``
streams the training split (larger than the budget), one epoch trains.  The RSS of the training
process and all its children (Grain workers, prepare workers) is summed every 0.1 s; the peak
is reported for preparing and for training separately, next to the same command on a folder of
2,000 such images trained in memory (what the model and JAX need without the data).
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


def _jpeg(task):
    """Write ``task``'s (path, seed) pictures: a random 8x8 colour field upsampled to 256x256 plus noise."""
    import numpy as np
    from PIL import Image
    for path, seed in task:
        rng = np.random.default_rng(seed)
        base = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((256, 256), Image.BICUBIC)
        noisy = np.asarray(base, np.float32) + rng.normal(0, 16, (256, 256, 3))
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(path, "JPEG", quality=90)
    return len(task)


def write_jpeg_folder(root: str, gb: float, val: int = 2500, test: int = 2500, workers: int = 2) -> dict:
    """``root/{train,val,test}/<class>/<i>.jpg``, about ``gb`` GB in all; {split: count}."""
    import multiprocessing
    shutil.rmtree(root, ignore_errors=True)
    per_file = 30e3  # bytes, measured on this generator's pictures
    counts = {"train": max(1, int(gb * 1e9 / per_file) - val - test), "val": val, "test": test}
    tasks, seed = [], 0
    for split, count in counts.items():
        if not count:
            continue
        for k in range(10):
            os.makedirs(os.path.join(root, split, f"class_{k}"))
        items = [(os.path.join(root, split, f"class_{i % 10}", f"{i:06d}.jpg"), seed + i) for i in range(count)]
        seed += count
        tasks += [items[i:i + 500] for i in range(0, len(items), 500)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        sum(pool.imap_unordered(_jpeg, tasks))
    return counts


def _tree_rss_mb(root_pid: int) -> float:
    """Summed VmRSS (MiB) of ``root_pid`` and all its descendants."""
    children, rss = {}, {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/status") as f:
                rss[int(entry)] = next((int(l.split()[1]) for l in f if l.startswith("VmRSS:")), 0) / 1024
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0.0)
        todo += children.get(pid, [])
    return total


def measured_run(cmd: list[str], env: dict, phase_line: str) -> dict:
    """Run ``cmd``; peak summed RSS of its process tree before and after the output line
    containing ``phase_line`` (MiB), its wall time and its output."""
    import subprocess
    import threading
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, phase = [], {"second": False}

    def read():
        for line in proc.stdout:
            lines.append(line)
            if phase_line in line:
                phase["second"] = True
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    peaks, t0 = {"first": 0.0, "second": 0.0}, time.perf_counter()
    while proc.poll() is None:
        key = "second" if phase["second"] else "first"
        peaks[key] = max(peaks[key], _tree_rss_mb(proc.pid))
        time.sleep(0.1)
    reader.join()
    if proc.returncode:
        raise SystemExit(f"error: {' '.join(cmd)} exited {proc.returncode}:\n{''.join(lines[-20:])}")
    return {**peaks, "seconds": time.perf_counter() - t0, "output": "".join(lines)}


def end_to_end(args) -> None:
    import sys
    root, cache_dir = args.entry + "_jpeg", args.entry + "_cache"
    t0 = time.perf_counter()
    counts = write_jpeg_folder(root, args.jpeg_gb)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)
    print(f"wrote {sum(counts.values()):,} JPEGs 256x256 ({counts}), {size / 1e9:.2f} GB, in "
          f"{time.perf_counter() - t0:.0f}s (load {os.getloadavg()[0]:.1f})", flush=True)
    small = args.entry + "_small"
    write_jpeg_folder(small, 0.066, val=0, test=200)
    env = {**os.environ, "CNNJAX_DATA_MEMORY_BUDGET": str(args.budget_mb * 2**20)}
    rows = {}
    for name, folder in (("small folder, in memory", small), ("large folder, streamed", root)):
        shutil.rmtree(cache_dir, ignore_errors=True)
        workdir = args.entry + "_run"
        shutil.rmtree(workdir, ignore_errors=True)
        cmd = [sys.executable, "-m", "experiments.train", f"--workdir={workdir}", "--config.dataset=folder",
               f"--config.data_dir={folder}", f"--config.data_cache_dir={cache_dir}", "--config.image_size=64",
               "--config.channels=3", "--config.epochs=1", "--config.progress=none"]
        if folder == small:
            cmd.append("--config.validation_size=0.1")
        run = measured_run(cmd, env, "prepared ")  # the prepare step's last line: training (and its loading) next
        streamed = "streaming the training batches" in run["output"]
        prepared = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(cache_dir) for f in fs)
        rows[name] = run
        for line in run["output"].splitlines():
            if line.startswith(("prepared ", "streaming ", "test accuracy")):
                print(f"  {name}: {line}")
        print(f"{name}: prepared cache {prepared / 2**20:,.0f} MiB, streamed: {streamed}; peak RSS of the run's "
              f"processes while preparing/loading {run['first']:,.0f} MiB, while training {run['second']:,.0f} MiB; "
              f"{run['seconds']:.0f}s; budget {args.budget_mb} MiB (load {os.getloadavg()[0]:.1f})", flush=True)
    for path in (root, small, cache_dir, args.entry + "_run"):
        shutil.rmtree(path, ignore_errors=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entry", default="/tmp/cnnjax_stream_memory")
    p.add_argument("--gb", type=float, default=1.2)
    p.add_argument("--image_size", type=int, default=64)
    p.add_argument("--budget_mb", type=int, default=256)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--jpeg_gb", type=float, default=0, help="end to end on a JPEG folder of this many GB")
    args = p.parse_args(argv)
    if args.jpeg_gb:
        return end_to_end(args)
    os.environ["CNNJAX_DATA_MEMORY_BUDGET"] = str(args.budget_mb * 2**20)

    import jax
    import numpy as np
    from cnnjax import data
    from cnnjax.train import config, streaming, loop

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
    order = np.asarray(loop.epoch_permutation(jax.random.PRNGKey(0), 1, n))[None]
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
