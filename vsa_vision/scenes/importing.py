"""Datasets from the user's own labelled images, in the project's dataset format (``SceneShards``).

Three sources, nothing downloaded:

- an image folder with ``metadata.csv`` / ``metadata.jsonl`` (:mod:`.labels_file`):
  :func:`import_image_folder`, ``vsa-vision data import FOLDER --out DATASET``;
- arrays of images with integer factor classes, the layout of the disentanglement datasets
  (dSprites' ``.npz`` with ``imgs`` and ``latents_classes``; 3dshapes' HDF5 with ``images`` and
  ``labels`` when h5py is installed): :func:`import_arrays`;
- any torch ``Dataset`` (or sequence) of ``(image, labels)``: :func:`import_dataset`.

The schema is built from the labels (:meth:`~.schema.Schema.from_labels`): every attribute column with
its distinct values; no attribute needs a role, and the built-in renderer is never called. Images of
any size and mode are prepared exactly as recognition prepares them (:mod:`.images`). Splits: a
``split`` column (``train``, ``val``, ``test``, ``heldout``) is used as given; without one, ``val``
and ``test`` are drawn from the rows with the seed (5% each by default). ``holdout`` rules
(``[{"shape": "star", "hue": "h3"}]``) move every matching row to the ``heldout`` split and are recorded
in the schema: combinations never seen in training, to measure compositional generalisation.

What is written is a dataset of format version 1 (see :mod:`.dataset`): ``config.json`` first,
image shards ``uint8 [m, S, S, 3]`` each written whole then renamed, ``labels.csv``, and
``manifest.json`` (every shard's sha256) last. An interrupted import resumes: shards already whole
whose first and last images equal the source's are kept, the rest written again; a finished one is
recognised and left alone. Nothing is marked complete before every image was read. A run holds the
folder's lock (``.lock``, :func:`~.storage.dataset_lock`): a second import or generation into the same
folder is refused.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..checks import check_int
from ..io import atomic_path, atomic_write
from .dataset import FORMAT, FORMAT_VERSION, _intact, _known_checksums, _prepare_folder, _read_json, _write_shard
from .images import open_image, prepare_image
from .labels import label_header, label_rows
from .labels_file import find_labels_file, read_label_rows
from .sampling import SPLITS
from .schema import LABEL_FILE_COLUMNS, NO_ROLE, Attribute, Schema
from .storage import check_disk_space, dataset_lock, inside, plan_shards, sha256_file, valid_shard_digest

__all__ = ["import_image_folder", "import_arrays", "import_dataset", "assign_splits", "DSPRITES", "SHAPES3D"]

#: known array layouts: keys, factor names, value names of nominal factors
DSPRITES = {"images": "imgs", "labels": "latents_classes",
            "names": ["color", "shape", "scale", "orientation", "posX", "posY"],
            "values": {"shape": ["square", "ellipse", "heart"]}}
SHAPES3D = {"images": "images", "labels": "labels",
            "names": ["floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"],
            "values": {"shape": ["cube", "cylinder", "sphere", "capsule"]}}

Getter = Callable[[int], np.ndarray]  # item j of a split -> uint8 [S, S, 3]


# -- splits ----------------------------------------------------------------------------------------


def _check_share(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) < 0.5:
        raise ValueError(f"{name}: expected a share of the rows in [0, 0.5), got {value!r}")
    return float(value)


def assign_splits(n: int, seed: int, held_out: np.ndarray, given: Sequence[str] | None = None,
                  val: float = 0.05, test: float = 0.05) -> np.ndarray:
    """The split of each of ``n`` rows (an array of split names): rows matching a held-out rule go to
    ``heldout``; the others keep ``given`` splits or, without them, ``val`` and ``test`` shares are
    drawn with ``seed`` (a permutation; at least one row each when there are rows to spare) and the
    rest is ``train``."""
    seed = check_int("seed", seed, 0)
    val, test = _check_share("val", val), _check_share("test", test)
    out = np.empty(n, dtype=object)
    if given is not None:
        bad = sorted({s for s in given if s not in SPLITS})
        if bad:
            raise ValueError(f"split column: unknown split(s) {bad[:5]}; splits are {list(SPLITS)}")
        out[:] = list(given)
        out[held_out] = "heldout"
        return out
    out[held_out] = "heldout"
    free = np.flatnonzero(~held_out)
    order = free[np.random.default_rng(seed).permutation(len(free))]
    n_val = max(1, round(val * len(free))) if val > 0 and len(free) >= 3 else 0
    n_test = max(1, round(test * len(free))) if test > 0 and len(free) >= 3 else 0
    out[order[:n_val]] = "val"
    out[order[n_val:n_val + n_test]] = "test"
    out[order[n_val + n_test:]] = "train"
    return out


def _held_out(schema: Schema, idx: np.ndarray) -> np.ndarray:
    return schema.is_held_out(idx) if schema.holdout and len(idx) else np.zeros(len(idx), dtype=bool)


# -- the writer every source shares ---------------------------------------------------------------


def _config(schema: Schema, counts: Mapping[str, int], seed: int, shard_size: int, source: Mapping[str, Any]) \
        -> dict[str, Any]:
    return {"format": FORMAT, "version": FORMAT_VERSION, "schema": schema.to_dict(), "seed": int(seed),
            "counts": {s: int(counts.get(s, 0)) for s in SPLITS}, "shard_size": int(shard_size),
            "size": schema.image_size, "source": dict(source)}


def write_imported(out: str | os.PathLike, schema: Schema, splits: Mapping[str, tuple[np.ndarray, Getter]],
                   source: Mapping[str, Any], seed: int = 0, shard_size: int = 5000, overwrite: bool = False,
                   progress: bool = True, log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Write a dataset of ``schema`` whose split ``s`` holds ``splits[s] = (labels [n, K], get)`` with
    ``get(j)`` the ``uint8 [S, S, 3]`` image of item ``j``; returns the manifest (see the module)."""
    out = os.fspath(out)
    say = log or (lambda _m: None)
    shard_size = check_int("shard_size", shard_size, 1)
    counts = {s: len(splits[s][0]) if s in splits else 0 for s in SPLITS}
    if not counts["train"]:
        raise ValueError("no training images: every row went to val, test or heldout")
    if not counts["val"]:
        raise ValueError("no validation images: give some rows split 'val' (or leave the split column out and "
                         "they are drawn with the seed)")
    config = _config(schema, counts, seed, shard_size, source)
    shards = plan_shards(config)
    with dataset_lock(out):  # one run at a time writes a folder
        return _write_locked(out, schema, splits, config, shards, overwrite, progress, say)


