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
from cnnjax import data, imagefile
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
