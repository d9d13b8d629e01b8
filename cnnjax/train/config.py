"""The experiment's one schema: every setting of a run, its type, default and meaning.

A run is one :class:`TrainConfig`.  Config files (``experiments/configs/*.py``) return it as an
``ml_collections.ConfigDict`` (:func:`config_dict`); the command line overrides any field
(``--config.learning_rate=3e-3``, ``--config.model_options.activation=sigmoid``); and
:func:`from_dict` validates the result back into a TrainConfig, raising :class:`ConfigError`
(a ValueError) that names the key.  The work directory's ``config.json`` is :func:`to_dict`
of the run's config, so a run can be re-made from it exactly.

Fields declared with ``run=True`` manage a run without changing its numbers (where the data
lives, how often to checkpoint, progress display): they may differ when a run is resumed.

Sweeps are lists of overrides (big_vision's ``get_hyper`` idea), built with :func:`sweep`,
:func:`product` and :func:`zipped`: ``product(sweep("model", ["a", "b"]), sweep("seed", [0, 1]))``
is four dicts; a key with a dot sets a nested field (``"model_options.activation"``).
"""
import dataclasses
import difflib
import itertools
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Optional, Union

import ml_collections

from cnnjax import models

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "onecycle")
AUGMENTATIONS = ("none", "flip", "crop", "flip_crop")
AUGMENT_POLICIES = ("none", "randaugment", "trivialaugment")
INTERPOLATIONS = ("nearest", "bilinear")
MIXES = ("none", "mixup", "cutmix", "mixup_cutmix")
COMPUTE_DTYPES = ("float32", "bfloat16", "auto")
EPOCH_LOOPS = ("auto", "steps", "scan")
PROGRESS = ("auto", "bar", "plain", "none")
TTA = ("none", "flip", "flip_shift")
DATA_IN_MEMORY = ("auto", "true", "false")
DATA_CHANGED = ("refuse", "accept")


class ConfigError(ValueError):
    """A config key that does not exist, has the wrong type or a bad value; the message names it."""


_NONE = object()


