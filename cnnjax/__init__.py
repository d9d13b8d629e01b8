"""cnnjax: a functional CNN research framework on JAX/Flax.

Rooms, highest first; a module imports only its own layer and those below (import-linter's
contracts in pyproject.toml, checked by tests/test_layers.py):

  interpret  what a trained network does: features, attribution, shifted inputs, inference
  train      one resumable run in a work directory (config, state, step, the epoch loop,
             evaluation, checkpoints, experiment) and reading a finished one (runs)
  weights    variable paths; PyTorch conversion and twins; NNX; export
  data       datasets as in-memory uint8 NHWC arrays, image files, class subsets, streaming
  augment    (beside data) augmentation ops on uint8 NHWC batches, run inside the training step
  models     the nets and their registry
  summary    per-layer table: output shape, params, FLOPs, receptive field
  blocks     Flax Linen blocks over the ops; ConvDef and NormDef, what a model receives
  ops        pure jnp/lax convolution arithmetic (NHWC, HWIO);  fastconv: its CPU fast path
  compile_cache, plots, xla_cpu   process set-up (xla_cpu.configure() before JAX starts), figures
"""
__version__ = "0.1.0"
