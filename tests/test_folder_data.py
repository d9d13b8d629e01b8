"""Image folders (cnnjax.data.folder) and their prepared cache (cnnjax.data.cache): layouts,
formats, conversions, skipped files, statistics, the cache's reuse and invalidation, and every
bad-input case as one line naming the path with nothing written."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import datafiles
from cnnjax import data
from cnnjax.data import cache, folder

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ["cat", "dog", "emu"]


def _arrays(n, size=8, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8), np.arange(n) % len(CLASSES)


def _splits_folder(root, n_train=9, n_test=6, n_val=0, **kw):
    splits = {"train": _arrays(n_train, **kw), "test": _arrays(n_test, seed=1, **kw)}
    if n_val:
        splits["val"] = _arrays(n_val, seed=2, **kw)
    datafiles.write_image_folder(root, splits, CLASSES)
    return splits


def _load(root, tmp_path, **kw):
    return data.load("folder", str(root), cache_dir=str(tmp_path / "cache"), **kw)


def _in_index_order(ds_images, listing_files):
    """Rows of a split reordered by the index the file names carry (…_00042.png -> 42)."""
    index = [int(os.path.splitext(p)[0].rsplit("_", 1)[1]) for p in listing_files]
    return ds_images[np.argsort(index)]


# ------------------------------------------------------------------ layouts


def test_train_test_val_layout_reads_every_split_losslessly(tmp_path, capsys):
    splits = _splits_folder(tmp_path / "f", n_val=3)
    ds = _load(tmp_path / "f", tmp_path)
    listing = folder.scan(str(tmp_path / "f"))
    assert ds.class_names == tuple(CLASSES) and ds.image_shape == (8, 8, 1) and listing.layout == "splits"
    for split, (images, labels) in splits.items():
        got = getattr(ds, f"{split}_images")
        np.testing.assert_array_equal(_in_index_order(got, listing.files[split]), images)
        np.testing.assert_array_equal(_in_index_order(getattr(ds, f"{split}_labels"), listing.files[split]), labels)
    assert len(ds.val_labels) == 3 and ds.has_validation
    # examples are ordered by class, then by path
    assert list(ds.train_labels) == sorted(ds.train_labels)


def test_flat_layout_is_split_per_class_by_a_fixed_seed(tmp_path):
    images, labels = _arrays(30)
    datafiles.write_image_folder(tmp_path / "f", {"": (images, labels)}, CLASSES)
    ds = _load(tmp_path / "f", tmp_path)
    listing = folder.scan(str(tmp_path / "f"))
    assert listing.layout == "flat" and ds.val_images is None
    assert len(ds.test_labels) == 6 and np.bincount(ds.test_labels).tolist() == [2, 2, 2]  # 20% of each class of 10
    assert not set(listing.files["train"]) & set(listing.files["test"])
    assert len(set(listing.files["train"]) | set(listing.files["test"])) == 30
    assert folder.scan(str(tmp_path / "f")).files == listing.files  # the same split every time
    # every image and label comes back once, whichever split it landed in
    both = np.concatenate([_in_index_order(ds.train_images, listing.files["train"]),
                           _in_index_order(ds.test_images, listing.files["test"])])
    order = np.argsort([int(p[-9:-4]) for p in sorted(listing.files["train"], key=lambda p: int(p[-9:-4]))]
                       + [int(p[-9:-4]) for p in sorted(listing.files["test"], key=lambda p: int(p[-9:-4]))])
    np.testing.assert_array_equal(both[order], images)


def test_a_folder_is_recognised_by_its_contents_without_dataset_folder(tmp_path):
    _splits_folder(tmp_path / "f")
    ds = data.load("fashion_mnist", str(tmp_path / "f"), cache_dir=str(tmp_path / "cache"))
    assert ds.source.startswith(f"folder:{tmp_path / 'f'}") and ds.num_classes == 3


def test_fashion_mnist_like_idx_exported_to_pngs_reads_back_exactly(tmp_path):
    """The loader is lossless: IDX arrays -> PNGs named by their IDX index -> image folder ==
    the IDX images and labels once ordered by that index (benchmarks.folder_data's export)."""
    from benchmarks.folder_data import class_folder_names, export_png_folder, index_order
    rng = np.random.default_rng(0)
    idx_dir = tmp_path / "fashion_mnist"
    idx_dir.mkdir()
    arrays = {"train_images": rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
              "train_labels": rng.permutation(np.arange(50) % 10).astype(np.uint8),
              "test_images": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
              "test_labels": rng.permutation(np.arange(20) % 10).astype(np.uint8)}
    for key, stem in data.IDX_FILES.items():
        datafiles.write_idx(idx_dir / stem, arrays[key])
    idx = data.load("fashion_mnist", str(idx_dir))
    export_png_folder(idx, str(tmp_path / "png"))
    back = _load(tmp_path / "png", tmp_path)
    listing = folder.scan(str(tmp_path / "png"))
    assert back.class_names == tuple(class_folder_names(idx.class_names)) and back.class_names[0] == "0_T-shirt_top"
    assert back.image_shape == (28, 28, 1)
    for split in ("train", "test"):
        order = index_order(listing.files[split])
        assert np.array_equal(np.asarray(getattr(back, f"{split}_images"))[order], arrays[f"{split}_images"][..., None])
        assert np.array_equal(getattr(back, f"{split}_labels")[order], arrays[f"{split}_labels"])


# ------------------------------------------------------------------ formats and conversions


def test_formats_extensions_in_any_case_gif_first_frame_and_skipped_files(tmp_path, capsys):
    root = tmp_path / "f"
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    for split in ("train", "test"):
        for c in CLASSES:
            d = root / split / c
            d.mkdir(parents=True)
            Image.fromarray(grey).save(d / "a.PNG")
            Image.fromarray(grey).save(d / "b.Bmp")
            Image.fromarray(grey).save(d / "c.webp", lossless=True)
            Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(d / "d.JPEG", quality=100)
            frames = [Image.fromarray(grey).convert("P"), Image.fromarray(255 - grey).convert("P")]
            frames[0].save(d / "e.gif", save_all=True, append_images=frames[1:])
            (d / "notes.txt").write_text("not an image")
            (d / ".hidden.png").write_bytes(b"")  # hidden: skipped, never decoded
    (root / ".git").mkdir()
    ds = _load(root, tmp_path)
    assert len(ds.train_labels) == 15 and ds.image_shape == (8, 8, 1)
    first = ds.train_images[:5, ..., 0]  # class cat: a.PNG b.Bmp c.webp d.JPEG e.gif
    for lossless in (0, 1, 2, 4):  # PNG, BMP, lossless WebP, GIF's first frame (a greyscale palette)
        np.testing.assert_array_equal(first[lossless], grey)
    assert np.abs(first[3].astype(int) - 200).max() <= 1  # JPEG of a flat colour, as luma
    assert ds.info["skipped_files"] == 2 * 3 * 2 + 1
    assert "skipped 13 hidden or non-image files" in capsys.readouterr().err


def test_mixed_sizes_and_modes_come_to_image_size_and_channels(tmp_path):
    root = tmp_path / "f"
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in CLASSES:
            (root / split / c).mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(root / split / c / "rgb.png")
            Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).save(root / split / c / "grey.png")
            Image.fromarray(rng.integers(0, 256, (16, 10, 4), dtype=np.uint8), "RGBA").save(root / split / c / "a.png")
    ds = _load(root, tmp_path, image_size=10, channels=3)
    assert ds.image_shape == (10, 10, 3) and len(ds.train_images) == 9
    grey = ds.train_images[1]  # cat/grey.png: greyscale into RGB copies the channel
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    back = _load(root, tmp_path, image_size=10, channels=1)  # and RGB back into greyscale
    assert back.image_shape == (10, 10, 1)
    # image_size/channels 0: the first training image's shorter side and mode (cat/a.png: RGBA 10x16)
    assert _load(root, tmp_path).image_shape == (10, 10, 3)


