"""Weights in and out of cnnjax, independent of training and of the data:

  variables  variable paths, their flattening and path patterns (what conversion, init_from and
             freezing match by)
  pytorch    PyTorch state_dicts (.pth/.pt/.bin, .safetensors; any key order) -> cnnjax variables
  nnx        every registered model as a Flax NNX module (flax.nnx.bridge)
  export     StableHLO (jax.export) and ONNX (jax2onnx) export of a model's forward pass
"""
