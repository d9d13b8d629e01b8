"""cnnjax.data.subsets.restrict and the config.classes / config.train_per_class settings."""
import numpy as np
import pytest

from cnnjax.train import config as config_lib
from cnnjax import data
from cnnjax.train import experiment
from cnnjax.data import subsets


def _tiny():
    images = np.arange(12 * 2 * 2, dtype=np.uint8).reshape(12, 2, 2, 1)
    return data.Dataset("tiny", images, np.arange(12) % 4, images[:8], np.arange(8) % 4, ("a", "b", "c", "d"), "test",
                        val_images=images[:4], val_labels=np.array([3, 2, 1, 0]))


def test_classes_are_kept_in_order_and_relabelled_from_zero():
    ds = subsets.restrict(_tiny(), classes=(3, 1))
    assert ds.class_names == ("d", "b") and ds.num_classes == 2
    np.testing.assert_array_equal(ds.train_labels, [1, 0, 1, 0, 1, 0])  # images 1, 3, 5, 7, 9, 11
    np.testing.assert_array_equal(ds.train_images[:, 0, 0, 0], [4, 12, 20, 28, 36, 44])
    np.testing.assert_array_equal(ds.test_labels, [1, 0, 1, 0])
    np.testing.assert_array_equal(ds.val_labels, [0, 1])  # val labels 3 and 1
    np.testing.assert_array_equal(ds.val_images[:, 0, 0, 0], [0, 8])
    assert ds.mean == pytest.approx(ds.train_images.mean() / 255)  # statistics of what is left


def test_train_per_class_draws_n_per_class_by_seed():
    ds = subsets.restrict(_tiny(), train_per_class=2, seed=0)
    assert np.bincount(ds.train_labels).tolist() == [2, 2, 2, 2]
    assert len(ds.test_labels) == 8 and len(ds.val_labels) == 4  # other splits untouched
    picked = lambda seed: subsets.restrict(_tiny(), train_per_class=2, seed=seed).train_images[:, 0, 0, 0].tolist()
    assert picked(0) == picked(0) and picked(0) == sorted(picked(0))  # deterministic, original order
    assert len({tuple(picked(s)) for s in range(5)}) > 1  # the seed draws
    both = subsets.restrict(_tiny(), classes=(2,), train_per_class=3, seed=1)
    assert both.train_labels.tolist() == [0, 0, 0] and both.class_names == ("c",)


def test_bad_values_are_named():
    with pytest.raises(data.DataError, match=r"config.classes: tiny has classes 0..3, not \[7\]"):
        subsets.restrict(_tiny(), classes=(1, 7))
    with pytest.raises(data.DataError, match=r"config.train_per_class=4: class 0 \(a\) has 3 training images"):
        subsets.restrict(_tiny(), train_per_class=4)
    with pytest.raises(config_lib.ConfigError, match="config.classes must be distinct class indices"):
        config_lib.from_dict({"classes": [1, 1]})


def test_the_run_uses_them():
    cfg = config_lib.from_dict(dict(dataset="synthetic", num_train=400, num_test=100, classes=[5, 6, 7],
                                    train_per_class=10, validation_size=0.2))
    ds = experiment.load_data(cfg)
    assert ds.num_classes == 3 and np.bincount(ds.train_labels).tolist() == [10, 10, 10]
    assert set(ds.val_labels.tolist()) == {0, 1, 2} and set(ds.test_labels.tolist()) == {0, 1, 2}
