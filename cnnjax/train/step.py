"""One training step: ``train_step(spec, state, batch) -> (state, metrics)``, a pure function.

  spec  = StepSpec.from_config(cfg, model, tx, num_classes=ds.num_classes, mean=ds.mean, std=ds.std)
  step  = make_train_step(spec)              # jitted, the old state donated
  state, metrics = step(state, (images_u8, labels))

``batch`` is ``(images, labels)``: uint8 (B, H, W, C) NHWC pixels and int32 (B,) class indices,
already gathered, from anywhere (a slice of an in-memory dataset, :mod:`cnnjax.train.loop`'s epoch
on the device, a streaming input pipeline).  :func:`prepare_batch` augments and normalises it
on the device inside the step, with a key folded from the run's key and ``state.step``, so
given the seed every step is deterministic wherever its batch came from.  The augmentation
families (flips/crops, affine warps, RandAugment/TrivialAugment, random erasing, MixUp/CutMix)
are :mod:`cnnjax.augment`'s; with MixUp/CutMix the loss is the cross-entropy against the mixed,
label-smoothed targets (:func:`cnnjax.augment.mixing.targets`).

``compute_dtype="bfloat16"`` is mixed precision: float32 master weights, optimizer state and
loss; the forward/backward convs and matmuls in bfloat16.  ``"auto"`` is bfloat16 on a GPU/TPU
and float32 on the CPU (:func:`resolve_compute_dtype`).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from cnnjax import data as data_lib
from cnnjax.augment import Augmentation, flip_crop, mixing
from cnnjax.train import freeze as freeze_lib
from cnnjax.train import rng as rng_lib
from cnnjax.train.config import TrainConfig
from cnnjax.train.sharding import split_batch
from cnnjax.train.state import TrainState


def on_accelerator(backend: str | None = None) -> bool:
    """Whether ``backend`` (default: JAX's) is a GPU/TPU rather than the CPU: what the 'auto'
    settings (compute dtype, epoch loop) decide by."""
    return (backend or jax.default_backend()) != "cpu"


def resolve_compute_dtype(name: str, backend: str | None = None) -> str:
    """'float32' or 'bfloat16' for a ``config.compute_dtype``: 'auto' is bfloat16 on GPU/TPU and
    float32 on the CPU, where XLA's bfloat16 convolutions run slower than float32 ones
    (benchmarks/RESULTS.md)."""
    if name == "auto":
        return "bfloat16" if on_accelerator(backend) else "float32"
    return name


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """Everything a training step needs besides the state and the batch.

    ``mean``/``std``: the normalisation of :func:`cnnjax.data.normalize` (a float or one per
    channel, in units of the [0, 1] pixel range).  ``augment``: 'none', 'flip', 'crop' or
    'flip_crop' (:func:`augment_batch`); ``augmentation``: the other families
    (:class:`cnnjax.augment.Augmentation`; its ``flip_crop``/``crop_padding`` are set from
    ``augment``/``crop_padding``).  ``compute_dtype``: 'float32', 'bfloat16' or 'auto'
    (resolved here for the current backend).  ``ema_decay`` > 0 needs a state made with
    ``ema=True``.  ``mesh`` (:func:`cnnjax.train.sharding.data_parallel_mesh`): the batch is split over
    its devices; ValueError when ``batch_size`` is not a multiple of their number.  ``freeze``:
    ``config.freeze``'s path patterns; the batch-norm layers they freeze run in inference mode
    (:func:`cnnjax.train.freeze.frozen_batch_norm`; their parameters' updates are ``tx``'s business)."""
    model: nn.Module
    tx: optax.GradientTransformation
    num_classes: int
    mean: Any
    std: Any
    batch_size: int
    augment: str = "none"
    crop_padding: int = 2
    label_smoothing: float = 0.0
    compute_dtype: str = "float32"
    ema_decay: float = 0.0
    grad_accum_steps: int = 1
    mesh: Mesh | None = None
    freeze: tuple[str, ...] = ()
    augmentation: Augmentation = Augmentation()

    def __post_init__(self):
        object.__setattr__(self, "augmentation", dataclasses.replace(
            self.augmentation, flip_crop=self.augment, crop_padding=self.crop_padding))
        object.__setattr__(self, "compute_dtype", resolve_compute_dtype(self.compute_dtype))
        if self.mesh is not None and self.batch_size % self.mesh.size:
            raise ValueError(f"batch_size {self.batch_size} must be a multiple of the number of devices "
                             f"({self.mesh.size})")

    @classmethod
    def from_config(cls, cfg: TrainConfig, model: nn.Module, tx: optax.GradientTransformation, *,
                    num_classes: int, mean, std, mesh: Mesh | None = None) -> "StepSpec":
        """The spec of ``cfg``'s step for ``model`` trained by ``tx`` on data normalised by ``mean``/``std``."""
        return cls(model, tx, num_classes, mean, std, cfg.batch_size, cfg.augment, cfg.crop_padding,
                   cfg.label_smoothing, cfg.compute_dtype, cfg.ema_decay, cfg.grad_accum_steps, mesh, cfg.freeze,
                   augmentation_of(cfg))


def augmentation_of(cfg: TrainConfig) -> Augmentation:
    """The :class:`cnnjax.augment.Augmentation` of ``cfg``'s settings (docs/augmentation.md)."""
    return Augmentation(
        flip_crop=cfg.augment, crop_padding=cfg.crop_padding, affine_rotate=cfg.affine_rotate,
        affine_translate=cfg.affine_translate, affine_scale=cfg.affine_scale, affine_shear=cfg.affine_shear,
        interpolation=cfg.augment_interpolation, fill=cfg.augment_fill, policy=cfg.augment_policy,
        randaugment_n=cfg.randaugment_n, randaugment_m=cfg.randaugment_m, erasing_prob=cfg.erasing_prob,
        erasing_area=tuple(cfg.erasing_area), erasing_value=cfg.erasing_value, mix=cfg.mix, mix_alpha=cfg.mix_alpha,
        mix_prob=cfg.mix_prob)


def train_step(spec: StepSpec, state: TrainState, batch) -> tuple[TrainState, dict]:
    """One optimizer update on ``batch = (images, labels)`` (uint8 (B, H, W, C), int32 (B,)):
    ``(new state, {"loss": mean float32 loss, "correct": int32 count of right argmax})``.
    With ``spec.ema_decay`` the moving average follows every optimizer step."""
    key = rng_lib.step_key(state.rng, state.step)  # the dropout rng
    x, y, targets = prepare_batch(spec, rng_lib.augment_key(key), *batch)
    (loss, (logits, batch_stats)), grads = jax.value_and_grad(_loss, has_aux=True)(
        state.params, spec, state.batch_stats, x, y, key, targets)
    updates, opt_state = spec.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new = TrainState(state.step + 1, params, batch_stats, opt_state, state.rng)
    if state.ema is not None:  # ema <- decay * ema + (1 - decay) * new, every optimizer step
        rate = 1 - spec.ema_decay
        if spec.grad_accum_steps > 1:  # MultiSteps: the weights change on every k-th micro-batch only
            rate = jnp.where((state.step + 1) % spec.grad_accum_steps == 0, rate, 0.0)
        new = new._replace(ema=optax.incremental_update(new.variables(), state.ema, rate))
    return new, {"loss": loss, "correct": jnp.sum(jnp.argmax(logits, -1) == y)}


def prepare_batch(spec: StepSpec, key, images, labels):
    """(x, y, targets): the uint8 ``images`` augmented with ``key`` per ``spec.augmentation``
    (:class:`cnnjax.augment.Augmentation`: the pixel families, then normalisation to float32,
    then MixUp/CutMix) and split over ``spec.mesh``; ``labels`` split likewise; ``targets`` None,
    or with MixUp/CutMix the float32 (B, num_classes) mixed label-smoothed targets of the loss."""
    aug = spec.augmentation
    images = aug.pixels(key, images)
    x = data_lib.normalize(images, spec.mean, spec.std)
    targets = None
    if aug.mixes:  # on the whole batch, before it is split: partners may sit on other devices
        x, weights = aug.mix_batch(key, x)
        targets = split_batch(mixing.targets(labels, weights, spec.num_classes, spec.label_smoothing), spec.mesh)
    return split_batch(x, spec.mesh), split_batch(labels, spec.mesh), targets


def _loss(params, spec: StepSpec, batch_stats, x, y, key, targets=None):
    """(mean cross-entropy, (float32 logits, new batch statistics)) of the model in training mode,
    against the label-smoothed one-hot ``y``, or the soft ``targets`` when given (mixed labels)."""
    compute = jnp.dtype(spec.compute_dtype)
    if compute != jnp.float32:  # mixed precision: gradients flow back through the casts in float32
        params, x = cast_floats(params, compute), x.astype(compute)
    variables = {"params": params, **({"batch_stats": batch_stats} if batch_stats else {})}
    mutable = ["batch_stats"] if batch_stats else False
    with freeze_lib.frozen_batch_norm(freeze_lib.frozen_bn_layers(variables, spec.freeze)):
        out = spec.model.apply(variables, x, train=True, rngs={"dropout": key}, mutable=mutable)
    logits, updates = out if mutable else (out, {})
    if targets is None:
        loss = cross_entropy(logits.astype(jnp.float32), y, spec.num_classes, spec.label_smoothing).mean()
    else:
        loss = optax.softmax_cross_entropy(logits.astype(jnp.float32), targets).mean()
    stats = updates.get("batch_stats", batch_stats)
    return loss, (logits, cast_floats(stats, jnp.float32) if stats else stats)


def make_train_step(spec: StepSpec) -> Callable:
    """``step(state, (images, labels)) -> (state, metrics)``: :func:`train_step` jitted, the old
    state donated (do not use it after the call).  A batch from the host is copied to the device."""
    return jax.jit(functools.partial(train_step, spec), donate_argnums=(0,))


#: random flips / crops of a uint8 NHWC batch: :func:`cnnjax.augment.flip_crop.flip_crop` (moved there)
augment_batch = flip_crop.flip_crop


def cross_entropy(logits, labels, num_classes: int, smoothing: float = 0.0):
    """Per-example softmax cross-entropy (B,) of ``logits`` (B, num_classes) against int ``labels``
    (B,), the one-hot targets smoothed by ``smoothing``."""
    targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), smoothing) if smoothing else \
        jax.nn.one_hot(labels, num_classes)
    return optax.softmax_cross_entropy(logits, targets)


def cast_floats(tree, dtype):
    """Floating-point leaves of ``tree`` cast to ``dtype`` (integer leaves untouched)."""
    return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)
