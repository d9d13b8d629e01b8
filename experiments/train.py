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
from experiments import common, model_flags

D = train.TrainConfig()
_MODEL, _MODEL_OPTIONS = model_flags.MODEL, model_flags.MODEL_OPTIONS
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
    config["model_options"] = model_flags.parse_options(_MODEL_OPTIONS.value)
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
