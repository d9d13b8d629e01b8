"""CIFAR loaders on files written here in the exact published layouts, per-channel statistics,
the synthetic colour set and TFDS by name."""
import os
import pickle

import numpy as np
import pytest

from cnnjax import data
import datafiles


def _images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def _cifar10_py(root, n=4):
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    out = {}
    for i, f in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        x, y = _images(n, i), np.arange(i, i + n) % 10
        with open(d / f, "wb") as fh:  # the published layout, byte-string keys, written by hand here
            pickle.dump({b"batch_label": f"batch {i}".encode(), b"labels": [int(v) for v in y],
                         b"data": x.transpose(0, 3, 1, 2).reshape(n, 3072),
                         b"filenames": [b"f.png"] * n}, fh, protocol=2)
        out[f] = (x, y)
    with open(d / "batches.meta", "wb") as fh:
        pickle.dump({b"num_cases_per_batch": n, b"label_names": [c.encode() for c in data.CIFAR10_CLASSES],
                     b"num_vis": 3072}, fh, protocol=2)
    return d, out


def _cifar10_bin(root, n=4):
    d = root / "cifar-10-batches-bin"
    d.mkdir(parents=True)
    out = {}
    for i, f in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
        x, y = _images(n, 10 + i), (np.arange(n) * 3 + i) % 10
        rows = [bytes([int(y[j])]) + x[j].transpose(2, 0, 1).tobytes() for j in range(n)]  # <label><R><G><B>
        (d / f).write_bytes(b"".join(rows))
        out[f] = (x, y)
    (d / "batches.meta.txt").write_text("\n".join(data.CIFAR10_CLASSES) + "\n\n")
    return d, out


def test_pixel_layout_is_planes_of_rows():
    # one hand-made record: R plane all 1 except pixel (row 0, col 1) = 7; G plane 2; B plane 3
    rec = np.concatenate([np.full(1024, 1), np.full(1024, 2), np.full(1024, 3)]).astype(np.uint8)
    rec[1] = 7
    img = data.cifar._to_nhwc(rec[None])[0]
    assert img.shape == (32, 32, 3)
    assert tuple(img[0, 0]) == (1, 2, 3) and img[0, 1, 0] == 7 and img[1, 0, 0] == 1


def test_cifar10_python_round_trip(tmp_path):
    _, files = _cifar10_py(tmp_path)
    ds = data.load("cifar10", str(tmp_path))
    assert ds.source.startswith("cifar-python:") and ds.class_names == data.CIFAR10_CLASSES
    train_x = np.concatenate([files[f"data_batch_{k}"][0] for k in range(1, 6)])
    train_y = np.concatenate([files[f"data_batch_{k}"][1] for k in range(1, 6)])
    np.testing.assert_array_equal(ds.train_images, train_x)
    np.testing.assert_array_equal(ds.train_labels, train_y)
    np.testing.assert_array_equal(ds.test_images, files["test_batch"][0])
    assert ds.image_shape == (32, 32, 3) and ds.num_classes == 10


def test_cifar10_binary_round_trip_and_named_subdir(tmp_path):
    d, files = _cifar10_bin(tmp_path)
    for where in (tmp_path, d):  # the parent holding the extracted archive, or the directory itself
        ds = data.load("CIFAR-10", str(where))
        assert ds.source == f"cifar-binary:{d}"
        np.testing.assert_array_equal(ds.test_images, files["test_batch.bin"][0])
        np.testing.assert_array_equal(ds.test_labels, files["test_batch.bin"][1])
        np.testing.assert_array_equal(ds.train_images[:4], files["data_batch_1.bin"][0])
        assert ds.class_names == data.CIFAR10_CLASSES


def test_writers_match_the_hand_written_formats(tmp_path):
    x = _images(3, 0)
    datafiles.write_cifar_binary_batch(tmp_path / "a.bin", x, [1, 2, 3])
    assert (tmp_path / "a.bin").read_bytes() == b"".join(bytes([v]) + x[j].transpose(2, 0, 1).tobytes()
                                                        for j, v in enumerate([1, 2, 3]))
    datafiles.write_cifar_python_batch(tmp_path / "b", x, [4, 5, 6])
    got_x, got_y = data.read_cifar_python_batch(tmp_path / "b")
    np.testing.assert_array_equal(got_x, x)
    assert list(got_y) == [4, 5, 6]


