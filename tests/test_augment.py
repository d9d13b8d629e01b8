"""cnnjax.augment: every op against an independent reference (jnp.rot90, cnnjax.interpret.shift's shift,
Pillow's ImageOps, hand-computed losses and areas), identity parameters, determinism by key,
and the step's use of it (label weights through the loss; streaming and in-memory alike)."""
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image, ImageOps

from cnnjax import data, models
from cnnjax.train import optim, rng, streaming, loop as train
from cnnjax.augment import Augmentation, colour, erasing, flip_crop, geometric, mixing, policies
from cnnjax.train.config import TrainConfig
from cnnjax.interpret.shift import shift_images
from cnnjax.train.step import StepSpec, cross_entropy, prepare_batch, train_step
from cnnjax.train.state import init_state


def batch(c=1, b=6, h=9, w=9, seed=0):
    """Random uint8 images with the cases the colour ops branch on: a narrow range, a constant
    image, an image of a few values."""
    r = np.random.default_rng(seed)
    x = r.integers(0, 256, (b, h, w, c), dtype=np.uint8)
    x[1] = x[1] // 4 + 60
    x[2] = 17
    x[3] = r.integers(0, 3, x[3].shape)
    return x


def pillow(op, x):
    """``op`` (a PIL.ImageOps function of one image) on every image of NHWC uint8 ``x``."""
    out = [np.asarray(op(Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im))) for im in x]
    return np.stack(out).reshape(x.shape)


# --------------------------------------------------------------------------- geometric


@pytest.mark.parametrize("interpolation", geometric.INTERPOLATIONS)
@pytest.mark.parametrize("c", [1, 3])
def test_quarter_turns_equal_rot90(interpolation, c):
    x = batch(c, h=8, w=8)
    for quarter in (1, 2, 3, -1):
        got = geometric.affine(jnp.asarray(x), rotate=90.0 * quarter, interpolation=interpolation)
        np.testing.assert_array_equal(got, np.rot90(x, quarter, axes=(1, 2)))


@pytest.mark.parametrize("interpolation", geometric.INTERPOLATIONS)
def test_whole_pixel_translations_equal_the_shift_function(interpolation):
    x = batch(1, h=7, w=10)
    for dy, dx in [(0, 1), (2, -3), (-1, 0), (6, 9), (-7, 0)]:
        got = geometric.affine(jnp.asarray(x), translate=(float(dy), float(dx)), interpolation=interpolation)
        np.testing.assert_array_equal(got, shift_images(x, dy, dx))


@pytest.mark.parametrize("interpolation,order", [("bilinear", 1), ("nearest", 0)])
def test_the_warp_equals_dm_pix_affine_transform(interpolation, order):
    """Random rotations, scales, shears and sub-pixel shifts of colour images, fill 7: our warp
    equals dm-pix's (mode 'constant'; order 0 is jax.scipy.ndimage.map_coordinates') given the
    same inverse map, pixel for pixel, and that map is the forward map's inverse (float64's)."""
    import dm_pix
    r = np.random.default_rng(1)
    x = jnp.asarray(batch(3, b=24, h=14, w=11))
    linear, shift = geometric.matrices(24, rotate=r.uniform(-40, 40, 24), scale=r.uniform(0.7, 1.3, 24),
                                       shear_x=r.uniform(-.3, .3, 24), shear_y=r.uniform(-.3, .3, 24),
                                       translate=(r.uniform(-3, 3, 24), r.uniform(-3, 3, 24)))
    inverse, offset = geometric.inverse_map(linear, shift, 14, 11)
    # the map is the forward map's inverse (to its 2**-16 quantisation), about the centre (6.5, 5)
    np.testing.assert_allclose(inverse, np.linalg.inv(np.asarray(linear, np.float64)), atol=2 ** -16)
    centre = np.array([6.5, 5.0])
    np.testing.assert_allclose(offset, centre - np.einsum("bij,bj->bi", np.asarray(inverse, np.float64),
                                                          centre + np.asarray(shift)), atol=2 ** -15)

    def one(image, inv, off):
        m = jnp.eye(4, dtype=jnp.float32).at[:2, :2].set(inv).at[:2, 3].set(off)
        return dm_pix.affine_transform(image, m, order=order, mode="constant", cval=7.0)

    want = jnp.clip(jnp.round(jax.vmap(one)(x.astype(jnp.float32), inverse, offset)), 0, 255).astype(jnp.uint8)
    got = geometric.warp(x, linear, shift, interpolation, fill=7)
    np.testing.assert_array_equal(got, want)
    assert (np.asarray(got) == 7).any() and not np.array_equal(got, x)