def setting(default, help: str, *, choices: tuple = (), run: bool = False, factory=None, absent=_NONE):
    """A schema field: its default, one line of help, the allowed values (if a fixed set),
    whether it may change between a run and its resumption (``run=True``), and, for a setting
    added after work directories existed, the value that reproduces those older runs when their
    config.json lacks it (``absent``; otherwise the default)."""
    meta = {"help": help, "choices": choices, "run": run, "absent": absent}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (see the module docstring)."""
    model: str = setting("padded_cnn", "Registered model name (python -m experiments.summary --list).")
    model_options: dict = setting(None, "Options of the model, e.g. {'activation': 'sigmoid', 'widths': (8, 16)}.",
                                  factory=dict)
    dataset: str = setting("fashion_mnist", "fashion_mnist, mnist, synthetic, or any TFDS name.")
    data_dir: Optional[str] = setting(None, "Directory with IDX files, CIFAR archives, an image folder (dataset=folder) "
                                      "or TFDS data (None: the system copy).", run=True)
    image_size: int = setting(0, "Image folders: the side images are resized (shorter side) and centre-cropped to; "
                              "0 = the first training image's shorter side.")
    channels: int = setting(0, "Image folders: 1 (greyscale) or 3 (RGB) channels; 0 = 1 if the first training "
                            "image is greyscale, else 3.")
    data_cache_dir: Optional[str] = setting(None, "Where image folders are prepared (decoded once, reused while the "
                                            "folder is unchanged); None: $CNNJAX_CACHE_DIR or ~/.cache/cnnjax/prepared, "
                                            "'' = decode into memory every run.", run=True)
    data_changed: str = setting("refuse", "When the data differs from what the run recorded when it started "
                                "(cnnjax.data.fingerprint): refuse (one error line) or accept: continue from the "
                                "last checkpoint on the data as it is now, recorded in data.json and metrics.jsonl "
                                "(same classes and image shape only).", choices=DATA_CHANGED, run=True)
    data_in_memory: Union[str, bool] = setting("auto", "Training images on the device (true) or streamed in batches by a Grain "
                                  "pipeline (false); auto: in memory when they fit the memory budget. Same examples "
                                  "in the same order either way.", choices=DATA_IN_MEMORY, run=True)
    data_workers: int = setting(-1, "Grain worker processes reading streamed batches; 0: threads of the training "
                                "process; -1: chosen by cnnjax.train.streaming.default_workers.", run=True)
    num_train: int = setting(0, "Use only the first N training images (0 = all).")
    num_test: int = setting(0, "Use only the first N test images (0 = all).")
    validation_size: float = setting(0.1, "Validation images held out of the training set (after num_train), "
                                     "chosen by the seed: a count (>= 1) or a fraction (< 1); 0 = none. Best "
                                     "checkpoint and early choices use it, never the test set. A dataset's own "
                                     "validation split is used instead.", absent=0.0)
    epochs: int = setting(15, "Training epochs.")
    batch_size: int = setting(50, "Batch size (the tutorial's; why: benchmarks/RESULTS.md, 'Defaults').")
    learning_rate: float = setting(1e-3, "Peak learning rate.")
    optimizer: str = setting("adam", "Optimizer.", choices=OPTIMIZERS)
    momentum: float = setting(0.9, "SGD momentum (sgd only).")
    schedule: str = setting("cosine", "Learning-rate schedule.", choices=SCHEDULES)
    warmup_epochs: float = setting(0.0, "Linear warm-up epochs (constant/cosine; onecycle warms up for 30%).")
    weight_decay: float = setting(0.0, "Weight decay: decoupled for adamw, L2-in-gradient for adam/sgd.")
    label_smoothing: float = setting(0.1, "Label smoothing in [0, 1) (why 0.1: results/label_smoothing_seeds).",
                                     absent=0.0)
    augment: str = setting("none", "Random horizontal flip and/or 2-pixel-shift crop, on the device (the first "
                           "augmentation family; the others follow it: docs/augmentation.md).", choices=AUGMENTATIONS)
    seed: int = setting(0, "Seed of parameters, data order, dropout and augmentation.")
    compute_dtype: str = setting("float32", "bfloat16 = mixed precision (float32 weights, optimizer and loss); "
                                 "auto: bfloat16 on GPU/TPU, float32 on CPU (where bfloat16 is slower).",
                                 choices=COMPUTE_DTYPES)
    eval_every: int = setting(1, "Evaluate every N epochs (and after the last).")
    eval_delay: int = setting(0, "Epochs trained before the first evaluation: evaluate after epochs > eval_delay "
                              "that are multiples of eval_every, and always after the last (eval_delay=epochs: "
                              "once, at the end). Evaluation never changes training.")
    eval_batch_size: int = setting(1000, "Images per evaluation batch (memory only; same numbers).", run=True)
    checkpoint_every: int = setting(1, "Checkpoint every N epochs (and after the last).", run=True)
    keep_checkpoints: int = setting(3, "Keep the latest N checkpoints (plus the best).", run=True)
    epoch_loop: str = setting("auto", "steps: one jit call per batch; scan: the epoch in one lax.scan; "
                              "auto: scan on GPU/TPU, steps on CPU.  Same numbers.", choices=EPOCH_LOOPS, run=True)
    progress: str = setting("auto", "Progress display.", choices=PROGRESS, run=True)
    threads: int = setting(0, "XLA CPU intra-op threads of the training process (0 = one per core it may use; "
                           "launch.sweep/search: the run's --cpus_per_run). On the CPU the count changes the last bits "
                           "of the numbers, so it is part of the run: the same count reproduces it bit for bit.",
                           absent=0)
    compile_cache_dir: Optional[str] = setting(None, "JAX's persistent compilation cache (compiled steps reused by the "
                                               "next run of the same shapes); None: $CNNJAX_COMPILE_CACHE or "
                                               "~/.cache/cnnjax/jax (cnnjax/compile_cache.py), '' = off.", run=True)
    grad_accum_steps: int = setting(1, "Gradient accumulation (optax.MultiSteps): one optimizer step per N batches "
                                    "of batch_size (the micro-batch); effective batch N*batch_size; schedules count "
                                    "optimizer steps.")
    crop_padding: int = setting(2, "Zero padding (pixels per side) of augment=crop/flip_crop's random crop "
                                "(4: the CIFAR standard).")
    # ---- augmentation families after augment's flips/crops, in this order (cnnjax/augment/, docs/augmentation.md)
    affine_rotate: float = setting(0.0, "Random affine warp: rotation uniform in [-v, v] degrees per image (0 = off).")
    affine_translate: float = setting(0.0, "Random affine warp: translation uniform in [-v, v] x the side, whole "
                                      "pixels (0 = off).")
    affine_scale: float = setting(0.0, "Random affine warp: scale uniform in [1 - v, 1 + v] (0 = off).")
    affine_shear: float = setting(0.0, "Random affine warp: horizontal shear angle uniform in [-v, v] degrees (0 = off).")
    augment_interpolation: str = setting("nearest", "Resampling of the affine warp and the policies' geometric ops.",
                                         choices=INTERPOLATIONS)
    augment_fill: int = setting(0, "Pixel value (0..255) of the pixels a warp brings in from outside the image.")
    augment_policy: str = setting("none", "RandAugment (randaugment_n ops per image at magnitude randaugment_m) or "
                                  "TrivialAugmentWide (one op, random magnitude), per image.", choices=AUGMENT_POLICIES)
    randaugment_n: int = setting(2, "RandAugment: ops applied per image, in 0..14.")
    randaugment_m: int = setting(9, "RandAugment: magnitude bin in 0..30 (torchvision's 31 bins).")
    erasing_prob: float = setting(0.0, "Random erasing: probability per image of erasing one rectangle (0 = off).")
    erasing_area: tuple = setting((0.02, 0.33), "Random erasing: the rectangle's area, a fraction of the image drawn "
                                  "uniformly from (low, high).", factory=lambda: (0.02, 0.33))
    erasing_value: int = setting(0, "Random erasing: the rectangle's pixel value (0..255), -1 = uniform noise.")
    mix: str = setting("none", "MixUp / CutMix each image with its batch neighbour; the loss weighs both labels "
                       "(label smoothing applies to the mixed targets). mixup_cutmix: either, 1/2 each.", choices=MIXES)
    mix_alpha: float = setting(1.0, "MixUp / CutMix: the mixing weight is drawn from Beta(alpha, alpha).")
    mix_prob: float = setting(1.0, "MixUp / CutMix: probability per image of being mixed.")
    ema_decay: float = setting(0.0, "Exponential moving average of the weights and batch-norm statistics, updated "
                               "every optimizer step (ema = decay*ema + (1-decay)*new, starting from the initial "
                               "weights) and used for every evaluation; in [0, 1), 0 = off.")
    tta: str = setting("none", "Test-time augmentation of every evaluation: flip averages the logits of each image and "
                       "its mirror; flip_shift also of both mirrored 1-pixel diagonal shifts (airbench94's level 2).",
                       choices=TTA)
    whiten_init: bool = setting(False, "Before training, set the model's 2x2 'whiten' conv (airbench family) from "
                                "the eigenvectors of the training images' patch covariance and freeze its kernel.")
    target_accuracy: float = setting(0.0, "Stop after the first evaluation whose validation accuracy is >= this "
                                     "fraction (0 = off; needs a validation split); the test set is then measured "
                                     "once. summary.json records the epoch and the wall time to it.")
    target_margin: float = setting(0.0, "Stop only once validation accuracy is >= target_accuracy + this: held-out "
                                   "training images over-estimate test accuracy (by how much: docs/speedrun.md), "
                                   "and a time-to-target record counts a run only if its test accuracy reaches "
                                   "target_accuracy.")

    # ---- start from a trained network (cnnjax/train/freeze.py, cnnjax/train/init_from.py, cnnjax/data/subsets.py; docs/transfer.md)
    init_from: Optional[str] = setting(None, "Start from trained weights: a cnnjax work directory (its validation-selected "
                                       "checkpoint) or a .safetensors / .npz / .pth file; matched by variable path.")
    reinit: tuple = setting((), "Path patterns (as freeze) that init_from leaves freshly initialised (shape mismatches "
                            "elsewhere are errors), e.g. ('fc',): a new head for new classes.", factory=tuple)
    freeze: tuple = setting((), "Path patterns ('/'-joined fnmatch globs; '!' excludes; last match wins) of parameters "
                            "not trained (no update, no weight decay; frozen batch norm uses its running statistics). "
                            "('*', '!fc') is a linear probe.", factory=tuple)
    lr_multipliers: dict = setting(None, "Path pattern -> learning-rate factor (> 0) of the matched parameters, e.g. "
                                   "{'conv1': 0.1}.", factory=dict)
    classes: tuple = setting((), "Keep only these classes, relabelled 0, 1, ... in this order (empty = all).",
                             factory=tuple)
    train_per_class: int = setting(0, "Training images per class, drawn by the seed from the training split after "
                                   "the validation split is held out (0 = all).")

    def __post_init__(self):  # canonical model options: sorted keys, tuples (equal after a JSON round trip)
        object.__setattr__(self, "model_options", _canonical(dict(self.model_options or {})))
        if isinstance(self.data_in_memory, (bool, str)):  # True / "False" (a command line's spelling) -> "true"/"false"
            object.__setattr__(self, "data_in_memory", str(self.data_in_memory).lower())
        for name in ("freeze", "reinit", "classes"):
            object.__setattr__(self, name, tuple(getattr(self, name) or ()))
        if isinstance(self.erasing_area, (list, tuple)):
            object.__setattr__(self, "erasing_area", tuple(self.erasing_area))
        object.__setattr__(self, "lr_multipliers", _canonical(dict(self.lr_multipliers or {})))

    @property
    def stop_accuracy(self) -> float:
        """The validation accuracy at which a run stops: target_accuracy + target_margin (0 = never)."""
        return round(self.target_accuracy + self.target_margin, 9) if self.target_accuracy else 0.0

    def evaluates_after(self, epoch: int) -> bool:
        """Whether the validation split is measured after (1-based) ``epoch``."""
        return (epoch > self.eval_delay and epoch % self.eval_every == 0) or epoch == self.epochs

    def validate(self) -> None:
        """Raise ConfigError naming the first bad value."""
        def positive(name):
            return getattr(self, name) >= 1, f"must be >= 1, got {getattr(self, name)}"
        checks = {
            "epochs": positive("epochs"),
            "batch_size": positive("batch_size"),
            "eval_every": positive("eval_every"),
            "eval_delay": (self.eval_delay >= 0, f"must be >= 0, got {self.eval_delay}"),
            "eval_batch_size": positive("eval_batch_size"),
            "data_workers": (self.data_workers >= -1, f"must be >= 0, or -1 for the default, got {self.data_workers}"),
            "checkpoint_every": positive("checkpoint_every"),
            "keep_checkpoints": positive("keep_checkpoints"),
            "learning_rate": (self.learning_rate > 0 and math.isfinite(self.learning_rate),
                              f"must be a positive number, got {self.learning_rate}"),
            "label_smoothing": (0 <= self.label_smoothing < 1, f"must be in [0, 1), got {self.label_smoothing}"),
            "weight_decay": (0 <= self.weight_decay < math.inf, f"must be >= 0, got {self.weight_decay}"),
            "momentum": (0 <= self.momentum < 1, f"must be in [0, 1), got {self.momentum}"),
            "warmup_epochs": (0 <= self.warmup_epochs < self.epochs,
                              f"must be in [0, epochs={self.epochs}), got {self.warmup_epochs}"),
            "num_train": (self.num_train >= 0, f"must be >= 0 (0 = all), got {self.num_train}"),
            "num_test": (self.num_test >= 0, f"must be >= 0 (0 = all), got {self.num_test}"),
            "validation_size": (self.validation_size >= 0 and (self.validation_size < 1 or
                                                               self.validation_size == int(self.validation_size)),
                                f"must be a fraction in [0, 1) or a whole number of images, got {self.validation_size}"),
            "seed": (self.seed >= 0, f"must be >= 0, got {self.seed}"),
        }
        checks["grad_accum_steps"] = positive("grad_accum_steps")
        checks["threads"] = (self.threads >= 0, f"must be >= 0 (0 = one per core), got {self.threads}")
        checks["image_size"] = (self.image_size >= 0, f"must be >= 0 (0 = the images' own size), got {self.image_size}")
        checks["channels"] = (self.channels in (0, 1, 3), f"must be 0 (from the images), 1 or 3, got {self.channels}")
        checks["crop_padding"] = (0 <= self.crop_padding <= 64, f"must be in [0, 64], got {self.crop_padding}")
        checks["ema_decay"] = (0 <= self.ema_decay < 1, f"must be in [0, 1) (0 = off), got {self.ema_decay}")
        checks["target_accuracy"] = (
            0 <= self.target_accuracy <= 1 and (self.target_accuracy == 0 or self.validation_size > 0),
            f"must be in [0, 1], got {self.target_accuracy}" if not 0 <= self.target_accuracy <= 1 else
            f"needs a validation split (it stops on validation accuracy, never on test accuracy): set "
            f"config.validation_size > 0, got {self.validation_size}")
        checks["target_margin"] = (
            0 <= self.target_margin and self.target_accuracy + self.target_margin <= 1,
            f"must be >= 0 with target_accuracy + target_margin <= 1, got {self.target_margin} (target_accuracy "
            f"{self.target_accuracy})")
        checks.update(_transfer_checks(self))
        checks.update(_augment_checks(self))
        for f in dataclasses.fields(self):
            choices = f.metadata["choices"]
            if choices and getattr(self, f.name) not in choices:
                checks[f.name] = (False, f"must be one of {', '.join(choices)}; got {getattr(self, f.name)!r}")
        for name, (ok, message) in checks.items():
            if not ok:
                raise ConfigError(f"config.{name} {message}")


def _transfer_checks(cfg: TrainConfig) -> dict:
    """validate()'s checks of the start-from-a-trained-network settings (their patterns are checked
    against the model by :func:`cnnjax.train.freeze.check` when the run is built)."""
    strings = lambda v: all(isinstance(p, str) and p.strip("!") for p in v)
    factors = cfg.lr_multipliers.values()
    return {
        "freeze": (strings(cfg.freeze), f"must be a list of path patterns (strings), got {list(cfg.freeze)!r}"),
        "reinit": (strings(cfg.reinit) and not any(p.startswith("!") for p in cfg.reinit) and
                   (not cfg.reinit or cfg.init_from is not None),
                   f"must be a list of path patterns (strings, no '!') and needs config.init_from, got "
                   f"{list(cfg.reinit)!r}"),
        "lr_multipliers": (all(isinstance(f, (int, float)) and not isinstance(f, bool) and 0 < f < math.inf
                               for f in factors) and strings(cfg.lr_multipliers)
                           and not any(p.startswith("!") for p in cfg.lr_multipliers),
                           f"must map path patterns to factors > 0 (freeze instead of 0), got {cfg.lr_multipliers!r}"),
        "classes": (all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in cfg.classes)
                    and len(set(cfg.classes)) == len(cfg.classes),
                    f"must be distinct class indices >= 0, got {list(cfg.classes)!r}"),
        "train_per_class": (cfg.train_per_class >= 0, f"must be >= 0 (0 = all), got {cfg.train_per_class}"),
        "init_from": (cfg.init_from is None or bool(cfg.init_from.strip()), "must be a path, got ''"),
    }


def _augment_checks(cfg: TrainConfig) -> dict:
    """validate()'s checks of the augmentation families (the choices are checked with the others)."""
    area = cfg.erasing_area
    numbers = lambda v: all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in v)
    return {
        "affine_rotate": (0 <= cfg.affine_rotate <= 180, f"must be in [0, 180] degrees, got {cfg.affine_rotate}"),
        "affine_translate": (0 <= cfg.affine_translate <= 1,
                             f"must be in [0, 1] (a fraction of the side), got {cfg.affine_translate}"),
        "affine_scale": (0 <= cfg.affine_scale < 1, f"must be in [0, 1), got {cfg.affine_scale}"),
        "affine_shear": (0 <= cfg.affine_shear < 90, f"must be in [0, 90) degrees, got {cfg.affine_shear}"),
        "augment_fill": (0 <= cfg.augment_fill <= 255, f"must be a pixel value in [0, 255], got {cfg.augment_fill}"),
        "randaugment_n": (0 <= cfg.randaugment_n <= 14, f"must be in [0, 14], got {cfg.randaugment_n}"),
        "randaugment_m": (0 <= cfg.randaugment_m <= 30, f"must be a magnitude bin in [0, 30], got {cfg.randaugment_m}"),
        "erasing_prob": (0 <= cfg.erasing_prob <= 1, f"must be in [0, 1], got {cfg.erasing_prob}"),
        "erasing_area": (len(area) == 2 and numbers(area) and 0 < area[0] <= area[1] <= 1,
                         f"must be (low, high) with 0 < low <= high <= 1, got {list(area)!r}"),
        "erasing_value": (-1 <= cfg.erasing_value <= 255,
                          f"must be a pixel value in [0, 255] or -1 (noise), got {cfg.erasing_value}"),
        "mix_alpha": (0 < cfg.mix_alpha < math.inf, f"must be > 0, got {cfg.mix_alpha}"),
        "mix_prob": (0 <= cfg.mix_prob <= 1, f"must be in [0, 1], got {cfg.mix_prob}"),
    }


