"""Training / eval throughput of cnnjax (fast and plain-lax paths) against PyTorch CPU eager.

    python -m benchmarks.train_throughput                      # all five models, batch 50 and 256
    python -m benchmarks.train_throughput --models=padded_cnn --batch_sizes=50 --rounds=5

Every implementation runs in its own worker process (its own XLA flags / OpenMP pool, so
they never compete for the cores at the same time); the coordinator interleaves them in
rounds -- for each round, for each (model, batch): cnnjax fast, cnnjax lax, torch -- and
reports medians over rounds, so machine-wide slowdowns hit all columns alike.

* cnnjax step = the library's own: :func:`cnnjax.train.loop.make_indexed_step` (uint8 images on
  the device, gather by index, normalise, Adam, old state donated), model from
  :func:`cnnjax.models.create`.  Eval = :func:`cnnjax.train.evaluation.make_eval_step`.
* "fast": ``cnnjax.xla_cpu.configure()`` before JAX starts, ``impl='auto'`` (the CPU
  fast path); "lax": ``CNNJAX_CONV_IMPL=lax`` and no extra XLA flags (the plain path).
* torch: the same architectures in ``torch.nn`` (NCHW), ``torch.optim.Adam``, same batch
  gather + normalisation from a uint8 tensor; default threads.  Skipped with a note when
  torch is not importable (it is an optional dependency of this benchmark only).
* the images (``--data``): every worker gathers its batches from the same pool of 4,096 images.
  ``fashion_mnist`` (the default): the first 4,096 Fashion-MNIST training images and labels
  for the 28x28x1 models; the 32x32x3 models get uniform random uint8 images (no CIFAR-10 on
  this machine).  ``random``: uniform random uint8 images for every model.  The choice can
  matter: PyTorch's CPU max-pool branches on the data -- the speedrun recipe's airbench28 step
  (whitened first layer) ran 1.35-1.5x faster on Fashion-MNIST than on noise, while cnnjax's
  did not change (benchmarks/RESULTS.md); time what users train on.

``--recipe NAME=JSON`` adds a "fast" cnnjax column whose training config has the JSON's settings
on top of the default recipe (named NAME in ``--impls``), e.g. the augmentation cost side by side:

    python -m benchmarks.train_throughput --models=padded_cnn --batch_sizes=50 --impls=fast,randaugment \
        --recipe='randaugment={"augment_policy": "randaugment"}' --no-epoch --rounds=7

``--epoch`` also times one real epoch (60k train + 10k eval images of ``--data``) with
:func:`cnnjax.train.loop.make_epoch_runner` and :func:`cnnjax.train.evaluation.evaluate`.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from benchmarks import machine
from cnnjax.weights import torch_twins

MODELS = ("padded_cnn", "separable_cnn", "dilated_cnn", "grouped_cnn", "lenet5", "resnet20", "airbench",
          "airbench28_m", "airbench28_l")
IMAGE_SHAPE = (28, 28, 1)
POOL_IMAGES = 4096  # distinct images each worker gathers its batches from
MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST
#: models timed on CIFAR-shaped colour input (per-channel normalisation with CIFAR-10's statistics)
CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
COLOUR_MODELS = {"resnet20": ((32, 32, 3), *CIFAR10_STATS), "airbench": ((32, 32, 3), *CIFAR10_STATS)}


def model_input(name):
    """(image shape, mean, std) a model is timed with."""
    return COLOUR_MODELS.get(name, (IMAGE_SHAPE, MEAN, STD))


def random_dataset(num_train: int, num_test: int, seed: int):
    """Uniform random uint8 images of Fashion-MNIST's shape and random labels (XLA's CPU kernels
    take the same time on any pixel values; PyTorch's max-pool does not)."""
    import numpy as np
    from cnnjax import data as data_lib
    rng = np.random.default_rng(seed)
    return data_lib.Dataset("fashion_mnist_shaped_random",
                            rng.integers(0, 256, (num_train, *IMAGE_SHAPE), dtype=np.uint8),
                            rng.integers(0, 10, num_train).astype(np.int32),
                            rng.integers(0, 256, (num_test, *IMAGE_SHAPE), dtype=np.uint8),
                            rng.integers(0, 10, num_test).astype(np.int32), [str(i) for i in range(10)], "random")