def test_fill_is_the_value_of_pixels_from_outside():
    x = batch(1, h=6, w=6)
    got = np.asarray(geometric.affine(jnp.asarray(x), translate=(0.0, 2.0), fill=200))
    assert (got[:, :, :2] == 200).all() and np.array_equal(got[:, :, 2:], x[:, :, :-2])


def test_scale_and_shear_move_pixels_as_their_matrices_say():
    """Scale 2 about the centre of a 5x5 image: output (i, j) reads input (2 + (i-2)/2, ...);
    shear_x = 1: output (i, j) reads input (i, j - (i - 2)) (nearest; integer positions)."""
    x = batch(1, b=4, h=5, w=5)
    got = np.asarray(geometric.affine(jnp.asarray(x), shear_x=1.0, interpolation="nearest"))
    want = np.zeros_like(x)
    for i in range(5):
        for j in range(5):
            src = j - (i - 2)
            want[:, i, j] = x[:, i, src] if 0 <= src < 5 else 0
    np.testing.assert_array_equal(got, want)
    got = np.asarray(geometric.affine(jnp.asarray(x), scale=2.0, interpolation="bilinear")).astype(float)
    centre = x[:, 2, 2].astype(float)
    np.testing.assert_array_equal(got[:, 2, 2], centre)
    np.testing.assert_allclose(got[:, 2, 3], np.round((x[:, 2, 2].astype(float) + x[:, 2, 3]) / 2), atol=0.5 + 1e-6)


def test_identity_parameters_leave_the_batch_unchanged():
    x = jnp.asarray(batch(3))
    for interpolation in geometric.INTERPOLATIONS:
        np.testing.assert_array_equal(geometric.affine(x, interpolation=interpolation), x)
    np.testing.assert_array_equal(geometric.random_affine(jax.random.key(0), x), x)
    for op, identity in [(colour.brightness, 1.0), (colour.contrast, 1.0), (colour.color, 1.0),
                         (colour.sharpness, 1.0), (colour.posterize, 8), (colour.solarize, 256)]:
        np.testing.assert_array_equal(op(x, identity), x, err_msg=op.__name__)
    np.testing.assert_array_equal(policies.rand_augment(jax.random.key(0), x, num_ops=0), x)
    np.testing.assert_array_equal(erasing.random_erasing(jax.random.key(0), x, prob=0.0), x)
    mixed, w = mixing.mix(jax.random.key(0), x, "cutmix", prob=0.0)
    np.testing.assert_array_equal(mixed, x.astype(jnp.float32))
    np.testing.assert_array_equal(w, 1.0)
    mixed, w = mixing.mix(jax.random.key(0), x, "mixup", prob=0.0)
    np.testing.assert_array_equal(mixed, x.astype(jnp.float32))
    np.testing.assert_array_equal(Augmentation().pixels(jax.random.key(0), x), x)


# --------------------------------------------------------------------------- colour


