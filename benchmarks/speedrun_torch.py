"""A speedrun recipe (a cnnjax :class:`~cnnjax.train.config.TrainConfig`) trained in PyTorch eager on the
CPU, stopped the way cnnjax stops it, so ``benchmarks.speedrun --torch`` can give the record as a ratio.

    python -m benchmarks.speedrun_torch --config=experiments/configs/speedrun.py:0.915 --seed=0

:func:`run` returns the same per-run record as the cnnjax side (:func:`record`): wall seconds to
the target, the epoch, validation and test accuracy, data load seconds.  torch is imported
lazily (the ``bench`` extra); it runs on ``benchmarks.machine.threads()`` threads (the
machine's cores, as XLA's CPU client uses them).

Mirrored exactly:
  * the data: :func:`cnnjax.train.experiment.load_data` -- same images, same validation images
    held out by the seed, same normalisation ``(x / 255 - mean) / std`` with the training
    split's statistics; uint8 batches gathered by index, the last incomplete batch dropped;
  * the architectures (models ``padded_cnn`` and ``vgg_bn`` with its ``widths`` / ``dropout``
    options; the twins of :mod:`cnnjax.weights.torch_twins`), with the same parameter counts
    and Flax's init scheme: LeCun-normal (truncated at 2 sigma) weights, zero biases, BN scale
    1 / bias 0 (the values differ: other random draws);
  * the airbench family (``airbench``, ``airbench28_s`` / ``_m`` / ``_l``; options ``widths``,
    ``whiten_width``, ``bn_momentum``, ``bn_scale``, ``block_conv='conv'``), :func:`cnnjax.weights.torch_twins.torch_airbench`:
    the same layers and floor-mode pools (27 -> 13 -> 6 -> 3 -> 1 on 28x28), exact GELU, the 1/9
    output scaling, BN eps 1e-12 with torch momentum ``1 - bn_momentum``, no BN weight at all
    without ``bn_scale`` (the same parameter count), cnnjax's ``dirac_init`` for the group convs;
    given Flax's weights it computes cnnjax's logits (tests/test_speedrun.py);
  * ``whiten_init``: the kernel of :func:`cnnjax.train.whitening.whitening_kernel` itself from the same
    images (the first ``WHITEN_IMAGES`` of the training split after the hold-out), frozen (its
    bias trains), set inside the clock as cnnjax sets it;
  * ``ema_decay``: the moving average of the parameters and BN running statistics after every
    optimizer step (``torch.optim.swa_utils.AveragedModel``, ``use_buffers=True``), from the
    initial (post-whitening) weights, used for every evaluation, validation and test;
  * ``tta`` 'none' / 'flip' / 'flip_shift': the views and weights of :func:`cnnjax.train.evaluation.tta_logits`
    (reflect padding) in every evaluation;
  * optimizer (Adam / AdamW / SGD with momentum; weight decay as cnnjax applies it: L2 in the
    gradient for adam/sgd, decoupled for adamw) and the learning rate of every step, taken
    from :func:`cnnjax.train.optim.make_schedule` itself;
  * the loss (softmax cross-entropy with the same label smoothing), the augmentation (per-image
    random horizontal flip, then a random crop of the image zero-padded by ``crop_padding``,
    on the uint8 pixels before normalisation), the batch size, the epoch budget;
  * the stop rule and the clock: evaluation on the validation split after the epochs that
    ``TrainConfig.evaluates_after`` names (``eval_every``, ``eval_delay``, the last); stop after
    the first whose accuracy is >= ``target_accuracy`` + ``target_margin`` (``stop_accuracy``);
    the test set measured once, afterwards.  Time to target runs from the end of data loading
    (model creation and init, tensors, every epoch and evaluation included) to the end of
    that evaluation -- as cnnjax's (see cnnjax.train.experiment._target_record).

Not mirrored:
  * random streams: data order, flips, crops, dropout and init draw from torch's generator
    seeded with the seed, not JAX's keys (same distributions, different samples);
  * BatchNorm's running variance: torch updates it with the unbiased batch variance, Flax with
    the biased one (normalisation in training is the same); the EMA averages those statistics;
  * checkpoints, metrics files and plots (cnnjax writes a checkpoint at the stop, after its
    clock stops; its per-epoch metrics lines are inside its clock);
  * float rounding: the EMA, whitening and TTA arithmetic is the same, but torch's and XLA's
    kernels round differently;
  * settings without a twin here raise ValueError: other models or model options (airbench's
    ``block_conv`` other than 'conv', ``groups``, ``scaling_factor``, ``conv_impl``),
    ``compute_dtype`` bfloat16 (also 'auto' on a GPU/TPU), ``grad_accum_steps > 1`` (so EMA with gradient accumulation too).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Callable

from benchmarks import machine
from cnnjax.weights import torch_twins



def record(impl: str, cfg, *, reached: int | None, seconds: float | None, epochs_trained: int | None,
           val_accuracy: float | None, test_accuracy: float | None, load_seconds: float | None,
           images_per_sec: float | None, train_seconds: float | None) -> dict:
    """One timed run: ``seconds`` = wall seconds to the target (None: not reached);
    accuracies are fractions; ``images_per_sec`` = median training images/s over epochs.  None
    for what a run that did not finish (benchmarks.speedrun.diverged) never measured."""
    return {"impl": impl, "seed": cfg.seed, "target_accuracy": cfg.target_accuracy,
            "target_reached": reached is not None, "target_epoch": reached, "time_to_target_seconds": seconds,
            "epochs_trained": epochs_trained, "final_val_accuracy": val_accuracy,
            "final_test_accuracy": test_accuracy, "data_load_seconds": load_seconds,
            "train_images_per_sec": images_per_sec, "wall_seconds": train_seconds}


def check(cfg) -> None:
    """ValueError naming the setting this mirror cannot reproduce."""
    SUPPORTED_OPTIONS = torch_twins.SUPPORTED_OPTIONS
    if cfg.model not in SUPPORTED_OPTIONS:
        raise ValueError(f"config.model {cfg.model!r}: benchmarks.speedrun_torch has no twin of it; "
                         f"models: {', '.join(SUPPORTED_OPTIONS)}")
    extra = sorted(set(cfg.model_options) - set(SUPPORTED_OPTIONS[cfg.model]))
    if extra:
        raise ValueError(f"config.model_options.{extra[0]}: benchmarks.speedrun_torch's {cfg.model} twin does "
                         f"not take it (it takes: {', '.join(SUPPORTED_OPTIONS[cfg.model]) or 'none'})")
    if cfg.model_options.get("block_conv", "conv") != "conv":
        raise ValueError(f"config.model_options.block_conv: benchmarks.speedrun_torch's {cfg.model} twin has the "
                         f"plain 3x3 conv only (block_conv='conv'), not {cfg.model_options['block_conv']!r}")
    from cnnjax.train.step import resolve_compute_dtype
    if resolve_compute_dtype(cfg.compute_dtype) != "float32":
        where = " (what 'auto' means on this GPU/TPU)" if cfg.compute_dtype == "auto" else ""
        raise ValueError(f"config.compute_dtype: bfloat16{where}; benchmarks.speedrun_torch runs float32 only")
    if cfg.grad_accum_steps != 1:
        raise ValueError("config.grad_accum_steps: benchmarks.speedrun_torch does not accumulate gradients")


def make_optimizer(cfg, params):
    import torch
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.learning_rate, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def learning_rates(cfg, steps_per_epoch: int):
    """The learning rate of every optimizer step, float64 ``(epochs * steps_per_epoch,)``, from
    cnnjax's own schedule (step i uses entry i, as optax does)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from cnnjax.train import optim
    schedule = optim.make_schedule(cfg, steps_per_epoch)
    return np.asarray(jax.vmap(schedule)(jnp.arange(cfg.epochs * steps_per_epoch)), np.float64)


