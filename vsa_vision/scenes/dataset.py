"""Datasets of rendered scenes: rendered on the fly from a seed, or generated once to disk in shards.

Every item is ``(image, labels)``: ``uint8 [3, H, W]`` and ``int64 [K]`` value indices in schema order
(the model scales images to [0, 1] on its device, which moves 4x fewer bytes than floats).

On disk (``generate_dataset``, ``vsa-vision data generate``)::

    config.json          what is being generated (schema, seed, counts, shard size, nuisances); written first
    train-00000.npy ...  image shards, uint8 [m, H, W, 3], one file per shard, each written then renamed
    labels.csv           split, index, then one column per attribute holding value labels by name
    manifest.json        config + every shard with its count and sha256; written last: its presence
                         marks a complete dataset
    preview.png          optional contact sheet

Everything is a function of the config, so an interrupted run resumes by skipping the shards that
exist, and gives the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..checks import check_choice, check_int
from ..io import atomic_path, atomic_write
from .render import STROKE, Renderer, contact_sheet
from .schema import SPLITS, Schema, load_schema, sample_indices

FORMAT = "vsa_vision.scenes"
FORMAT_VERSION = 1
_SHARD_RE = re.compile(r"^(train|val|test|heldout)-\d{5}\.npy$")
_OWN_FILES = {"config.json", "labels.csv", "manifest.json", "preview.png"}
_TMP_PREFIX = ".tmp-"  # what io.atomic_path names its temporary files
_NUISANCE_STREAM = 7919


def _item(i: int, n: int, what: str) -> int:
    """Python-style index ``i`` (negative counts from the end) into ``n`` items, checked."""
    if not -n <= i < n:
        raise IndexError(f"index {i} out of range for {n} {what}")
    return i % n


def _nuisance_seed(seed: int, split: str, index: int) -> list[int]:
    return [int(seed), _NUISANCE_STREAM, SPLITS.index(split), int(index)]


class RenderedScenes(Dataset):
    """``n`` scenes of one split, rendered on demand (no disk). ``cache=True`` renders them all once."""

    def __init__(self, schema: Schema | str = "default", n: int = 1000, seed: int = 0, split: str = "train",
                 size: int | None = None, jitter: float = 0.0, noise: float = 0.0, cache: bool = False,
                 stroke: float | Sequence[float] = STROKE) -> None:
        self.schema = load_schema(schema)
        check_choice("split", split, SPLITS)
        self.n, self.seed, self.split = check_int("n", n, 0), int(seed), split
        self.renderer = Renderer(self.schema, size=size, jitter=jitter, noise=noise, stroke=stroke)
        self.indices = torch.from_numpy(sample_indices(self.schema, self.n, seed=self.seed, split=split))
        self._images: torch.Tensor | None = None
        if cache:
            self._images = torch.from_numpy(self._render(range(self.n))).permute(0, 3, 1, 2).contiguous()

    def _render(self, items: Sequence[int] | range) -> np.ndarray:
        items = list(items)
        seeds = [_nuisance_seed(self.seed, self.split, i) for i in items]
        return self.renderer.render_batch(self.indices[items].numpy(), seeds=seeds)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = _item(i, self.n, "scenes")
        if self._images is not None:
            return self._images[i], self.indices[i]
        img = self.renderer.render_indices(self.indices[i].tolist(), seed=_nuisance_seed(self.seed, self.split, i))
        return torch.from_numpy(img).permute(2, 0, 1).contiguous(), self.indices[i]


# -- generation to disk -----------------------------------------------------------------------


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def dataset_config(schema: Schema, counts: Mapping[str, int], seed: int, shard_size: int, size: int,
                   jitter: float, noise: float) -> dict[str, Any]:
    return {"format": FORMAT, "version": FORMAT_VERSION, "schema": schema.to_dict(), "seed": int(seed),
            "counts": {s: int(counts.get(s, 0)) for s in SPLITS}, "shard_size": int(shard_size), "size": int(size),
            "jitter": float(jitter), "noise": float(noise)}


def _shards(config: Mapping[str, Any]) -> list[tuple[str, int, int, str]]:
    """(split, start, count, file name) of every shard."""
    out = []
    for split in SPLITS:
        n, s = config["counts"][split], config["shard_size"]
        for j, start in enumerate(range(0, n, s)):
            out.append((split, start, min(s, n - start), f"{split}-{j:05d}.npy"))
    return out


def _write_shard(path: str, images: np.ndarray) -> None:
    with atomic_path(path, suffix=".npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, images)


def generate_dataset(out: str | os.PathLike, schema: Schema | str = "default", n: int = 50000,
                     val: int | None = None, test: int | None = None, heldout: int | None = None, seed: int = 0,
                     shard_size: int = 5000, size: int | None = None, jitter: float = 0.0, noise: float = 0.0,
                     overwrite: bool = False, preview: bool = False, progress: bool = True,
                     log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Render a dataset to ``out``; resume an interrupted run; return the manifest.

    ``n`` train images; ``val``/``test``/``heldout`` default to ``max(1000, n // 10)`` each (heldout 0
    when the schema holds nothing out). Refuses a folder holding a different dataset (or other files)
    unless ``overwrite``, which removes only the files a dataset consists of."""
    schema = load_schema(schema)
    counts = _split_counts(schema, n, val, test, heldout)
    shard_size = check_int("shard_size", shard_size, 1)
    seed = check_int("seed", seed, 0)
    renderer = Renderer(schema, size=size, jitter=jitter, noise=noise)
    config = dataset_config(schema, counts, seed, shard_size, renderer.size, jitter, noise)
    out = os.fspath(out)
    say = log or (lambda _m: None)
    _prepare_folder(out, config, overwrite)

    manifest_path = os.path.join(out, "manifest.json")
    if os.path.exists(manifest_path):
        manifest = _read_json(manifest_path)
        say(f"{out}: already complete ({sum(counts.values())} images), nothing to do")
        if preview and not os.path.exists(os.path.join(out, "preview.png")):
            write_preview(out, schema, renderer, seed)
        return manifest

    shards = _shards(config)
    indices = {s: sample_indices(schema, counts[s], seed=seed, split=s) for s in SPLITS if counts[s]}
    _render_missing_shards(out, shards, renderer, indices, seed, progress, say)
    _write_labels(os.path.join(out, "labels.csv"), schema, indices)
    manifest = _manifest(out, config, shards)
    if preview:
        write_preview(out, schema, renderer, seed)
    atomic_write(manifest_path, lambda f: f.write(json.dumps(manifest, indent=2) + "\n"))
    say(f"{out}: {sum(counts.values())} images in {len(shards)} shards "
        + ", ".join(f"{s} {counts[s]}" for s in SPLITS))
    return manifest


