"""Training as pure functions: state in, state out.

  cfg   = TrainConfig(model="padded_cnn", epochs=10)      # cnnjax.config, the run's schema
  model = models.create(cfg.model, ds.num_classes, **cfg.model_options)
  tx    = make_optimizer(cfg, steps_per_epoch)
  state = init_state(model, tx, cfg.seed, ds.image_shape)
  state, metrics = train_epoch(step_fn, state, device_data, epoch, cfg.batch_size)

The whole dataset lives on the device as uint8 NHWC; each step gathers its batch by index
from a per-epoch permutation (a pure function of the run's key and the epoch), normalises
on the device and updates inside one ``jax.jit`` that donates the old state.  Given the
seed, everything is deterministic, so an epoch re-run after a restore is bit-identical.

Two ways to run an epoch, same numbers (to float rounding):

* per step (:func:`make_train_step` + :func:`train_epoch`): one dispatch per batch, no host
  sync between them.  The CPU default: XLA's CPU while-loop ran a fused epoch ~10x slower.
* fused (:func:`make_train_epoch` + :func:`train_epoch_fused`): every step of the epoch in
  one ``lax.scan`` inside one jit: one dispatch per epoch.  The GPU/TPU default, where
  per-step launch overhead dominates a small model (:func:`fused_epoch_default`).

:func:`make_epoch_runner` builds either behind one ``run(state, images, labels, epoch)``.

``compute_dtype="bfloat16"`` is mixed precision: float32 master weights,
optimizer state and loss; the forward/backward convs and matmuls in bfloat16.
``"auto"`` is bfloat16 on a GPU/TPU and float32 on the CPU (:func:`resolve_compute_dtype`).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cnnjax import data as data_lib
from cnnjax import freeze as freeze_lib
from cnnjax import config as config_lib
from cnnjax.config import TrainConfig

class TrainState(NamedTuple):
    """The whole training state, a pytree (what a checkpoint holds)."""
    step: jax.Array         # int32 scalar, optimizer steps taken
    params: Any
    batch_stats: Any        # {} for models without batch norm
    opt_state: Any
    rng: jax.Array          # the run's raw PRNG key (uint32[2]); per-step/epoch keys are folded in
    ema: Any = None         # config.ema_decay > 0: the moving average of variables() (same tree); else None

    def variables(self) -> dict:
        return {"params": self.params, **({"batch_stats": self.batch_stats} if self.batch_stats else {})}

    def eval_variables(self) -> dict:
        """What every evaluation uses: the weights' moving average when one is kept, else the weights."""
        return self.variables() if self.ema is None else self.ema


def make_schedule(cfg: TrainConfig, steps_per_epoch: int) -> optax.Schedule:
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
    if cfg.grad_accum_steps > 1:
        return make_accumulating_optimizer(cfg, steps_per_epoch)
    lr = make_schedule(cfg, steps_per_epoch)
    if cfg.optimizer == "adamw":
        base = optax.adamw(lr, weight_decay=cfg.weight_decay)
    else:
        base = optax.adam(lr) if cfg.optimizer == "adam" else optax.sgd(lr, momentum=cfg.momentum or None)
        if cfg.weight_decay:
            base = optax.chain(optax.add_decayed_weights(cfg.weight_decay), base)
    frozen = (*cfg.freeze, *((freeze_lib.WHITEN,) if cfg.whiten_init else ()))  # whiten_init freezes its kernel
    return freeze_lib.partition(base, frozen, cfg.lr_multipliers)


#: the parameter that config.whiten_init sets from the data and then freezes
WHITEN_KERNEL = ("whiten", "kernel")


#: compiler options of functions that run once per process (init): optimising the generated code
#: harder costs more compile time than it could save at run time
_ONCE = {"xla_backend_optimization_level": 1}


def init_state(model: nn.Module, tx: optax.GradientTransformation, seed: int, image_shape,
               ema: bool = False) -> TrainState:
    """Fresh state.  Parameters are drawn from ``fold_in(key(seed), 0)``; with ``ema`` the
    moving average starts as a copy of the initial variables.  ``model.init`` runs jitted: one
    compilation instead of one per operation (airbench28_m: 2.4 s instead of 7.4 s on 2 cores,
    inside a speedrun's clock), compiled at XLA's backend optimisation level 1, not 3: the same
    bits as the plain call for every registered model, compiled 2-4x faster (airbench28_l
    0.5 s instead of 1.6 s, resnet20 1.3 s instead of 3.6 s) for a function that runs once.
    Call it outside ``jit`` (a jit with compiler options must be top-level); for shapes under a
    trace use :func:`abstract_state`."""
    init = jax.jit(functools.partial(model.init, train=False), compiler_options=_ONCE)
    return _state(init, tx, seed, image_shape, ema)