def augment(x, kind: str, pad: int, generator):
    """Random flips / crops of a uint8 (B, C, H, W) batch, as :func:`cnnjax.train.step.augment_batch` does
    them to its (B, H, W, C) batch (flip first; zero padding of ``pad`` pixels, crop back to H x W);
    same shape and dtype out."""
    import torch
    import torch.nn.functional as F
    b, _, h, w = x.shape
    if kind in ("flip", "flip_crop"):
        flip = torch.rand(b, generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if kind in ("crop", "flip_crop"):
        oy, ox = torch.randint(0, 2 * pad + 1, (2, b), generator=generator)
        # every H x W window of the padded images as a view (B, C, 2*pad+1, 2*pad+1, H, W), one picked per image
        windows = F.pad(x, (pad, pad, pad, pad)).unfold(2, h, 1).unfold(3, w, 1)
        x = windows[torch.arange(b), :, oy, ox]
    return x


def init_whitening(model, images, mean: float, std: float) -> None:
    """Set ``model.whiten``'s kernel, in place, to :func:`cnnjax.train.whitening.whitening_kernel` of the first
    :data:`cnnjax.train.whitening.WHITEN_IMAGES` of ``images`` (uint8 NHWC: the training split after the
    validation hold-out, as cnnjax's ``init_whitening`` takes them), HWIO -> OIHW, and freeze it
    (``requires_grad`` False: no step, no weight decay, no moments, as optax.set_to_zero); the bias trains."""
    import torch

    from cnnjax.train import whitening
    weight = model.whiten.weight
    kernel = whitening.whitening_kernel(images[:whitening.WHITEN_IMAGES], mean, std, weight.shape[-1])
    with torch.no_grad():
        weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1)))
    weight.requires_grad_(False)