DATA = ("fashion_mnist", "random")


def real_images(shape, data: str) -> bool:
    """Whether the pool of images of ``shape`` under ``--data=data`` is Fashion-MNIST's (else noise)."""
    return data == "fashion_mnist" and tuple(shape) == IMAGE_SHAPE


def pool_source(shape, data: str) -> str:
    """What the pool of images of ``shape`` is made of under ``--data=data``, in words."""
    return "Fashion-MNIST training images" if real_images(shape, data) else "uniform random uint8"


def pool_arrays(shape, data: str):
    """(images uint8 (POOL_IMAGES, H, W, C), labels int32, batch order int32) that every worker
    gathers its batches from: the same arrays in every worker (:func:`pool_source`)."""
    import numpy as np
    order = np.random.default_rng(0).permutation(POOL_IMAGES).astype(np.int32)  # the same for any data
    rng = np.random.default_rng(1)
    if real_images(shape, data):
        from cnnjax import data as data_lib
        ds = data_lib.load("fashion_mnist")
        images, labels = ds.train_images[:POOL_IMAGES], ds.train_labels[:POOL_IMAGES].astype(np.int32)
    else:
        images = rng.integers(0, 256, (POOL_IMAGES, *shape), dtype=np.uint8)
        labels = rng.integers(0, 10, POOL_IMAGES).astype(np.int32)
    return images, labels, order


def epoch_dataset(data: str):
    """The 60k-train + 10k-test dataset ``--epoch`` times."""
    if real_images(IMAGE_SHAPE, data):
        from cnnjax import data as data_lib
        return data_lib.load("fashion_mnist")
    return random_dataset(60000, 10000, seed=1)


# ----------------------------------------------------------------------------------------
# workers: one process per implementation; commands on stdin, JSON replies on stdout