def _state(init: Callable, tx, seed: int, image_shape, ema: bool) -> TrainState:
    rng = jax.random.PRNGKey(seed)
    variables = init(jax.random.fold_in(rng, 0), jnp.zeros((1, *image_shape), jnp.float32))
    params = variables["params"]
    state = TrainState(jnp.zeros((), jnp.int32), params, variables.get("batch_stats", {}), tx.init(params), rng)
    return restart_ema(state) if ema else state


def restart_ema(state: TrainState) -> TrainState:
    """``state`` with its moving average set to a copy of its current variables (a copy: the
    training step donates the state, and two fields must not share one buffer)."""
    return state._replace(ema=jax.tree.map(jnp.copy, state.variables()))


def abstract_state(model, tx, seed, image_shape, ema: bool = False) -> TrainState:
    """Shapes and dtypes of ``init_state`` without allocating (for checkpoint restore)."""
    return jax.eval_shape(lambda: _state(functools.partial(model.init, train=False), tx, seed, image_shape, ema))


#: how many training images (the first ones) airbench94 estimates the patch covariance from
WHITEN_IMAGES = 5000


def whitening_kernel(images, mean: float, std: float, kernel_size: int = 2, eps: float = 5e-4) -> np.ndarray:
    """airbench94's data-dependent init of its patch-whitening conv, as an HWIO kernel
    (k, k, C, 2*k*k*C) float32.

    ``images``: uint8 (N, H, W, C), normalised as in training (:func:`cnnjax.data.normalize`:
    ``(x / 255 - mean) / std``, ``mean``/``std`` in units of the [0, 1] pixel range).  From every
    k x k patch p (flattened in (kh, kw, c) order, the kernel's HWI order; d = k*k*C values) the
    uncentred covariance S = E[p p^T] (d x d, float64) is eigendecomposed, S = sum l_i v_i v_i^T;
    output channel i < d is v_i / sqrt(l_i + eps) (largest eigenvalue first) and channel d + i its
    negative.  Channel i then has E[y_i y_j] = delta_ij * l_i / (l_i + eps): whitened patches
    (up to eps), the negatives letting the following GELU pass both signs."""
    x = np.asarray(data_lib.normalize(images, mean, std), np.float64)  # exactly what the model sees
    n, h, w, c = x.shape
    k = kernel_size
    patches = np.stack([x[:, i:h - k + 1 + i, j:w - k + 1 + j, :] for i in range(k) for j in range(k)], axis=3)
    patches = patches.reshape(-1, k * k * c)  # (N*H'*W', d) in (kh, kw, c) order
    cov = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = np.linalg.eigh(cov)  # ascending
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
    scaled = eigenvectors / np.sqrt(np.maximum(eigenvalues, 0) + eps)  # column i: v_i / sqrt(l_i + eps)
    kernel = np.concatenate([scaled, -scaled], axis=1)  # (d, 2d)
    return kernel.reshape(k, k, c, 2 * k * k * c).astype(np.float32)


def whitening_problem(model: nn.Module, image_shape) -> str | None:
    """Why ``config.whiten_init`` cannot initialise ``model`` on images of ``image_shape`` (None if it can)."""
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, *image_shape), jnp.float32))
    kernel = shapes["params"].get(WHITEN_KERNEL[0], {}).get(WHITEN_KERNEL[1])
    if kernel is None:
        return "config.whiten_init needs a model with a 'whiten' patch conv (the airbench family)"
    kh, kw, c, width = kernel.shape
    if kh != kw or width != 2 * kh * kw * c:
        return (f"config.whiten_init fills the 'whiten' conv's 2*{kh}*{kw}*{c} = {2 * kh * kw * c} channels "
                f"({kh}x{kw} patches of {c}-channel images, and their negatives); set "
                f"config.model_options.whiten_width={2 * kh * kw * c} (it is {width})")
    return None


