"""cnnjax.shift: shifts move pixels exactly; shift 0 is the plain evaluation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import data, evaluation, models, shift


def test_a_shift_moves_pixels_exactly_with_zero_fill():
    image = np.arange(1, 13, dtype=np.uint8).reshape(1, 3, 4, 1)  # rows [1 2 3 4], [5 6 7 8], [9 10 11 12]
    got = shift.shift_images(image, 1, -2)[0, ..., 0]  # one row down, two columns left
    np.testing.assert_array_equal(got, [[0, 0, 0, 0], [3, 4, 0, 0], [7, 8, 0, 0]])
    np.testing.assert_array_equal(shift.shift_images(image, -2, 1)[0, ..., 0], [[0, 9, 10, 11], [0, 0, 0, 0],
                                                                                [0, 0, 0, 0]])
    np.testing.assert_array_equal(shift.shift_images(image, 0, 0), image)
    assert not shift.shift_images(image, 3, 0).any() and shift.shift_images(image, 0, 5).shape == image.shape
    rgb = np.arange(2 * 2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 2, 3)
    np.testing.assert_array_equal(shift.shift_images(rgb, 0, 1)[:, :, 1], rgb[:, :, 0])  # whole pixels, every channel
    assert shift.offsets(2) == [("none", 0, 0, 0), ("up", 1, -1, 0), ("down", 1, 1, 0), ("left", 1, 0, -1),
                                ("right", 1, 0, 1), ("up", 2, -2, 0), ("down", 2, 2, 0), ("left", 2, 0, -2),
                                ("right", 2, 0, 2)]
    with pytest.raises(ValueError, match="max_shift must be >= 0"):
        shift.offsets(-1)


def test_shift_zero_reproduces_the_plain_evaluation_exactly():
    ds = data.synthetic(num_train=64, num_test=130)
    model = models.create("padded_cnn")
    variables = model.init(jax.random.key(0), jnp.zeros((1, *ds.image_shape)))
    plain = evaluation.evaluate(model, variables, ds, batch_size=50)
    rows = shift.shift_evaluation(model, variables, ds, max_shift=1, batch_size=50)
    assert len(rows) == 5 and rows[0]["direction"] == "none"
    assert rows[0]["accuracy"] == plain["accuracy"] and rows[0]["loss"] == plain["loss"]
    down = evaluation.evaluate(model, variables, data.Dataset(ds.name, ds.train_images, ds.train_labels,
                                                         shift.shift_images(ds.test_images, 1, 0), ds.test_labels,
                                                         ds.class_names, ds.source), batch_size=50)
    assert rows[2]["direction"] == "down" and rows[2]["accuracy"] == down["accuracy"]
    assert shift.by_distance(rows)[1] == pytest.approx(np.mean([r["accuracy"] for r in rows[1:]]))