def make_ema(model, decay: float):
    """The moving average of ``model``'s parameters and buffers (BN running statistics) as cnnjax
    keeps it: starts as a copy of the current weights; each ``update_parameters(model)`` (after every
    optimizer step) sets ema = decay * ema + (1 - decay) * new, in optax.incremental_update's form.
    (BN's integer ``num_batches_tracked`` -- unused with a momentum, and absent in Flax -- is copied.)"""
    import torch
    from torch.optim.swa_utils import AveragedModel
    rate = 1.0 - decay  # optax.incremental_update(new, old, rate) = rate * new + (1 - rate) * old

    @torch.no_grad()
    def avg_fn(ema, new, n_averaged):
        return rate * new + (1.0 - rate) * ema if ema.is_floating_point() else new

    ema = AveragedModel(model, avg_fn=avg_fn, use_buffers=True)
    ema.update_parameters(model)  # the first update copies (n_averaged 0): the average starts here
    return ema


def tta_logits(logits_fn: Callable, x, tta: str = "none"):
    """:func:`cnnjax.train.evaluation.tta_logits` on a (B, C, H, W) batch: the same views (mirror = reversed
    width axis; 'flip_shift' adds both mirrored one-pixel diagonal shifts with reflect padding)
    with the same weights."""
    import torch.nn.functional as F
    mirror = lambda v: 0.5 * logits_fn(v) + 0.5 * logits_fn(v.flip(3))
    if tta == "none":
        return logits_fn(x)
    if tta == "flip":
        return mirror(x)
    if tta == "flip_shift":
        h, w = x.shape[2:]
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        shifted = 0.5 * mirror(padded[:, :, :h, :w]) + 0.5 * mirror(padded[:, :, 2:, 2:])
        return 0.5 * mirror(x) + 0.5 * shifted
    raise ValueError(f"unknown tta {tta!r}")


def evaluate(model, images, labels, normalize: Callable, batch_size: int, tta: str = "none") -> dict:
    """Mean loss (no smoothing) and accuracy (a fraction) of ``model`` on uint8 (N, C, H, W)
    ``images`` and int64 (N,) ``labels`` with test-time augmentation ``tta`` (:func:`tta_logits`);
    ``normalize`` maps a uint8 batch to float32."""
    import torch
    import torch.nn.functional as F
    model.eval()
    loss = correct = 0.0
    with torch.no_grad():
        for start in range(0, len(labels), batch_size):
            logits = tta_logits(model, normalize(images[start:start + batch_size]), tta)
            y = labels[start:start + batch_size]
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(-1) == y).sum())
    n = max(len(labels), 1)
    return {"loss": loss / n, "accuracy": correct / n}


def run(config, *, log: Callable[[str], None] = print) -> dict:
    """Train ``config`` (TrainConfig or mapping, validated) in PyTorch eager; returns
    :func:`record`.  ValueError for a setting this mirror does not reproduce (:func:`check`)."""
    from cnnjax.train import experiment
    cfg = experiment.as_config(config)
    check(cfg)
    t0 = time.perf_counter()
    ds = experiment.load_data(cfg)
    load_seconds = time.perf_counter() - t0
    if cfg.target_accuracy and not ds.has_validation:
        raise ValueError("config.target_accuracy needs a validation split")
    if cfg.whiten_init:  # cnnjax checks this before its clock too (experiment.build)
        from cnnjax import models
        from cnnjax.train import whitening
        model = models.create(cfg.model, ds.num_classes, **cfg.model_options)
        if problem := whitening.whitening_problem(model, ds.image_shape):
            raise ValueError(problem)
    import torch
    torch.set_num_threads(machine.threads())
    steps = len(ds.train_labels) // cfg.batch_size
    if steps == 0:
        raise ValueError(f"config.batch_size {cfg.batch_size} is larger than the training set")
    lrs = learning_rates(cfg, steps)  # cnnjax builds its schedule before its clock starts too
    return _train(cfg, ds, lrs, steps, load_seconds, log)


