"""cnnjax.interpret.corruptions: the 15 MNIST-C corruptions are seeded, keep shape and dtype on grey
and colour batches, grow with their severity, and do by hand what MNIST-C's parameters say."""
import numpy as np
import pytest

from cnnjax import data
from cnnjax.interpret import corruptions as C

GREY = data.synthetic(num_train=4, num_test=24, seed=1).test_images          # (24, 28, 28, 1) bars
COLOUR = data.synthetic_color(num_train=4, num_test=6, seed=1).test_images   # (6, 32, 32, 3)
RANDOM = {"shot_noise", "impulse_noise", "glass_blur", "motion_blur", "shear", "rotate", "translate", "fog",
          "spatter", "dotted_line", "zigzag"}


def test_fifteen_corruptions_in_mnist_c_order():
    assert C.names() == ["shot_noise", "impulse_noise", "glass_blur", "motion_blur", "shear", "scale", "rotate",
                         "brightness", "translate", "stripe", "fog", "spatter", "dotted_line", "zigzag", "canny_edges"]
    assert [n for n in C.names() if C.severities(n) == (None,)] == ["stripe", "dotted_line", "zigzag", "canny_edges"]


@pytest.mark.parametrize("name", C.names())
def test_seeded_shape_and_dtype_grey_and_colour(name):
    for images in (GREY, COLOUR):
        a = C.corrupt(images, name, seed=3)
        assert a.shape == images.shape and a.dtype == np.uint8
        np.testing.assert_array_equal(a, C.corrupt(images, name, seed=3))  # same seed, same output
        if name in RANDOM:
            assert not np.array_equal(a, C.corrupt(images, name, seed=4)), "the seed must matter"
    assert not np.array_equal(C.corrupt(GREY, name), GREY), "a corruption must change the images"


# the corruptions whose parameters grow monotonically in strength; glass_blur's and spatter's five
# parameter sets (MNIST-C's) are not ordered in every component, and motion_blur's severities 4 and 5
# ((15, 12) and (20, 15)) smear a 28-pixel image about equally (measured: 20.3 vs 20.1 grey levels)
MONOTONE = ["shot_noise", "impulse_noise", "shear", "scale", "rotate", "brightness", "translate", "fog"]


@pytest.mark.parametrize("name", MONOTONE)
def test_stronger_severity_moves_the_images_further(name):
    x = GREY.astype(np.float64)
    dist = [np.abs(C.corrupt(GREY, name, s, seed=0) - x).mean() for s in (1, 2, 3, 4, 5)]
    assert all(a < b for a, b in zip(dist, dist[1:])), dist


def test_hand_computed_cases():
    img = np.zeros((1, 4, 8, 1), np.uint8)
    img[0, :, :, 0] = np.arange(8) * 30  # columns 0, 30, ..., 210
    # stripe: the left and right quarters (2 of 8 columns each) inverted
    want = img.copy()
    want[..., :2, :] = 255 - want[..., :2, :]
    want[..., 6:, :] = 255 - want[..., 6:, :]
    np.testing.assert_array_equal(C.corrupt(img, "stripe"), want)
    # brightness on grey: + 0.1 * 255 per pixel, clipped
    np.testing.assert_array_equal(C.corrupt(img, "brightness", 1),
                                  np.round(np.clip(img / 255 + 0.1, 0, 1) * 255).astype(np.uint8))
    # brightness on colour raises HSV value and keeps hue and saturation: the channels scale together
    rgb = np.array([[[[100, 50, 0]]]], np.uint8)
    np.testing.assert_array_equal(C.corrupt(rgb, "brightness", 5), [[[[227, 114, 0]]]])  # v: 100 -> 227.5 (round half to even: 227), 50 -> 113.75
    # translate at severity 2 moves every image 2 pixels along both axes, zero fill
    x = GREY[:1]
    y = C.corrupt(x, "translate", 2, seed=0)
    assert any(np.array_equal(y, np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))[:, 2 + dy:30 + dy, 2 + dx:30 + dx])
               for dy in (-2, 2) for dx in (-2, 2))
    # scale at severity 5 halves the image about its centre: the outer border is black
    assert not C.corrupt(GREY, "scale", 5)[:, :6].any() and not C.corrupt(GREY, "scale", 5)[:, :, :6].any()


def test_impulse_noise_replaces_the_stated_fraction():
    x = np.full((50, 28, 28, 1), 128, np.uint8)
    for severity, fraction in ((1, .03), (5, .27)):
        y = C.corrupt(x, "impulse_noise", severity)
        assert np.mean(y != 128) == pytest.approx(fraction, abs=0.01)
        assert set(np.unique(y)) == {0, 128, 255}


def test_shot_noise_keeps_the_mean():
    x = np.full((50, 28, 28, 1), 128, np.uint8)
    assert C.corrupt(x, "shot_noise", 1).mean() == pytest.approx(128, abs=1)  # Poisson(60 x) / 60: unbiased below 1


def test_dotted_line_is_dotted_and_canny_is_binary():
    blank = np.zeros((4, 28, 28, 1), np.uint8)
    y = C.corrupt(blank, "dotted_line")
    assert y.any() and not y[:, :, 0:2].any() and not y[:, :, 4:6].any()  # MNIST-C blanks [0, 2), [4, 6), ...
    edges = C.corrupt(GREY, "canny_edges")
    assert set(np.unique(edges)) <= {0, 255} and edges.any()
    assert not C.corrupt(np.full((1, 28, 28, 1), 90, np.uint8), "canny_edges").any()  # a flat image has no edge


def test_errors():
    with pytest.raises(ValueError, match="unknown corruption 'fogg'; choose from shot_noise"):
        C.corrupt(GREY, "fogg")
    with pytest.raises(ValueError, match="stripe has no severity levels"):
        C.corrupt(GREY, "stripe", 2)
    with pytest.raises(ValueError, match=r"severity must be one of \(1, 2, 3, 4, 5\) for fog, got 6"):
        C.corrupt(GREY, "fog", 6)
    with pytest.raises(ValueError, match="images must be uint8"):
        C.corrupt(GREY.astype(np.float32), "fog")
    assert C.parse_names("all") == C.names() and C.parse_names("fog, stripe,fog") == ["fog", "stripe"]
    with pytest.raises(ValueError, match="unknown corruption 'x'"):
        C.parse_names("fog,x")