def fields() -> tuple[dataclasses.Field, ...]:
    return dataclasses.fields(TrainConfig)


def run_fields() -> frozenset[str]:
    """Names of the fields that may change when a run is resumed."""
    return frozenset(f.name for f in fields() if f.metadata["run"])


def _canonical(value):
    """Mappings with sorted keys, sequences as tuples, recursively."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(v) for v in value)
    return value


def _jsonable(value):
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _type_error(f: dataclasses.Field, value) -> Optional[str]:
    """Why ``value`` is not of field ``f``'s type (None if it is)."""
    allowed = typing.get_args(f.type) if isinstance(f.type, types.UnionType) or typing.get_origin(f.type) \
        is typing.Union else (f.type,)
    if value is None:
        return None if type(None) in allowed else "must not be None"
    if bool in allowed and isinstance(value, bool):
        return None
    if isinstance(value, bool):  # bool is an int subclass: refuse it for numbers
        return f"must be {_type_name(allowed)}, got {value!r}"
    if float in allowed and isinstance(value, (int, float)):
        return None if math.isfinite(value) else f"must be a finite number, got {value!r}"
    if int in allowed and isinstance(value, int):
        return None
    if str in allowed and isinstance(value, str):
        return None
    if dict in allowed and isinstance(value, Mapping):
        return None
    if tuple in allowed and isinstance(value, (list, tuple)):
        return None
    return f"must be {_type_name(allowed)}, got {value!r} ({type(value).__name__})"


