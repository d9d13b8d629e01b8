"""cnnjax.interpret.attacks on a small trained MLP: eps 0 is the clean evaluation exactly, the
perturbations stay in the eps-ball and [0, 255], PGD is never weaker than FGSM, accuracy falls
monotonically in eps to (near) zero -- the usual checks against gradient masking."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnnjax import data, models
from cnnjax.train import evaluation
from cnnjax.interpret import attacks


@pytest.fixture(scope="module")
def trained():
    """An MLP trained for 8 Adam steps on the synthetic bars (~1 s): undefended, accurate but not
    perfect (so that the clean accuracy pins something)."""
    ds = data.synthetic(num_train=1024, num_test=200, seed=0)
    model = models.create("mlp", ds.num_classes, hidden=(64,))
    variables = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
    tx = optax.adam(3e-3)
    opt = tx.init(variables)
    logits_fn = evaluation.make_logits_fn(model, ds.mean, ds.std)

    @jax.jit
    def step(variables, opt, x, y):
        loss = lambda v: optax.softmax_cross_entropy_with_integer_labels(logits_fn(v, x), y).mean()
        g = jax.grad(loss)(variables)
        updates, opt = tx.update(g, opt)
        return optax.apply_updates(variables, updates), opt

    for i in range(8):
        b = (i * 128) % 1024
        variables, opt = step(variables, opt, ds.train_images[b:b + 128], ds.train_labels[b:b + 128])
    clean = evaluation.evaluate(model, variables, ds)
    assert 0.6 < clean["accuracy"] < 1, clean["accuracy"]
    return model, variables, ds, clean


def test_eps_zero_is_the_clean_evaluation_exactly(trained):
    model, variables, ds, clean = trained
    for kind in attacks.ATTACKS:
        [row] = attacks.attack_evaluation(model, variables, ds, kind, [0.0], batch_size=1000)
        assert row["accuracy"] == clean["accuracy"] and row["loss"] == clean["loss"], (kind, row)
        [row] = attacks.attack_evaluation(model, variables, ds, kind, [0.0], batch_size=64)  # 4 batches, 1 padded
        assert row["accuracy"] == clean["accuracy"], (kind, row)
        attack = attacks.make_attack(model, ds.mean, ds.std, ds.num_classes, kind)
        adv = attack(variables, ds.test_images, ds.test_labels, jnp.float32(0), jnp.float32(0), jax.random.key(0))
        np.testing.assert_array_equal(np.asarray(adv), ds.test_images.astype(np.float32))


@pytest.mark.parametrize("kind", attacks.ATTACKS)
def test_perturbations_stay_in_the_ball_and_the_pixel_range(trained, kind):
    model, variables, ds, _ = trained
    attack = attacks.make_attack(model, ds.mean, ds.std, ds.num_classes, kind, steps=5)
    x, y = ds.test_images[:100], ds.test_labels[:100]
    for eps in (3.0, 8.0, 40.0):
        adv = np.asarray(attack(variables, x, y, jnp.float32(eps), jnp.float32(eps / 2), jax.random.key(1)))
        assert adv.dtype == np.float32 and adv.shape == x.shape
        assert np.abs(adv - x).max() <= eps + 1e-4
        assert adv.min() >= 0 and adv.max() <= 255
        assert np.abs(adv - x).max() > 0.5 * eps  # it does move (within the range)


def test_pgd_is_never_weaker_than_fgsm_and_accuracy_falls_to_zero(trained):
    model, variables, ds, clean = trained
    eps = [0.0, 2.0, 4.0, 8.0, 16.0, 64.0]
    fgsm = [r["accuracy"] for r in attacks.attack_evaluation(model, variables, ds, "fgsm", eps)]
    pgd = [r["accuracy"] for r in attacks.attack_evaluation(model, variables, ds, "pgd", eps, steps=10)]
    assert all(p <= f for p, f in zip(pgd, fgsm)), (pgd, fgsm)
    assert pgd[1] < clean["accuracy"]  # 2 grey levels already cost accuracy: an undefended net
    for accs in (fgsm, pgd):
        assert all(b <= a for a, b in zip(accs, accs[1:])), accs  # monotone in eps
    assert pgd[-1] <= 0.02, pgd  # (near) zero at a large eps: no gradient masking


def test_seeded_and_step_size_default(trained):
    model, variables, ds, _ = trained
    a = attacks.attack_evaluation(model, variables, ds, "pgd", [4.0], steps=4, seed=3)
    assert a == attacks.attack_evaluation(model, variables, ds, "pgd", [4.0], steps=4, seed=3)
    assert a[0]["step_size"] == pytest.approx(2.5 * 4.0 / 4) and a[0]["steps"] == 4


def test_bad_settings_are_one_line_value_errors():
    with pytest.raises(ValueError, match="unknown attack 'cw'; choose from fgsm, pgd"):
        attacks.check_settings("cw", [1.0])
    with pytest.raises(ValueError, match=r"eps must be >= 0 \(pixel units of 255\), got -1.0"):
        attacks.check_settings("fgsm", [2.0, -1.0])
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        attacks.check_settings("pgd", [2.0], steps=0)
    with pytest.raises(ValueError, match="step_size must be > 0"):
        attacks.check_settings("pgd", [2.0], step_size=0.0)
