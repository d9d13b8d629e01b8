"""cnnjax.weights.nnx: every registered model from Flax NNX code gives the Linen model's outputs; an NNX step trains."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from cnnjax import data, models
from cnnjax.weights import nnx as cnnjax_nnx

def _narrow(name):
    """The registered layers at 1/8 of the width (and a narrower VGG head): the bridge, not the size, is tested."""
    factory = models.REGISTRY[name]
    layers = getattr(factory, "keywords", {}).get("layers")
    out = {"layers": tuple(v if v == "M" else v // 8 for v in layers)} if layers else {}
    if name.startswith("tv_resnet") or name == "resnet18":
        out["widths"] = (8, 16, 32, 64)
    return {**out, **({"hidden": 64} if name.startswith("tv_vgg") else {}),
            **({"widths": (8, 32, 32)} if name == "airbench" else {})}


def _image_shape(name):
    colour = name.startswith(("resnet", "vgg11", "vgg16", "tv_")) or name == "airbench"
    return (32, 32, 3) if colour else (28, 28, 1)


#: the deepest members of families whose shallower members run in the fast suite (1-2 min each on 2 shared cores)
DEEP = {"resnet56", "tv_resnet34", "vgg16_bn", "tv_vgg16_bn"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in DEEP else n
                                  for n in models.available()])
def test_nnx_outputs_equal_linen_outputs(name):
    shape, options = _image_shape(name), _narrow(name)
    linen = models.create(name, 10, **options)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, *shape)), jnp.float32)
    variables = jax.jit(lambda k: linen.init(k, x[:1]))(jax.random.PRNGKey(1))
    variables = jax.tree.map(lambda a: a + 0.01, variables)  # not the init: loaded values are used
    model = cnnjax_nnx.Model(name, 10, image_shape=shape, rngs=nnx.Rngs(0), variables=variables, **options)
    got = nnx.jit(lambda model, x: model(x))(model, x)  # one compiled program each (eager dispatch is slow here)
    want = jax.jit(lambda variables, x: linen.apply(variables, x, train=False))(variables, x)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    for a, b in zip(jax.tree.leaves(model.linen_variables()), jax.tree.leaves(variables)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("name,options", [("padded_cnn", {"widths": (4, 8)}), ("vgg_bn", {"widths": (4, 8)})])
def test_an_nnx_training_step_reduces_the_loss(name, options):
    ds = data.synthetic(64, 16, seed=0)
    x = data.normalize(ds.train_images, ds.mean, ds.std)
    y = jnp.asarray(ds.train_labels)
    model = cnnjax_nnx.Model(name, 10, image_shape=ds.image_shape, rngs=nnx.Rngs(0), **options)
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x, y):
        def loss_fn(model):
            return optax.softmax_cross_entropy_with_integer_labels(model(x, train=True), y).mean()
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    eval_loss = lambda: float(optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean())
    before = eval_loss()
    stats = nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))
    losses = [float(step(model, optimizer, x, y)) for _ in range(10)]
    assert losses[-1] < losses[0] and eval_loss() < before
    if name == "vgg_bn":  # batch norm statistics were updated by the steps
        after = nnx.to_pure_dict(nnx.state(model, nnx.BatchStat))
        assert not np.array_equal(after["net"]["bn1_1"]["mean"], stats["net"]["bn1_1"]["mean"])