@pytest.mark.parametrize("c", [1, 3])
def test_equalize_posterize_solarize_equal_pillow(c):
    x = batch(c)
    np.testing.assert_array_equal(colour.equalize(jnp.asarray(x)), pillow(ImageOps.equalize, x))
    for bits in range(1, 9):
        np.testing.assert_array_equal(colour.posterize(jnp.asarray(x), bits),
                                      pillow(lambda im: ImageOps.posterize(im, bits), x))
    for threshold in (0, 1, 100, 128, 255, 256):
        np.testing.assert_array_equal(colour.solarize(jnp.asarray(x), threshold),
                                      pillow(lambda im: ImageOps.solarize(im, threshold), x))


@pytest.mark.parametrize("c", [1, 3])
def test_autocontrast_is_the_exact_rule_and_pillow_but_for_its_float64_rounding(c):
    x = batch(c, b=12, seed=3)
    for i in range(4, 12):  # ranges where Pillow's v * s + o lands under an integer
        x[i] = np.clip(x[i], 200 - 20 * (i - 4), 251 - 3 * i)
    got = np.asarray(colour.autocontrast(jnp.asarray(x)))
    exact = np.empty_like(x)
    for n in range(len(x)):
        for ch in range(c):
            lo, hi = int(x[n, ..., ch].min()), int(x[n, ..., ch].max())
            f = (lambda v: v) if hi == lo else (lambda v: int(Fraction((v - lo) * 255, hi - lo)))
            exact[n, ..., ch] = np.vectorize(f)(x[n, ..., ch].astype(int))
    np.testing.assert_array_equal(got, exact)
    ref = pillow(ImageOps.autocontrast, x)
    differ = got != ref
    assert (got[differ].astype(int) - ref[differ] == 1).all()  # Pillow one less, at exact integers only
    lo = x.min(axis=(1, 2), keepdims=True).astype(int)
    hi = x.max(axis=(1, 2), keepdims=True).astype(int)
    on_integer = ((x.astype(int) - lo) * 255) % np.maximum(hi - lo, 1) == 0
    assert on_integer[differ].all()


def test_enhancements_blend_with_their_degenerate_images():
    x = batch(3)
    xf = x.astype(float)
    np.testing.assert_array_equal(colour.brightness(jnp.asarray(x), 0.0), 0)
    np.testing.assert_array_equal(colour.brightness(jnp.asarray(x), 0.5), np.round(xf * 0.5))
    grey = np.round((xf[..., 0] * 299 + xf[..., 1] * 587 + xf[..., 2] * 114) / 1000)[..., None]
    np.testing.assert_array_equal(colour.color(jnp.asarray(x), 0.0), np.broadcast_to(grey, x.shape))
    mean = np.round(grey.mean(axis=(1, 2, 3), keepdims=True))
    np.testing.assert_array_equal(colour.contrast(jnp.asarray(x), 0.0), np.broadcast_to(mean, x.shape))
    np.testing.assert_array_equal(colour.contrast(jnp.asarray(x), 2.0), np.clip(np.round(mean + 2 * (xf - mean)), 0, 255))
    # sharpness 0 is PIL's SMOOTH filter inside, the border as it was
    smooth = np.asarray(colour.sharpness(jnp.asarray(x), 0.0)).astype(float)
    k = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]]) / 13
    want = np.round(sum(k[a, b] * xf[:, a:a + 7, b:b + 7] for a in range(3) for b in range(3)))
    np.testing.assert_array_equal(smooth[:, 1:-1, 1:-1], want)
    np.testing.assert_array_equal(smooth[:, 0], xf[:, 0])


# --------------------------------------------------------------------------- policies


def test_the_policies_op_lists():
    assert len(policies.ops(1)) == 13 and "color" not in policies.ops(1)
    assert len(policies.ops(3)) == 14 and policies.ops(3)[6:8] == ("brightness", "color")


