"""One image file -> one uint8 ``(H, W, C)`` array: the single decoding rule of cnnjax.

Image folders (training data) and ``experiments.predict`` (files to classify) both read images
through :func:`load_image`, so a file is resized and converted the same way at training and at
prediction time.

The rule, in order:

1. Pillow opens the file (PNG, JPEG, BMP, GIF, WebP, TIFF, PPM/PGM; the extension is not
   trusted, the content decides). A GIF, a multi-page TIFF or another multi-frame file gives its
   first frame (page).
2. EXIF orientation is applied (``ImageOps.exif_transpose``), as a photo viewer shows the image.
3. Modes are brought to ``channels``: transparency is composited over black; palette, ``LA``,
   ``RGBA``, ``CMYK`` and 16-bit greyscale become ``L`` (1 channel) or ``RGB`` (3 channels) by
   Pillow's ITU-R 601-2 luma rule / channel replication.  The 16-bit rule, the same for PNG,
   TIFF and PGM: a 16-bit greyscale pixel keeps its top 8 bits (value // 256; a 16-bit PGM's
   values are taken as 16-bit whatever its maxval); a 32-bit integer (``I``) pixel of another
   format its top 8 of 32.  16-bit colour (PPM with maxval > 255) is scaled to 8 bits by Pillow
   (value * 255 / maxval).
4. With ``size`` given, the shorter side is resized to ``size`` (bilinear, antialiased) and the
   centre ``size x size`` square is cropped (odd margins drop the extra row/column at the
   bottom/right). An image already ``size x size`` is returned untouched (lossless).

Errors are :class:`ImageError`, a one-line message that starts with the file's path.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class ImageError(ValueError):
    """One-line, user-facing error about one image file; the message starts with its path."""


def is_image_name(name: str) -> bool:
    """True for a visible file name with an image extension (any case), as torchvision filters."""
    base = os.path.basename(name)
    return not base.startswith(".") and base.lower().endswith(IMAGE_EXTENSIONS)


def _to_mode(im, channels: int, sixteen_bit_i: bool = False):
    """``im`` in mode ``L`` (channels 1) or ``RGB`` (channels 3) by the module's rule.
    ``sixteen_bit_i``: an ``I`` image holds 16-bit values (Pillow's mode for a PGM with maxval
    > 255), so it keeps bits 8-15 like ``I;16``."""
    from PIL import Image

    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit (or 32-bit integer) greyscale: keep the top 8 bits instead of Pillow's clipping
        # convert("L"), which saturates everything above 255.
        wide = np.asarray(im, dtype=np.uint32 if im.mode == "I" else np.uint16)
        shift = 24 if im.mode == "I" and not sixteen_bit_i else 8
        im = Image.fromarray((wide >> shift).astype(np.uint8), "L")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("LA", "RGBA", "PA"):
        background = Image.new("RGBA", im.size, (0, 0, 0, 255))
        im = Image.alpha_composite(background, im.convert("RGBA"))
    if channels == 1:
        return im if im.mode == "L" else im.convert("L")
    return im if im.mode == "RGB" else im.convert("RGB")


def _square(im, size: int):
    from PIL import Image

    w, h = im.size
    if (w, h) == (size, size):
        return im
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    im = im.resize((nw, nh), Image.Resampling.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    return im.crop((left, top, left + size, top + size))


def load_image(path: str, size: int | None, channels: int) -> np.ndarray:
    """Decode ``path`` by the module's rule into a uint8 array ``(size, size, channels)``.

    ``size=None`` keeps the image's own ``(H, W)``. ``channels`` is 1 (greyscale) or 3 (RGB).
    Raises :class:`ImageError` for a missing, unreadable, truncated or corrupt file, a file that
    is not an image, and one over Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, not {channels!r}")
    try:
        with warnings.catch_warnings():
            # Pillow warns between MAX_IMAGE_PIXELS and twice that, and raises above: refuse both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.seek(0)
                im.load()
                pgm16 = im.format == "PPM" and im.mode == "I"  # a PGM with maxval > 255: 16-bit values
                im = ImageOps.exif_transpose(im)
                im = _to_mode(im, channels, pgm16)
                if size is not None:
                    im = _square(im, size)
                array = np.asarray(im, dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{path}: larger than Pillow's decompression-bomb limit "
                         f"({Image.MAX_IMAGE_PIXELS:,} pixels): {e}") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image Pillow can read") from None
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory, not an image file") from None
    except PermissionError:
        raise ImageError(f"{path}: not readable (permission denied)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"{path}: truncated or corrupt image ({e})") from None
    return array.reshape(array.shape[0], array.shape[1], channels)
