"""Tests for cnnjax.data: IDX I/O, IDX directories, synthetic data, normalize, TFDS path."""

import gzip
import os
import re
import sys

import numpy as np
import pytest

from cnnjax import data
import datafiles

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def _write_idx_dir(directory, n_train=12, n_test=5, *, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }
    os.makedirs(directory, exist_ok=True)
    for key, stem in data.IDX_FILES.items():
        datafiles.write_idx(os.path.join(directory, stem + (".gz" if gz else "")), arrays[key])
    return arrays


# ------------------------------------------------------------------ IDX files


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(3 * 28 * 28, dtype=np.int64).astype(np.uint8).reshape(3, 28, 28),
        np.array([0, 9, 3, 255], np.uint8),
        np.array([[-5, 70000], [1, 2]], np.int32),
        np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3),
    ],
    ids=["uint8-images", "uint8-labels", "int32", "float32"],
)
def test_idx_round_trip(tmp_path, suffix, array):
    path = tmp_path / ("x-idx" + suffix)
    datafiles.write_idx(path, array)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == (suffix == ".gz")
    if suffix == "":  # big-endian header per the IDX spec
        assert raw[:4] == bytes([0, 0, {np.uint8: 8, np.int32: 0x0C, np.float32: 0x0D}[array.dtype.type], array.ndim])
        assert int.from_bytes(raw[4:8], "big") == array.shape[0]
    back = data.read_idx(path)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_read_idx_detects_gzip_by_content_not_name(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    gz_named_plain, plain_named_gz = tmp_path / "a.gz", tmp_path / "b"
    datafiles.write_idx(tmp_path / "plain", array)
    gz_named_plain.write_bytes((tmp_path / "plain").read_bytes())
    plain_named_gz.write_bytes(gzip.compress((tmp_path / "plain").read_bytes()))
    np.testing.assert_array_equal(data.read_idx(gz_named_plain), array)
    np.testing.assert_array_equal(data.read_idx(plain_named_gz), array)


def test_read_idx_errors_name_the_file(tmp_path):
    good = tmp_path / "good-idx1-ubyte"
    datafiles.write_idx(good, np.arange(100, dtype=np.uint8))
    raw = good.read_bytes()

    bad_magic = tmp_path / "badmagic-idx1-ubyte"
    bad_magic.write_bytes(b"\x08\x03" + raw[2:])
    with pytest.raises(data.DataError, match="badmagic-idx1-ubyte.*magic"):
        data.read_idx(bad_magic)

    truncated = tmp_path / "truncated-idx1-ubyte.gz"
    truncated.write_bytes(gzip.compress(raw[:50]))
    with pytest.raises(data.DataError, match=r"truncated-idx1-ubyte\.gz: truncated: header says 100 \(100 bytes\)"):
        data.read_idx(truncated)

    trailing = tmp_path / "trailing-idx1-ubyte"
    trailing.write_bytes(raw + b"\0\0")
    with pytest.raises(data.DataError, match="trailing-idx1-ubyte: trailing bytes"):
        data.read_idx(trailing)

    with pytest.raises(data.DataError, match="missing-idx1-ubyte"):
        data.read_idx(tmp_path / "missing-idx1-ubyte")

    corrupt_gz = tmp_path / "corrupt.gz"
    corrupt_gz.write_bytes(gzip.compress(raw)[:20])
    with pytest.raises(data.DataError, match="corrupt.gz"):
        data.read_idx(corrupt_gz)


def test_read_idx_implausible_header_is_one_clear_error(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    sizes = np.array([60000, 28, 28] * 3, ">u4")  # 9 dims: the product overflows int64
    path.write_bytes(bytes([0, 0, 8, 9]) + sizes.tobytes() + bytes(1000))
    with pytest.raises(data.DataError, match=rf"^{re.escape(str(path))}: header claims 9 dimensions, at most 4 are supported$"):
        data.read_idx(path)
    with pytest.raises(data.DataError, match=rf"^{re.escape(str(path))}: header claims 9 dimensions, expected 3$"):
        data.read_idx(path, ndim=3)
    # 3 dims whose byte count is beyond int64: reported exactly, not as a negative number
    path.write_bytes(bytes([0, 0, 8, 3]) + np.array([60000, 2**31, 2**31], ">u4").tobytes() + bytes(1000))
    with pytest.raises(data.DataError) as err:
        data.read_idx(path, ndim=3)
    assert f"header says 60000x2147483648x2147483648 ({60000 * 2**62} bytes) but file holds 1000" in str(err.value)


# ------------------------------------------------------------------ IDX directories


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_dir(tmp_path, gz):
    arrays = _write_idx_dir(tmp_path, gz=gz)
    ds = data.load_idx_dir(tmp_path, "fashion-mnist")
    assert ds.name == "fashion_mnist" and ds.source == f"idx:{tmp_path}"
    assert ds.train_images.shape == (12, 28, 28, 1) and ds.train_images.dtype == np.uint8
    assert ds.test_images.shape == (5, 28, 28, 1) and ds.test_images.dtype == np.uint8
    assert ds.train_labels.dtype == np.int32 and ds.test_labels.dtype == np.int32
    np.testing.assert_array_equal(ds.train_images[..., 0], arrays["train_images"])
    np.testing.assert_array_equal(ds.test_labels, arrays["test_labels"])
    assert ds.num_classes == 10 and ds.class_names[9] == "Ankle boot"
    assert ds.image_shape == (28, 28, 1)
    # plain C-order strides, no stride-0 channel axis (which torch.from_numpy would keep)
    for images in (ds.train_images, ds.test_images, data.synthetic(8, 4).train_images):
        assert images.strides == np.empty(images.shape, np.uint8).strides


def test_a_gzipped_idx_file_is_decompressed_once_per_content(tmp_path, monkeypatch):
    """A sweep's reused worker loads the same dataset for every run: the second load does not
    decompress again, hands out new writable arrays, and a file rewritten with other bytes of the
    same size is read anew (the memo is keyed by content, not by name, size or time)."""
    import collections
    from cnnjax.data import idx
    monkeypatch.setattr(idx, "_gunzipped", collections.OrderedDict(), raising=False)  # this test's own memo
    calls = []
    decompress = idx.gzip.decompress
    monkeypatch.setattr(idx.gzip, "decompress", lambda data: calls.append(len(data)) or decompress(data))
    arrays = _write_idx_dir(tmp_path, gz=True)
    first = data.load_idx_dir(tmp_path, "mnist")
    assert len(calls) == 4
    first.train_images[:] = 0  # a caller's own copy
    second = data.load_idx_dir(tmp_path, "mnist")
    assert len(calls) == 4
    np.testing.assert_array_equal(second.train_images[..., 0], arrays["train_images"])
    changed = _write_idx_dir(tmp_path, gz=True, seed=1)  # same shapes, so the same sizes
    third = data.load_idx_dir(tmp_path, "mnist")
    assert len(calls) == 6  # the two image files changed; the labels did not
    np.testing.assert_array_equal(third.train_images[..., 0], changed["train_images"])
    assert not np.array_equal(changed["train_images"], arrays["train_images"])


def test_load_idx_dir_count_mismatch_names_both_files(tmp_path):
    _write_idx_dir(tmp_path)
    datafiles.write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(data.DataError) as err:
        data.load_idx_dir(tmp_path, "mnist")
    assert "t10k-images-idx3-ubyte" in str(err.value) and "t10k-labels-idx1-ubyte" in str(err.value)


def test_load_idx_dir_rejects_bad_labels_and_rank(tmp_path):
    _write_idx_dir(tmp_path)
    datafiles.write_idx(tmp_path / "train-labels-idx1-ubyte", np.full(12, 10, np.uint8))
    with pytest.raises(data.DataError, match="train-labels-idx1-ubyte.*labels must lie"):
        data.load_idx_dir(tmp_path, "mnist")
    _write_idx_dir(tmp_path)
    datafiles.write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((12, 28 * 28), np.uint8))
    with pytest.raises(data.DataError, match="train-images-idx3-ubyte: header claims 2 dimensions, expected 3"):
        data.load_idx_dir(tmp_path, "mnist")


def test_find_idx_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(data.idx, "SYSTEM_IDX_DIRS", {})
    assert data.find_idx_dir("mnist", str(tmp_path)) is None
    assert data.find_idx_dir("mnist", None) is None
    _write_idx_dir(tmp_path / "fashion_mnist", gz=True)
    assert data.find_idx_dir("Fashion-MNIST", str(tmp_path)) == str(tmp_path / "fashion_mnist")
    assert data.find_idx_dir("fashion_mnist", str(tmp_path / "fashion_mnist")) == str(tmp_path / "fashion_mnist")
    monkeypatch.setattr(data.idx, "SYSTEM_IDX_DIRS", {"mnist": str(tmp_path / "sys")})
    _write_idx_dir(tmp_path / "sys")
    assert data.find_idx_dir("mnist", None) == str(tmp_path / "sys")
    # a named data_dir without the files is not silently replaced by the system copy
    os.makedirs(tmp_path / "empty")
    assert data.find_idx_dir("mnist", str(tmp_path / "empty")) is None


@pytest.mark.parametrize("gz", [False, True])
def test_incomplete_idx_dir_names_the_missing_files(tmp_path, gz, monkeypatch):
    _write_idx_dir(tmp_path / "fashion_mnist", gz=gz)
    os.remove(tmp_path / "fashion_mnist" / ("t10k-labels-idx1-ubyte" + (".gz" if gz else "")))
    msg = rf"{re.escape(str(tmp_path / 'fashion_mnist'))}: incomplete IDX dataset: missing t10k-labels-idx1-ubyte\[\.gz\]$"
    with pytest.raises(data.DataError, match=msg):  # not a fall-through to TFDS
        data.load("fashion_mnist", data_dir=str(tmp_path))
    # the same for a broken system copy
    monkeypatch.setattr(data.idx, "SYSTEM_IDX_DIRS", {"fashion_mnist": str(tmp_path / "fashion_mnist")})
    os.remove(tmp_path / "fashion_mnist" / ("train-images-idx3-ubyte" + (".gz" if gz else "")))
    with pytest.raises(data.DataError, match="missing train-images-idx3-ubyte.*, t10k-labels-idx1-ubyte"):
        data.load("fashion_mnist")


def test_missing_data_dir_is_an_error_not_a_fallback(tmp_path):
    with pytest.raises(data.DataError, match="data_dir .*no_such_dir.* is not a directory"):
        data.load("fashion_mnist", data_dir=str(tmp_path / "no_such_dir"))


def test_load_prefers_idx_files_in_data_dir(tmp_path):
    _write_idx_dir(tmp_path / "kmnist", n_train=10, n_test=3)
    ds = data.load("KMNIST", data_dir=str(tmp_path))
    assert ds.source == f"idx:{tmp_path / 'kmnist'}"
    assert len(ds.train_images) == 10 and ds.class_names[0] == "o"


# ------------------------------------------------------------------ synthetic


def test_synthetic_shapes_balance_determinism():
    a = data.synthetic(100, 30, seed=1)
    b = data.synthetic(100, 30, seed=1)
    c = data.synthetic(100, 30, seed=2)
    assert a.train_images.shape == (100, 28, 28, 1) and a.test_images.shape == (30, 28, 28, 1)
    assert a.train_images.dtype == np.uint8 and a.train_labels.dtype == np.int32
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.train_images, c.train_images)
    np.testing.assert_array_equal(np.bincount(a.train_labels, minlength=10), np.full(10, 10))
    np.testing.assert_array_equal(np.bincount(a.test_labels, minlength=10), np.full(10, 3))
    assert a.class_names[:2] == ("bar_0deg", "bar_18deg") and a.num_classes == 10
    assert a.source == "synthetic"
    small = data.synthetic(8, 4, image_size=16, num_classes=4, seed=0)
    assert small.image_shape == (16, 16, 1) and small.class_names == ("bar_0deg", "bar_45deg", "bar_90deg", "bar_135deg")