def init_whitening(state: TrainState, images, mean: float, std: float) -> TrainState:
    """``state`` with its 'whiten' kernel from :func:`whitening_kernel` of the first
    :data:`WHITEN_IMAGES` of ``images`` (uint8 NHWC) and its moving average restarted from it."""
    params = dict(state.params)
    kh = params[WHITEN_KERNEL[0]][WHITEN_KERNEL[1]].shape[0]
    kernel = whitening_kernel(images[:WHITEN_IMAGES], mean, std, kh)
    params[WHITEN_KERNEL[0]] = {**params[WHITEN_KERNEL[0]], WHITEN_KERNEL[1]: jnp.asarray(kernel)}
    state = state._replace(params=params)
    return state if state.ema is None else restart_ema(state)


def epoch_permutation(rng, epoch: int, n: int):
    """The data order of ``epoch``: a permutation of range(n), a pure function of (rng, epoch)."""
    return jax.random.permutation(jax.random.fold_in(jax.random.fold_in(rng, 1), epoch), n)


def augment_batch(rng, images, kind: str, pad: int = 2):
    """Random flips / crops (zero-pad ``pad`` pixels, crop back to H x W) of a uint8 (B, H, W, C)
    batch, any C, on the device."""
    if kind in ("flip", "flip_crop"):
        rng, sub = jax.random.split(rng)
        flip = jax.random.bernoulli(sub, 0.5, (images.shape[0], 1, 1, 1))
        images = jnp.where(flip, images[:, :, ::-1, :], images)
    if kind in ("crop", "flip_crop"):
        b, h, w, _ = images.shape
        padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        offsets = jax.random.randint(rng, (b, 2), 0, 2 * pad + 1)
        crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, img.shape[-1]))
        images = jax.vmap(crop)(padded, offsets)
    return images


def cross_entropy(logits, labels, num_classes: int, smoothing: float = 0.0):
    targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), smoothing) if smoothing else \
        jax.nn.one_hot(labels, num_classes)
    return optax.softmax_cross_entropy(logits, targets)