def _type_name(allowed) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping",
             tuple: "a list"}
    return " or ".join(names.get(t, t.__name__) for t in allowed if t is not type(None))


def from_dict(mapping: Mapping, *, check_model: bool = True, older_run: bool = False) -> TrainConfig:
    """A validated TrainConfig from a mapping (a ConfigDict, a parsed config.json, a dict).

    Missing keys take their defaults, or with ``older_run`` (the config.json of an existing work
    directory) the value that reproduces runs made before the setting existed.  Raises ConfigError naming the first unknown key, wrong
    type or bad value; with ``check_model`` also an unknown model or model option."""
    if isinstance(mapping, ml_collections.ConfigDict):
        mapping = mapping.to_dict()
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"a config must be a mapping of settings, got {type(mapping).__name__}")
    by_name = {f.name: f for f in fields()}
    values = {}
    for key, value in mapping.items():
        f = by_name.get(key)
        if f is None:
            close = difflib.get_close_matches(str(key), by_name, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"config.{key} is not a setting{hint}; the settings are in cnnjax/train/config.py")
        problem = _type_error(f, value)
        if problem:
            raise ConfigError(f"config.{key} {problem}")
        values[key] = float(value) if f.type is float else value
    if older_run:
        values.update({f.name: f.metadata["absent"] for f in fields()
                       if f.name not in values and f.metadata["absent"] is not _NONE})
    cfg = TrainConfig(**values)
    cfg.validate()
    if check_model:
        check_model_options(cfg)
    return cfg