def _write_locked(out: str, schema: Schema, splits: Mapping[str, tuple[np.ndarray, Getter]], config: dict[str, Any],
                  shards: Sequence[Any], overwrite: bool, progress: bool, say: Callable[[str], None]) -> dict[str, Any]:
    counts = config["counts"]
    check_disk_space(out, config, shards, False, overwrite)
    _prepare_folder(out, config, overwrite)
    manifest_path = os.path.join(out, "manifest.json")
    side = schema.image_size
    known = _known_checksums(manifest_path, config, shards)
    if known is not None and _intact(out, shards, known, side):
        say(f"{out}: already complete ({sum(counts.values())} images), nothing to do")
        return _read_json(manifest_path)
    if os.path.exists(manifest_path):
        os.unlink(manifest_path)
    with atomic_path(os.path.join(out, "labels.csv"), suffix=".csv") as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(label_header(schema))
            for split in SPLITS:
                if counts[split]:
                    w.writerows(label_rows(schema, split, 0, splits[split][0]))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(counts.values()), unit="img", desc="importing")
    entries = []
    try:
        for split, start, count, fname in shards:
            get = splits[split][1]
            path = os.path.join(out, fname)
            digest = valid_shard_digest(path, count, side, None, lambda j, s=start, g=get: g(s + j))
            if digest is None:
                _write_shard(path, np.stack([get(start + j) for j in range(count)]))
                digest = sha256_file(path)
            entries.append({"file": fname, "split": split, "start": start, "count": count, "sha256": digest})
            if bar is not None:
                bar.update(count)
    finally:
        if bar is not None:
            bar.close()
    manifest = dict(config)
    manifest["shards"] = entries
    manifest["labels_sha256"] = sha256_file(os.path.join(out, "labels.csv"))
    atomic_write(manifest_path, lambda f: f.write(json.dumps(manifest, indent=2) + "\n"))
    say(f"{out}: {sum(counts.values())} images of {len(schema.attributes)} attributes "
        f"({schema.num_combinations:,} combinations) in {len(shards)} shards: "
        + ", ".join(f"{s} {counts[s]}" for s in SPLITS))
    return manifest


def _by_split(schema: Schema, idx: np.ndarray, split_of: np.ndarray, image: Callable[[int], np.ndarray]) \
        -> dict[str, tuple[np.ndarray, Getter]]:
    """Per split, (labels, getter of its j-th image) over the rows of that split, in row order."""
    out = {}
    for split in SPLITS:
        rows = np.flatnonzero(split_of == split)
        if len(rows):
            out[split] = (idx[rows], lambda j, r=rows: image(int(r[j])))
    return out


