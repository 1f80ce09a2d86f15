"""Images as recognition and the dataset importer read them: any file Pillow decodes, any mode and size.

Input policy: any image Pillow reads is converted to RGB (transparent pixels are composited onto
black); an image of another size is padded with black to a square, centred, then resized to the
model's input size (box filter when shrinking, bilinear when enlarging), so shapes keep their aspect
ratio. ``vsa-vision data import`` prepares a user's images exactly as ``Pipeline.recognize`` does, so
a model trained on an imported dataset sees at recognition what it saw in training.
"""

from __future__ import annotations

import errno
import os
import stat
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["prepare_image", "open_image", "MAX_PIXELS"]


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    rgba = img.convert("RGBA")
    black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
    return Image.alpha_composite(black, rgba).convert("RGB")


def _pad_and_resize(img: Image.Image, side: int) -> Image.Image:
    """Pad ``img`` with black to a centred square and resize it to ``side`` (box filter when
    shrinking, bilinear when enlarging); any mode Pillow resizes (``RGB``, ``F``)."""
    w, h = img.size
    if w != h:
        sq = max(w, h)
        canvas = Image.new(img.mode, (sq, sq), 0)
        canvas.paste(img, ((sq - w) // 2, (sq - h) // 2))
        img = canvas
    if img.size != (side, side):
        resample = Image.Resampling.BOX if img.width > side else Image.Resampling.BILINEAR
        img = img.resize((side, side), resample)
    return img


def prepare_image(img: Image.Image, side: int) -> np.ndarray:
    """One PIL image -> ``uint8 [side, side, 3]`` by the module's input policy."""
    if not isinstance(img, Image.Image):
        raise TypeError(f"expected a PIL image, got {type(img).__name__}")
    return np.array(_pad_and_resize(_to_rgb(img), side), dtype=np.uint8)


#: the most pixels (width x height) :func:`open_image` decodes: 50 megapixels (a 7071 x 7071 picture, about
#: 200 MB as RGB). Larger files are refused before anything is decoded; a JPEG is first read at a reduced
#: scale (1/2, 1/4 or 1/8, ``Image.draft``) when that brings it under. A module attribute: raise it to
#: read larger pictures.
MAX_PIXELS = 50_000_000


def _stat(path: str) -> os.stat_result:
    """``os.stat(path)``, its failures as the errors :func:`open_image` documents."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ValueError(f"{path}: a symbolic link loop (the links point at each other, never at a file)") \
                from None
        raise ValueError(f"{path}: cannot be read ({e.strerror or e})") from None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a plain file"


def _reduced(im: Image.Image, path: str) -> None:
    """Keep ``im`` (opened, not decoded) at most :data:`MAX_PIXELS`: a JPEG is set to decode at the
    smallest reduction (1/2, 1/4, 1/8) that brings it under; anything else over it is refused."""
    w, h = im.size
    if w * h <= MAX_PIXELS:
        return
    if im.format == "JPEG":
        for r in (2, 4, 8):
            if -(-w // r) * -(-h // r) <= MAX_PIXELS:
                im.draft(im.mode, (max(1, w // r), max(1, h // r)))
                break
    if im.size[0] * im.size[1] > MAX_PIXELS:
        raise ValueError(f"{path}: {w}x{h} pixels, more than the {MAX_PIXELS} pixels images are read at "
                         "(vsa_vision.scenes.images.MAX_PIXELS); shrink it first")


def open_image(path: str | os.PathLike) -> Image.Image:
    """The image in file ``path``, decoded (``FileNotFoundError`` or ``ValueError`` with the path).

    Refused, before anything is read: a path that is not a regular file (a folder, a FIFO, which
    would block until something writes to it, a device, a socket), a symbolic link loop, and an image
    of more than :data:`MAX_PIXELS` pixels (its size is read from the header; a JPEG is decoded at a
    reduced scale when that brings it under the limit); then a file Pillow cannot decode, or a
    decompression bomb by Pillow's own limit."""
    path = os.fspath(path)
    mode = _stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise ValueError(f"{path}: not a regular file ({_kind(mode)}); give the path of an image file")
    try:
        with warnings.catch_warnings():
            if Image.MAX_IMAGE_PIXELS is not None and MAX_PIXELS <= Image.MAX_IMAGE_PIXELS:
                # Pillow warns of a possible bomb over its limit: this module's limit, lower, refuses it below
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            _reduced(im, path)
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        if isinstance(e, ValueError) and str(e).startswith(f"{path}: "):
            raise
        raise ValueError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None