def data_parallel_mesh(devices=None) -> Mesh | None:
    """A 1-D ``Mesh`` named 'data' over ``devices`` (default: all devices of all processes);
    None when there is only one device (plain single-device jit)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), ("data",)) if len(devices) > 1 else None


def replicate(tree, mesh: Mesh | None):
    """Place arrays on every device of ``mesh`` (whole copies); identity without a mesh.
    Works across processes: each process supplies the same host data."""
    if mesh is None:
        return jax.device_put(tree)
    sharding = NamedSharding(mesh, P())
    return jax.tree.map(lambda a: jax.make_array_from_callback(np.shape(a), sharding, lambda idx: np.asarray(a)[idx]),
                        tree)


def cast_floats(tree, dtype):
    """Floating-point leaves of ``tree`` cast to ``dtype`` (integer leaves untouched)."""
    return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def _accelerator(backend: str | None = None) -> bool:
    """Whether ``backend`` (default: JAX's) is a GPU/TPU rather than the CPU: what the 'auto'
    settings below decide by."""
    return (backend or jax.default_backend()) != "cpu"


def fused_epoch_default(backend: str | None = None) -> bool:
    """Whether an epoch should run as one ``lax.scan`` (see the module docstring): on GPU/TPU
    yes; on the CPU no (XLA's CPU while-loop measured ~10x slower than per-step dispatch)."""
    return _accelerator(backend)


def resolve_compute_dtype(name: str, backend: str | None = None) -> str:
    """'float32' or 'bfloat16' for a ``config.compute_dtype``: 'auto' is bfloat16 on GPU/TPU and
    float32 on the CPU, where XLA's bfloat16 convolutions run slower than float32 ones (padded_cnn
    trained at 4,661 vs 6,995 img/s on 2 cores)."""
    if name == "auto":
        return "bfloat16" if _accelerator(backend) else "float32"
    return name


def make_update(model: nn.Module, tx: optax.GradientTransformation, cfg: TrainConfig,
                mean: float, std: float, num_classes: int, mesh: Mesh | None = None) -> Callable:
    """The pure (unjitted) training step behind :func:`make_train_step` and :func:`make_train_epoch`:
    ``update(state, images_u8, labels, order, index) -> (state, {"loss", "correct"})``."""
    batch = cfg.batch_size
    if mesh is not None and batch % mesh.size:
        raise ValueError(f"batch_size {batch} must be a multiple of the number of devices ({mesh.size})")
    shard = (lambda a: a) if mesh is None else \
        (lambda a: jax.lax.with_sharding_constraint(a, NamedSharding(mesh, P("data", *(None,) * (a.ndim - 1)))))
    compute = jnp.dtype(resolve_compute_dtype(cfg.compute_dtype))

    def loss_fn(params, state, x, y, key):
        if compute != jnp.float32:  # mixed precision: gradients flow back through the casts in float32
            params, x = cast_floats(params, compute), x.astype(compute)
        variables = {"params": params, **({"batch_stats": state.batch_stats} if state.batch_stats else {})}
        mutable = ["batch_stats"] if state.batch_stats else False
        with freeze_lib.frozen_batch_norm(freeze_lib.frozen_bn_layers(variables, cfg.freeze)):  # inference mode
            out = model.apply(variables, x, train=True, rngs={"dropout": key}, mutable=mutable)
        logits, updates = out if mutable else (out, {})
        loss = cross_entropy(logits.astype(jnp.float32), y, num_classes, cfg.label_smoothing).mean()
        stats = updates.get("batch_stats", state.batch_stats)
        return loss, (logits, cast_floats(stats, jnp.float32) if stats else stats)

    def update(state: TrainState, images, labels, order, index):
        idx = jax.lax.dynamic_slice_in_dim(order, index * batch, batch)
        key = jax.random.fold_in(jax.random.fold_in(state.rng, 2), state.step)
        idx = shard(idx)
        raw = images[idx]
        if cfg.augment != "none":
            raw = augment_batch(jax.random.fold_in(key, 1), raw, cfg.augment, cfg.crop_padding)
        x, y = shard(data_lib.normalize(raw, mean, std)), shard(labels[idx])
        (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state, x, y, key)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, "correct": jnp.sum(jnp.argmax(logits, -1) == y)}
        new = TrainState(state.step + 1, params, batch_stats, opt_state, state.rng)
        if state.ema is not None:  # ema <- decay * ema + (1 - decay) * new, every optimizer step
            rate = 1 - cfg.ema_decay
            if cfg.grad_accum_steps > 1:  # MultiSteps: the weights change on every k-th micro-batch only
                rate = jnp.where((state.step + 1) % cfg.grad_accum_steps == 0, rate, 0.0)
            new = new._replace(ema=optax.incremental_update(new.variables(), state.ema, rate))
        return new, metrics

    return update


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, cfg: TrainConfig,
                    mean: float, std: float, num_classes: int, mesh: Mesh | None = None) -> Callable:
    """``step(state, images_u8, labels, order, index) -> (state, {"loss", "correct"})``.

    images_u8 (N, H, W, C) uint8 and labels (N,) stay on the device; the batch is
    ``order[index*B:(index+1)*B]``.  Jitted, the old state is donated.  With a ``mesh``
    (see :func:`data_parallel_mesh`) the batch is split along its 'data' axis while params,
    optimizer state and dataset are replicated; XLA inserts the gradient all-reduce, so the
    result equals single-device training with the same global batch (to float rounding).
    """
    return jax.jit(make_update(model, tx, cfg, mean, std, num_classes, mesh), donate_argnums=(0,))


def make_train_epoch(model: nn.Module, tx: optax.GradientTransformation, cfg: TrainConfig,
                     mean: float, std: float, num_classes: int, mesh: Mesh | None = None) -> Callable:
    """``epoch(state, images_u8, labels, order) -> (state, {"loss_sum", "correct"})``: all
    ``len(order) // batch_size`` steps of an epoch in one ``lax.scan`` inside one jit (old state
    donated), the same updates as :func:`make_train_step` in the same order.  Compiles once
    per epoch length."""
    update = make_update(model, tx, cfg, mean, std, num_classes, mesh)

    @functools.partial(jax.jit, donate_argnums=(0,))
    def epoch(state: TrainState, images, labels, order):
        def body(carry, index):
            state, loss_sum, correct = carry
            state, m = update(state, images, labels, order, index)
            return (state, loss_sum + m["loss"], correct + m["correct"]), None

        steps = order.shape[0] // cfg.batch_size
        init = (state, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))
        (state, loss_sum, correct), _ = jax.lax.scan(body, init, jnp.arange(steps, dtype=jnp.int32))
        return state, {"loss_sum": loss_sum, "correct": correct}

    return epoch


