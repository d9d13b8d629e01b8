"""Fashion-MNIST as a 70,000-file PNG image folder: export, prepare, lossless check, and training
images/s from the folder (streamed by Grain) next to the in-memory IDX path.

    nice python -m benchmarks.folder_data --out=/tmp/fashion_png --cache_dir=/tmp/fashion_cache
    python -m benchmarks.folder_data --num_train=6000 --num_test=1000 --rounds=1   # quick

1. **export**: the IDX arrays written as ``OUT/{train,test}/<k>_<class>/<split>_<index>.png``
   (the file name carries the IDX index), in ``--workers`` processes;
2. **prepare**: ``cnnjax.data.load("folder", OUT)`` with an empty cache: every PNG decoded
   (:mod:`cnnjax.data.cache`), then the same call again (the prepared copy, memory-mapped);
3. **lossless**: the folder's arrays, ordered by the index in the file names, ``array_equal``
   to the IDX images and labels;
4. **training**: ``padded_cnn`` at ``--batch_size`` (the default recipe's 50), alternating
   rounds of one epoch each: the IDX split on the device (the default path) and the prepared
   folder streamed by :mod:`cnnjax.train.streaming` (Grain worker processes reading the memory-mapped
   file).  Images/s count the steps after the first ``WARM_STEPS`` (compilation excluded);
   medians over ``--rounds``; the load average is printed with every line;
5. **accuracy** (``--seeds N``): the default recipe, ``python -m experiments.train`` with the
   default config and seeds 0..N-1, trained from the IDX files and from the folder
   (``--config.dataset=folder --config.data_dir=OUT --config.data_in_memory=false``: streamed),
   alternating; the test accuracy of the validation-selected epoch per run, the means with 95%
   intervals (Student's t) and the mean difference, paired by seed, with its interval.  The
   folder's split differs from the IDX one only in the order of the files (grouped by class),
   so the validation hold-out of a seed draws other images: equal within seed noise, not bit-equal.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

WARM_STEPS = 20


def class_folder_names(class_names) -> list[str]:
    """'<k>_<name>' (k zero-padded, '/' -> '_'): sorted folder names keep the label order."""
    width = len(str(len(class_names) - 1))
    return [f"{k:0{width}d}_{name.replace('/', '_').replace(os.sep, '_')}" for k, name in enumerate(class_names)]


def _write_pngs(task):
    from PIL import Image
    paths, images = task
    for path, image in zip(paths, images):
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path)
    return len(paths)


def export_png_folder(ds, root: str, workers: int = 1, chunk: int = 1000) -> dict:
    """Write ``ds``'s train and test splits as ``root/<split>/<k>_<class>/<split>_<index>.png``;
    {split: [paths in index order]}."""
    names = class_folder_names(ds.class_names)
    written, tasks = {}, []
    for split in ("train", "test"):
        images, labels = getattr(ds, f"{split}_images"), getattr(ds, f"{split}_labels")
        for name in names:
            os.makedirs(os.path.join(root, split, name), exist_ok=True)
        width = len(str(max(len(labels) - 1, 0)))
        paths = [os.path.join(root, split, names[int(y)], f"{split}_{i:0{width}d}.png") for i, y in enumerate(labels)]
        tasks += [(paths[i:i + chunk], images[i:i + chunk]) for i in range(0, len(paths), chunk)]
        written[split] = paths
    if workers > 1:
        import multiprocessing
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            sum(pool.imap_unordered(_write_pngs, tasks))
    else:
        sum(map(_write_pngs, tasks))
    return written


def index_order(files) -> "np.ndarray":
    """The permutation that sorts a split's rows by the index their file names carry."""
    import numpy as np
    return np.argsort([int(os.path.splitext(os.path.basename(p))[0].rsplit("_", 1)[1]) for p in files])


def _load():
    return os.getloadavg()[0]


def _epoch_rate(run, state, epoch, steps, batch):
    """(state, images/s of the steps after WARM_STEPS) of one epoch."""
    import jax
    marks = {}

    def on_step(i, n, m):
        if i == WARM_STEPS - 1:
            jax.block_until_ready(m["loss"])
            marks["t"] = time.perf_counter()

    state, metrics = run(state, None, None, epoch, on_step) if run.streamed else \
        run(state, run.images, run.labels, epoch, on_step)
    jax.block_until_ready(state.params)
    return state, (steps - WARM_STEPS) * batch / (time.perf_counter() - marks["t"]), metrics