def test_per_channel_statistics_come_from_the_training_split(tmp_path):
    splits = _splits_folder(tmp_path / "f", channels=3)
    ds = _load(tmp_path / "f", tmp_path)
    mean, std = data.channel_stats(splits["train"][0])
    np.testing.assert_allclose(ds.mean, mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ds.std, std, rtol=0, atol=1e-12)
    pixels = splits["train"][0].reshape(-1, 3) / 255.0  # by hand, population std
    np.testing.assert_allclose(ds.mean, pixels.mean(0), atol=1e-12)
    np.testing.assert_allclose(ds.std, pixels.std(0), atol=1e-12)


# ------------------------------------------------------------------ the prepared cache


def test_cache_is_reused_memory_mapped_and_rebuilt_in_one_line_when_the_folder_changes(tmp_path, monkeypatch, capsys):
    _splits_folder(tmp_path / "f")
    first = _load(tmp_path / "f", tmp_path)
    assert isinstance(first.train_images, np.memmap)
    entry = first.info["prepared"]
    assert os.path.isfile(os.path.join(entry, "train_images.npy"))
    capsys.readouterr()

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")
    monkeypatch.setattr(cache, "decode", no_decoding)
    again = _load(tmp_path / "f", tmp_path)
    np.testing.assert_array_equal(again.train_images, first.train_images)
    assert "preparing" not in capsys.readouterr().err
    monkeypatch.undo()

    new = np.full((8, 8), 7, np.uint8)
    Image.fromarray(new).save(tmp_path / "f" / "train" / "dog" / "train_00099.png")
    os.remove(tmp_path / "f" / "train" / "cat" / "train_00000.png")
    changed = _load(tmp_path / "f", tmp_path)
    err = capsys.readouterr().err
    assert f"{tmp_path / 'f'} changed since it was prepared" in err and "1 file added, 1 file removed" in err
    assert len(changed.train_labels) == 9 and any((im[..., 0] == new).all() for im in changed.train_images)
    # another size is another entry; the cache can also be off
    assert _load(tmp_path / "f", tmp_path, image_size=4).info["prepared"] != entry
    nocache = data.load("folder", str(tmp_path / "f"), cache_dir="")
    np.testing.assert_array_equal(nocache.train_images, changed.train_images)
    # a prepared entry loads by itself
    assert data.load("prepared", changed.info["prepared"]).num_classes == 3


