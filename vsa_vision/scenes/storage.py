"""The files of a dataset on disk: the shard plan, the size of each file, checks of what is there
(shards of the manifest's shape, no link out of the folder), the lock of the run that writes a
folder, and the disk space a generation needs.

A shard is ``uint8 [m, H, W, 3]`` in ``.npy`` format, so its exact size is known from its shape; a
shard on disk is trusted only when it has that size, a readable header of that shape, and either
the sha256 the manifest gives or (no manifest yet) the first and last images a fresh render gives.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .sampling import SPLITS, check_in_memory, format_bytes

MAX_SHARDS = 100_000  # per split: shard files are named <split>-00000.npy ... <split>-99999.npy

Shard = tuple[str, int, int, str]  # split, first index, count, file name


def plan_shards(config: Mapping[str, Any]) -> list[Shard]:
    """(split, start, count, file name) of every shard; refuses a split of more than ``MAX_SHARDS``
    shards and a shard too large to render in memory."""
    size, step = config["size"], config["shard_size"]
    check_in_memory(f"shard_size: a shard of {step} images of {size}x{size}x3", step * size * size * 3)
    out = []
    for split in SPLITS:
        n = config["counts"][split]
        if -(-n // step) > MAX_SHARDS:
            name = "n" if split == "train" else split
            raise ValueError(f"{name}: {n} {split} images in shards of {step} make {-(-n // step)} shards, more than "
                             f"the {MAX_SHARDS} one split can hold; raise shard_size or generate fewer images")
        for j, start in enumerate(range(0, n, step)):
            out.append((split, start, min(step, n - start), f"{split}-{j:05d}.npy"))
    return out


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def npy_bytes(shape: Sequence[int]) -> int:
    """The size of the ``.npy`` file ``np.save`` writes for a uint8 array of ``shape``."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": tuple(shape)})
    return len(buf.getvalue()) + int(np.prod(shape, dtype=np.int64))


def shard_is_whole(path: str, count: int, side: int) -> bool:
    """Whether ``path`` is a readable uint8 ``[count, side, side, 3]`` .npy file of exactly its size."""
    shape = (count, side, side, 3)
    try:
        if os.path.getsize(path) != npy_bytes(shape):
            return False
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version != (1, 0):
                return False
            got, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    except (OSError, ValueError):
        return False
    return got == shape and not fortran and dtype == np.uint8


def valid_shard_digest(path: str, count: int, side: int, known: str | None,
                       render: Callable[[int], np.ndarray]) -> str | None:
    """The sha256 of the shard at ``path`` if it can be trusted, else ``None`` (missing or damaged).

    Trusted: whole (:func:`shard_is_whole`) and, with a ``known`` sha256, equal to it; without one,
    its first and last images equal ``render(j)``."""
    if not shard_is_whole(path, count, side):
        return None
    digest = sha256_file(path)
    if known is not None:
        return digest if digest == known else None
    images = np.load(path, mmap_mode="r")
    try:
        same = all(np.array_equal(images[j], render(j)) for j in sorted({0, count - 1}))
    finally:
        del images
    return digest if same else None


def inside(folder: str, name: Any) -> str:
    """``folder/name``, refused unless ``name`` is a relative path that stays inside ``folder``."""
    if not isinstance(name, str) or not name or os.path.isabs(name):
        raise ValueError(f"{folder}: the manifest names the file {name!r}, which is not a path inside the dataset "
                         "folder; refusing it")
    root = os.path.realpath(folder)
    full = os.path.realpath(os.path.join(folder, name))
    if full == root or os.path.commonpath([root, full]) != root:
        raise ValueError(f"{folder}: the manifest names the file {name!r}, which lies outside the dataset folder; "
                         "refusing it")
    return os.path.join(folder, name)


def local_file(folder: str, name: str) -> str:
    """``folder/name``, refused (``ValueError``) when it is a symbolic link that leads outside ``folder``: a
    dataset's own file is never read from, trusted as, or written through a link to another place."""
    path = os.path.join(folder, name)
    root = os.path.realpath(folder)
    full = os.path.realpath(path)
    if full == root or os.path.commonpath([root, full]) != root:
        raise ValueError(f"{path}: a link to {full}, outside the dataset folder {folder}; refusing to trust or "
                         "replace what it points at (remove the link, or copy the file into the folder)")
    return path


_SHARD_FIELDS = {"file": str, "split": str, "start": int, "count": int, "sha256": str}