def _reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class _JaxBench:
    def __init__(self, data):
        import jax
        import numpy as np
        from cnnjax import models
        from cnnjax.train import evaluation, optim, loop as train, state as train_state
        from cnnjax.train.step import StepSpec
        self.jax, self.np, self.models, self.train = jax, np, models, train
        self.evaluation, self.optim, self.train_state, self.StepSpec = evaluation, optim, train_state, StepSpec
        self.data, self.pools = data, {}
        self._pool(IMAGE_SHAPE)
        self.cells = {}

    def _pool(self, shape):
        """The :func:`pool_arrays` of ``shape`` on the device (one pool per shape), made current."""
        if shape not in self.pools:
            self.pools[shape] = tuple(self.jax.device_put(a) for a in pool_arrays(shape, self.data))
        self.images, self.labels, self.order = self.pools[shape]

    def _build(self, name, batch, steps_per_epoch):
        """(model, fresh state, step spec, jitted indexed train step, jitted eval step): the library's own."""
        train = self.train
        from cnnjax.train.config import TrainConfig
        cfg = TrainConfig(model=name, batch_size=batch, dataset="synthetic", epochs=1,
                          **json.loads(os.environ.get("CNNJAX_BENCH_RECIPE", "{}")))  # --recipe
        model = self.models.create(name)
        tx = self.optim.make_optimizer(cfg, steps_per_epoch)
        shape, mean, std = model_input(name)
        state = self.train_state.init_state(model, tx, 0, shape)
        spec = self.StepSpec.from_config(cfg, model, tx, num_classes=10, mean=mean, std=std)
        return (model, state, spec, train.make_indexed_step(spec), self.evaluation.make_eval_step(model, mean, std, 10))

    def setup(self, name, batch):
        jax = self.jax
        model, state, _, step, ev = self._build(name, batch, POOL_IMAGES // batch)
        self._pool(model_input(name)[0])
        xb, yb = self.images[:batch], self.labels[:batch]
        mask = jax.numpy.ones(batch, jax.numpy.float32)
        t0 = time.perf_counter()
        state, m = step(state, self.images, self.labels, self.order, 0)
        jax.block_until_ready(m)
        t1 = time.perf_counter()
        jax.block_until_ready(ev(state.variables(), xb, yb, mask))
        t2 = time.perf_counter()
        self.cells[(name, batch)] = dict(step=step, ev=ev, state=state, xb=xb, yb=yb, mask=mask, i=1)
        return {"compile_train_s": t1 - t0, "compile_eval_s": t2 - t1}

    def train_steps(self, name, batch, steps):
        c = self.cells[(name, batch)]
        self._pool(model_input(name)[0])
        nb = POOL_IMAGES // batch
        state, m = c["state"], None
        t0 = time.perf_counter()
        for _ in range(steps):
            state, m = c["step"](state, self.images, self.labels, self.order, c["i"] % nb)
            c["i"] += 1
        self.jax.block_until_ready((state, m))
        dt = time.perf_counter() - t0
        c["state"] = state
        return dt, float(m["loss"])

    def eval_steps(self, name, batch, steps):
        c = self.cells[(name, batch)]
        variables = c["state"].variables()
        out = None
        t0 = time.perf_counter()
        for _ in range(steps):
            out = c["ev"](variables, c["xb"], c["yb"], c["mask"])
        self.jax.block_until_ready(out)
        return time.perf_counter() - t0

    def epoch(self, name, batch, eval_batch=1000):
        jax, np, train = self.jax, self.np, self.train
        ds = epoch_dataset(self.data)
        num_train = len(ds.train_labels)
        model, state, _, step, ev = self._build(name, batch, num_train // batch)
        images, labels = jax.device_put(ds.train_images), jax.device_put(ds.train_labels)
        # compile both (excluded from the epoch time, reported separately); the step donates
        # its input state, so carry on from the one it returns
        t0 = time.perf_counter()
        mask = np.ones(eval_batch, np.float32)
        jax.block_until_ready(ev(state.variables(), ds.test_images[:eval_batch], ds.test_labels[:eval_batch], mask))
        state, _ = step(state, images, labels, jax.numpy.arange(num_train, dtype=jax.numpy.int32), 0)
        jax.block_until_ready(state)
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        order = train.epoch_permutation(state.rng, 0, num_train)  # one epoch as make_epoch_runner's loop runs it
        loss_sum = correct = 0
        for i in range(num_train // batch):
            state, m = step(state, images, labels, order, i)
            loss_sum, correct = loss_sum + m["loss"], correct + m["correct"]
        float(loss_sum), int(correct)
        t1 = time.perf_counter()
        self.evaluation.evaluate(model, state.variables(), ds, batch_size=eval_batch, eval_step=ev)
        t2 = time.perf_counter()
        return {"train_s": t1 - t0, "eval_s": t2 - t1, "epoch_s": t2 - t0, "compile_s": compile_s}


class _TorchBench:
    def __init__(self, data):
        import torch
        self.torch = torch
        self.data, self.pools = data, {}
        self.cells = {}

    def _pool(self, name):
        """The :func:`pool_arrays` of ``name``'s input shape as NCHW tensors, made current."""
        import numpy as np
        torch = self.torch
        shape, mean, std = model_input(name)
        if shape not in self.pools:
            images, labels, order = pool_arrays(shape, self.data)
            self.pools[shape] = (torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))),
                                 torch.from_numpy(labels.astype(np.int64)), torch.from_numpy(order.astype(np.int64)))
        self.images, self.labels, self.order = self.pools[shape]
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)

    def setup(self, name, batch):
        torch = self.torch
        torch.manual_seed(0)
        model = torch_twins.torch_model(name, model_input(name)[0])
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        self.cells[(name, batch)] = dict(model=model, opt=opt, i=0)
        t0 = time.perf_counter()
        self.train_steps(name, batch, 1)
        t1 = time.perf_counter()
        self.eval_steps(name, batch, 1)
        return {"compile_train_s": t1 - t0, "compile_eval_s": time.perf_counter() - t1}

    def _batch(self, batch, i):
        nb = POOL_IMAGES // batch
        idx = self.order[(i % nb) * batch:(i % nb + 1) * batch]
        x = (self.images[idx].float() / 255.0 - self.mean) / self.std
        return x, self.labels[idx]

    def train_steps(self, name, batch, steps):
        F = self.torch.nn.functional
        c = self.cells[(name, batch)]
        self._pool(name)
        model, opt = c["model"], c["opt"]
        model.train()
        loss = None
        t0 = time.perf_counter()
        for _ in range(steps):
            x, y = self._batch(batch, c["i"])
            c["i"] += 1
            opt.zero_grad(set_to_none=True)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()
            opt.step()
            _ = (logits.argmax(-1) == y).sum()
        return time.perf_counter() - t0, float(loss.detach())

    def eval_steps(self, name, batch, steps):
        torch, F = self.torch, self.torch.nn.functional
        model = self.cells[(name, batch)]["model"]
        model.eval()
        self._pool(name)
        x, y = self._batch(batch, 0)
        t0 = time.perf_counter()
        with torch.no_grad():
            for _ in range(steps):
                logits = model(x)
                _ = F.cross_entropy(logits, y, reduction="sum"), (logits.argmax(-1) == y).sum()
        return time.perf_counter() - t0