@pytest.mark.parametrize("kind", ["python", "binary"])
def test_cifar100_fine_and_coarse_labels(tmp_path, kind):
    n = 6
    fine = {"train": np.array([0, 99, 5, 42, 7, 63]), "test": np.array([1, 2, 3, 98, 97, 96])}
    coarse = {k: v // 5 for k, v in fine.items()}
    xs = {"train": _images(n, 1), "test": _images(n, 2)}
    if kind == "python":
        d = tmp_path / "cifar-100-python"
        d.mkdir()
        for split in ("train", "test"):
            datafiles.write_cifar_python_batch(d / split, xs[split], fine[split], label_key=b"fine_labels",
                                          extra_labels={b"coarse_labels": coarse[split]})
        with open(d / "meta", "wb") as fh:
            pickle.dump({b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                         b"coarse_label_names": [f"c{i}".encode() for i in range(20)]}, fh, protocol=2)
    else:
        d = tmp_path / "cifar-100-binary"
        d.mkdir()
        for split in ("train", "test"):  # <coarse byte><fine byte><3072 pixels>
            datafiles.write_cifar_binary_batch(d / f"{split}.bin", xs[split], coarse[split], fine[split])
        (d / "fine_label_names.txt").write_text("\n".join(f"f{i}" for i in range(100)))
        (d / "coarse_label_names.txt").write_text("\n".join(f"c{i}" for i in range(20)))
    ds = data.load("cifar100", str(tmp_path))
    np.testing.assert_array_equal(ds.train_labels, fine["train"])
    np.testing.assert_array_equal(ds.test_images, xs["test"])
    assert ds.num_classes == 100 and ds.class_names[99] == "f99"
    ds = data.load("cifar100_coarse", str(tmp_path))
    np.testing.assert_array_equal(ds.test_labels, coarse["test"])
    assert ds.num_classes == 20 and ds.class_names[0] == "c0"


def _one_line(excinfo, path):
    msg = str(excinfo.value)
    assert "\n" not in msg and str(path) in msg, msg
    return msg


def test_corrupt_python_files_are_one_line_errors_naming_the_file(tmp_path):
    d, _ = _cifar10_py(tmp_path)
    f = d / "data_batch_3"
    good = f.read_bytes()
    f.write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(data.DataError) as e:
        data.load("cifar10", str(tmp_path))
    assert "truncated" in _one_line(e, f)
    f.write_bytes(b"hello, not a pickle")
    with pytest.raises(data.DataError) as e:
        data.load("cifar10", str(tmp_path))
    _one_line(e, f)
    # a CIFAR-100 batch where a CIFAR-10 one belongs: its keys are named
    datafiles.write_cifar_python_batch(f, _images(2, 0), [1, 2], label_key=b"fine_labels")
    with pytest.raises(data.DataError) as e:
        data.load("cifar10", str(tmp_path))
    assert "b'fine_labels'" in _one_line(e, f)
    # labels out of range for CIFAR-10 (a CIFAR-100 file relabelled)
    datafiles.write_cifar_python_batch(f, _images(2, 0), [1, 55])
    with pytest.raises(data.DataError) as e:
        data.load("cifar10", str(tmp_path))
    assert "[0, 10)" in _one_line(e, f)
    # wrong shape of b'data'
    with open(f, "wb") as fh:
        pickle.dump({b"data": np.zeros((2, 784), np.uint8), b"labels": [0, 1]}, fh)
    with pytest.raises(data.DataError) as e:
        data.load("cifar10", str(tmp_path))
    assert "(N, 3072)" in _one_line(e, f)
    # a pickle that would run code is refused, not executed
    with open(f, "wb") as fh:
        pickle.dump({b"data": os.system}, fh)
    with pytest.raises(data.DataError) as e:
        data.load("cifar10", str(tmp_path))
    assert "refers to" in _one_line(e, f)


def test_corrupt_binary_files_are_one_line_errors_naming_the_file(tmp_path):
    d, _ = _cifar10_bin(tmp_path)
    f = d / "test_batch.bin"
    f.write_bytes(f.read_bytes()[:-5])
    with pytest.raises(data.DataError) as e:
        data.load("cifar10", str(tmp_path))
    assert "3073-byte records" in _one_line(e, f)
    datafiles.write_cifar_binary_batch(f, _images(3, 0), [1, 2, 3], [4, 5, 6])  # CIFAR-100 records in a CIFAR-10 dir
    with pytest.raises(data.DataError) as e:
        data.load("cifar10", str(tmp_path))
    assert "CIFAR-100" in _one_line(e, f)
    f.write_bytes(b"")
    with pytest.raises(data.DataError) as e:
        data.load("cifar10", str(tmp_path))
    _one_line(e, f)


def test_incomplete_copy_names_the_missing_files(tmp_path):
    d, _ = _cifar10_bin(tmp_path)
    (d / "data_batch_4.bin").unlink()
    with pytest.raises(data.DataError, match="missing data_batch_4.bin"):
        data.load("cifar10", str(tmp_path))


def test_per_channel_stats_and_normalize():
    x = np.zeros((2, 2, 2, 3), np.uint8)
    x[..., 0], x[0, ..., 1], x[1, ..., 1], x[..., 2] = 255, 0, 255, 51
    ds = data.Dataset("t", x, np.zeros(2, np.int32), x, np.zeros(2, np.int32), ["a"], "test")
    np.testing.assert_allclose(ds.mean, (1.0, 0.5, 0.2))
    np.testing.assert_allclose(ds.std, (1.0, 0.5, 1.0))  # zero std falls back to 1
    y = np.asarray(data.normalize(x, ds.mean, ds.std))
    np.testing.assert_allclose(y[0, 0, 0], [0.0, -1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(y[1, 0, 0], [0.0, 1.0, 0.0], atol=1e-6)
    # grayscale keeps scalar floats (and the old arithmetic)
    g = data.synthetic(20, 10)
    assert isinstance(g.mean, float) and isinstance(g.std, float)


def test_synthetic_color_is_balanced_deterministic_and_learnable():
    ds = data.synthetic_color(1000, 300)
    assert ds.image_shape == (32, 32, 3) and ds.num_classes == 10 and len(ds.mean) == 3
    assert np.bincount(ds.train_labels).tolist() == [100] * 10
    np.testing.assert_array_equal(ds.test_images, data.synthetic_color(1000, 300).test_images)
    assert data.load("synthetic_color").image_shape == (32, 32, 3)
    # colour alone (mean of the brightest pixels' chroma) separates the hues, not the shapes:
    # a linear read-out on per-channel means reaches the hue but not the 10 classes
    feats = lambda im: np.concatenate([im.reshape(len(im), -1, 3).mean(1), im.reshape(len(im), -1, 3).std(1)], 1)
    xtr, xte = feats(ds.train_images.astype(float)), feats(ds.test_images.astype(float))
    cent = np.stack([xtr[ds.train_labels % 5 == k].mean(0) for k in range(5)])
    hue_acc = np.mean(np.argmin(((xte[:, None] - cent) ** 2).sum(-1), 1) == ds.test_labels % 5)
    assert hue_acc > 0.6


@pytest.mark.parametrize("name,classes", [("cifar10", 10), ("cifar100", 100)])
def test_tfds_cifar_by_name_with_mock_data(tmp_path, name, classes):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=4):
        ds = data.load(name, data_dir=str(tmp_path))
    assert ds.source.startswith(f"tfds:{name}")
    assert ds.train_images.shape == (4, 32, 32, 3) and ds.num_classes == classes
    assert len(ds.mean) == 3


def test_no_cifar_copy_is_one_line(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(data.DataError) as e:
        data.load("cifar10", str(tmp_path))
    assert "cifar-10-batches-py" in _one_line(e, tmp_path)