def shard_entries(mpath: str, manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The manifest's ``shards``, each checked: a mapping of ``file``, ``split`` (one of the splits),
    ``start`` and ``count`` (whole numbers >= 0) and ``sha256`` (a ``ValueError`` names the field)."""
    entries = manifest.get("shards")
    if not isinstance(entries, list):
        raise ValueError(f"{mpath}: 'shards' must be a list of shards, got {entries!r:.80}")
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise ValueError(f"{mpath}: shards[{i}] must be a mapping, got {e!r:.80}")
        for key, kind in _SHARD_FIELDS.items():
            v = e.get(key)
            if type(v) is not kind or (kind is int and v < 0):
                what = "a whole number >= 0" if kind is int else "a string"
                raise ValueError(f"{mpath}: shards[{i}].{key} must be {what}, got {v!r:.80}")
        if e["split"] not in SPLITS:
            raise ValueError(f"{mpath}: shards[{i}].split must be one of {list(SPLITS)}, got {e['split']!r}")
    return entries


def open_shard(path: str, entry: Mapping[str, Any], full: str, side: Any) -> np.ndarray:
    """The shard ``entry`` memory-mapped, refused unless it is uint8 ``[count, side, side, 3]`` as the
    manifest says (the images would otherwise come out of another size or type)."""
    name = entry["file"]
    try:
        arr = np.load(full, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}/{name}: not a readable shard ({e})") from None
    want = (entry["count"], side, side, 3)
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.shape != want:
        got = f"{arr.dtype} {tuple(arr.shape)}" if isinstance(arr, np.ndarray) else type(arr).__name__
        raise ValueError(f"{path}/{name}: holds {got}, but the manifest says uint8 {want} (count {entry['count']}, "
                         f"images of {side}x{side}x3); the file was replaced or damaged: generate the dataset again")
    return arr


LOCK_FILE = ".lock"  # in a dataset folder: locked (fcntl.flock) by the run that writes the dataset


class DatasetBusyError(OSError):
    """Another run is writing the dataset folder (it holds the folder's lock)."""


@contextlib.contextmanager
def dataset_lock(out: str | os.PathLike) -> Iterator[None]:
    """Hold the exclusive lock of dataset folder ``out`` (made if missing) while writing it: the file
    ``out/.lock``, locked with ``fcntl.flock`` without waiting. A second run into the same folder is
    refused with :class:`DatasetBusyError` (an ``OSError``) naming the folder instead of deleting the
    first one's files. The lock ends with the run (the kernel releases it even when a run is killed); the
    empty ``.lock`` file stays. Where ``fcntl`` does not exist (Windows) nothing is locked."""
    out = os.fspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"out: {out} exists and is not a folder")
    os.makedirs(out, exist_ok=True)
    if not os.access(out, os.W_OK):
        raise PermissionError(f"out: folder {out} is not writable")
    try:
        import fcntl
    except ImportError:  # no flock on this platform: unlocked
        yield
        return
    path = os.path.join(out, LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as e:
        raise OSError(f"out: cannot open the lock file {path} ({e.strerror or e})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatasetBusyError(f"out: another run is writing the dataset in {out} (it holds {path}); wait for "
                                   "it to finish, or choose another folder") from None
        yield
    finally:
        os.close(fd)  # releases the lock


# -- disk space --------------------------------------------------------------------------------


def estimate_bytes(config: Mapping[str, Any], shards: Sequence[Shard], preview: bool) -> int:
    """What a generation writes: the shards, labels.csv, config.json, manifest.json and the preview
    (an upper bound for the text files and the preview). A schema of several objects has a labels
    row per object (counted as ``max_objects`` a scene) and its manifest counts the objects."""
    side = config["size"]
    total = sum(npy_bytes((count, side, side, 3)) for *_, count, _f in shards)
    attrs = config["schema"]["attributes"]
    # a labels row: split, index, every label (csv may quote it and double its quotes), commas, \r\n
    row = 7 + len(str(max(config["counts"].values()))) + sum(2 * max(map(len, a["values"])) + 2 for a in attrs)
    row += len(attrs) + 3
    most = config["schema"].get("max_objects", 1)
    if most > 1:  # several objects a scene: a row per object, each with its object number and a comma
        row += len(str(most - 1)) + 1
    total += row * (most * sum(config["counts"].values()) + 1)
    text = len(json.dumps(config, indent=2)) + 1
    total += 2 * text + 200 * (len(shards) + 1)  # config.json, manifest.json
    if most > 1:
        total += 200  # the manifest's object counts
    if preview:
        total += 6 * (side + 2) * 2 * 10 * (side + 2) * 2 * 3 + 4096  # the contact sheet, uncompressed
    return total


def _reusable_bytes(out: str, config: Mapping[str, Any], shards: Sequence[Shard], overwrite: bool) -> int:
    """Bytes already in ``out`` that count towards the generation: whole shards of this dataset, or
    (``overwrite`` of another dataset) the files about to be removed."""
    if not os.path.isdir(out):
        return 0
    try:
        with open(os.path.join(out, "config.json"), encoding="utf-8") as f:
            existing = json.load(f)
    except (OSError, ValueError):
        existing = None
    if existing == config:
        side = config["size"]
        return sum(npy_bytes((c, side, side, 3)) for *_, c, f in shards
                   if shard_is_whole(os.path.join(out, f), c, side))
    if overwrite:
        return sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out)
                   if os.path.isfile(os.path.join(out, f)))
    return 0


def check_disk_space(out: str, config: Mapping[str, Any], shards: Sequence[Shard], preview: bool,
                     overwrite: bool) -> int:
    """Refuse (``OSError``) a generation into ``out`` whose files would not fit the free space of its
    filesystem (``shutil.disk_usage``); return the bytes it still needs."""
    need = max(0, estimate_bytes(config, shards, preview) - _reusable_bytes(out, config, shards, overwrite))
    probe = os.path.abspath(out)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    free = shutil.disk_usage(probe).free
    if need > free:
        images = sum(config["counts"].values())
        side = config["size"]
        raise OSError(f"out: the dataset needs about {format_bytes(need)} ({need} bytes: {images} images of "
                      f"{side}x{side}x3 bytes in {len(shards)} shards, labels and manifest), but the filesystem of "
                      f"{probe} has {format_bytes(free)} ({free} bytes) free; free space, choose another folder "
                      "or generate fewer images")
    return need
