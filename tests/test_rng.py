"""cnnjax.train.rng, the table of a run's random streams, pinned: bit-identical resume (and every seeded
result) depends on these fold_in constants, so changing one must fail a test, not pass silently.

The expected keys below are literal uint32 pairs computed once with the constants (0, 1, 2, 1)
and JAX's default threefry PRNG; a change of a constant, of the order of the folds, or of JAX's
key derivation changes them."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cnnjax.train import rng, loop, state as train_state
from cnnjax.train.step import StepSpec, augment_batch, cross_entropy, train_step


def test_the_fold_in_constants_are_pinned():
    assert (rng.PARAMS, rng.DATA_ORDER, rng.STEP, rng.AUGMENT) == (0, 1, 2, 1)


def test_the_augmentation_family_sub_streams_are_pinned():
    """flips/crops draw from the augmentation key itself (as before the other families existed);
    each other family from its own fold_in of it."""
    from cnnjax.augment import FAMILY
    assert FAMILY == {"affine": 1, "policy": 2, "erasing": 3, "mix": 4}
    key = rng.augment_key(rng.step_key(rng.run_key(0), 5))
    np.testing.assert_array_equal(jax.random.fold_in(key, FAMILY["policy"]), [4000736132, 789249098])


def test_derived_keys_are_pinned():
    r = rng.run_key(0)
    np.testing.assert_array_equal(r, np.array([0, 0], np.uint32))
    np.testing.assert_array_equal(rng.params_key(r), [1797259609, 2579123966])
    np.testing.assert_array_equal(rng.epoch_key(r, 3), [2488719848, 3371676629])
    np.testing.assert_array_equal(rng.step_key(r, 5), [1198101189, 3330557710])
    np.testing.assert_array_equal(rng.augment_key(rng.step_key(r, 5)), [1325577284, 1363261173])


def test_each_stream_is_the_fold_in_chain_it_documents():
    f = jax.random.fold_in
    r = jax.random.PRNGKey(11)
    np.testing.assert_array_equal(rng.params_key(r), f(r, 0))
    np.testing.assert_array_equal(rng.epoch_key(r, 4), f(f(r, 1), 4))
    np.testing.assert_array_equal(rng.step_key(r, 9), f(f(r, 2), 9))
    np.testing.assert_array_equal(rng.augment_key(f(f(r, 2), 9)), f(f(f(r, 2), 9), 1))


def test_the_data_order_is_pinned():
    """loop.epoch_permutation (both the in-memory and the streaming path) draws from the table's
    data-order stream; the permutation itself is pinned too."""
    r = rng.run_key(7)
    got = np.asarray(loop.epoch_permutation(r, 2, 10))
    np.testing.assert_array_equal(got, jax.random.permutation(rng.epoch_key(r, 2), 10))
    np.testing.assert_array_equal(got, [3, 7, 1, 2, 8, 9, 4, 6, 5, 0])


class _DropoutNet(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Dropout(0.5, deterministic=not train)(x.reshape(x.shape[0], -1))
        return nn.Dense(3)(x)


def test_init_and_step_draw_from_the_table():
    """init_state's parameters come from params_key; train_step's augmentation from augment_key of
    step_key(rng, step) and its dropout from step_key itself: the step's loss, recomputed by hand
    from those keys, is bit for bit the step's."""
    model = _DropoutNet()
    tx = optax.sgd(0.1)
    state = train_state.init_state(model, tx, 5, (4, 4, 1))
    want = model.init(jax.random.fold_in(jax.random.PRNGKey(5), 0), jnp.zeros((1, 4, 4, 1)))
    np.testing.assert_array_equal(state.params["Dense_0"]["kernel"], want["params"]["Dense_0"]["kernel"])

    images = jnp.arange(6 * 16, dtype=jnp.uint8).reshape(6, 4, 4, 1) * 2
    labels = jnp.array([0, 1, 2, 0, 1, 2], jnp.int32)
    spec = StepSpec(model, tx, 3, 0.5, 0.25, 6, augment="flip_crop", crop_padding=1)
    state = state._replace(step=jnp.asarray(7, jnp.int32))
    params = state.params
    _, metrics = train_step(spec, state, (images, labels))

    f = jax.random.fold_in
    key = f(f(jax.random.PRNGKey(5), 2), 7)
    x = (augment_batch(f(key, 1), images, "flip_crop", 1).astype(jnp.float32) / 255 - 0.5) / 0.25
    logits = model.apply({"params": params}, x, train=True, rngs={"dropout": key})
    assert float(metrics["loss"]) == float(cross_entropy(logits, labels, 3).mean())
    # and the keys matter: another dropout key gives another loss
    other = model.apply({"params": params}, x, train=True, rngs={"dropout": f(key, 99)})
    assert float(metrics["loss"]) != float(cross_entropy(other, labels, 3).mean())
