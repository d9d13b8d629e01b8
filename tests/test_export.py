"""cnnjax.weights.export: every registered classifier exported to StableHLO and ONNX reloads to the JAX logits."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import models
from cnnjax.weights import export

COLOUR_32 = ("resnet20", "resnet56", "resnet18", "vgg11_bn", "vgg16_bn", "airbench",  # 32x32x3 nets (five pools, ...)
             "tv_resnet18", "tv_resnet34", "tv_vgg11_bn", "tv_vgg16_bn")
#: the torchvision VGGs' classifier at a test's width (4096 wide it holds 120M parameters); same layers
OPTIONS = {"tv_vgg11_bn": {"hidden": 64}, "tv_vgg16_bn": {"hidden": 64}}
CLASSIFIERS = [name for name in models.available() if name != "conv_autoencoder"]
MEAN, STD = 0.3, 0.35


def _model(name):
    shape = (32, 32, 3) if name in COLOUR_32 else (28, 28, 1)
    model = models.create(name, **OPTIONS.get(name, {}))
    variables = model.init(jax.random.key(0), jnp.zeros((1, *shape)))
    # moved batch-norm statistics, so the export must carry the running averages, not the init ones
    variables = jax.tree_util.tree_map_with_path(
        lambda path, v: v + 0.1 if "batch_stats" in jax.tree_util.keystr(path) else v, variables)
    return model, variables, shape


def _reference(model, variables, images):
    forward = jax.jit(lambda v, x: model.apply(v, (x / 255.0 - MEAN) / STD, train=False))
    return np.asarray(forward(variables, images))


def test_every_registered_classifier_is_tested():
    assert len(CLASSIFIERS) == len(models.available()) - 1 and "padded_cnn" in CLASSIFIERS


@pytest.mark.parametrize("fmt", export.FORMATS)
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_export_reloads_to_the_jax_logits_at_any_batch_size(name, fmt):
    model, variables, shape = _model(name)
    blob = export.export(fmt, model, variables, shape, MEAN, STD, name)
    run = export.run_stablehlo if fmt == "stablehlo" else export.run_onnx
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, *shape), dtype=np.uint8)
    want = _reference(model, variables, images)
    for batch in (1, 3):  # one file, a symbolic batch dimension
        got = run(blob, images[:batch])
        assert got.shape == (batch, 10) and got.dtype == np.float32
        assert export.relative_error(got, want[:batch]) <= 1e-5, export.relative_error(got, want[:batch])


class FourierNet(nn.Module):
    """A classifier on the FFT magnitude of its input: an operation jax2onnx has no rule for."""
    num_classes: int = 10

    @nn.compact
    def __call__(self, x, train=False):
        spectrum = jnp.abs(jnp.fft.fft2(x[..., 0]))
        return nn.Dense(self.num_classes)(spectrum.reshape(x.shape[0], -1))


def test_a_model_onnx_cannot_express_is_one_error_naming_it():
    model = FourierNet()
    variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
    with pytest.raises(export.ExportError, match=r"^--format=onnx cannot express fourier_net: jax2onnx failed \("):
        export.onnx(model, variables, (8, 8, 1), MEAN, STD, "fourier_net")
    blob = export.stablehlo(model, variables, (8, 8, 1), MEAN, STD)  # StableHLO has every JAX operation
    images = np.arange(2 * 64, dtype=np.uint8).reshape(2, 8, 8, 1)
    assert export.relative_error(export.run_stablehlo(blob, images), _reference(model, variables, images)) <= 1e-5
    with pytest.raises(ValueError, match="unknown export format 'tflite'; formats: stablehlo, onnx"):
        export.export("tflite", model, variables, (8, 8, 1), MEAN, STD)