def worker_main(kind, data):
    if kind in ("torch", "torch1"):
        import torch
        if kind == "torch1":
            torch.set_num_threads(1)
        bench = _TorchBench(data)
        info = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    else:
        if os.environ.get("CNNJAX_CONV_IMPL", "auto") != "lax":
            from cnnjax import xla_cpu
            xla_cpu.configure()
        import jax
        bench = _JaxBench(data)
        info = {"jax": jax.__version__, "backend": jax.default_backend(), "xla_flags": os.environ.get("XLA_FLAGS", ""),
                "impl": os.environ.get("CNNJAX_CONV_IMPL", "auto")}
    _reply({"ready": info})
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        try:
            if op == "setup":
                _reply(bench.setup(cmd["model"], cmd["batch"]))
            elif op == "train":
                dt, loss = bench.train_steps(cmd["model"], cmd["batch"], cmd["steps"])
                _reply({"s": dt, "loss": loss})
            elif op == "eval":
                _reply({"s": bench.eval_steps(cmd["model"], cmd["batch"], cmd["steps"])})
            elif op == "epoch":
                _reply(bench.epoch(cmd["model"], cmd["batch"]))
            elif op == "quit":
                break
        except Exception as e:  # report, keep serving
            _reply({"error": f"{type(e).__name__}: {e}"})


# ----------------------------------------------------------------------------------------
# coordinator