@pytest.mark.parametrize("c", [1, 3])
def test_each_policy_op_is_the_op_it_names(c):
    """apply_ops with every image given the same op equals the op applied directly."""
    x = jnp.asarray(batch(c, h=28, w=28))
    b = x.shape[0]
    names = policies.ops(c)
    run = lambda name, bin_, sign, policy="trivialaugment": policies.apply_ops(
        x, jnp.full((b,), names.index(name)), jnp.full((b,), bin_), jnp.full((b,), sign), policy)
    np.testing.assert_array_equal(run("identity", 30, 1.0), x)
    np.testing.assert_array_equal(run("translate_x", 15, 1.0), shift_images(np.asarray(x), 0, 16))  # 32 * 15/30
    np.testing.assert_array_equal(run("translate_y", 15, -1.0), shift_images(np.asarray(x), -16, 0))
    np.testing.assert_array_equal(run("translate_x", 30, 1.0, "randaugment"),
                                  shift_images(np.asarray(x), 0, int(150 / 331 * 28)))
    np.testing.assert_array_equal(run("rotate", 30, 1.0, "randaugment"), geometric.affine(x, rotate=30.0,
                                                                                          interpolation="nearest"))
    factor = 1.0 + 0.99 * (jnp.full((b,), 10, jnp.float32) / 30) * -1.0  # bin 10 of 30, sign -1
    np.testing.assert_allclose(factor, 1 - 0.99 / 3, rtol=1e-6)
    np.testing.assert_array_equal(run("brightness", 10, -1.0), colour.brightness(x, factor))
    np.testing.assert_array_equal(run("posterize", 30, 1.0), colour.posterize(x, 2))
    np.testing.assert_array_equal(run("posterize", 30, 1.0, "randaugment"), colour.posterize(x, 4))
    np.testing.assert_array_equal(run("solarize", 15, 1.0), colour.solarize(x, 127.5))
    np.testing.assert_array_equal(run("equalize", 3, 1.0), colour.equalize(x))
    np.testing.assert_array_equal(run("autocontrast", 3, 1.0), colour.autocontrast(x))


@pytest.mark.parametrize("c,b", [(1, 50), (3, 24)])
def test_each_image_gets_the_op_it_drew_whichever_way_the_layer_computes_it(c, b, monkeypatch):
    """A layer computes the warp, sharpness, equalize and autocontrast only on the images that drew
    them (gathered into a block of policies.capacity rows, scattered back; more than that: every
    row).  Image i of a mixed batch equals op[i] applied to image i alone, on both paths."""
    x = jnp.asarray(batch(c, b=b, h=16, w=18, seed=3))
    r = np.random.default_rng(4)
    names = policies.ops(c)
    op = jnp.asarray(r.integers(0, len(names), b))
    op = op.at[:4].set(jnp.array([names.index(n) for n in ("equalize", "sharpness", "rotate", "autocontrast")]))
    bins, signs = jnp.asarray(r.integers(0, 31, b)), jnp.asarray(r.choice([-1.0, 1.0], b))
    for policy in ("randaugment", "trivialaugment"):
        alone = np.concatenate([policies.apply_ops(x[i:i + 1], op[i:i + 1], bins[i:i + 1], signs[i:i + 1], policy)
                                for i in range(b)])
        compact = policies.apply_ops(x, op, bins, signs, policy)
        np.testing.assert_array_equal(compact, alone)
        with monkeypatch.context() as m:
            m.setattr(policies, "capacity", lambda batch, share: 0)  # never room: every row computed
            np.testing.assert_array_equal(policies.apply_ops(x, op, bins, signs, policy), alone)


def test_policy_draws_are_uniform_per_image_and_layer():
    """One random-bits call gives each layer and image its op (uniform over the ops), sign and bin."""
    op, sign, bins = policies.draws(jax.random.key(0), 2, 20000, 13)
    assert op.shape == sign.shape == bins.shape == (2, 20000)
    counts = np.bincount(np.asarray(op).ravel(), minlength=13)
    expected = 40000 / 13
    assert ((counts - expected) ** 2 / expected).sum() < 35  # chi-square, 12 dof: p ~ 5e-4
    assert set(np.unique(np.asarray(sign))) == {-1.0, 1.0} and abs(float(sign.mean())) < 0.02
    assert np.asarray(bins).min() == 0 and np.asarray(bins).max() == 30
    assert np.mean(np.asarray(op[0]) == np.asarray(op[1])) < 0.1  # the layers draw apart
    assert policies.capacity(50, 1 / 13) == 10 and policies.capacity(50, 5 / 13) == 30 and policies.capacity(4, 1) == 4


