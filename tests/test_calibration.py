"""cnnjax.interpret.calibration on constructed cases with known answers: NLL, ECE's binning,
the temperature that minimises NLL, and that temperature scaling is fitted on validation only."""
import numpy as np
import pytest

from cnnjax import data
from cnnjax.interpret import calibration as cal


def probs_with_confidence(conf, correct):
    """Two-class probabilities whose top class has probability ``conf``; the label is the top class
    when ``correct``, the other one otherwise."""
    p = np.stack([conf, 1 - np.asarray(conf)], -1)
    return p, np.where(correct, 0, 1)


def test_nll_by_hand():
    logits = np.log([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]])
    assert cal.nll(logits, [0, 1]) == pytest.approx(-(np.log(0.5) + np.log(0.8)) / 2)
    assert cal.nll(logits + 7.0, [0, 1]) == pytest.approx(cal.nll(logits, [0, 1]))  # shift-invariant logits


def test_ece_by_hand():
    # perfectly calibrated: confidence 0.9, 9 of 10 right
    p, y = probs_with_confidence(np.full(10, 0.9), np.arange(10) < 9)
    assert cal.ece(p, y) == pytest.approx(0.0, abs=1e-12)
    # overconfident: confidence 0.8, all right -> |1 - 0.8| = 0.2
    p, y = probs_with_confidence(np.full(10, 0.8), np.ones(10, bool))
    assert cal.ece(p, y) == pytest.approx(0.2)
    # two bins, half the examples each: |0.4 - 0.6| / 2 + |1.0 - 0.95| / 2 = 0.125
    p, y = probs_with_confidence(np.r_[np.full(5, 0.6), np.full(5, 0.95)], np.r_[[1, 1, 0, 0, 0], np.ones(5)] > 0)
    assert cal.ece(p, y) == pytest.approx(0.125)
    # with one bin ECE is |accuracy - mean confidence| over everything: the two bins' errors cancel
    assert cal.ece(p, y, bins=1) == pytest.approx(abs(0.7 - 0.775))


def test_bins_are_right_closed():
    """Bin m holds ((m-1)/M, m/M]: with 4 bins, confidence 0.5 is in the second bin, 0.5 + 1e-9 in the third."""
    p, y = probs_with_confidence(np.array([0.5, 0.5 + 1e-9, 0.75, 1.0]), np.ones(4, bool))
    rel = cal.reliability(p, y, bins=4)
    assert rel["count"] == [0, 1, 2, 1] and rel["edges"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert rel["confidence"][1] == pytest.approx(0.5) and rel["accuracy"] == [0.0, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="bins must be >= 1"):
        cal.reliability(p, y, bins=0)


def test_temperature_has_the_closed_form_answer():
    """Every example has logits (a, 0) and a fraction q is labelled 0: NLL(T) is smallest where
    sigmoid(a / T) = q, i.e. T = a / log(q / (1 - q)); a = 4, q = 3/4 gives T = 4 / log 3."""
    logits = np.tile([4.0, 0.0], (400, 1))
    labels = np.r_[np.zeros(300, int), np.ones(100, int)]
    t = cal.fit_temperature(logits, labels)
    assert t == pytest.approx(4 / np.log(3), rel=1e-4)
    before, after = cal.summary(logits, labels), cal.summary(logits, labels, t)
    assert after["nll"] < before["nll"] and after["accuracy"] == before["accuracy"] == 0.75
    assert after["ece"] == pytest.approx(0.0, abs=1e-4) and before["ece"] == pytest.approx(0.982 - 0.75, abs=1e-3)


def test_temperature_scaling_needs_a_validation_split():
    ds = data.synthetic(num_train=20, num_test=10)
    assert not ds.has_validation
    with pytest.raises(ValueError, match="temperature scaling needs a validation split"):
        cal.calibration_evaluation(None, None, ds)


def test_calibration_evaluation_fits_on_validation_and_scores_test(tmp_path):
    """A linear 'model' whose logits are fixed per class: the fitted temperature is the validation
    split's, and the test split is only scored."""
    import flax.linen as nn
    import jax.numpy as jnp

    class Mean(nn.Module):
        @nn.compact
        def __call__(self, x, train=False):
            return jnp.stack([x.mean((1, 2, 3)) * 3, -x.mean((1, 2, 3)) * 3], -1)

    rng = np.random.default_rng(0)
    bright = lambda n: rng.integers(150, 256, (n, 4, 4, 1)).astype(np.uint8)
    ds = data.Dataset("d", bright(8), np.zeros(8, int), bright(50), np.zeros(50, int), ["a", "b"], "synthetic",
                      val_images=bright(40), val_labels=np.r_[np.zeros(30, int), np.ones(10, int)])
    res = cal.calibration_evaluation(Mean(), {}, ds, bins=10)
    from cnnjax.train import evaluation
    val_logits = evaluation.predict_logits(evaluation.make_logits_fn(Mean(), ds.mean, ds.std), {}, ds.val_images)
    assert res["temperature"] == pytest.approx(cal.fit_temperature(val_logits, ds.val_labels))
    assert res["val_images"] == 40 and res["before"]["accuracy"] == res["after"]["accuracy"]  # argmax kept
    png = cal.plot_reliability(res, str(tmp_path / "r.png"))
    assert (tmp_path / "r.png").stat().st_size > 1000 and png.endswith("r.png")
