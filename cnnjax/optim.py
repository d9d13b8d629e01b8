"""The optimizer of a :class:`cnnjax.config.TrainConfig`: learning-rate schedule, Adam/AdamW/SGD
with weight decay, gradient accumulation (``optax.MultiSteps``) and the frozen whitening conv."""
from __future__ import annotations

import dataclasses

import jax
import optax

from cnnjax.config import TrainConfig
from cnnjax.whitening import WHITEN_KERNEL


def make_schedule(cfg: TrainConfig, steps_per_epoch: int) -> optax.Schedule:
    """The learning rate per optimizer step: 'onecycle', 'cosine' (after ``warmup_epochs`` of linear
    warm-up) or constant (after the warm-up), over ``cfg.epochs * steps_per_epoch`` steps."""
    total = cfg.epochs * steps_per_epoch
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    if cfg.schedule == "onecycle":
        return optax.cosine_onecycle_schedule(total, cfg.learning_rate)
    if cfg.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate, warmup, max(total, warmup + 1))
    if warmup:
        return optax.join_schedules([optax.linear_schedule(0.0, cfg.learning_rate, warmup),
                                     optax.constant_schedule(cfg.learning_rate)], [warmup])
    return optax.constant_schedule(cfg.learning_rate)


def make_optimizer(cfg: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """``cfg``'s optimizer for ``steps_per_epoch`` batches an epoch (accumulating with
    ``grad_accum_steps`` > 1, the whitening conv frozen with ``whiten_init``)."""
    if cfg.grad_accum_steps > 1:
        return make_accumulating_optimizer(cfg, steps_per_epoch)
    lr = make_schedule(cfg, steps_per_epoch)
    if cfg.optimizer == "adamw":
        base = optax.adamw(lr, weight_decay=cfg.weight_decay)
    else:
        base = optax.adam(lr) if cfg.optimizer == "adam" else optax.sgd(lr, momentum=cfg.momentum or None)
        if cfg.weight_decay:
            base = optax.chain(optax.add_decayed_weights(cfg.weight_decay), base)
    return freeze_whitening(base) if cfg.whiten_init else base


def make_accumulating_optimizer(cfg: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """``cfg``'s optimizer behind ``optax.MultiSteps``: gradients of ``grad_accum_steps``
    consecutive micro-batches (``batch_size`` each) are averaged, then one update is applied
    -- the same update as one step on the concatenated batch (for a model without batch norm
    or dropout, to float rounding).  ``steps_per_epoch`` counts micro-batches; the schedule
    counts optimizer steps (``steps_per_epoch // grad_accum_steps`` per epoch; an epoch's
    leftover micro-batches carry into the next epoch's first update)."""
    k = cfg.grad_accum_steps
    inner = make_optimizer(dataclasses.replace(cfg, grad_accum_steps=1), max(steps_per_epoch // k, 1))
    return optax.MultiSteps(inner, every_k_schedule=k).gradient_transformation()


def freeze_whitening(tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """``tx`` for every parameter but the 'whiten' conv's kernel, which gets zero updates
    (``optax.set_to_zero``: no step, no weight decay, no optimizer moments), as airbench freezes it."""
    def labels(params):
        return jax.tree_util.tree_map_with_path(
            lambda path, _: "frozen" if tuple(getattr(k, "key", k) for k in path[-2:]) == WHITEN_KERNEL else "trained",
            params)
    return optax.multi_transform({"trained": tx, "frozen": optax.set_to_zero()}, labels)
