"""The optimizer of a :class:`cnnjax.train.config.TrainConfig`: learning-rate schedule, Adam/AdamW/SGD
with weight decay, gradient accumulation (``optax.MultiSteps``), and frozen or slower parameters
(``config.freeze`` / ``config.lr_multipliers``, the whitening conv of ``config.whiten_init``: one
``optax.multi_transform``, :mod:`cnnjax.train.freeze`)."""
from __future__ import annotations

import dataclasses

import optax

from cnnjax.train.config import TrainConfig
from cnnjax.train import freeze as freeze_lib


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
    ``grad_accum_steps`` > 1; ``freeze`` patterns frozen, ``lr_multipliers`` applied, the whitening
    conv frozen with ``whiten_init``: :func:`cnnjax.train.freeze.partition`)."""
    if cfg.grad_accum_steps > 1:
        return make_accumulating_optimizer(cfg, steps_per_epoch)
    lr = make_schedule(cfg, steps_per_epoch)
    if cfg.optimizer == "adamw":
        base = optax.adamw(lr, weight_decay=cfg.weight_decay)
    else:
        base = optax.adam(lr) if cfg.optimizer == "adam" else optax.sgd(lr, momentum=cfg.momentum or None)
        if cfg.weight_decay:
            base = optax.chain(optax.add_decayed_weights(cfg.weight_decay), base)
    frozen = (*cfg.freeze, *((freeze_lib.WHITEN,) if cfg.whiten_init else ()))
    return freeze_lib.partition(base, frozen, cfg.lr_multipliers)


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