@pytest.mark.parametrize("family", ["randaugment", "trivialaugment", "affine", "erasing", "mixup_cutmix"])
def test_the_same_key_gives_the_same_batch_and_another_key_another(family):
    aug = {"randaugment": Augmentation(policy="randaugment"), "trivialaugment": Augmentation(policy="trivialaugment"),
           "affine": Augmentation(affine_rotate=20.0, affine_translate=0.1, affine_scale=0.1, affine_shear=5.0),
           "erasing": Augmentation(erasing_prob=1.0), "mixup_cutmix": Augmentation(mix="mixup_cutmix")}[family]
    x = jnp.asarray(batch(3, b=16, h=12, w=12))

    def once(step):
        key = rng.augment_key(rng.step_key(rng.run_key(0), step))
        pixels = aug.pixels(key, x)
        return aug.mix_batch(key, pixels.astype(jnp.float32))[0] if aug.mixes else pixels

    np.testing.assert_array_equal(once(3), once(3))
    assert not np.array_equal(once(3), once(4))
    assert not np.array_equal(once(3), x)


# --------------------------------------------------------------------------- erasing


@pytest.mark.parametrize("value", [0, 255, -1])
def test_erasing_sets_one_rectangle_of_the_drawn_size(value):
    x = jnp.asarray(np.full((32, 10, 12, 3), 100, np.uint8))
    key = jax.random.key(7)
    got = np.asarray(erasing.random_erasing(key, x, prob=1.0, area=(0.1, 0.3), value=value))
    boxes = np.asarray(erasing.boxes(jax.random.split(key, 3)[1], 32, 10, 12, (0.1, 0.3), (0.3, 3.3)))
    for img, (t, l, h, w) in zip(got, boxes):
        inside = np.zeros((10, 12), bool)
        inside[t:t + h, l:l + w] = True
        assert (img[~inside] == 100).all()
        if value >= 0:
            assert (img[inside] == value).all()
        else:
            assert len(np.unique(img[inside])) > 5
        assert 0.1 * 120 * 0.5 <= h * w <= 0.3 * 120 * 1.5  # rounding of the sides


def test_erasing_probability_per_image():
    x = jnp.asarray(np.full((400, 6, 6, 1), 100, np.uint8))
    got = np.asarray(erasing.random_erasing(jax.random.key(1), x, prob=0.25))
    erased = (got != 100).any(axis=(1, 2, 3)).mean()
    assert 0.18 < erased < 0.32


# --------------------------------------------------------------------------- mixing


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_mixed_loss_equals_the_mixed_loss_by_hand(smoothing):
    k = 5
    logits = jax.random.normal(jax.random.key(0), (8, k))
    labels = jnp.array([0, 1, 2, 3, 4, 0, 1, 2])
    x = jnp.asarray(batch(1, b=8)).astype(jnp.float32)
    mixed, w = mixing.mixup(jax.random.key(1), x, alpha=0.4)
    np.testing.assert_allclose(mixed, w[:, None, None, None] * x + (1 - w[:, None, None, None]) * jnp.roll(x, 1, 0),
                               rtol=1e-6)
    got = optax.softmax_cross_entropy(logits, mixing.targets(labels, w, k, smoothing))
    partner = jnp.roll(labels, 1)
    by_hand = w * cross_entropy(logits, labels, k, smoothing) + (1 - w) * cross_entropy(logits, partner, k, smoothing)
    np.testing.assert_allclose(got, by_hand, rtol=1e-5)


