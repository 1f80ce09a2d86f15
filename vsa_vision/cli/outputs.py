"""Output paths, checked before a command does any work, and pictures written in the format their name says.

A command calls :func:`check_file` / :func:`check_folder` on every path it will write before loading a
model or computing anything, so a typo in ``--out`` costs nothing; :func:`picture_format` refuses a name
whose extension Pillow cannot write, and :func:`save_picture` writes that format atomically."""

from __future__ import annotations

import os

#: the format of a picture whose name has no extension
DEFAULT_PICTURE_FORMAT = "PNG"


def _nearest_existing(folder: str) -> str:
    """``folder`` or its closest ancestor that exists (what ``os.makedirs`` would create inside)."""
    folder = os.path.abspath(folder)
    while not os.path.exists(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return folder


def check_folder(path: str, what: str, create: bool = True) -> None:
    """``path`` is a folder that exists and is writable, or (``create``) one that can be made."""
    if not path:
        raise ValueError(f"{what}: an empty path")
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise ValueError(f"{what} {path}: exists and is not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"{what} {path}: the folder is not writable")
        return
    if not create:
        raise ValueError(f"{what} {path}: no such folder")
    base = _nearest_existing(path)
    if not os.path.isdir(base):
        raise ValueError(f"{what} {path}: cannot be created ({base} is a file, not a folder)")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path}: cannot be created ({base} is not writable)")


def check_file(path: str, what: str, create_folder: bool = True) -> None:
    """``path`` can be written: not a folder, not a read-only file, in a folder that exists and is
    writable (or, ``create_folder``, that can be made)."""
    if not path:
        raise ValueError(f"{what}: an empty path")
    if os.path.isdir(path):
        raise ValueError(f"{what} {path}: is a folder; give a file name")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ValueError(f"{what} {path}: the file is not writable")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        if not create_folder:
            raise ValueError(f"{what} {path}: the folder {folder} does not exist")
        base = _nearest_existing(folder)
        if not os.path.isdir(base):
            raise ValueError(f"{what} {path}: cannot be written ({base} is a file, not a folder)")
        folder = base
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path}: the folder {folder} is not writable")


def same_path(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` name the same file: the same spelling once resolved (``./x``, ``d/../x``,
    symbolic links) or, when both exist, the same file on disk (hard links)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def picture_format(path: str, what: str) -> str:
    """The Pillow format ``path``'s extension names (PNG without one); refuses one Pillow cannot write."""
    import io

    from PIL import Image

    ext = os.path.splitext(path)[1].lower()
    if not ext:
        return DEFAULT_PICTURE_FORMAT
    Image.init()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise ValueError(f"{what} {path}: cannot write {ext} pictures; use .png, .jpg, .webp, .bmp, .tif or .gif")
    try:  # some registered writers need a plugin or refuse colour pictures: try a tiny one
        Image.new("RGB", (4, 4)).save(io.BytesIO(), format=fmt)
    except Exception:  # any failure means this format is unusable here
        raise ValueError(f"{what} {path}: cannot write {ext} pictures here; use .png, .jpg, .webp, .bmp, .tif "
                         "or .gif") from None
    return fmt


def check_picture(path: str, what: str) -> str:
    """A picture output: writable, with a format Pillow can write; returns the format."""
    check_file(path, what)
    return picture_format(path, what)


def save_picture(image, path: str, what: str = "--out") -> None:
    """Write a PIL image to ``path`` atomically, in the format its extension names."""
    from ..io import atomic_path

    fmt = picture_format(path, what)
    if fmt == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    ext = os.path.splitext(path)[1] or ".png"
    with atomic_path(path, suffix=ext) as part:
        image.save(part, format=fmt)


def write_rows(folder: str, name: str, rows, fields) -> str:
    """A benchmark's rows as ``folder/name`` (CSV with the columns ``fields``, written atomically; the
    folder made if missing); prints and returns the path."""
    from ..bench.accuracy import write_csv

    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    write_csv(rows, path, fields)
    print(f"\nwrote {path}")
    return path
