"""Training: one resumable run in a work directory, and reading a finished one.

  config      the run's schema: every setting, its type, default and meaning, once
  state       the TrainState pytree a step maps and a checkpoint holds;  rng: its random streams
  optim       optimizer, schedules, accumulation;  freeze: frozen layers, learning-rate multipliers
  whitening   airbench's patch-whitening first layer;  sharding: data parallelism
  step        StepSpec and the pure train_step(spec, state, batch)
  loop        run_epoch, the one epoch loop, over a batch source (in memory: per-step jit or
              lax.scan);  streaming: the Grain batch source
  evaluation  loss / accuracy / confusion of a split, test-time augmentation
  checkpoint  Orbax checkpoints;  workdir: the work directory's files
  experiment  one run in a work directory, resumable;  init_from: its starting variables
  runs        reading a finished run without changing it (the read-only commands use it)
"""