def test_cutmix_weights_equal_the_area_not_pasted():
    b, h, w = 64, 11, 13
    x = jnp.asarray(np.arange(b, dtype=np.uint8)[:, None, None, None] * np.ones((1, h, w, 2), np.uint8))
    got, weights = mixing.cutmix(jax.random.key(3), x, alpha=1.0)
    got = np.asarray(got)
    own = (got == np.asarray(x)).all(-1).mean(axis=(1, 2))
    np.testing.assert_allclose(weights, own, rtol=1e-6)
    taken_from_partner = (got == np.roll(np.asarray(x), 1, 0)).all(-1) | (got == np.asarray(x)).all(-1)
    assert taken_from_partner.all()
    assert 0.1 < float(weights.mean()) < 0.9 and (weights < 1).any()


def test_mixup_cutmix_switches_per_image():
    x = jnp.asarray(batch(1, b=64, h=10, w=10))
    mixed, w = mixing.mix(jax.random.key(0), x, "mixup_cutmix", alpha=1.0)
    xm, wm = mixing.mixup(jax.random.split(jax.random.key(0), 3)[0], x, 1.0)
    is_mixup = np.asarray(w == wm)
    assert 10 < is_mixup.sum() < 54
    np.testing.assert_array_equal(np.asarray(mixed)[is_mixup], np.asarray(xm)[is_mixup])


# --------------------------------------------------------------------------- the step


def _spec(model, tx, ds, **over):
    cfg = TrainConfig(model="padded_cnn", batch_size=32, epochs=2, label_smoothing=0.1, **over)
    return StepSpec.from_config(cfg, model, tx, num_classes=ds.num_classes, mean=ds.mean, std=ds.std)


def test_the_step_loss_on_mixed_labels_is_the_weighted_loss_of_both_labels():
    ds = data.synthetic(64, 16, seed=0)
    model = models.create("padded_cnn", ds.num_classes)
    tx = optax.sgd(0.0)
    spec = _spec(model, tx, ds, mix="mixup", augment_policy="randaugment")
    state = init_state(model, tx, 0, ds.image_shape)._replace(step=jnp.asarray(5, jnp.int32))
    images, labels = jnp.asarray(ds.train_images[:32]), jnp.asarray(ds.train_labels[:32])
    params = state.params
    _, metrics = train_step(spec, state, (images, labels))
    key = rng.augment_key(rng.step_key(state.rng, 5))
    x = data.normalize(spec.augmentation.pixels(key, images), ds.mean, ds.std)
    x, w = spec.augmentation.mix_batch(key, x)
    logits = model.apply({"params": params}, x, train=True)
    k, s = ds.num_classes, 0.1
    by_hand = w * cross_entropy(logits, labels, k, s) + (1 - w) * cross_entropy(logits, jnp.roll(labels, 1), k, s)
    np.testing.assert_allclose(float(metrics["loss"]), float(by_hand.mean()), rtol=1e-5)
    assert float(w.min()) < 1
    # prepare_batch is a pure function of the key
    a, b = prepare_batch(spec, key, images, labels), prepare_batch(spec, key, images, labels)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("over", [dict(augment_policy="randaugment", mix="mixup"),
                                  dict(augment="flip_crop", augment_policy="trivialaugment", erasing_prob=0.5,
                                       affine_rotate=10.0, mix="cutmix")])