def test_synthetic_is_learnable_by_nearest_centroid():
    # Cheap proxy for "a small CNN learns it": class-mean templates already separate the bars.
    ds = data.synthetic(500, 200, seed=3)
    x = ds.train_images.reshape(500, -1) / 255.0
    xt = ds.test_images.reshape(200, -1) / 255.0
    centroids = np.stack([x[ds.train_labels == k].mean(0) for k in range(10)])
    pred = np.argmin(((xt[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (pred == ds.test_labels).mean() > 0.7


# ------------------------------------------------------------------ Dataset, normalize


def _tiny():
    train = np.array([0, 255, 255, 0], np.uint8).reshape(2, 1, 2, 1)
    test = np.array([51, 102], np.uint8).reshape(1, 1, 2, 1)
    return data.Dataset("tiny", train, np.array([0, 1]), test, np.array([1]), ("a", "b"), "hand")


def test_dataset_mean_std_and_validation():
    ds = _tiny()
    assert ds.mean == pytest.approx(0.5) and ds.std == pytest.approx(0.5)
    assert ds.train_labels.dtype == np.int32 and ds.image_shape == (1, 2, 1) and ds.num_classes == 2
    with pytest.raises(data.DataError, match="labels must lie"):
        data.Dataset("bad", ds.train_images, np.array([0, 2]), ds.test_images, ds.test_labels, ("a", "b"), "hand")
    with pytest.raises(data.DataError, match="uint8"):
        data.Dataset("bad", ds.train_images.astype(np.float32), ds.train_labels, ds.test_images, ds.test_labels,
                     ("a", "b"), "hand")


def test_subset():
    ds = data.synthetic(40, 20, seed=0)
    sub = ds.subset(7, 3)
    assert sub.train_images.shape == (7, 28, 28, 1) and sub.test_labels.shape == (3,)
    np.testing.assert_array_equal(sub.train_images, ds.train_images[:7])
    np.testing.assert_array_equal(sub.test_labels, ds.test_labels[:3])
    assert sub.class_names == ds.class_names and sub.name == ds.name
    full_test = ds.subset(5, None)
    assert len(full_test.test_images) == 20 and len(full_test.train_images) == 5


def test_normalize_hand_checked():
    import jax

    mean, std = 0.25, 0.5
    x = np.array([0, 255, 51], np.uint8).reshape(1, 1, 3, 1)
    for fn in (data.normalize, jax.jit(data.normalize)):
        y = fn(x, mean, std)
        assert y.dtype == np.float32 and y.shape == x.shape
        np.testing.assert_allclose(np.asarray(y).ravel(), [-mean / std, (1 - mean) / std, (0.2 - mean) / std],
                                   rtol=1e-6)


# ------------------------------------------------------------------ TFDS path


def test_load_tfds_with_mock_data(tmp_path, monkeypatch):
    # tfds.testing.mock_data works with tfds.data_source without TensorFlow installed.
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr(data.idx, "SYSTEM_IDX_DIRS", {})
    with tfds.testing.mock_data(num_examples=6):
        ds = data.load("mnist", data_dir=str(tmp_path))
    assert ds.source.startswith("tfds:mnist")
    assert ds.train_images.shape == (6, 28, 28, 1) and ds.train_images.dtype == np.uint8
    assert ds.test_images.shape == (6, 28, 28, 1)
    assert ds.train_labels.dtype == np.int32 and ds.train_labels.shape == (6,)
    assert ds.class_names == tuple(str(i) for i in range(10))


def test_load_unknown_dataset_offline_names_idx_files(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(data.DataError) as err:
        data.load("no-such-dataset", data_dir=str(tmp_path))
    msg = str(err.value)
    assert "\n" not in msg and "'no_such_dataset'" in msg
    for stem in data.IDX_FILES.values():
        assert stem in msg


@pytest.mark.parametrize("tfds_installed", [True, False])
def test_load_without_idx_or_prepared_tfds_is_one_line(tmp_path, monkeypatch, capfd, tfds_installed):
    if tfds_installed:
        pytest.importorskip("tensorflow_datasets")
    else:
        monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import raises ImportError
    with pytest.raises(data.DataError) as err:
        data.load("fashion_mnist", data_dir=str(tmp_path))
    msg = str(err.value)
    assert "\n" not in msg and "importlib" not in msg and msg.startswith("cannot load 'fashion_mnist': no IDX files in ")
    assert str(tmp_path / "fashion-mnist") in msg and "train-images-idx3-ubyte[.gz]" in msg
    assert ("TFDS found no prepared copy in " + str(tmp_path) if tfds_installed
            else "tensorflow_datasets cannot be imported") in msg
    out, errout = capfd.readouterr()
    assert out == errout == ""  # no "Downloading and preparing ..." or absl warnings
    assert os.listdir(tmp_path) == []  # nothing written into the data_dir


def test_load_synthetic_by_name():
    assert data.load("Synthetic").source == "synthetic"


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(FASHION_DIR), reason="Debian dataset-fashion-mnist not installed")
def test_load_real_fashion_mnist():
    ds = data.load("fashion_mnist")
    assert ds.source == f"idx:{FASHION_DIR}"
    assert ds.train_images.shape == (60000, 28, 28, 1) and ds.test_images.shape == (10000, 28, 28, 1)
    assert ds.num_classes == 10
    np.testing.assert_array_equal(np.bincount(ds.train_labels, minlength=10), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(ds.test_labels, minlength=10), np.full(10, 1000))
    assert ds.mean == pytest.approx(0.2860, abs=1e-3) and ds.std == pytest.approx(0.3530, abs=1e-3)


def _numbered(n=200):
    """A dataset whose training image i holds i in its first two pixels (identifiable after a split)."""
    images = np.zeros((n, 2, 2, 1), np.uint8)
    images[:, 0, 0, 0], images[:, 0, 1, 0] = np.arange(n) % 256, np.arange(n) // 256
    images[:, 1, 1, 0] = np.where(np.arange(n) < n // 2, 255, 0)  # the first half bright: visible in the mean
    labels = (np.arange(n) % 3).astype(np.int32)
    return data.Dataset("numbered", images, labels, images[:5], labels[:5], ("a", "b", "c"), "hand")


def _ids(images):
    return images[:, 0, 0, 0].astype(int) + 256 * images[:, 0, 1, 0].astype(int)


def test_hold_out_is_disjoint_chosen_by_the_seed_and_counts_or_fractions():
    ds = _numbered(200)
    split = ds.hold_out(30, seed=0)
    train, val = _ids(split.train_images), _ids(split.val_images)
    assert len(val) == 30 and len(train) == 170
    assert set(train).isdisjoint(val) and sorted(set(train) | set(val)) == list(range(200))  # a partition
    assert list(train) == sorted(train)  # the rest keep their order
    np.testing.assert_array_equal(split.train_labels, train % 3)  # labels travel with their images
    np.testing.assert_array_equal(split.val_labels, val % 3)
    assert set(val) != set(range(30)) and set(val) != set(range(170, 200))  # drawn, not a slice
    assert set(_ids(ds.hold_out(30, seed=0).val_images)) == set(val)  # the seed decides ...
    assert set(_ids(ds.hold_out(30, seed=1).val_images)) != set(val)  # ... and only the seed
    assert len(ds.hold_out(0.1, seed=0).val_labels) == 20  # a fraction of the training images
    assert len(ds.hold_out(0.25, seed=0).val_labels) == 50
    assert len(ds.hold_out(1, seed=0).val_labels) == 1  # 1 is one image, not everything
    assert ds.hold_out(0, seed=0) is ds  # no split
    # pixel statistics of the remaining training images only (the held-out ones are not trained on)
    assert split.mean == pytest.approx(split.train_images.mean() / 255) != pytest.approx(ds.mean)
    for bad in (200, 250, 0.999, -3):  # (1.0 is one image, as 1)
        with pytest.raises(ValueError, match="choose a validation_size between 1 and 199 images or a fraction"):
            ds.hold_out(bad, seed=0)


def test_hold_out_keeps_a_datasets_own_validation_split():
    ds = _numbered(50)
    own = data.Dataset("own", ds.train_images[:40], ds.train_labels[:40], ds.test_images, ds.test_labels,
                       ds.class_names, "hand", val_images=ds.train_images[40:], val_labels=ds.train_labels[40:])
    assert own.hold_out(0.1, seed=0) is own and own.hold_out(5, seed=3) is own