def check_model_options(cfg: TrainConfig) -> None:
    """ConfigError when ``cfg.model`` is not registered or does not take ``cfg.model_options``."""
    try:
        models.create(cfg.model, 10, **cfg.model_options)
    except ValueError as e:
        key = "config.model_options" if cfg.model in models.available() else "config.model"
        raise ConfigError(f"{key}: {e}") from None
    if cfg.whiten_init and "whiten_width" not in models.options(cfg.model):
        raise ConfigError(f"config.whiten_init needs a model with a 'whiten' patch conv (the airbench family); "
                          f"{cfg.model} has none")


def to_dict(cfg: TrainConfig) -> dict:
    """The JSON form of ``cfg`` (every field, tuples as lists): what config.json holds."""
    return _jsonable(dataclasses.asdict(cfg))


def config_dict(cfg: Optional[TrainConfig] = None, **overrides) -> ml_collections.ConfigDict:
    """``cfg`` (default: the defaults) with ``overrides`` as the ConfigDict a config file returns.

    Optional string fields become typed placeholders, so ``--config.data_dir=DIR`` works."""
    cfg = dataclasses.replace(cfg or TrainConfig(), **overrides)
    out = ml_collections.ConfigDict()
    for f in fields():
        value = getattr(cfg, f.name)
        if f.name in ("model_options", "lr_multipliers"):
            out[f.name] = ml_collections.ConfigDict(dict(value))
        elif value is None:
            out[f.name] = ml_collections.config_dict.placeholder(str)
        else:
            out[f.name] = value
    return out