def _split_counts(schema: Schema, n: Any, val: Any, test: Any, heldout: Any) -> dict[str, int]:
    """Images per split: ``n`` train (at least 1); ``None`` for val / test / heldout means
    ``max(1000, n // 10)`` (heldout: 0 when the schema holds nothing out)."""
    n = check_int("n", n, 0)
    if n == 0:
        raise ValueError("n: expected a positive number of training images, got 0")
    default = max(1000, n // 10)

    def count(name: str, value: Any, fallback: int) -> int:
        return fallback if value is None else check_int(name, value, 0)

    counts = {"train": n, "val": count("val", val, default), "test": count("test", test, default),
              "heldout": count("heldout", heldout, default if schema.holdout else 0)}
    if counts["heldout"] and not schema.holdout:
        raise ValueError(f"heldout: schema {schema.name!r} holds no combinations out; use heldout=0")
    return counts


def _read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _prepare_folder(out: str, config: Mapping[str, Any], overwrite: bool) -> None:
    """Make ``out`` the folder of the dataset ``config`` describes: create it; refuse other files,
    or another dataset unless ``overwrite`` (then remove its files); remove what a killed run left;
    write ``config.json`` unless it is already this one (then the shards written so far are kept)."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"out: {out} exists and is not a folder")
    os.makedirs(out, exist_ok=True)
    if not os.access(out, os.W_OK):
        raise PermissionError(f"out: folder {out} is not writable")
    present = set(os.listdir(out))
    existing = _existing_config(out, present)
    _refuse_other_contents(out, present, existing, config, overwrite)
    if overwrite and existing != config:
        for f in present:
            os.unlink(os.path.join(out, f))
        present = set()
    for f in present:
        if f.startswith(_TMP_PREFIX):  # left by a killed run
            os.unlink(os.path.join(out, f))
    if existing != config:
        atomic_write(os.path.join(out, "config.json"), lambda f: f.write(json.dumps(config, indent=2) + "\n"))


def _existing_config(out: str, present: set[str]) -> Any:
    """The config.json already in ``out``: its contents, ``None`` when there is none, or ``"unreadable"``."""
    if "config.json" not in present:
        return None
    try:
        return _read_json(os.path.join(out, "config.json"))
    except (OSError, json.JSONDecodeError):
        return "unreadable"


def _refuse_other_contents(out: str, present: set[str], existing: Any, config: Mapping[str, Any],
                           overwrite: bool) -> None:
    """Raise unless ``out`` holds nothing, a part of the dataset ``config`` describes, or (with
    ``overwrite``) files of another dataset; files that are not a dataset's are always refused."""
    foreign = sorted(f for f in present
                     if f not in _OWN_FILES and not _SHARD_RE.match(f) and not f.startswith(_TMP_PREFIX))
    if foreign:
        raise ValueError(f"out: {out} holds files that are not part of a dataset ({foreign[:5]}); "
                         "choose an empty or new folder")
    if overwrite:
        return
    if existing is not None and existing != config:
        raise ValueError(f"out: {out} holds a different dataset (its config.json differs); "
                         "pass overwrite=True (--overwrite) to replace it, or choose another folder")
    if existing is None and any(not f.startswith(_TMP_PREFIX) for f in present):
        raise ValueError(f"out: {out} holds dataset files but no config.json; pass overwrite=True to replace them")


def _render_missing_shards(out: str, shards: Sequence[tuple[str, int, int, str]], renderer: Renderer,
                           indices: Mapping[str, np.ndarray], seed: int, progress: bool,
                           say: Callable[[str], None]) -> None:
    """Render and write every shard whose file is not in ``out`` yet (all of them on a fresh run)."""
    todo = [sh for sh in shards if not os.path.exists(os.path.join(out, sh[3]))]
    if len(todo) < len(shards):
        say(f"{out}: resuming, {len(shards) - len(todo)} of {len(shards)} shards already written")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(c for *_, c, _f in todo), unit="img", desc="rendering")
    try:
        for split, start, count, fname in todo:
            seeds = [_nuisance_seed(seed, split, i) for i in range(start, start + count)]
            images = renderer.render_batch(indices[split][start:start + count], seeds=seeds)
            _write_shard(os.path.join(out, fname), images)
            if bar is not None:
                bar.update(count)
    finally:
        if bar is not None:
            bar.close()