def test_streamed_and_in_memory_epochs_augment_alike(over):
    """The same epoch through streaming.StreamedBatches and train.InMemoryBatches per step:
    bit-identical parameters and metrics; as one scan (XLA compiles the loop as a whole):
    close, as tests/test_train.py holds the scan to without augmentation."""
    ds = data.synthetic(96, 16, seed=1)
    model = models.create("padded_cnn", ds.num_classes)
    cfg = TrainConfig(model="padded_cnn", batch_size=32, epochs=1, **over)
    tx = optim.make_optimizer(cfg, 3)
    spec = StepSpec.from_config(cfg, model, tx, num_classes=ds.num_classes, mean=ds.mean, std=ds.std)
    images, labels = jax.device_put((ds.train_images, ds.train_labels))
    results = []
    for run in (train.make_epoch_runner(spec, fused=False), train.make_epoch_runner(spec, fused=True),
                streaming.make_epoch_runner(spec, ds, epochs=1, workers=0)):
        state, metrics = run(init_state(model, tx, 0, ds.image_shape), images, labels, 1)
        results.append((jax.tree.leaves(state.params), metrics))
    (steps, steps_metrics), (scan, scan_metrics), (streamed, streamed_metrics) = results
    assert streamed_metrics == steps_metrics
    for a, b in zip(streamed, steps, strict=True):
        np.testing.assert_array_equal(a, b)
    assert scan_metrics["train_accuracy"] == steps_metrics["train_accuracy"]
    np.testing.assert_allclose(scan_metrics["train_loss"], steps_metrics["train_loss"], rtol=1e-5)
    for a, b in zip(scan, steps, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_the_config_choices_are_the_packages():
    """cnnjax.train.config names the choices without importing JAX; they must be the package's."""
    from cnnjax.train import config
    from cnnjax.augment import pipeline
    assert config.AUGMENTATIONS == flip_crop.KINDS and config.MIXES == mixing.KINDS
    assert config.AUGMENT_POLICIES == pipeline.POLICIES
    assert set(config.INTERPOLATIONS) == set(geometric.INTERPOLATIONS)
    names = {f.name for f in __import__("dataclasses").fields(TrainConfig)}
    aug = Augmentation()
    assert aug == __import__("cnnjax.train.step", fromlist=["x"]).augmentation_of(TrainConfig())
    assert {"affine_rotate", "augment_policy", "erasing_prob", "mix", "mix_alpha"} <= names


def test_flip_crop_is_the_old_step_augment_batch():
    from cnnjax.train import step
    assert step.augment_batch is flip_crop.flip_crop
    with pytest.raises(ValueError, match="augment kind"):
        flip_crop.flip_crop(jax.random.key(0), jnp.zeros((1, 4, 4, 1), jnp.uint8), "flop")


# --------------------------------------------------------------------------- resume


AUGMENTED = dict(augment="flip_crop", affine_rotate=10.0, affine_translate=0.05, augment_policy="randaugment",
                 erasing_prob=0.3, mix="mixup_cutmix", mix_alpha=0.4)


def test_a_run_with_every_family_killed_and_rerun_equals_the_uninterrupted_one(tmp_path):
    """RandAugment, MixUp/CutMix, erasing, an affine warp and flips/crops in one run: SIGKILL
    after its first checkpoint, rerun the same command; parameters, metrics and test numbers
    equal those of the run trained without interruption (tests/test_faults.py's pattern)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from test_faults import REPO, SMALL, assert_equals_reference, checkpointed, train as train_run
    reference = tmp_path / "reference"
    train_run(reference, **AUGMENTED)
    workdir = tmp_path / "killed"
    flags = [f"--config.{k}={v}" for k, v in {**SMALL, **AUGMENTED}.items()] + [f"--workdir={workdir}"]
    command = [sys.executable, "-m", "experiments.train", *flags]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not checkpointed(workdir) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert checkpointed(workdir) and not (workdir / "summary.json").exists(), "killed too late or too early"
    rerun = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                           env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming" in rerun.stdout, rerun.stdout
    assert_equals_reference(workdir, reference)


def test_importing_the_package_does_not_start_jax():
    """No array at import time: a run sets its XLA threads (cnnjax.xla_cpu) before JAX's backend
    starts, and a module-level jnp constant once started it first (every sweep run failed)."""
    import subprocess
    import sys
    from test_faults import REPO
    code = ("import cnnjax.train.step, cnnjax.augment, experiments.augmentations, jax._src.xla_bridge as xb; "
            "assert not xb._backends, 'a backend started at import'")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