def describe(cfg: Optional[TrainConfig] = None) -> str:
    """Every setting of ``cfg`` (default: the defaults), one per line: value, allowed values, help,
    and whether it may change on resume."""
    cfg = cfg or TrainConfig()
    width = max(len(f.name) for f in fields())
    lines = []
    for f in fields():
        config_value = to_dict(cfg)[f.name]
        choices = f" [{'|'.join(f.metadata['choices'])}]" if f.metadata["choices"] else ""
        run = " (may change on resume)" if f.metadata["run"] else ""
        lines.append(f"{f.name:<{width}} = {config_value!r}  # {f.metadata['help']}{choices}{run}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- sweeps as overrides


def sweep(key: str, values) -> list[dict]:
    """One axis: ``sweep("model", ["a", "b"])`` -> ``[{"model": "a"}, {"model": "b"}]``."""
    return [{key: v} for v in values]


def product(*axes: list[dict]) -> list[dict]:
    """Every combination of the axes, the first axis varying slowest."""
    return [dict(kv for d in combo for kv in d.items()) for combo in itertools.product(*axes)]


def zipped(*axes: list[dict]) -> list[dict]:
    """Axes of equal length taken in lockstep: ``zipped(sweep("a", [1, 2]), sweep("b", [3, 4]))``."""
    if len({len(a) for a in axes}) > 1:
        raise ConfigError(f"zipped axes must have equal lengths, got {[len(a) for a in axes]}")
    return [dict(kv for d in combo for kv in d.items()) for combo in zip(*axes)]


def apply(base: Mapping, overrides: Mapping[str, Any]) -> dict:
    """``base`` (a config mapping) with dotted-key ``overrides`` set; ConfigError for a path
    through a value that is not a mapping."""
    out = _plain(base)
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key}: {p} is not a mapping")
        node[leaf] = value
    return out


def _plain(value):
    if isinstance(value, ml_collections.ConfigDict):
        value = value.to_dict()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value