def _parse_holdout(holdout: Sequence[Mapping[str, Any]] | None) -> tuple[dict[str, str], ...]:
    return tuple({str(k): str(v) for k, v in rule.items()} for rule in (holdout or ()))


# -- an image folder -----------------------------------------------------------------------------


def import_image_folder(folder: str | os.PathLike, out: str | os.PathLike, seed: int = 0, size: int = 64,
                        name: str | None = None, ordinal: Sequence[str] | None = None, nominal: Sequence[str] = (),
                        ignore: Sequence[str] = (), holdout: Sequence[Mapping[str, Any]] | None = None,
                        val: float = 0.05, test: float = 0.05, shard_size: int = 5000, overwrite: bool = False,
                        progress: bool = True, log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Import an image folder with ``metadata.csv`` / ``metadata.jsonl`` into the dataset ``out``.

    Refuses, before writing anything, a labels file that is malformed (:mod:`.labels_file`), a file
    name outside the folder or missing, a column with one value, an unknown split; an image that
    cannot be decoded stops the import with its file name and row (nothing is marked complete)."""
    folder = os.fspath(folder)
    labels_path = find_labels_file(folder)
    rows = read_label_rows(labels_path)
    where = os.path.basename(labels_path)
    for c in ignore:
        if c not in rows[0]:
            raise ValueError(f"ignore: {where} has no column {c!r}; columns: {list(rows[0])}")
    schema = Schema.from_labels(rows, name=name or os.path.basename(os.path.abspath(folder)) or "own",
                                image_size=size, ordinal=ordinal, nominal=nominal,
                                ignore=(*LABEL_FILE_COLUMNS, *ignore), holdout=_parse_holdout(holdout))
    paths = []
    for i, row in enumerate(rows):
        try:
            path = inside(folder, row["file_name"])
        except ValueError:
            raise ValueError(f"{where}, row {i + 1}: file_name {row['file_name']!r} is not a path inside "
                             f"{folder}") from None
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{where}, row {i + 1}: file_name {row['file_name']!r}: no such file in {folder}")
        paths.append(path)
    idx = schema.encode([{a: row[a] for a in schema.names} for row in rows])
    given = [row["split"] for row in rows] if "split" in rows[0] else None
    split_of = assign_splits(len(rows), seed, _held_out(schema, idx), given, val, test)
    side = schema.image_size

    def image(i: int) -> np.ndarray:
        try:
            return prepare_image(open_image(paths[i]), side)
        except (ValueError, OSError) as e:
            raise ValueError(f"{where}, row {i + 1} ({rows[i]['file_name']}): {e}") from None

    source = {"kind": "image_folder", "labels_file": where, "labels_sha256": sha256_file(labels_path),
              "val": val, "test": test}
    return write_imported(out, schema, _by_split(schema, idx, split_of, image), source, seed, shard_size,
                          overwrite, progress, log)


# -- arrays ----------------------------------------------------------------------------------------


def _to_rgb_uint8(a: np.ndarray, what: str) -> np.ndarray:
    """One image array ``[H, W]``, ``[H, W, 1|3|4]`` or ``[C, H, W]`` of uint8, bool, or floats / ints in
    [0, 1] or [0, 255] -> ``uint8 [H, W, 3]``."""
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = a.transpose(1, 2, 0)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{what}: expected an image [H, W], [H, W, C] or [C, H, W] with C in 1, 3, 4; got "
                         f"shape {a.shape}")
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.number) or not np.isfinite(a).all():
            raise ValueError(f"{what}: expected numbers, got {a.dtype} (or values that are not finite)")
        top = float(a.max()) if a.size else 0.0
        if a.min() < 0 or top > 255:
            raise ValueError(f"{what}: values in [{a.min()}, {top}]; expected [0, 1] or [0, 255]")
        scale = 255.0 if top <= 1.0 else 1.0
        a = np.clip(np.rint(a.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return a[..., :3]


def _prepared(a: np.ndarray, side: int, what: str, binary: bool = False) -> np.ndarray:
    from PIL import Image

    rgb = _to_rgb_uint8(a.astype(np.uint8) * np.uint8(255) if binary else a, what)
    if rgb.shape[:2] == (side, side):
        return np.ascontiguousarray(rgb)
    return prepare_image(Image.fromarray(rgb), side)


def _class_labels(labels: np.ndarray, names: Sequence[str], values: Mapping[str, Sequence[str]]) \
        -> tuple[list[tuple[str, list[str], np.ndarray]], list[str]]:
    """Per factor ``(name, value labels, class index per row)``, the labels in the classes' order;
    factors of one class are left out (their names returned apart). Integer classes keep their
    numbers as labels (``values`` may name them); float values (3dshapes) are ranked."""
    kept, dropped = [], []
    for k, name in enumerate(names):
        col = labels[:, k]
        uniq, inv = np.unique(col, return_inverse=True)
        if len(uniq) < 2:
            dropped.append(name)
            continue
        if np.issubdtype(col.dtype, np.integer) and name in values:
            table = list(values[name])
            if uniq.min() < 0 or uniq.max() >= len(table):
                raise ValueError(f"factor {name!r}: classes {uniq.tolist()} do not fit its value names {table}")
            labs = [table[int(u)] for u in uniq]
        elif np.issubdtype(col.dtype, np.integer):
            labs = [str(int(u)) for u in uniq]
        else:
            labs = [f"{float(u):g}" for u in uniq]
            if len(set(labs)) != len(labs):
                labs = [str(i) for i in range(len(uniq))]
        kept.append((name, labs, inv.reshape(-1)))
    return kept, dropped


def _open_arrays(path: str, images_key: str | None, labels_key: str | None) -> tuple[Any, Any, Any, dict]:
    """(images, labels, a closer, the known layout) of an ``.npz`` or HDF5 file."""
    if path.endswith((".h5", ".hdf5")):
        try:
            import h5py
        except ImportError:
            raise ImportError(f"{path}: reading HDF5 needs h5py (pip install h5py)") from None
        f = h5py.File(path, "r")
        layout = SHAPES3D if "images" in f and "labels" in f else {}
        keys = list(f.keys())
        get = f.__getitem__
        close = f.close
    else:
        try:
            f = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: not a readable .npz file ({e})") from None
        if not hasattr(f, "files"):
            raise ValueError(f"{path}: an .npy array, not an .npz archive of images and labels")
        layout = DSPRITES if "imgs" in f.files and "latents_classes" in f.files else {}
        keys = list(f.files)
        get = f.__getitem__
        close = f.close
    ik, lk = images_key or layout.get("images"), labels_key or layout.get("labels")
    missing = [k for k in (ik, lk) if k is None or k not in keys]
    if missing:
        close()
        raise ValueError(f"{path}: name the images and labels arrays (--images-key, --labels-key); it holds {keys}")
    return get(ik), get(lk), close, layout


def import_arrays(path: str | os.PathLike, out: str | os.PathLike, names: Sequence[str] | None = None,
                  images_key: str | None = None, labels_key: str | None = None, max_items: int | None = None,
                  seed: int = 0, size: int = 64, name: str | None = None, ordinal: Sequence[str] | None = None,
                  nominal: Sequence[str] = (), holdout: Sequence[Mapping[str, Any]] | None = None,
                  val: float = 0.05, test: float = 0.05, shard_size: int = 5000, overwrite: bool = False,
                  progress: bool = True, log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Import images with integer factor classes from an ``.npz`` (dSprites: ``imgs``,
    ``latents_classes``) or HDF5 file (3dshapes: ``images``, ``labels``; needs h5py).

    ``names``: one per factor column (default: the known layout's, else ``factor0 ..``); factors of
    a single class (dSprites' colour) are left out with a note; ``max_items`` draws that many rows
    with the seed (dSprites holds 737,280). Binary images (0 / 1) are scaled to 0 / 255."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    images, labels, close, layout = _open_arrays(path, images_key, labels_key)
    say = log or (lambda _m: None)
    try:
        n = len(images)
        lab = np.asarray(labels[:])
        if lab.ndim == 1:
            lab = lab[:, None]
        if lab.ndim != 2 or len(lab) != n:
            raise ValueError(f"{path}: {n} images but labels of shape {lab.shape}; expected one row of factor "
                             "classes per image")
        names = list(names) if names is not None else list(layout.get("names", [f"factor{k}" for k in
                                                                                  range(lab.shape[1])]))
        if len(names) != lab.shape[1] or len(set(names)) != len(names):
            raise ValueError(f"names: {len(names)} names {names} for {lab.shape[1]} factor columns (one distinct "
                             "name per column)")
        rows = np.arange(n)
        if max_items is not None and check_int("max_items", max_items, 1) < n:
            rows = np.sort(np.random.default_rng(seed).choice(n, size=max_items, replace=False))
        factors, dropped = _class_labels(lab[rows], names, layout.get("values", {}))
        if dropped:
            say(f"{path}: left out factor(s) {dropped}, which hold one class in every image")
        if not factors:
            raise ValueError(f"{path}: every factor holds one class; nothing to recognise")
        nominal = [*nominal, *(k for k in layout.get("values", {}) if k not in (ordinal or ()))]
        for c in [*(ordinal or ()), *nominal]:
            if c not in names:
                raise ValueError(f"ordinal / nominal names {c!r}, which is not a factor; factors: {names}")
        attrs = tuple(Attribute(name=nm, values=labs, role=NO_ROLE,  # the classes' own order
                                ordinal=(nm in ordinal) if ordinal is not None else nm not in nominal)
                      for nm, labs, _inv in factors)
        schema = Schema(attributes=attrs, name=name or os.path.splitext(os.path.basename(path))[0],
                        image_size=size, holdout=_parse_holdout(holdout))
        idx = np.stack([inv for _nm, _labs, inv in factors], 1).astype(np.int64)
        split_of = assign_splits(len(rows), seed, _held_out(schema, idx), None, val, test)
        sample = np.asarray(images[: min(n, 256)])
        binary = bool(n) and np.issubdtype(sample.dtype, np.integer) and int(sample.max()) <= 1  # 0 / 1 masks
        side = schema.image_size

        def image(i: int) -> np.ndarray:
            return _prepared(np.asarray(images[int(rows[i])]), side, f"{path}: image {int(rows[i])}", binary)

        source = {"kind": "arrays", "file": os.path.basename(path), "bytes": os.path.getsize(path),
                  "max_items": max_items, "val": val, "test": test}
        return write_imported(out, schema, _by_split(schema, idx, split_of, image), source, seed, shard_size,
                              overwrite, progress, log)
    finally:
        close()


# -- a torch Dataset -----------------------------------------------------------------------------


def _image_of(item: Any, side: int, what: str) -> np.ndarray:
    from PIL import Image

    if isinstance(item, Image.Image):
        return prepare_image(item, side)
    try:
        import torch

        if isinstance(item, torch.Tensor):
            item = item.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    return _prepared(np.asarray(item), side, what)


def import_dataset(dataset: Any, out: str | os.PathLike, schema: Schema | None = None,
                   names: Sequence[str] | None = None, seed: int = 0, size: int = 64, name: str = "own",
                   holdout: Sequence[Mapping[str, Any]] | None = None, val: float = 0.05, test: float = 0.05,
                   shard_size: int = 5000, overwrite: bool = False, progress: bool = True,
                   log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Import any ``Dataset`` (or sequence) of ``(image, labels)``: the image a PIL image, a tensor or an
    array (``[C, H, W]`` or ``[H, W, C]``, uint8 or floats in [0, 1]); the labels a mapping
    ``{attribute: value}``, or a sequence of values in the order of ``names`` (or of ``schema``'s
    attributes). Without ``schema`` one is built from the labels (a first pass over the items)."""
    n = len(dataset)
    if n == 0:
        raise ValueError("dataset: no items")
    if schema is not None:
        names = list(schema.names)

    def labels_of(i: int) -> dict[str, str]:
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ValueError(f"dataset[{i}]: expected (image, labels), got {type(item).__name__}")
        lab = item[1]
        if isinstance(lab, Mapping):
            return {str(k): str(v) for k, v in lab.items()}
        values = [v.item() if hasattr(v, "item") else v for v in np.asarray(lab).reshape(-1)]
        if names is None or len(names) != len(values):
            raise ValueError(f"dataset[{i}]: labels {values} need names (one per value; names=[...] or schema=)")
        if schema is not None:  # integer classes index the schema's values
            return {a.name: a.values[int(v)] if isinstance(v, (int, np.integer)) else str(v)
                    for a, v in zip(schema.attributes, values)}
        return {nm: str(v) for nm, v in zip(names, values)}

    table = [labels_of(i) for i in range(n)]
    if schema is None:
        schema = Schema.from_labels(table, name=name, image_size=size, ignore=(), holdout=_parse_holdout(holdout))
    idx = schema.encode(table)
    split_of = assign_splits(n, seed, _held_out(schema, idx), None, val, test)
    side = schema.image_size

    def image(i: int) -> np.ndarray:
        return _image_of(dataset[i][0], side, f"dataset[{i}]")

    source = {"kind": "dataset", "type": type(dataset).__name__, "items": n, "val": val, "test": test}
    return write_imported(out, schema, _by_split(schema, idx, split_of, image), source, seed, shard_size,
                          overwrite, progress, log)
