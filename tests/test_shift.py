"""cnnjax.interpret.shift: shifts move pixels exactly; each shift's score is the hand-computed one of a
position-dependent model; shift 0 is the plain evaluation."""
import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest

from cnnjax import data
from cnnjax.train import evaluation
from cnnjax.interpret import shift


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


class _RowOfTheBrightPixel(nn.Module):
    """A hand-made classifier whose answer depends on position: 4 classes, logit r = the sum of
    image row r (one Dense layer whose weights we set by hand), so an image holding one bright
    pixel is classified as that pixel's row, and an empty image as class 0 (argmax of equal logits)."""
    @nn.compact
    def __call__(self, x, train: bool = False):
        return nn.Dense(4)(x.reshape(x.shape[0], -1))


def _row_sum_variables():
    kernel = np.zeros((16, 4), np.float32)
    for r in range(4):
        kernel[4 * r:4 * r + 4, r] = 1.0  # pixel (r, c) of a 4x4 image is input 4r + c
    return {"params": {"Dense_0": {"kernel": jnp.asarray(kernel), "bias": jnp.zeros(4)}}}


def test_shift_evaluation_scores_each_shift_as_hand_computed():
    """Four 4x4 test images, each one bright pixel at (row, col) = (0, 0), (1, 3), (2, 1), (3, 2),
    labelled by its row; the all-black training set makes the normalisation x / 255.  Unshifted,
    every image is right.  Up: (0, 0) leaves the image (empty: class 0, right), the others land one
    row too high (wrong): 1/4.  Down: all wrong, (3, 2) leaves as an empty image labelled 3: 0.
    Left: the rows stay, (0, 0) leaves but is labelled 0: 1.  Right: (1, 3) leaves (class 0,
    labelled 1): 3/4.  The losses: a bright pixel makes its row's logit 1 and the others 0, so an
    example costs log(e + 3) - 1 when right, log(e + 3) when wrong, log 4 when empty."""
    test = np.zeros((4, 4, 4, 1), np.uint8)
    for k, (r, c) in enumerate([(0, 0), (1, 3), (2, 1), (3, 2)]):
        test[k, r, c, 0] = 255
    ds = data.Dataset("pixels", np.zeros((2, 4, 4, 1), np.uint8), np.array([0, 1]), test,
                      np.array([0, 1, 2, 3]), ["0", "1", "2", "3"], "synthetic")
    assert (ds.mean, ds.std) == (0.0, 1.0)
    model, variables = _RowOfTheBrightPixel(), _row_sum_variables()
    rows = shift.shift_evaluation(model, variables, ds, max_shift=1, batch_size=3)  # 2 batches, the last padded
    right, wrong, empty = np.log(np.e + 3) - 1, np.log(np.e + 3), np.log(4)
    want = {"none": (1.0, right), "up": (0.25, (empty + 3 * wrong) / 4), "down": (0.0, (empty + 3 * wrong) / 4),
            "left": (1.0, (empty + 3 * right) / 4), "right": (0.75, (empty + 3 * right) / 4)}
    assert [(r["direction"], r["pixels"], r["dy"], r["dx"]) for r in rows] == \
        [("none", 0, 0, 0), ("up", 1, -1, 0), ("down", 1, 1, 0), ("left", 1, 0, -1), ("right", 1, 0, 1)]
    for r in rows:
        assert r["accuracy"] == want[r["direction"]][0], r
        assert r["loss"] == pytest.approx(want[r["direction"]][1], rel=1e-6), r
    assert shift.by_distance(rows) == {0: 1.0, 1: pytest.approx((0.25 + 0 + 1 + 0.75) / 4)}
    # shift 0 is the plain evaluation, exactly
    plain = evaluation.evaluate(model, variables, ds, batch_size=3)
    assert rows[0]["accuracy"] == plain["accuracy"] and rows[0]["loss"] == plain["loss"]


def test_each_row_has_the_consistency_with_the_unshifted_prediction():
    """The hand-made model again: every unshifted image is classified right, so agreeing with the
    unshifted prediction is being right (empty images: class 0 both ways or not) -- consistency
    equals accuracy row by row here, 1/4, 0, 1 and 3/4 as computed above."""
    test = np.zeros((4, 4, 4, 1), np.uint8)
    for k, (r, c) in enumerate([(0, 0), (1, 3), (2, 1), (3, 2)]):
        test[k, r, c, 0] = 255
    ds = data.Dataset("pixels", np.zeros((2, 4, 4, 1), np.uint8), np.array([0, 1]), test,
                      np.array([0, 1, 2, 3]), ["0", "1", "2", "3"], "synthetic")
    rows = shift.shift_evaluation(_RowOfTheBrightPixel(), _row_sum_variables(), ds, max_shift=1)
    assert [r["consistency"] for r in rows] == [1.0, 0.25, 0.0, 1.0, 0.75]
    assert shift.by_distance(rows, "consistency") == {0: 1.0, 1: pytest.approx(0.5)}


def test_shift_each_moves_every_image_by_its_own_offset():
    images = np.random.default_rng(0).integers(0, 256, (5, 6, 7, 2)).astype(np.uint8)
    dy, dx = np.array([0, 1, -2, 3, -6]), np.array([0, -1, 2, 0, 1])
    got = shift.shift_each(images, dy, dx)
    for i in range(5):
        np.testing.assert_array_equal(got[i], shift.shift_images(images[i:i + 1], dy[i], dx[i])[0])


def test_zhangs_consistency_by_hand():
    """Two random shifts per image in [-1, 1]^2, drawn from default_rng(seed) as documented; the
    row-of-the-bright-pixel model agrees with itself when both copies keep the pixel in the same row
    (or both push it out: class 0).  Recomputed here from the offsets, independently of the code's path."""
    test = np.zeros((40, 4, 4, 1), np.uint8)
    pos = np.random.default_rng(5).integers(0, 4, (40, 2))
    test[np.arange(40), pos[:, 0], pos[:, 1], 0] = 255
    ds = data.Dataset("pixels", np.zeros((2, 4, 4, 1), np.uint8), np.array([0, 1]), test, pos[:, 0],
                      ["0", "1", "2", "3"], "synthetic")
    res = shift.random_shift_consistency(_RowOfTheBrightPixel(), _row_sum_variables(), ds, max_shift=1, seed=7)
    offs = np.random.default_rng(7).integers(-1, 2, size=(2, 2, 40))
    cls = lambda dy, dx: np.where((pos[:, 0] + dy >= 0) & (pos[:, 0] + dy < 4) & (pos[:, 1] + dx >= 0)
                                  & (pos[:, 1] + dx < 4), pos[:, 0] + dy, 0)
    a, b = cls(*offs[0]), cls(*offs[1])
    assert res["consistency"] == np.mean(a == b) and res["accuracy_a"] == np.mean(a == pos[:, 0])
    assert 0 < res["consistency"] < 1
    flat = shift.random_shift_consistency(_RowOfTheBrightPixel(), _row_sum_variables(), ds, max_shift=0)
    assert flat["consistency"] == 1.0  # no shift: the same image twice
