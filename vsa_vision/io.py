"""Files the user asked for are written atomically: to a temporary name in the same folder, then renamed.

A crash, a full disk or Ctrl-C leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on error remove it.

    For writers that take a file name (``np.save``, ``PIL.Image.save``, ``safetensors``, ``savefig``).
    ``suffix`` lets writers that pick a format by extension see the right one."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode open() would
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write(path: str | os.PathLike, write: Callable[[IO[Any]], None], binary: bool = False) -> None:
    """Call ``write(f)`` on a file opened for writing (text with ``newline=""``, or binary), atomically."""
    with atomic_path(path) as tmp:
        if binary:
            with open(tmp, "wb") as f:
                write(f)
        else:
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                write(f)
