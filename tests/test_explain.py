"""cnnjax.interpret.attribution's attribution methods against their mathematical properties, and cnnjax.interpret.features."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import blocks, models
from cnnjax.interpret import attribution as explain, features


def _init(model, shape, seed=0):
    return model.init(jax.random.key(seed), jnp.zeros((1, *shape), jnp.float32))


def _logit(model, variables, x, target):
    return np.asarray(model.apply(variables, x, train=False))[:, target]


def test_gradients_equal_central_finite_differences():
    model = models.create("lenet5")  # sigmoid: smooth, so a central difference converges
    variables = _init(model, (16, 16, 1))
    x = jax.random.normal(jax.random.key(1), (2, 16, 16, 1))
    g = np.asarray(explain.gradients(model, variables, x, jnp.array([3, 7])))
    assert g.shape == x.shape and np.abs(g).max() > 0
    eps = 1e-2
    for i, target in enumerate((3, 7)):
        for v_seed in range(3):  # directional derivatives along random directions
            v = np.asarray(jax.random.normal(jax.random.key(10 + v_seed), (1, 16, 16, 1)))
            xi = np.asarray(x[i:i + 1])
            fd = (_logit(model, variables, xi + eps * v, target) - _logit(model, variables, xi - eps * v, target)) / (2 * eps)
            np.testing.assert_allclose(float((g[i] * v[0]).sum()), float(fd[0]), rtol=2e-3, atol=2e-5)
        for (r, c) in ((0, 0), (8, 5), (15, 15)):  # and single pixels
            e = np.zeros((1, 16, 16, 1), np.float32)
            e[0, r, c, 0] = 1
            fd = (_logit(model, variables, xi + eps * e, target) - _logit(model, variables, xi - eps * e, target)) / (2 * eps)
            np.testing.assert_allclose(g[i, r, c, 0], fd[0], rtol=5e-3, atol=5e-5)


def test_default_target_is_the_predicted_class():
    model = models.create("padded_cnn")
    variables = _init(model, (12, 12, 1))
    x = jax.random.normal(jax.random.key(2), (3, 12, 12, 1))
    predicted = jnp.argmax(model.apply(variables, x), -1)
    np.testing.assert_array_equal(explain.gradients(model, variables, x), explain.gradients(model, variables, x, predicted))


def test_integrated_gradients_completeness_within_one_percent():
    model = models.create("padded_cnn")  # ReLU + max pool: piecewise linear, the hard case for the integral
    variables = _init(model, (16, 16, 1))
    x = 2.0 * jax.random.normal(jax.random.key(3), (3, 16, 16, 1))
    baseline = explain.black_baseline(0.286, 0.353)
    black = np.full(x.shape, baseline, np.float32)
    differences = np.asarray(model.apply(variables, x)) - np.asarray(model.apply(variables, black))
    targets = np.abs(differences).argmax(1)  # per image, the class whose score the path changes most
    diff = differences[np.arange(3), targets]
    assert np.all(np.abs(diff) > 0.3)  # a real difference to explain
    ig = explain.integrated_gradients(model, variables, x, jnp.asarray(targets), baseline=baseline, steps=256)
    assert ig.shape == x.shape
    np.testing.assert_allclose(np.asarray(ig).sum(axis=(1, 2, 3)), diff, rtol=0.01)
    gap = explain.completeness_gap(model, variables, x, ig, jnp.asarray(targets), baseline=baseline)
    np.testing.assert_allclose(np.asarray(gap), np.asarray(ig).sum(axis=(1, 2, 3)) - diff, atol=1e-4)
    coarse = explain.integrated_gradients(model, variables, x, jnp.asarray(targets), baseline=baseline, steps=4)
    assert np.abs(explain.completeness_gap(model, variables, x, coarse, jnp.asarray(targets),
                                           baseline=baseline)).max() > np.abs(gap).max()  # the steps matter
    # a baseline equal to the input has nothing to attribute
    np.testing.assert_array_equal(explain.integrated_gradients(model, variables, x, baseline=x), 0)


def test_smoothgrad_of_a_linear_model_is_its_gradient_and_noise_zero_is_the_gradient():
    linear = models.create("mlp", hidden=[])  # logits = W x + b: the gradient is W's row everywhere
    variables = _init(linear, (8, 8, 1))
    x = jax.random.normal(jax.random.key(4), (2, 8, 8, 1))
    sg = explain.smoothgrad(linear, variables, x, jnp.array([1, 2]), samples=8, noise=0.5)
    w = np.asarray(variables["params"]["out"]["kernel"])  # (64, 10)
    np.testing.assert_allclose(np.asarray(sg).reshape(2, 64), w[:, [1, 2]].T, rtol=1e-5, atol=1e-6)
    cnn = models.create("padded_cnn")
    v2 = _init(cnn, (8, 8, 1))
    np.testing.assert_allclose(explain.smoothgrad(cnn, v2, x, samples=4, noise=0.0), explain.gradients(cnn, v2, x),
                               rtol=1e-6, atol=1e-7)
    # different keys draw different noise: the maps differ for a non-linear model
    a = explain.smoothgrad(cnn, v2, x, key=jax.random.key(0), samples=4, noise=0.3)
    b = explain.smoothgrad(cnn, v2, x, key=jax.random.key(1), samples=4, noise=0.3)
    assert not np.allclose(a, b)


def test_occlusion_equals_a_brute_force_loop():
    model = models.create("padded_cnn")
    variables = _init(model, (12, 12, 1))
    x = np.asarray(jax.random.normal(jax.random.key(5), (2, 12, 12, 1)))
    targets = [2, 6]
    patch, stride, fill = 4, 3, -0.5
    got = np.asarray(explain.occlusion(model, variables, x, jnp.array(targets), patch=patch, stride=stride, fill=fill))
    assert explain.patch_starts(12, patch, stride) == [0, 3, 6, 8]  # 8: the last columns are covered too
    want = np.zeros((2, 12, 12))
    count = np.zeros((12, 12))
    for i in range(2):
        base = _logit(model, variables, x[i:i + 1], targets[i])[0]
        for t in (0, 3, 6, 8):
            for l in (0, 3, 6, 8):
                occluded = x[i:i + 1].copy()
                occluded[:, t:t + patch, l:l + patch, :] = fill
                want[i, t:t + patch, l:l + patch] += base - _logit(model, variables, occluded, targets[i])[0]
                if i == 0:
                    count[t:t + patch, l:l + patch] += 1
    want /= count
    assert got.shape == x.shape
    np.testing.assert_allclose(got[..., 0], want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="patch must be in"):
        explain.occlusion(model, variables, x, patch=13)


class QuadrantNet(nn.Module):
    """Four channels, each the image restricted to one quadrant (TL, TR, BL, BR), average-pooled
    2x2, then a 1x1 conv 'conv' (ReLU); class k's score is the sum of conv channel k: class k
    depends on quadrant k only."""
    num_classes: int = 4

    @nn.compact
    def __call__(self, x, train=False):
        h, w = x.shape[1:3]
        top = (jnp.arange(h) < h // 2)[:, None]
        left = (jnp.arange(w) < w // 2)[None, :]
        masks = jnp.stack([top & left, top & ~left, ~top & left, ~top & ~left], -1).astype(x.dtype)
        q = blocks.AvgPool(window=2, name="pool")(x[..., :1] * masks)
        a = blocks.Conv(4, 1, activation="relu", name="conv")(q)
        return jnp.sum(a, axis=(1, 2))


def test_grad_cam_lights_up_the_quadrant_the_class_depends_on():
    model = QuadrantNet()
    variables = {"params": {"conv": {"kernel": jnp.eye(4).reshape(1, 1, 4, 4), "bias": jnp.zeros(4)}}}
    x = jax.random.uniform(jax.random.key(6), (4, 16, 16, 1), minval=0.2, maxval=1.0)  # content everywhere
    cam = np.asarray(explain.grad_cam(model, variables, x, jnp.arange(4), layer="conv"))[..., 0]
    assert cam.shape == (4, 16, 16)
    quadrant = lambda m, k: m[(k // 2) * 8:(k // 2) * 8 + 8, (k % 2) * 8:(k % 2) * 8 + 8]
    for k in range(4):
        inside = quadrant(cam[k], k)
        assert inside.sum() > 0.9 * cam[k].sum(), k
        assert cam[k].max() == inside.max()
        opposite = quadrant(cam[k], 3 - k)
        far = opposite[1:, 1:] if k == 0 else opposite[:-1, :-1] if k == 3 else None
        if far is not None:  # away from the 1-pixel bilinear seam, the opposite quadrant is dark
            assert np.all(far == 0)
    assert explain.default_layer(model, (16, 16, 1)) == "conv"


def test_grad_cam_unknown_or_non_conv_layer_lists_the_conv_layers():
    model = models.create("padded_cnn")
    variables = _init(model, (12, 12, 1))
    x = jnp.zeros((1, 12, 12, 1))
    for bad in ("conv3", "pool1", "fc"):
        with pytest.raises(ValueError, match=r"conv layers: conv1, conv2$"):
            explain.grad_cam(model, variables, x, layer=bad)
    mlp = models.create("mlp")
    with pytest.raises(ValueError, match="no conv layer"):
        explain.grad_cam(mlp, _init(mlp, (12, 12, 1)), x)


@pytest.mark.parametrize("method", explain.METHODS)
def test_each_image_is_explained_independently_of_its_batch(method):
    model = models.create("vgg_bn", widths=[4, 8])  # batch norm (running statistics) and dropout (off)
    variables = _init(model, (8, 8, 1))
    x = jax.random.normal(jax.random.key(7), (3, 8, 8, 1))
    # (smoothgrad draws one noise tensor per batch: without noise its maps must still agree)
    settings = {"smoothgrad": {"samples": 3, "noise": 0.0}, "integrated_gradients": {"steps": 8}}.get(method, {})
    batch = explain.attribute(method, model, variables, x, jnp.array([0, 1, 2]), **settings)
    assert batch.shape == x.shape and batch.dtype == jnp.float32
    for i in range(3):
        alone = explain.attribute(method, model, variables, x[i:i + 1], jnp.array([i]), **settings)
        np.testing.assert_allclose(batch[i], alone[0], rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="unknown attribution method 'saliency'; methods: gradients"):
        explain.attribute("saliency", model, variables, x)


def test_features_are_the_layer_outputs_batched_and_checked():
    model = models.create("padded_cnn")
    variables = _init(model, (12, 12, 1))
    x = jax.random.normal(jax.random.key(8), (5, 12, 12, 1))
    k = variables["params"]["conv1"]["kernel"]
    b = variables["params"]["conv1"]["bias"]
    want = jax.nn.relu(jax.lax.conv_general_dilated(x, k, (1, 1), ((2, 2), (2, 2)),
                                                    dimension_numbers=("NHWC", "HWIO", "NHWC")) + b)
    got = features.features(model, variables, x, "conv1", batch_size=2)  # 3 batches, the last padded
    assert got.shape == (5, 12, 12, 16)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(features.features(model, variables, x, "pool2"),
                               features.features(model, variables, x, "pool2", batch_size=3), rtol=1e-6)
    assert features.features(model, variables, x, "pool2").shape == (5, 3, 3, 32)
    assert features.conv_layers(model, (12, 12, 1)) == ["conv1", "conv2"]
    with pytest.raises(ValueError, match=r"'conv9' is not a layer .* layers: conv1, pool1, conv2, pool2, fc$"):
        features.features(model, variables, x, "conv9")
    resnet = models.create("resnet20", stage_sizes=[1, 1, 1], shortcut="B")  # nested names, lists in options
    assert "stage2_block1/shortcut" in features.conv_layers(resnet, (8, 8, 3))
    v = _init(resnet, (8, 8, 3))
    assert features.features(resnet, v, jnp.ones((2, 8, 8, 3)), "stage2_block1/conv2").shape == (2, 4, 4, 32)
