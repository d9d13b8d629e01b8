"""Speed of using a trained network: predict from PNG files vs in-memory evaluation, and explain per method.

    python -m benchmarks.inference_speed --workdir=W            # predict: W a finished Fashion-MNIST run
    python -m benchmarks.inference_speed --explain_models=padded_cnn,vgg_bn --no-predict

* **predict**: ``--num_images`` test images of the run's dataset written as PNG files into a
  temporary directory, then (timed) every file read (cnnjax.interpret.inference.read_images, threads) and
  classified in batches of 256 (cnnjax.interpret.inference.make_predict_fn) -- what ``experiments.predict``
  does after start-up -- against the same images already in memory through the same compiled
  function.  Also the whole command (``python -m experiments.predict --format=csv DIR``, start-up,
  checkpoint restore and compilation included).  Best of ``--rounds``.
* **explain**: seconds per image of each method of cnnjax.interpret.attribution at its default settings on a
  batch of ``--explain_batch`` 28x28x1 images (random-initialised models: the cost does not depend
  on the weights), after one compiling call, median of ``--rounds``.

Prints a table with the load average (``os.getloadavg``) before and after.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def _best(fn, rounds):
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def predict_speed(workdir: str, num_images: int, rounds: int) -> list[tuple[str, float]]:
    from PIL import Image

    from cnnjax import data
    from cnnjax.interpret import inference
    run = inference.load_run(workdir)
    images = data.load(run.config.dataset, run.config.data_dir).test_images[:num_images]
    predict = inference.make_predict_fn(run)
    batch = 256

    def classify(arr):
        for s in range(0, len(arr), batch):
            chunk = arr[s:s + batch]
            pad = np.zeros((batch - len(chunk), *chunk.shape[1:]), np.uint8)
            np.asarray(predict(np.concatenate([chunk, pad])))

    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i, im in enumerate(images):
            path = os.path.join(folder, f"{i:05d}.png")
            Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im).save(path)
            paths.append(path)
        classify(images[:batch])  # compile
        memory = _best(lambda: classify(images), rounds)

        def from_files():
            for s in range(0, len(paths), batch):
                arr, _, errors = inference.read_images(paths[s:s + batch], run.image_shape)
                assert not errors, errors
                classify(arr)
        files = _best(from_files, rounds)
        cmd = [sys.executable, "-m", "experiments.predict", f"--workdir={workdir}", "--format=csv", folder]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        command = time.perf_counter() - t0
    n = len(images)
    return [("predict: in-memory images (same compiled function)", n / memory),
            ("predict: PNG files read + classified", n / files),
            ("predict: whole command (start-up, restore, compile included)", n / command)]


def explain_speed(models_: list[str], batch: int, rounds: int) -> list[tuple[str, str, float]]:
    import jax

    from cnnjax import models
    from cnnjax.interpret import attribution as explain
    out = []
    x = jax.random.normal(jax.random.key(0), (batch, 28, 28, 1))
    for name in models_:
        model = models.create(name)
        variables = model.init(jax.random.key(0), x[:1])
        for method in explain.METHODS:
            call = lambda: explain.attribute(method, model, variables, x).block_until_ready()
            call()  # compile
            times = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                call()
                times.append(time.perf_counter() - t0)
            out.append((name, method, statistics.median(times) / batch))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", help="finished training workdir (predict benchmark)")
    p.add_argument("--predict", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--num_images", type=int, default=2000)
    p.add_argument("--explain_models", default="padded_cnn,vgg_bn")
    p.add_argument("--explain_batch", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    from cnnjax import xla_cpu
    xla_cpu.configure()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.predict:
        if not args.workdir:
            p.error("--workdir is required for the predict benchmark (or --no-predict)")
        for what, rate in predict_speed(args.workdir, args.num_images, args.rounds):
            print(f"{what:<62} {rate:10,.0f} images/s")
    if args.explain_models:
        print(f"{'model':<12} {'method':<22} {'s/image':>10}   (batch {args.explain_batch}, defaults)")
        for name, method, seconds in explain_speed(args.explain_models.split(","), args.explain_batch, args.rounds):
            print(f"{name:<12} {method:<22} {seconds:10.4f}")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