class Worker:
    def __init__(self, kind, env, data):
        self.kind = kind
        self.p = subprocess.Popen([sys.executable, "-m", "benchmarks.train_throughput", f"--worker={kind}",
                                   f"--data={data}"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True,
                                  cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self.info = self._read()["ready"]

    def _read(self):
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.kind} died (exit {self.p.wait()})")
        return json.loads(line)

    def ask(self, **cmd):
        self.p.stdin.write(json.dumps(cmd) + "\n")
        self.p.stdin.flush()
        out = self._read()
        if "error" in out:
            raise RuntimeError(f"worker {self.kind}: {out['error']}")
        return out

    def close(self):
        try:
            self.p.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.p.stdin.flush()
            self.p.wait(timeout=30)
        except Exception:
            self.p.kill()


def torch_available() -> bool:
    try:
        import importlib.util
        return importlib.util.find_spec("torch") is not None
    except Exception:
        return False


def run(args) -> dict:
    base_env = dict(os.environ)
    base_env.pop("CNNJAX_CONV_IMPL", None)
    base_env.pop("XLA_FLAGS", None)
    kinds = {}
    for k in args.impls.split(","):
        if k == "fast":
            kinds["fast"] = dict(base_env)
        elif k == "lax":
            kinds["lax"] = dict(base_env, CNNJAX_CONV_IMPL="lax")
        elif k in ("torch", "torch1"):
            if torch_available():
                kinds[k] = dict(base_env)
            else:
                print("note: torch is not importable: skipping the PyTorch column "
                      "(pip install torch==2.13.0 for a CPU wheel)", file=sys.stderr)
        elif k in args.recipe:
            kinds[k] = dict(base_env, CNNJAX_BENCH_RECIPE=args.recipe[k])
        elif k in args.variant:
            impl, _, flags = args.variant[k].partition(":")
            kinds[k] = dict(base_env, CNNJAX_CONV_IMPL=impl, XLA_FLAGS=flags)
        else:
            raise SystemExit(f"unknown --impls entry {k!r}; choose from fast, lax, torch, torch1 or a --variant")
    models = args.models.split(",")
    batches = [int(b) for b in args.batch_sizes.split(",")]
    workers = {k: Worker(k, env, args.data) for k, env in kinds.items()}
    try:
        cells = [(m, b) for m in models for b in batches]
        setup, steps = {}, {}
        for m, b in cells:
            for k, w in workers.items():
                setup[(k, m, b)] = w.ask(op="setup", model=m, batch=b)
            # steps per timed run: fixed, or ~target_s for the fastest worker's first measurement
            if args.steps:
                steps[(m, b)] = args.steps
            else:
                probe = min(w.ask(op="train", model=m, batch=b, steps=2)["s"] / 2 for w in workers.values())
                steps[(m, b)] = max(3, int(args.target_s / max(probe, 1e-4)))
        train = {key: [] for key in setup}
        evals = {key: [] for key in setup}
        loads = []
        for r in range(args.rounds):
            loads.append((machine.loadavg() or [float("nan")])[0])
            for m, b in cells:
                for k, w in workers.items():
                    time.sleep(args.gap_s)  # let the previous worker's spinning threads go idle
                    s = w.ask(op="train", model=m, batch=b, steps=steps[(m, b)])["s"]
                    train[(k, m, b)].append(b * steps[(m, b)] / s)
                    time.sleep(args.gap_s)
                    es = max(3, steps[(m, b)] // 2)
                    evals[(k, m, b)].append(b * es / w.ask(op="eval", model=m, batch=b, steps=es)["s"])
            print(f"round {r + 1}/{args.rounds} done (load average {loads[-1]:.1f})", file=sys.stderr)
        loads.append((machine.loadavg() or [float("nan")])[0])
        epochs = {}
        if args.epoch:
            for k in args.epoch_impls.split(","):
                if k in workers:
                    for m in args.epoch_models.split(","):
                        try:
                            epochs[(k, m)] = workers[k].ask(op="epoch", model=m, batch=args.epoch_batch_size)
                        except RuntimeError as e:
                            print(f"epoch run failed: {e}", file=sys.stderr)
        return dict(workers={k: w.info for k, w in workers.items()}, setup=setup, steps=steps, train=train,
                    evals=evals, loads=loads, epochs=epochs, models=models, batches=batches)
    finally:
        for w in workers.values():
            w.close()


def _ratio_median(a, b):
    """Median over rounds of the per-round ratio a/b (interleaved rounds share the machine state)."""
    return statistics.median(x / y for x, y in zip(a, b))


def table(res) -> str:
    ks = list(res["workers"])
    ref = "fast" if "fast" in ks else None
    jax_ks = [k for k in ks if not k.startswith("torch")]
    head = ["model", "batch"] + [f"{k} train img/s" for k in ks]
    head += [f"{ref}/{k}" for k in jax_ks if ref and k != ref]
    for t in (k for k in ks if k.startswith("torch")):
        head += [f"{k}/{t}" for k in jax_ks]
    head += [f"{k} eval img/s" for k in ks] + [f"{k} compile s" for k in jax_ks]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in res["models"]:
        for b in res["batches"]:
            tr = {k: res["train"][(k, m, b)] for k in ks}
            row = [m, str(b)] + [f"{statistics.median(tr[k]):,.0f}" for k in ks]
            row += [f"{_ratio_median(tr[ref], tr[k]):.2f}x" for k in jax_ks if ref and k != ref]
            for t in (k for k in ks if k.startswith("torch")):
                row += [f"**{_ratio_median(tr[k], tr[t]):.2f}x**" for k in jax_ks]
            row += [f"{statistics.median(res['evals'][(k, m, b)]):,.0f}" for k in ks]
            row += [f"{res['setup'][(k, m, b)]['compile_train_s']:.1f}" for k in jax_ks]
            rows.append("| " + " | ".join(row) + " |")
    return "\n".join(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--batch_sizes", default="50,256")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=0, help="train steps per timed run (0: about --target_s each)")
    ap.add_argument("--target_s", type=float, default=0.6, help="seconds per timed run when --steps=0")
    ap.add_argument("--impls", default="fast,lax,torch",
                    help="columns: fast, lax, torch (default threads), torch1 (torch.set_num_threads(1))")
    ap.add_argument("--gap_s", type=float, default=0.05)
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=IMPL:XLA_FLAGS",
                    help="an extra cnnjax column for experiments, e.g. 'mem=fast:--xla_cpu_scheduler_type=...'; "
                         "list NAME in --impls")
    ap.add_argument("--recipe", action="append", default=[], metavar="NAME=JSON",
                    help="an extra cnnjax fast-path column training with these config settings, e.g. "
                         "'randaugment={\"augment_policy\": \"randaugment\"}'; list NAME in --impls")
    ap.add_argument("--epoch", action=argparse.BooleanOptionalAction, default=True,
                    help="also time one 60k-train + 10k-eval epoch (--epoch_models, --epoch_impls)")
    ap.add_argument("--epoch_models", default="padded_cnn")
    ap.add_argument("--epoch_impls", default="fast")
    ap.add_argument("--epoch_batch_size", type=int, default=128)
    ap.add_argument("--data", default="fashion_mnist", choices=DATA,
                    help="images the steps train on: Fashion-MNIST for the 28x28x1 models (default) or uniform "
                         "random uint8 for all (see the module docstring: PyTorch's speed depends on it)")
    ap.add_argument("--json", default="", help="also write the raw results here")
    ap.add_argument("--worker", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.variant = dict(v.split("=", 1) for v in args.variant)
    args.recipe = dict(v.split("=", 1) for v in args.recipe)
    for name, settings in args.recipe.items():  # one error line now, not a worker's traceback later
        from cnnjax.train import config as config_lib
        try:
            config_lib.from_dict(json.loads(settings), check_model=False)
        except (ValueError, config_lib.ConfigError) as e:
            print(f"error: --recipe {name}: {e}", file=sys.stderr)
            sys.exit(2)
    if args.worker:
        return worker_main(args.worker, args.data)
    for m in args.models.split(","):
        if m not in MODELS:
            raise SystemExit(f"unknown model {m!r}; choose from {', '.join(MODELS)}")
    if any(real_images(model_input(m)[0], args.data) for m in args.models.split(",")):
        # before any worker starts: one line, not a worker's traceback
        from cnnjax import data as data_lib
        try:
            data_lib.load("fashion_mnist")
        except data_lib.DataError as e:
            print(f"error: --data=fashion_mnist: {e} (--data=random times on noise)", file=sys.stderr)
            sys.exit(2)
    t0 = time.time()
    res = run(args)
    info = machine.machine_info()
    print(f"\nmachine: {info['cpu']}, {info['cores']} cores; python {info['python']}")
    for k, v in res["workers"].items():
        print(f"{k}: {json.dumps(v)}")
    print(f"rounds: {args.rounds}; load average at round starts / end: "
          f"{', '.join(f'{x:.1f}' for x in res['loads'])}; steps per run: "
          f"{', '.join(f'{m}@{b}={s}' for (m, b), s in res['steps'].items())}")
    sources = {}
    for m in res["models"]:
        sources.setdefault(pool_source(model_input(m)[0], args.data), []).append(m)
    print("images: " + "; ".join(f"{src} ({', '.join(ms)})" for src, ms in sources.items()) + "\n")
    print(table(res))
    for (k, m), e in res["epochs"].items():
        print(f"\nepoch ({k}, {m}, batch {args.epoch_batch_size}, 60k train + 10k eval): {e['epoch_s']:.1f} s "
              f"(train {e['train_s']:.1f} s, eval {e['eval_s']:.1f} s; compile {e['compile_s']:.1f} s excluded)")
    print(f"\ntotal wall time {time.time() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**{k: v for k, v in res.items() if k not in ("setup", "train", "evals", "steps", "epochs")},
                       "setup": {"|".join(map(str, k)): v for k, v in res["setup"].items()},
                       "train": {"|".join(map(str, k)): v for k, v in res["train"].items()},
                       "evals": {"|".join(map(str, k)): v for k, v in res["evals"].items()},
                       "steps": {"|".join(map(str, k)): v for k, v in res["steps"].items()},
                       "epochs": {"|".join(map(str, k)): v for k, v in res["epochs"].items()},
                       "machine": info, "args": vars(args)}, f, indent=1)


if __name__ == "__main__":
    main()