def _write_labels(path: str, schema: Schema, indices: Mapping[str, np.ndarray]) -> None:
    """labels.csv: split, index, then each attribute's value label, for every non-empty split in order."""

    def write(f) -> None:
        w = csv.writer(f)
        w.writerow(["split", "index", *schema.names])
        for split in SPLITS:
            if split in indices:
                for i, scene in enumerate(schema.decode(indices[split])):
                    w.writerow([split, i, *scene.values()])

    atomic_write(path, write)


def _manifest(out: str, config: Mapping[str, Any], shards: Sequence[tuple[str, int, int, str]]) -> dict[str, Any]:
    """The config plus every shard's count and sha256 and the labels' sha256."""
    manifest = dict(config)
    manifest["shards"] = [{"file": f, "split": s, "start": st, "count": c, "sha256": _sha256(os.path.join(out, f))}
                          for s, st, c, f in shards]
    manifest["labels_sha256"] = _sha256(os.path.join(out, "labels.csv"))
    return manifest


def write_preview(out: str, schema: Schema, renderer: Renderer, seed: int, count: int = 60) -> str:
    """A contact sheet of the first ``count`` training scenes, written as ``out/preview.png``."""
    idx = sample_indices(schema, count, seed=seed, split="train")
    images = renderer.render_batch(idx, seeds=[_nuisance_seed(seed, "train", i) for i in range(count)])
    path = os.path.join(out, "preview.png")
    with atomic_path(path, suffix=".png") as tmp:
        contact_sheet(images, columns=10, scale=2).save(tmp)
    return path


