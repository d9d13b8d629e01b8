"""cnnjax: a functional CNN research framework on JAX/Flax.

Layers, lowest first (a module imports only those before it):
  xla_cpu  process-wide XLA CPU flags (call xla_cpu.configure() before JAX starts)
  fastconv fast CPU conv / pool kernels behind ops' impl='fast'
  ops      pure jnp/lax convolution arithmetic (NHWC, HWIO)
  blocks   Flax Linen conv / pool blocks over ops
  models   registry of models built from blocks
  summary  per-layer table: output shape, params, FLOPs, receptive field
  data     datasets as in-memory uint8 NHWC arrays (IDX files, TFDS, synthetic)
  train    Optax training loop, evaluation;  checkpoint: Orbax save/restore
  plots    matplotlib figures
"""
__version__ = "0.1.0"