def accuracy(args, say) -> dict:
    """Stage 5: the default recipe from the IDX files and from the folder, seeds 0..N-1."""
    from cnnjax.train.workdir import Workdir
    from launch.report import ci95
    shutil.rmtree(args.runs_dir, ignore_errors=True)
    sources = {"idx": [] if args.data_dir is None else [f"--config.data_dir={args.data_dir}"],
               "folder": ["--config.dataset=folder", f"--config.data_dir={args.out}",
                          f"--config.data_cache_dir={args.cache_dir}", "--config.data_in_memory=false"]}
    acc = {name: [] for name in sources}
    for seed in range(args.seeds):
        for name, flags in sources.items():
            wd = os.path.join(args.runs_dir, f"{name}_seed{seed}")
            cmd = [sys.executable, "-m", "experiments.train", f"--workdir={wd}", f"--config.seed={seed}",
                   "--config.progress=none", *flags]
            cmd += [f"--config.num_{k}={getattr(args, 'num_' + k)}" for k in ("train", "test") if getattr(args, "num_" + k)]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            summary = Workdir(wd).summary()
            acc[name].append(summary["selected_test_accuracy"])
            say(f"seed {seed} {name}: test accuracy {acc[name][-1]:.4f} (selected epoch {summary['selected_epoch']}, "
                f"{time.perf_counter() - t0:.0f}s)")
    out = {}
    for name, v in acc.items():
        std = statistics.stdev(v) if len(v) > 1 else None
        out[name] = {"test_accuracy": v, "mean": statistics.fmean(v), "ci95": ci95(std, len(v))}
    diff = [f - i for f, i in zip(acc["folder"], acc["idx"])]
    out["folder_minus_idx"] = {"mean": statistics.fmean(diff),
                               "ci95": ci95(statistics.stdev(diff) if len(diff) > 1 else None, len(diff))}
    fmt = lambda d: f"{d['mean']:.4f} ± {d['ci95']:.4f}" if d["ci95"] is not None else f"{d['mean']:.4f}"
    say(f"default recipe, {args.seeds} seeds, test accuracy of the selected epoch (mean ± 95% CI): IDX {fmt(out['idx'])}, "
        f"folder streamed {fmt(out['folder'])}; folder - IDX paired by seed {fmt(out['folder_minus_idx'])}")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="/tmp/fashion_png", help="the image folder to write (reused when complete)")
    p.add_argument("--cache_dir", default="/tmp/fashion_png_cache", help="prepared-data cache (emptied first)")
    p.add_argument("--data_dir", default=None, help="Fashion-MNIST IDX directory (default: the system copy)")
    p.add_argument("--num_train", type=int, default=0)
    p.add_argument("--num_test", type=int, default=0)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="export processes")
    p.add_argument("--batch_size", type=int, default=50)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--stream_workers", type=int, default=None, help="Grain worker processes (default: the library's)")
    p.add_argument("--seeds", type=int, default=0, help="train the default recipe from both with seeds 0..N-1")
    p.add_argument("--runs_dir", default="/tmp/fashion_png_runs", help="the --seeds runs' work directories (emptied)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    from cnnjax import xla_cpu
    xla_cpu.configure()
    import numpy as np
    from cnnjax import data, models
    from cnnjax.train import config, optim, sharding, streaming, loop
    from cnnjax.train.step import StepSpec
    from cnnjax.train.state import init_state

    result = {"command": " ".join(sys.argv), "cpus": os.cpu_count()}
    say = lambda *a: print(*a, f"(load {_load():.1f})", flush=True)
    idx = data.load("fashion_mnist", args.data_dir).subset(args.num_train or None, args.num_test or None)
    total = len(idx.train_labels) + len(idx.test_labels)

    shutil.rmtree(args.out, ignore_errors=True)
    t0 = time.perf_counter()
    export_png_folder(idx, args.out, args.workers)
    result["export_seconds"] = time.perf_counter() - t0
    say(f"export: {total} PNGs in {result['export_seconds']:.1f}s ({total / result['export_seconds']:,.0f} files/s, "
        f"{args.workers} processes)")

    shutil.rmtree(args.cache_dir, ignore_errors=True)
    t0 = time.perf_counter()
    folder = data.load("folder", args.out, cache_dir=args.cache_dir)
    result["prepare_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    folder = data.load("folder", args.out, cache_dir=args.cache_dir)
    result["cached_load_seconds"] = time.perf_counter() - t0
    say(f"prepare (scan + decode + write): {result['prepare_seconds']:.1f}s = "
        f"{total / result['prepare_seconds']:,.0f} images/s; later loads (scan + map): "
        f"{result['cached_load_seconds']:.2f}s")

    listing = data.folder.scan(args.out)
    lossless = True
    for split in ("train", "test"):
        order = index_order(listing.files[split])
        lossless &= bool(np.array_equal(np.asarray(getattr(folder, f"{split}_images"))[order],
                                        getattr(idx, f"{split}_images")))
        lossless &= bool(np.array_equal(getattr(folder, f"{split}_labels")[order], getattr(idx, f"{split}_labels")))
    result["lossless"] = lossless
    say(f"lossless: {lossless} (folder arrays ordered by file-name index == IDX arrays, images and labels)")

    cfg = config.TrainConfig(batch_size=args.batch_size, epochs=args.rounds + 1)
    steps = len(idx.train_labels) // cfg.batch_size

    def runner(ds, streamed):
        model = models.create(cfg.model, ds.num_classes)
        tx = optim.make_optimizer(cfg, steps)
        state = init_state(model, tx, cfg.seed, ds.image_shape)
        spec = StepSpec.from_config(cfg, model, tx, num_classes=ds.num_classes, mean=ds.mean, std=ds.std)
        if streamed:
            run = streaming.make_epoch_runner(spec, ds, cfg.epochs, workers=args.stream_workers)
        else:
            run = loop.make_epoch_runner(spec, fused=False)
            run.images, run.labels = sharding.replicate((ds.train_images, ds.train_labels), None)
        run.streamed = streamed
        return run, state

    arms = {"idx_in_memory": runner(idx, False), "folder_streamed": runner(folder, True)}
    rates = {name: [] for name in arms}
    states = {name: state for name, (_, state) in arms.items()}
    for r in range(args.rounds):
        for name, (run, _) in arms.items():
            states[name], rate, metrics = _epoch_rate(run, states[name], r + 1, steps, cfg.batch_size)
            rates[name].append(rate)
            say(f"round {r + 1} {name}: {rate:,.0f} images/s (train loss {metrics['train_loss']:.4f})")
    medians = {name: statistics.median(v) for name, v in rates.items()}
    result.update(images_per_sec=medians, ratio=medians["folder_streamed"] / medians["idx_in_memory"])
    say(f"training padded_cnn batch {cfg.batch_size}: IDX in memory {medians['idx_in_memory']:,.0f} images/s, folder "
        f"streamed {medians['folder_streamed']:,.0f} images/s: ratio {result['ratio']:.2f}")
    if args.seeds:
        result["accuracy"] = accuracy(args, say)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
