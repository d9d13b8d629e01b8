"""cnnjax.data.imagefile: the one rule that turns an image file into a uint8 (H, W, C) array."""
import numpy as np
import pytest
from PIL import Image

from cnnjax.data.imagefile import ImageError, is_image_name, load_image


@pytest.fixture
def gray():
    return np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)


def test_png_at_its_own_size_is_lossless_in_both_channel_counts(tmp_path, gray):
    Image.fromarray(gray).save(tmp_path / "g.png")
    np.testing.assert_array_equal(load_image(str(tmp_path / "g.png"), 28, 1)[..., 0], gray)
    rgb = load_image(str(tmp_path / "g.png"), 28, 3)
    assert rgb.shape == (28, 28, 3) and all((rgb[..., c] == gray).all() for c in range(3))


def test_shorter_side_then_centre_crop(tmp_path):
    # 20 rows x 40 columns: left half black, right half white; after the shorter side goes to
    # 10 (image 10x20) the centre 10x10 crop spans columns 5..14: half black, half white.
    a = np.zeros((20, 40), np.uint8)
    a[:, 20:] = 255
    Image.fromarray(a).save(tmp_path / "w.png")
    out = load_image(str(tmp_path / "w.png"), 10, 1)[..., 0]
    assert out.shape == (10, 10)
    assert (out[:, :4] == 0).all() and (out[:, 6:] == 255).all()


def test_exif_orientation_is_applied(tmp_path):
    a = np.zeros((10, 20), np.uint8)  # wide
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees: shown tall
    im.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(str(tmp_path / "r.jpg"), None, 1).shape == (20, 10, 1)


def test_16_bit_greyscale_keeps_its_top_byte(tmp_path, gray):
    Image.fromarray(gray.astype(np.uint16) * 256 + 255).save(tmp_path / "w.png")
    np.testing.assert_array_equal(load_image(str(tmp_path / "w.png"), 28, 1)[..., 0], gray)


def test_transparency_is_composited_over_black(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 0          # fully transparent red -> black
    rgba[0, 0, 3] = 255       # one opaque red pixel
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = load_image(str(tmp_path / "a.png"), None, 3)
    assert out[0, 0].tolist() == [200, 0, 0] and out[1:].max() == 0


def test_gif_gives_its_first_frame(tmp_path):
    frames = [Image.fromarray(np.full((8, 8), v, np.uint8)).convert("P") for v in (10, 250)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    assert load_image(str(tmp_path / "a.gif"), None, 1).max() < 128


@pytest.mark.parametrize("content, words", [
    (b"not an image", "not an image"),
    (None, "truncated or corrupt"),
])
def test_bad_files_are_one_line_naming_the_file(tmp_path, gray, content, words):
    path = tmp_path / "x.jpg"
    if content is None:
        Image.fromarray(gray).save(path)
        content = path.read_bytes()[:200]
    path.write_bytes(content)
    with pytest.raises(ImageError, match=words) as e:
        load_image(str(path), 28, 1)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


def test_decompression_bomb_is_refused(tmp_path, gray, monkeypatch):
    Image.fromarray(gray).save(tmp_path / "g.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageError, match="decompression-bomb"):
        load_image(str(tmp_path / "g.png"), 28, 1)


def test_image_names():
    assert is_image_name("a.PNG") and is_image_name("x/b.JpEg") and is_image_name("c.webp")
    assert not is_image_name(".hidden.png") and not is_image_name("notes.txt")