def tta_views(x, tta: str = "none"):
    """(views (V, B, H, W, C), weights (V,)) of :func:`tta_logits` for a (B, H, W, C) batch."""
    flip = lambda v: v[:, :, ::-1, :]
    if tta == "none":
        return x[None], jnp.ones(1, jnp.float32)
    if tta == "flip":
        return jnp.stack([x, flip(x)]), jnp.full(2, 0.5, jnp.float32)
    if tta == "flip_shift":
        _, h, w, _ = x.shape
        padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
        down, up = padded[:, :h, :w], padded[:, 2:, 2:]
        return (jnp.stack([x, flip(x), down, flip(down), up, flip(up)]),
                jnp.array([0.25, 0.25, 0.125, 0.125, 0.125, 0.125], jnp.float32))
    raise ValueError(f"unknown tta {tta!r}")


def tta_logits(logits_fn: Callable, x, tta: str = "none"):
    """Test-time augmentation (airbench94's ``infer``) of a (B, H, W, C) batch: the logits
    ``logits_fn(view)`` (B, classes) averaged over views of ``x``.

    * 'none': x itself;
    * 'flip': (f(x) + f(mirror x)) / 2, mirror = reversed width axis;
    * 'flip_shift': flip(x) / 2 + (flip(x shifted down-right) + flip(x shifted up-left)) / 4, a
      shift moving the image one pixel along both axes with reflect padding (6 views).

    The views run one after another through one traced ``logits_fn`` (``lax.map``): a jitted
    evaluation compiles the model once, not once per view."""
    if tta == "none":
        return logits_fn(x)
    views, weights = tta_views(x, tta)
    return jnp.tensordot(weights, jax.lax.map(logits_fn, views), axes=1)


def make_eval_step(model: nn.Module, mean: float, std: float, num_classes: int,
                   compute_dtype: str = "float32", tta: str = "none") -> Callable:
    """``eval_step(variables, images_u8, labels, mask) -> (loss_sum, correct_sum, predictions)``,
    the model run in ``compute_dtype`` (as trained; 'auto' as :func:`resolve_compute_dtype`), its
    logits averaged over the views of :func:`tta_logits`, the loss in float32."""
    compute = jnp.dtype(resolve_compute_dtype(compute_dtype))
    if tta not in config_lib.TTA:
        raise ValueError(f"config.tta must be one of {', '.join(config_lib.TTA)}; got {tta!r}")

    @jax.jit
    def eval_step(variables, images, labels, mask):
        x = data_lib.normalize(images, mean, std)
        if compute != jnp.float32:
            variables, x = cast_floats(variables, compute), x.astype(compute)
        logits = tta_logits(lambda v: model.apply(variables, v, train=False).astype(jnp.float32), x, tta)
        loss = cross_entropy(logits, labels, num_classes)
        pred = jnp.argmax(logits, -1)
        return jnp.sum(loss * mask), jnp.sum((pred == labels) * mask), pred

    return eval_step


def evaluate(model: nn.Module, variables, dataset: data_lib.Dataset, batch_size: int = 1000,
             split: str = "test", eval_step: Callable | None = None, compute_dtype: str = "float32",
             tta: str = "none") -> dict:
    """Loss, accuracy, per-class accuracy and confusion matrix (rows = true class) on a split;
    the model runs in ``compute_dtype`` with test-time augmentation ``tta`` unless an
    ``eval_step`` is given."""
    images = getattr(dataset, f"{split}_images")
    labels = getattr(dataset, f"{split}_labels")
    n = len(labels)
    eval_step = eval_step or make_eval_step(model, dataset.mean, dataset.std, dataset.num_classes, compute_dtype, tta)
    loss = correct = 0.0
    preds = []
    for start in range(0, n, batch_size):
        xb, yb = images[start:start + batch_size], labels[start:start + batch_size]
        pad = batch_size - len(yb)  # pad the last batch so one compiled shape serves all
        mask = np.ones(batch_size, np.float32)
        if pad:
            xb = np.concatenate([xb, np.zeros((pad, *xb.shape[1:]), xb.dtype)])
            yb = np.concatenate([yb, np.zeros(pad, yb.dtype)])
            mask[batch_size - pad:] = 0
        l, c, p = eval_step(variables, xb, yb, mask)
        loss, correct = loss + float(l), correct + float(c)
        preds.append(np.asarray(p)[:batch_size - pad])
    preds = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    k = dataset.num_classes
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (labels, preds), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(1), 1)
    return {"loss": loss / max(n, 1), "accuracy": correct / max(n, 1), "per_class_accuracy": per_class,
            "confusion": confusion}