def test_worker_processes_decode_what_this_process_decodes(tmp_path, monkeypatch):
    _splits_folder(tmp_path / "f", n_train=30, channels=3)
    listing = folder.scan(str(tmp_path / "f"))
    here = cache.decode(listing, "train", 6, 1)
    monkeypatch.setattr(cache, "PARALLEL_MIN_FILES", 10)
    monkeypatch.setattr(cache, "CHUNK", 4)  # 8 chunks over the workers, written back in order
    assert cache.spawn_is_safe()  # pytest's main module has the guard
    np.testing.assert_array_equal(cache.decode(listing, "train", 6, 1), here)
    monkeypatch.setattr(cache, "spawn_is_safe", lambda: False)  # a script without it: decoded here, same
    np.testing.assert_array_equal(cache.decode(listing, "train", 6, 1), here)


# ------------------------------------------------------------------ bad input


def _corrupt(root):
    path = root / "train" / "dog" / "train_00001.png"
    raw = path.read_bytes()
    path.write_bytes(raw[:len(raw) // 2])  # cut inside the image data
    return path


def _not_an_image(root):
    path = root / "test" / "emu" / "x.jpg"
    path.write_text("<html>not a jpeg</html>")
    return path


def _empty_class(root):
    os.makedirs(root / "train" / "fox")
    os.makedirs(root / "test" / "fox")
    return root / "train" / "fox"


def _classes_differ(root):
    os.makedirs(root / "test" / "fox")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "test" / "fox" / "a.png")
    return root / "test"


def _symlink_loop(root):
    os.symlink(root / "train" / "cat", root / "train" / "cat" / "again")
    return root / "train" / "cat"


def _file_loop(root):
    os.symlink("self.png", root / "train" / "cat" / "self.png")
    return root / "train" / "cat" / "self.png"


def _bomb(root):
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(root / "train" / "emu" / "big.png")
    return root / "train" / "emu" / "big.png"


BAD = {"truncated image": (_corrupt, "truncated or corrupt"), "not an image": (_not_an_image, "not an image"),
       "empty class folder": (_empty_class, "no images in this class folder"),
       "classes differ": (_classes_differ, "class folders differ"), "symlink loop": (_symlink_loop, "symbolic link loop"),
       "file link loop": (_file_loop, "symbolic link loop"), "decompression bomb": (_bomb, "decompression-bomb")}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_naming_the_path_and_writes_nothing(tmp_path, monkeypatch, case):
    make, words = BAD[case]
    _splits_folder(tmp_path / "f")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40 * 40 // 4)  # only the 40x40 image is over
    path = make(tmp_path / "f")
    with pytest.raises(data.DataError) as e:
        _load(tmp_path / "f", tmp_path)
    message = str(e.value)
    assert "\n" not in message and message.startswith(str(path)) and words in message, message
    assert not os.listdir(tmp_path / "cache") if os.path.isdir(tmp_path / "cache") else True


def test_a_bad_first_image_is_one_line_also_when_it_sets_the_size(tmp_path, monkeypatch):
    _splits_folder(tmp_path / "f")
    first = tmp_path / "f" / "train" / "cat" / "train_00000.png"
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(first)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40 * 40 // 4)
    with pytest.raises(data.DataError, match=rf"^{first}: larger than Pillow's decompression-bomb limit"):
        _load(tmp_path / "f", tmp_path)  # image_size 0: read from this image's header
    first.write_text("not a png")
    with pytest.raises(data.DataError, match=rf"^{first}: not an image Pillow can read$"):
        _load(tmp_path / "f", tmp_path)


def test_no_images_and_missing_split(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DataError, match=r"empty: no images"):
        _load(tmp_path / "empty", tmp_path)
    _splits_folder(tmp_path / "f")
    os.rename(tmp_path / "f" / "test", tmp_path / "f" / "elsewhere")
    with pytest.raises(data.DataError, match=r"f/test: missing"):
        _load(tmp_path / "f", tmp_path)
    with pytest.raises(data.DataError, match="needs the image folder"):
        data.load("folder")


def test_unreadable_file_and_directory(tmp_path, monkeypatch):
    """chmod 000 does not stop root, so the refusals the OS would give are simulated."""
    _splits_folder(tmp_path / "f")
    locked = tmp_path / "f" / "test" / "dog"
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda p=".": (_ for _ in ()).throw(PermissionError(13, "Permission denied"))
                        if str(p) == str(locked) else real_scandir(p))
    with pytest.raises(data.DataError, match=rf"^{locked}: cannot read the directory \(permission denied\)$"):
        _load(tmp_path / "f", tmp_path)
    monkeypatch.undo()
    secret = tmp_path / "f" / "train" / "cat" / "train_00000.png"
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda p, *a, **k: (_ for _ in ()).throw(PermissionError(13, "denied", p))
                        if str(p) == str(secret) else real_open(p, *a, **k))
    with pytest.raises(data.DataError, match=rf"^{secret}: not readable \(permission denied\)$"):
        _load(tmp_path / "f", tmp_path, image_size=8, channels=1)