class SceneShards(Dataset):
    """One split of a dataset written by :func:`generate_dataset`, memory-mapped from its shards.

    ``verify=True`` checks every shard's sha256 against the manifest first."""

    def __init__(self, path: str | os.PathLike, split: str = "train", verify: bool = False,
                 schema: Schema | str | None = None) -> None:
        path = os.fspath(path)
        check_choice("split", split, SPLITS)
        mpath = os.path.join(path, "manifest.json")
        if not os.path.isfile(mpath):
            hint = (" (config.json is there: generation was interrupted; run the generate command again to resume)"
                    if os.path.isfile(os.path.join(path, "config.json")) else "")
            raise FileNotFoundError(f"{path}: not a complete dataset, no manifest.json{hint}")
        manifest = _read_json(mpath)
        if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path}: manifest format {manifest.get('format')!r} v{manifest.get('version')} is not "
                             f"{FORMAT!r} v{FORMAT_VERSION}")
        self.manifest = manifest
        self.schema = Schema.from_dict(manifest["schema"])
        if schema is not None and load_schema(schema).to_dict() != self.schema.to_dict():
            raise ValueError(f"{path}: the dataset's schema {self.schema.name!r} differs from the schema asked for "
                             f"{load_schema(schema).name!r}")
        self.split, self.path = split, path
        shards = [s for s in manifest["shards"] if s["split"] == split]
        if verify:
            for s in manifest["shards"]:
                got = _sha256(os.path.join(path, s["file"]))
                if got != s["sha256"]:
                    raise ValueError(f"{path}/{s['file']}: checksum mismatch (file changed or corrupt)")
        self._arrays = [np.load(os.path.join(path, s["file"]), mmap_mode="r") for s in shards]
        self._starts = np.cumsum([0] + [len(a) for a in self._arrays])
        self.n = int(self._starts[-1])
        if self.n != manifest["counts"][split]:
            raise ValueError(f"{path}: split {split!r} has {self.n} images in its shards, manifest says "
                             f"{manifest['counts'][split]}")
        self.indices = torch.from_numpy(_read_labels(os.path.join(path, "labels.csv"), self.schema, split, self.n))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = _item(i, self.n, "images")
        j = int(np.searchsorted(self._starts, i, side="right") - 1)
        img = np.array(self._arrays[j][i - self._starts[j]])
        return torch.from_numpy(img).permute(2, 0, 1).contiguous(), self.indices[i]


def _read_labels(path: str, schema: Schema, split: str, n: int) -> np.ndarray:
    out = np.full((n, len(schema.attributes)), -1, dtype=np.int64)
    lookup = [{v: i for i, v in enumerate(a.values)} for a in schema.attributes]
    with open(path, newline="", encoding="utf-8") as f:
        r = csv.reader(f)
        header = next(r)
        if header != ["split", "index", *schema.names]:
            raise ValueError(f"{path}: header {header} does not match the schema's attributes {list(schema.names)}")
        for line, row in enumerate(r, start=2):
            if row[0] != split:
                continue
            try:
                i = int(row[1])
                out[i] = [lookup[k][v] for k, v in enumerate(row[2:])]
            except (ValueError, KeyError, IndexError):
                raise ValueError(f"{path}:{line}: bad label row {row}") from None
    if (out < 0).any():
        raise ValueError(f"{path}: labels missing for some of the {n} {split!r} images")
    return out
