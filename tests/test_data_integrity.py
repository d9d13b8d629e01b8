"""Issue 35: a run's data never changes under it.  Fingerprinted image folders (a changed folder
is refused in one line, or accepted explicitly), degenerate folders refused before training,
cache failures in one line or a fallback, TIFF/PPM/PGM, and the strict content check.  Every
case runs on a small generated folder."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import datafiles
from cnnjax import data
from cnnjax.data import imagefile
from cnnjax.data import DataError, folder

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ["cat", "dog", "emu"]


def _load(root, tmp_path, **kw):
    return data.load("folder", str(root), cache_dir=str(tmp_path / "cache"), **kw)


# ------------------------------------------------------------------ formats (point 5)


def test_tiff_ppm_pgm_are_read_by_the_same_rule(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    rgb = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    wide = rng.integers(0, 65536, (8, 8), dtype=np.uint16)
    d = tmp_path / "img"
    d.mkdir()
    Image.fromarray(grey).save(d / "g8.tif")
    Image.fromarray(wide).save(d / "g16.TIFF")
    Image.fromarray(rgb).save(d / "rgb.tif")
    pages = [Image.fromarray(grey), Image.fromarray(255 - grey)]
    pages[0].save(d / "pages.tif", save_all=True, append_images=pages[1:])
    Image.fromarray(rgb).save(d / "rgb.ppm")
    Image.fromarray(grey).save(d / "g8.pgm")
    Image.fromarray(wide).save(d / "g16.pgm")  # maxval 65535: Pillow's mode "I"
    Image.fromarray(wide).save(d / "g16.png")
    for name in ("g8.tif", "g16.TIFF", "rgb.tif", "pages.tif", "rgb.ppm", "g8.pgm", "g16.pgm"):
        assert imagefile.is_image_name(name)
    load = lambda name, c: imagefile.load_image(str(d / name), None, c)[..., 0 if c == 1 else slice(None)]
    np.testing.assert_array_equal(load("g8.tif", 1), grey)
    np.testing.assert_array_equal(load("pages.tif", 1), grey)  # the first page
    np.testing.assert_array_equal(load("rgb.tif", 3), rgb)
    np.testing.assert_array_equal(load("rgb.ppm", 3), rgb)
    np.testing.assert_array_equal(load("g8.pgm", 1), grey)
    top8 = (wide >> 8).astype(np.uint8)  # the 16-bit rule: the top 8 bits, as for 16-bit PNG
    for name in ("g16.TIFF", "g16.pgm", "g16.png"):
        np.testing.assert_array_equal(load(name, 1), top8, err_msg=name)


def test_a_folder_of_tiff_classes_trains_like_png(tmp_path):
    rng = np.random.default_rng(1)
    for split, n in (("train", 4), ("test", 2)):
        for c in CLASSES:
            (tmp_path / "f" / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 65536, (6, 6), dtype=np.uint16)).save(
                    tmp_path / "f" / split / c / f"{i}.tif")
    ds = _load(tmp_path / "f", tmp_path)
    assert ds.class_names == tuple(CLASSES) and len(ds.train_labels) == 12 and ds.image_shape == (6, 6, 1)


# ------------------------------------------------------------------ the run's data is part of the run (point 1)


def _flat_folder(root, per_class=8, classes=CLASSES, size=8, seed=0, start=0):
    """``per_class`` random greyscale PNGs per class in ``root/<class>/`` (names from ``start``)."""
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(start, start + per_class):
            Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(root / c / f"{i:03d}.png")


def _cfg(root, tmp_path, **kw):
    from cnnjax.train import config
    return config.from_dict({"dataset": "folder", "data_dir": str(root), "data_cache_dir": str(tmp_path / "cache"),
                             "model": "mlp", "model_options": {"hidden": (8,)}, "epochs": 4, "batch_size": 4,
                             "validation_size": 0, "progress": "none", "eval_batch_size": 64, **kw})


class _Stop(Exception):
    pass


def _train_until(cfg, workdir, epoch):
    """Train in ``workdir`` and stop (like a kill) after ``epoch`` was checkpointed."""
    from cnnjax.train import experiment

    def stop(row):
        if row["epoch"] == epoch:
            raise _Stop()
    with pytest.raises(_Stop):
        experiment.train_and_evaluate(cfg, str(workdir), log=lambda line: None, on_epoch=stop)


def _listing(path):
    return sorted(os.listdir(path)) if os.path.isdir(path) else None


def test_a_changed_folder_is_refused_on_resume_and_its_checkpoints_are_kept(tmp_path):
    from cnnjax.train import experiment
    from cnnjax.data import fingerprint
    root, wd = tmp_path / "f", tmp_path / "w"
    _flat_folder(root)
    cfg = _cfg(root, tmp_path)
    _train_until(cfg, wd, 2)
    record = json.loads((wd / "data_fingerprint.json").read_text())
    assert record["kind"] == "folder" and record["class_names"] == CLASSES and len(record["stats"]) == 24
    assert json.loads((wd / "data.json").read_text())["fingerprint"]["digest"] == record["digest"]
    checkpoints = _listing(wd / "checkpoints")
    _flat_folder(root, per_class=2, start=100, seed=5, classes=["cat"])  # 2 files added
    with pytest.raises(fingerprint.DataChanged, match=r"2 files added \(e\.g\. cat/100\.png\).*--config\.data_changed=accept"):
        experiment.train_and_evaluate(cfg, str(wd), log=lambda line: None)
    assert _listing(wd / "checkpoints") == checkpoints and not (wd / "corrupt_checkpoints").exists()
    # a class folder added: refused even with accept; no checkpoint is set aside
    _flat_folder(root, per_class=3, classes=["fox"])
    with pytest.raises(fingerprint.DataChanged, match=r"1 class added: fox.*cannot continue on other classes"):
        experiment.train_and_evaluate(_cfg(root, tmp_path, data_changed="accept"), str(wd), log=lambda line: None)
    assert _listing(wd / "checkpoints") == checkpoints and not (wd / "corrupt_checkpoints").exists()
    assert json.loads((wd / "data.json").read_text())["class_names"] == CLASSES


def test_accepting_a_grown_folder_continues_from_the_checkpoint_keeps_the_split_and_records_it(tmp_path):
    from cnnjax.train import experiment
    root, wd = tmp_path / "f", tmp_path / "w"
    _flat_folder(root)
    _train_until(_cfg(root, tmp_path), wd, 2)
    before = json.loads((wd / "data_fingerprint.json").read_text())
    _flat_folder(root, per_class=5, start=100, seed=5)  # 15 files added
    lines = []
    result = experiment.train_and_evaluate(_cfg(root, tmp_path, data_changed="accept"), str(wd), log=lines.append)
    assert result["status"] == "finished" and result["epochs_trained"] == 4
    assert any("resuming" in line and "epoch 2" in line for line in lines), lines
    after = json.loads((wd / "data_fingerprint.json").read_text())
    for split in ("train", "test"):  # files already assigned keep their split
        assert set(before["files"][split]) <= set(after["files"][split])
    assert len(after["stats"]) == 39
    info = json.loads((wd / "data.json").read_text())
    assert info["num_train"] + info["num_test"] == 39 and info["fingerprint"]["digest"] == after["digest"]
    assert info["data_changes"][0]["changes"].startswith("15 files added")
    raw = [json.loads(line) for line in (wd / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("epoch", r.get("event")) for r in raw] == [1, 2, "data_changed", 3, 4]
    assert raw[2]["after_epoch"] == 2 and raw[2]["num_train"] == info["num_train"]


def test_evaluate_predict_and_explain_refuse_changed_data_in_one_line(tmp_path):
    root, wd = tmp_path / "f", tmp_path / "w"
    _flat_folder(root)
    from cnnjax.train import experiment
    experiment.train_and_evaluate(_cfg(root, tmp_path, epochs=1), str(wd), log=lambda line: None)
    env = {**os.environ, "PYTHONPATH": REPO}
    cli = lambda *args: subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True,
                                       text=True, timeout=300)
    ok = cli("experiments.evaluate", f"--workdir={wd}")
    assert ok.returncode == 0, ok.stderr[-2000:]
    # a test image moved into the training split's place: the flat split moves with a rename
    os.rename(root / "dog" / "000.png", root / "dog" / "zzz.png")
    image = str(root / "cat" / "001.png")
    for args in (["experiments.evaluate", f"--workdir={wd}"], ["experiments.predict", f"--workdir={wd}", image],
                 ["experiments.explain", f"--workdir={wd}", f"--out={tmp_path / 'x'}", image]):
        bad = cli(*args)
        errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
        assert bad.returncode == 2 and len(errors) == 1, (args, bad.stderr[-2000:])
        assert "changed since the run started" in errors[0] and "1 file added (e.g. dog/zzz.png)" in errors[0]
        assert "1 file removed (e.g. dog/000.png)" in errors[0] and bad.stdout == "", errors
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------ degenerate data (point 3)


def _cli(*args):
    env = {**os.environ, "PYTHONPATH": REPO}
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)


def test_one_class_folder_is_one_error_line_and_nothing_is_written(tmp_path):
    _flat_folder(tmp_path / "f", classes=["cat"])
    (tmp_path / "f" / "README.txt").write_text("a plain file, not a class")
    proc = _cli("experiments.train", f"--workdir={tmp_path / 'w'}", "--config.dataset=folder",
                f"--config.data_dir={tmp_path / 'f'}", f"--config.data_cache_dir={tmp_path / 'cache'}",
                "--config.epochs=1")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-2000:]
    assert "only one class folder (cat): a classifier needs at least 2 classes" in errors[0]
    assert not (tmp_path / "w").exists() and not (tmp_path / "cache").exists()


def test_an_empty_test_split_names_the_classes_with_too_few_images(tmp_path):
    from cnnjax.train import experiment
    names = [f"c{i:02d}" for i in range(30)]
    _flat_folder(tmp_path / "f", per_class=1, classes=names)  # one image per class: nothing to test on
    with pytest.raises(DataError, match=r"the test split is empty; a flat folder's test split takes 20% of each "
                                        r"class with at least 2 images, and every class has fewer \(c00, c01, c02, c03, "
                                        r"c04 and 25 more\): add images"):
        experiment.build(_cfg(tmp_path / "f", tmp_path))
    from cnnjax.data import checks
    ds = data.synthetic(8, 4, image_size=8)
    with pytest.raises(DataError, match=r"the train split is empty; config.num_train"):
        checks.check(ds.subset(0, None), validation=False)
    with pytest.raises(DataError, match=r"the validation split is empty; config.validation_size"):
        checks.check(ds, validation=True)
    checks.check(ds.hold_out(2, 0), validation=True)


def test_images_smaller_than_the_model_needs_name_the_file_and_the_setting(tmp_path):
    from cnnjax.train import experiment
    _flat_folder(tmp_path / "f", size=1)
    with pytest.raises(ValueError, match=r"1x1 images are too small for config.model padded_cnn \(it needs at least "
                                         r"4x4; .*\); the size comes from the first training image .*cat/000.png: set "
                                         r"--config.image_size=4 or larger"):
        experiment.build(_cfg(tmp_path / "f", tmp_path, model="padded_cnn", model_options={}))


def test_a_confusion_matrix_of_1000_classes_is_a_csv_not_a_huge_figure(tmp_path):
    from cnnjax import plots
    names = [f"class{i}" for i in range(1000)]
    written = plots.plot_confusion(np.eye(1000, dtype=np.int64), names, str(tmp_path / "confusion.png"))
    assert written == str(tmp_path / "confusion.csv") and not (tmp_path / "confusion.png").exists()
    rows = (tmp_path / "confusion.csv").read_text().splitlines()
    assert len(rows) == 1001 and rows[1].startswith("class0,1,0,0")
    small = plots.plot_confusion(np.eye(3, dtype=np.int64), CLASSES, str(tmp_path / "small.png"))
    assert small == str(tmp_path / "small.png") and os.path.getsize(small) > 0


# ------------------------------------------------------------------ the cache fails in one line or falls back (point 4)

from tests import fsfaults  # noqa: E402

LOAD = ("import sys, numpy as np; from cnnjax import data; "
        "ds = data.load('folder', sys.argv[1], cache_dir=sys.argv[2]); "
        "print('loaded', ds.train_images.shape, int(np.asarray(ds.train_images, np.int64).sum()))")


def _load_cli(root, cache_dir):
    return [sys.executable, "-c", LOAD, str(root), str(cache_dir)]


def _expected(root, tmp_path):
    ds = data.load("folder", str(root), cache_dir="")
    return f"loaded {ds.train_images.shape} {int(np.asarray(ds.train_images, np.int64).sum())}"


def _assert_fell_back(proc, reason, expected):
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == expected
    assert "Traceback" not in proc.stderr and "Bus error" not in proc.stderr, proc.stderr
    notices = [line for line in proc.stderr.splitlines() if line.startswith("cannot write the prepared-data cache")]
    assert len(notices) == 1 and reason in notices[0] and "decoding" in notices[0] and "into memory" in notices[0], \
        proc.stderr


def test_a_full_cache_disk_falls_back_to_memory_without_a_bus_error_or_a_temp_dir(tmp_path):
    _flat_folder(tmp_path / "f", size=64)  # 24 x 64x64 = 96 kB decoded, on a 48 kB tmpfs
    disk = tmp_path / "disk"
    disk.mkdir()
    proc = fsfaults.run_in_mount_namespace(_load_cli(tmp_path / "f", disk / "cache"),
                                           [["-t", "tmpfs", "-o", "size=48k", "tmpfs", str(disk)]],
                                           after=f"ls -A {disk / 'cache'} > {tmp_path / 'left'}",
                                           cwd=REPO, capture_output=True, text=True, timeout=300,
                                           env={**os.environ, "PYTHONPATH": REPO})
    _assert_fell_back(proc, "No space left on device", _expected(tmp_path / "f", tmp_path))
    assert (tmp_path / "left").read_text() == ""  # no .tmp-* entry left on the full disk


@pytest.mark.parametrize("how", ["permissions", "read-only mount"])
def test_a_read_only_cache_dir_falls_back_to_memory_in_one_line(tmp_path, how):
    _flat_folder(tmp_path / "f")
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    argv = _load_cli(tmp_path / "f", cache_dir)
    env = {**os.environ, "PYTHONPATH": REPO}
    if how == "permissions":
        with fsfaults.read_only(cache_dir):
            proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
        reason = "Operation not permitted" if os.geteuid() == 0 else "Permission denied"
    else:
        proc = fsfaults.run_in_mount_namespace(argv, fsfaults.read_only_mount(cache_dir), cwd=REPO,
                                               capture_output=True, text=True, timeout=300, env=env)
        reason = "Read-only file system"
    _assert_fell_back(proc, reason, _expected(tmp_path / "f", tmp_path))
    assert os.listdir(cache_dir) == []


def test_the_temp_dir_of_a_killed_prepare_is_removed_by_the_next_run(tmp_path):
    _flat_folder(tmp_path / "f")
    from cnnjax.data import cache
    entry = cache.entry_dir(str(tmp_path / "cache"), str(tmp_path / "f"), 8, 1)
    os.makedirs(f"{entry}.tmp-999999")  # what a SIGKILL during the prepare leaves
    (tmp_path / "cache" / f"{os.path.basename(entry)}.tmp-999999" / "train_images.npy").write_bytes(b"x" * 1000)
    _load(tmp_path / "f", tmp_path)
    assert sorted(os.listdir(tmp_path / "cache")) == [os.path.basename(entry)]


def test_decoding_workers_die_with_their_parent(tmp_path, monkeypatch):
    from cnnjax.data import cache
    script = ("import os, sys, time, multiprocessing\n"
              "from concurrent.futures import ProcessPoolExecutor\n"
              "from cnnjax.data import cache\n"
              "if __name__ == '__main__':\n"
              "    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn'),\n"
              "                               initializer=cache.die_with_parent, initargs=(os.getpid(),))\n"
              "    print(pool.submit(os.getpid).result(), flush=True)\n"
              "    pool.submit(time.sleep, 120)\n"
              "    time.sleep(120)\n")
    (tmp_path / "s.py").write_text(script)
    parent = subprocess.Popen([sys.executable, str(tmp_path / "s.py")], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": REPO})
    worker = int(parent.stdout.readline())
    parent.kill()  # SIGKILL: no cleanup in the parent
    parent.wait()
    import time
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(worker):
        time.sleep(0.1)
    alive = _alive(worker)
    if alive:
        os.kill(worker, 9)
    assert not alive, "the decoding worker outlived its SIGKILLed parent"
    # and the prepare step's pool is made with it
    import concurrent.futures
    made = []
    real = concurrent.futures.ProcessPoolExecutor

    def recording(*args, **kwargs):
        made.append(kwargs.get("initializer"))
        return real(*args, **kwargs)
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", recording)
    monkeypatch.setattr(cache, "PARALLEL_MIN_FILES", 4)
    monkeypatch.setattr(cache, "CHUNK", 4)
    monkeypatch.setattr(cache.os, "cpu_count", lambda: 2)
    _flat_folder(tmp_path / "f")
    listing = folder.scan(str(tmp_path / "f"))
    cache.decode(listing, "train", 8, 1)
    assert made == [cache.die_with_parent]


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# ------------------------------------------------------------------ the cache's rule and the strict check (point 2)


def test_a_file_rewritten_with_the_same_size_and_mtime_is_found_by_the_strict_check(tmp_path):
    _flat_folder(tmp_path / "f")
    path = tmp_path / "f" / "dog" / "003.png"
    with Image.open(path) as im:
        pixels = np.asarray(im).copy()
    Image.fromarray(pixels).save(path, compress_level=0)  # uncompressed: the same size whatever the pixels
    first = _load(tmp_path / "f", tmp_path)
    st = os.stat(path)
    pixels[0, 0] ^= 0xFF
    Image.fromarray(pixels).save(path, compress_level=0)  # rewritten in place...
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # ...with the same mtime (e.g. a restore that keeps it)
    assert os.path.getsize(path) == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns
    # the cache's rule: same size and mtime -> the old pixels (documented), silently
    again = _load(tmp_path / "f", tmp_path)
    np.testing.assert_array_equal(again.train_images, first.train_images)
    check = lambda *extra: _cli("experiments.data", "check", f"--data_dir={tmp_path / 'f'}",
                                f"--cache_dir={tmp_path / 'cache'}", *extra)
    proc = check()
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"{path}: its pixels differ from the prepared copy") and len(lines) == 2
    assert "24 files compared, 1 differ" in lines[1]
    assert check("--repair").returncode == 1 and not os.listdir(tmp_path / "cache")
    fresh = _load(tmp_path / "f", tmp_path)
    assert not np.array_equal(fresh.train_images, first.train_images) or \
        not np.array_equal(fresh.test_images, first.test_images)
    ok = check()
    assert ok.returncode == 0 and ok.stdout.strip().endswith("24 files compared, 0 differ"), ok.stdout + ok.stderr