def test_unreadable_file_for_real(tmp_path):
    """A file of mode 000 is one error line.  Root reads any file through its DAC capabilities,
    so as root the load runs in a child without them (``setpriv`` drops CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH from its bounding set), where the mode applies to it as to anyone."""
    _splits_folder(tmp_path / "f")
    secret = tmp_path / "f" / "train" / "cat" / "train_00003.png"
    secret.chmod(0)
    if os.geteuid() != 0:
        with pytest.raises(data.DataError, match=rf"^{secret}: not readable \(permission denied\)$"):
            _load(tmp_path / "f", tmp_path, image_size=8, channels=1)
        return
    code = ("from cnnjax import data\n"
            "try:\n"
            f"    data.load('folder', {str(tmp_path / 'f')!r}, cache_dir={str(tmp_path / 'cache')!r}, image_size=8, channels=1)\n"
            "except data.DataError as e:\n"
            "    print(e)\n")
    proc = subprocess.run(["setpriv", "--bounding-set", "-dac_override,-dac_read_search", sys.executable, "-c", code],
                          env={**os.environ, "PYTHONPATH": REPO}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{secret}: not readable (permission denied)", proc.stdout + proc.stderr


# ------------------------------------------------------------------ the command line


def _train(*args, cwd):
    env = {**os.environ, "PYTHONPATH": REPO}
    return subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_trains_from_a_folder_and_refuses_a_bad_one_in_one_line(tmp_path):
    _splits_folder(tmp_path / "f", n_train=24, n_test=6, size=12)
    (tmp_path / "f" / "train" / "cat" / "Thumbs.db").write_bytes(b"x")
    common = [f"--config.data_dir={tmp_path / 'f'}", "--config.dataset=folder", "--config.epochs=1",
              "--config.batch_size=8", "--config.validation_size=0", "--config.progress=none",
              f"--config.data_cache_dir={tmp_path / 'cache'}"]
    ok = _train(f"--workdir={tmp_path / 'w'}", *common, cwd=REPO)
    assert ok.returncode == 0, ok.stderr[-2000:]
    info = json.loads((tmp_path / "w" / "data.json").read_text())
    assert info["class_names"] == CLASSES and info["image_shape"] == [12, 12, 1] and info["skipped_files"] == 1
    entries = sorted(os.listdir(tmp_path / "cache"))
    for case in ("truncated image", "empty class folder", "classes differ"):
        make, words = BAD[case]
        root = tmp_path / case.replace(" ", "_")
        shutil.copytree(tmp_path / "f", root)
        path = make(root)
        flags = [f.replace(str(tmp_path / "f"), str(root)) for f in common]
        bad = _train(f"--workdir={tmp_path / 'w2'}", *flags, cwd=REPO)
        errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
        assert bad.returncode == 2 and len(errors) == 1 and errors[0].startswith(f"error: {path}"), bad.stderr
        assert words in errors[0] and bad.stderr.strip().splitlines()[-1] == errors[0]
        assert not (tmp_path / "w2").exists() and sorted(os.listdir(tmp_path / "cache")) == entries, case