def _epoch_order(state: TrainState, labels, epoch: int, batch_size: int):
    """(order, steps) of an epoch; ValueError when not even one batch fits."""
    n = labels.shape[0]
    steps = n // batch_size
    if steps == 0:
        raise ValueError(f"batch_size {batch_size} is larger than the training set ({n} images)")
    return epoch_permutation(state.rng, epoch, n), steps


def _epoch_metrics(loss_sum, correct, steps: int, batch_size: int) -> dict:
    return {"train_loss": float(loss_sum) / steps, "train_accuracy": int(correct) / (steps * batch_size)}


def train_epoch(step_fn: Callable, state: TrainState, images, labels, epoch: int, batch_size: int,
                on_step: Callable[[int, int, Any], None] | None = None):
    """One pass over the training set in the order ``epoch_permutation(state.rng, epoch)``.

    The last incomplete batch is dropped.  ``on_step(i, steps, metrics)`` is called after
    each step (metrics are device arrays: reading them waits for the step).  Returns
    (state, {"train_loss", "train_accuracy"}).
    """
    order, steps = _epoch_order(state, labels, epoch, batch_size)
    loss_sum = jnp.zeros(())
    correct = jnp.zeros((), jnp.int32)
    for i in range(steps):
        state, m = step_fn(state, images, labels, order, i)
        loss_sum, correct = loss_sum + m["loss"], correct + m["correct"]
        if on_step is not None:
            on_step(i, steps, m)
    return state, _epoch_metrics(loss_sum, correct, steps, batch_size)


def train_epoch_fused(epoch_fn: Callable, state: TrainState, images, labels, epoch: int, batch_size: int,
                      on_step: Callable[[int, int, Any], None] | None = None):
    """:func:`train_epoch` with an ``epoch_fn`` from :func:`make_train_epoch`: one dispatch,
    one host sync (for the returned metrics) per epoch.  Same order, same numbers.
    ``on_step(steps - 1, steps, None)`` is called once, after the epoch."""
    order, steps = _epoch_order(state, labels, epoch, batch_size)
    state, m = epoch_fn(state, images, labels, order)
    metrics = _epoch_metrics(m["loss_sum"], m["correct"], steps, batch_size)
    if on_step is not None:
        on_step(steps - 1, steps, None)
    return state, metrics


def make_epoch_runner(model: nn.Module, tx: optax.GradientTransformation, cfg: TrainConfig,
                      mean: float, std: float, num_classes: int, mesh: Mesh | None = None,
                      fused: bool | None = None) -> Callable:
    """``run(state, images_u8, labels, epoch, on_step=None) -> (state, metrics)``: one epoch,
    per step (:func:`make_train_step` + :func:`train_epoch`) or fused into one ``lax.scan``
    (:func:`make_train_epoch` + :func:`train_epoch_fused`); ``fused=None`` takes
    :func:`fused_epoch_default` for the current backend.  Both give the same numbers."""
    fused = fused_epoch_default() if fused is None else fused
    make, run_epoch = (make_train_epoch, train_epoch_fused) if fused else (make_train_step, train_epoch)
    fn = make(model, tx, cfg, mean, std, num_classes, mesh)

    def run(state: TrainState, images, labels, epoch: int, on_step=None):
        return run_epoch(fn, state, images, labels, epoch, cfg.batch_size, on_step)

    return run


def make_accumulating_optimizer(cfg: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """``cfg``'s optimizer behind ``optax.MultiSteps``: gradients of ``grad_accum_steps``
    consecutive micro-batches (``batch_size`` each) are averaged, then one update is applied
    -- the same update as one step on the concatenated batch (for a model without batch norm
    or dropout, to float rounding).  ``steps_per_epoch`` counts micro-batches; the schedule
    counts optimizer steps (``steps_per_epoch // grad_accum_steps`` per epoch; an epoch's
    leftover micro-batches carry into the next epoch's first update)."""
    import dataclasses
    k = cfg.grad_accum_steps
    inner = make_optimizer(dataclasses.replace(cfg, grad_accum_steps=1), max(steps_per_epoch // k, 1))
    return optax.MultiSteps(inner, every_k_schedule=k).gradient_transformation()
