r"""Train a registered model; the work directory can be resumed, evaluated and swept.

  python -m experiments.train --model=padded_cnn --dataset=fashion_mnist --epochs=15 \
      --workdir=workdirs/padded_cnn

Rerun the same command to resume after an interruption.  See cnnjax/experiment.py for the
work directory layout.  Exit status: 0 finished, 2 bad flags or refused, 3 NaN/inf loss.
"""
from __future__ import annotations

import sys

from absl import flags

from cnnjax import train
from experiments import common

D = train.TrainConfig()
_MODEL = flags.DEFINE_string("model", D.model, "Registered model name (python -m experiments.summary --list).")
_MODEL_OPTIONS = flags.DEFINE_list("model_options", [], "Model options key=value, e.g. activation=sigmoid,pool=avg.")
_DATASET = flags.DEFINE_string("dataset", D.dataset, "fashion_mnist, mnist, synthetic, or any TFDS name.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Directory with IDX files or TFDS data.")
_NUM_TRAIN = flags.DEFINE_integer("num_train", 0, "Use only the first N training images (0 = all).")
_NUM_TEST = flags.DEFINE_integer("num_test", 0, "Use only the first N test images (0 = all).")
_EPOCHS = flags.DEFINE_integer("epochs", D.epochs, "Training epochs.")
_BATCH = flags.DEFINE_integer("batch_size", D.batch_size, "Batch size.")
_LR = flags.DEFINE_float("learning_rate", D.learning_rate, "Peak learning rate.")
_OPT = flags.DEFINE_enum("optimizer", D.optimizer, train.OPTIMIZERS, "Optimizer.")
_MOMENTUM = flags.DEFINE_float("momentum", D.momentum, "SGD momentum.")
_SCHEDULE = flags.DEFINE_enum("schedule", D.schedule, train.SCHEDULES, "Learning-rate schedule.")
_WARMUP = flags.DEFINE_float("warmup_epochs", D.warmup_epochs, "Linear warm-up epochs (constant/cosine).")
_WD = flags.DEFINE_float("weight_decay", D.weight_decay, "Weight decay (decoupled for adamw).")
_LS = flags.DEFINE_float("label_smoothing", D.label_smoothing, "Label smoothing in [0, 1).")
_AUGMENT = flags.DEFINE_enum("augment", D.augment, train.AUGMENTATIONS, "On-device data augmentation.")
_SEED = flags.DEFINE_integer("seed", D.seed, "Seed of parameters, data order, dropout, augmentation.")
_DTYPE = flags.DEFINE_enum("compute_dtype", D.compute_dtype, train.COMPUTE_DTYPES,
                           "bfloat16 = mixed precision (float32 weights/optimizer/loss); for GPU/TPU.")
_EPOCH_LOOP = flags.DEFINE_enum("epoch_loop", "auto", train.EPOCH_LOOPS,
                                "steps: one jit call per batch; scan: the epoch in one lax.scan; "
                                "auto: scan on GPU/TPU, steps on CPU. Same numbers.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output/resume directory.")
_EVAL_EVERY = flags.DEFINE_integer("eval_every", 1, "Evaluate every N epochs (and after the last).")
_CKPT_EVERY = flags.DEFINE_integer("checkpoint_every", 1, "Checkpoint every N epochs (and after the last).")
_KEEP = flags.DEFINE_integer("keep_checkpoints", 3, "Keep the latest N checkpoints (plus the best).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "Multi-host: host:port of process 0 (jax.distributed.initialize).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")
_PROGRESS = flags.DEFINE_enum("progress", "auto", ["auto", "bar", "plain", "none"], "Progress display.")


def parse_options(items: list[str]) -> dict:
    """['activation=sigmoid', 'widths=8:16', 'groups=2'] -> {'activation': 'sigmoid', 'widths': [8, 16], 'groups': 2}."""
    def value(text: str):
        if ":" in text:
            return [value(t) for t in text.split(":")]
        for cast in (int, float):
            try:
                return cast(text)
            except ValueError:
                pass
        return {"true": True, "false": False, "none": None}.get(text.lower(), text)

    options = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise common.UsageError(f"--model_options entries must be key=value, got {item!r}")
        options[key.strip()] = value(text.strip())
    return options


def main(argv):
    if not _WORKDIR.value:
        raise common.UsageError("--workdir is required")
    from cnnjax import fastconv
    fastconv.configure_cpu()  # process-level XLA CPU settings; must precede JAX's backend start
    if _COORDINATOR.value:
        import jax
        jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    from cnnjax import experiment  # after flag parsing: JAX starts only for real runs
    config = {name: flags.FLAGS[name].value for name in experiment.config_fields()}
    config["model_options"] = parse_options(_MODEL_OPTIONS.value)
    config.update({name: flags.FLAGS[name].value for name in (
        "workdir", "data_dir", "eval_every", "checkpoint_every", "keep_checkpoints", "progress", "epoch_loop")})
    try:
        experiment.train_and_evaluate(
            config, _WORKDIR.value, data_dir=_DATA_DIR.value, progress=_PROGRESS.value,
            eval_every=_EVAL_EVERY.value, checkpoint_every=_CKPT_EVERY.value, keep_checkpoints=_KEEP.value,
            epoch_loop=_EPOCH_LOOP.value)
    except experiment.NonFiniteLoss as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(3)


if __name__ == "__main__":
    common.run(main)