def setup(cfg, ds):
    """(model, ema, optimizer) for ``cfg`` on ``ds`` (a cnnjax Dataset): the twin (:func:`cnnjax.weights.torch_twins.make_model`),
    its whitening conv set and frozen with ``whiten_init`` (:func:`init_whitening`), the moving
    average with ``ema_decay`` > 0 started from those weights (:func:`make_ema`; else None), the
    optimizer over the parameters that train."""
    model = torch_twins.make_model(cfg, ds.image_shape, ds.num_classes)
    if cfg.whiten_init:
        init_whitening(model, ds.train_images, ds.mean, ds.std)
    ema = make_ema(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    return model, ema, make_optimizer(cfg, [p for p in model.parameters() if p.requires_grad])


def _train(cfg, ds, lrs, steps: int, load_seconds: float, log) -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F
    wall0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    model, ema, opt = setup(cfg, ds)  # inside the clock, as cnnjax's init (and whitening: experiment._resume)
    evaluated = model if ema is None else ema  # every evaluation uses the average when one is kept
    as_nchw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))
    images, labels = as_nchw(ds.train_images), torch.from_numpy(ds.train_labels.astype(np.int64))
    val_images, val_labels = as_nchw(ds.val_images), torch.from_numpy(ds.val_labels.astype(np.int64))
    shape = (1, -1, 1, 1)
    mean, std = torch.tensor(ds.mean).reshape(shape), torch.tensor(ds.std).reshape(shape)
    normalize = lambda x: (x.float() / 255.0 - mean) / std
    reached = seconds = val_acc = None
    rates, epoch, step = [], 0, 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(len(labels), generator=generator)
        for i in range(steps):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            x = images[idx]
            if cfg.augment != "none":
                x = augment(x, cfg.augment, cfg.crop_padding, generator)
            for group in opt.param_groups:
                group["lr"] = float(lrs[step])
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(normalize(x)), labels[idx], label_smoothing=cfg.label_smoothing)
            loss.backward()
            opt.step()
            if ema is not None:
                ema.update_parameters(model)
            step += 1
        rates.append(steps * cfg.batch_size / (time.perf_counter() - t0))
        if cfg.evaluates_after(epoch):
            val_acc = evaluate(evaluated, val_images, val_labels, normalize, cfg.eval_batch_size, cfg.tta)["accuracy"]
            log(f"torch epoch {epoch} train_loss {float(loss.detach()):.4f} val_acc {val_acc:.4f} "
                f"{rates[-1]:,.0f} img/s")
            if cfg.stop_accuracy and val_acc >= cfg.stop_accuracy:
                reached, seconds = epoch, time.perf_counter() - wall0
                break
    train_seconds = time.perf_counter() - wall0
    test_images, test_labels = as_nchw(ds.test_images), torch.from_numpy(ds.test_labels.astype(np.int64))
    test = evaluate(evaluated, test_images, test_labels, normalize, cfg.eval_batch_size, cfg.tta)  # once, at the end
    log(f"torch test accuracy {test['accuracy']:.4f}" + (f"; target reached in epoch {reached} after "
                                                          f"{seconds:.1f}s" if reached else ""))
    return record("torch", cfg, reached=reached, seconds=seconds, epochs_trained=epoch, val_accuracy=val_acc,
                  test_accuracy=test["accuracy"], load_seconds=load_seconds,
                  images_per_sec=float(np.median(rates)), train_seconds=train_seconds)


def load_config(spec: str, overrides: list[str] = (), **values):
    """A TrainConfig from a config file ``FILE[:ARG]`` (its ``get_config``), ``KEY=JSON`` overrides,
    then ``values``.  experiments.common.UsageError (not a file), ValueError (a bad setting or
    value) or json.JSONDecodeError."""
    from cnnjax.train import config as config_lib
    from experiments import common
    _, _, arg = spec.partition(":")
    module = common.config_module(spec)
    base = module.get_config(arg) if arg else module.get_config()
    overridden = {k: json.loads(v) for k, v in (s.split("=", 1) for s in overrides)}
    return config_lib.from_dict(config_lib.apply(base, {**overridden, **values}))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="experiments/configs/speedrun.py:0.915", help="config file FILE[:ARG]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="override a setting")
    args = ap.parse_args(argv)
    from experiments import common
    try:
        cfg = load_config(args.config, args.set, seed=args.seed)
        print(json.dumps(run(cfg), indent=1))
    except (common.UsageError, ValueError, json.JSONDecodeError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
