r"""Train one experiment, given as a config file; the work directory can be resumed, evaluated and swept.

  python -m experiments.train --workdir=workdirs/padded_cnn      # experiments/configs/default.py
  python -m experiments.train --config=experiments/configs/recipes.py:vgg_bn --workdir=workdirs/vgg_bn \
      --config.epochs=5 --config.model_options.dropout=0.2

Any setting of cnnjax/train/config.py can be overridden with ``--config.KEY=VALUE``; ``--print_config``
lists them all with their values.  Rerun the same
command to resume after an interruption; re-make a run from its work directory with
``--config=experiments/configs/rerun.py:WORKDIR``.

Exit status: 0 finished (or already finished); 2 bad config or flags, a work directory that holds
another run or is in use (one ``error:`` line, nothing written), or a full disk (what was written
stands: free space and rerun to resume); 3 NaN/inf loss.
"""
from __future__ import annotations

import sys

from absl import flags

from experiments import common

_CONFIG = common.define_config_flag()
_WORKDIR = flags.DEFINE_string("workdir", None, "Output/resume directory.")
_PRINT_CONFIG = flags.DEFINE_bool("print_config", False, "Print every setting of the config (value, allowed "
                                  "values, help) and exit without training.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "Multi-host: host:port of process 0 (jax.distributed.initialize).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")


def main(argv):
    cfg = common.train_config(_CONFIG)
    if _PRINT_CONFIG.value:
        from cnnjax.train import config
        print(config.describe(cfg))
        return
    if not _WORKDIR.value:
        raise common.UsageError("--workdir is required")
    from cnnjax import xla_cpu
    xla_cpu.configure()  # process-level XLA CPU settings; must precede JAX's backend start
    if _COORDINATOR.value:
        import os

        import jax
        if "JAX_CPU_COLLECTIVES_IMPLEMENTATION" not in os.environ:  # CPU collectives across processes
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    from cnnjax.train import experiment
    try:
        experiment.train_and_evaluate(cfg, _WORKDIR.value)
    except experiment.NonFiniteLoss as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(3)



if __name__ == "__main__":
    common.run(main)
