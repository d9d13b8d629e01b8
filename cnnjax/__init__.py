"""cnnjax: a functional CNN research framework on JAX/Flax.

Layers, lowest first (a module imports only those before it):
  xla_cpu  process-wide XLA CPU flags (call xla_cpu.configure() before JAX starts)
  fastconv fast CPU conv / pool kernels behind ops' impl='fast'
  ops      pure jnp/lax convolution arithmetic (NHWC, HWIO)
  blocks   Flax Linen conv / pool blocks over ops
  models   registry of models built from blocks
  summary  per-layer table: output shape, params, FLOPs, receptive field
  data     datasets as in-memory uint8 NHWC arrays (IDX files, TFDS, synthetic)
  train_state  the TrainState pytree;  whitening: airbench's data-set first layer
  optim    Optax optimizer, schedules, gradient accumulation
  sharding data-parallel mesh and placement
  step     the pure training step train_step(spec, state, batch)
  train    epochs over on-device data (per-step jit or lax.scan);  evaluation: metrics, TTA
  checkpoint  Orbax save/restore;  experiment: one resumable run in a work directory
  plots    matplotlib figures
"""
__version__ = "0.1.0"
