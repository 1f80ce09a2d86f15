"""Datasets of rendered scenes: rendered on the fly from a seed, or generated once to disk in shards.

Every item is ``(image, labels)``: ``uint8 [3, H, W]`` and ``int64 [K]`` value indices in schema order,
or for a schema of several objects ``int64 [M, K]`` object slots (absent ones -1, the present ones
ordered by position; see :mod:`.objects`). The model scales images to [0, 1] on its device, which
moves 4x fewer bytes than floats.

On disk (``generate_dataset``, ``vsa-vision data generate``)::

    config.json          what is being generated (schema, seed, counts, shard size, nuisances); written first
    train-00000.npy ...  image shards, uint8 [m, H, W, 3], one file per shard, each written then renamed
    labels.csv           split, index, then one column per attribute holding value labels by name; for
                         a schema of several objects one row per object: split, index, object (0 ..
                         count - 1, in slot order), then the attributes (see :mod:`.labels`)
    manifest.json        config + every shard with its count and sha256; written last: its presence
                         marks a complete dataset
    preview.png          optional contact sheet
    .lock                empty; locked by the run writing the folder, so a second run is refused (dataset_lock)

A dataset of one object per scene is format version 1; one of several objects is version 2 (its
labels.csv has the ``object`` column and its manifest counts the objects of each split, ``objects``).
The images of split ``s``, index ``i`` are ``RenderedScenes(schema, n, seed, split=s)[i]`` (same
scenes, same nuisance seeds), both for one object and for several.

Everything is a function of the config, so an interrupted run resumes by keeping the shards that
are there and whole (checked: size, header, and the manifest's sha256 or, before the manifest
exists, their first and last images against a fresh render), rendering the rest, and gives the same
bytes as an uninterrupted one; a finished dataset with a shard deleted or damaged is repaired the
same way. A shard damaged only in its middle images, before any manifest recorded its checksum,
goes unnoticed: ``SceneShards(..., verify=True)`` checks every byte against the manifest.

Memory: generation holds one shard at a time. ``RenderedScenes`` holds its scenes' labels
(``n x K`` int64) and, with ``cache=True``, every image; it refuses more than
``sampling.MAX_IN_MEMORY_BYTES`` for either (8 GiB).
"""

from __future__ import annotations

import csv
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
from .labels import count_objects, label_header, label_rows, read_labels
from .object_stream import ObjectSetStream, scene_stream
from .objects import sample_object_sets
from .render import STROKE, Renderer, contact_sheet
from .sampling import IndexStream, check_in_memory
from .schema import SPLITS, Schema, load_schema, sample_indices
from .storage import (  # noqa: F401  (dataset_lock and DatasetBusyError are public here too)
    LOCK_FILE,
    DatasetBusyError,
    Shard,
    check_disk_space,
    dataset_lock,
    inside,
    local_file,
    open_shard,
    plan_shards,
    sha256_file,
    shard_entries,
    shard_is_whole,
    valid_shard_digest,
)

FORMAT = "vsa_vision.scenes"
FORMAT_VERSION = 1  # one object per scene
MULTI_FORMAT_VERSION = 2  # several objects per scene: labels.csv holds a row per object
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
    """``n`` scenes of one split, rendered on demand (no disk). ``cache=True`` renders them all once.

    Items are ``(uint8 [3, H, W], labels)``: ``int64 [K]`` for a one-object schema, ``int64 [M, K]``
    object slots (absent ones -1, present ones ordered by position) for a schema of several objects."""

    def __init__(self, schema: Schema | str = "default", n: int = 1000, seed: int = 0, split: str = "train",
                 size: int | None = None, jitter: float = 0.0, noise: float = 0.0, cache: bool = False,
                 stroke: float | Sequence[float] = STROKE) -> None:
        self.schema = load_schema(schema)
        check_choice("split", split, SPLITS)
        self.n, self.seed, self.split = check_int("n", n, 0), check_int("seed", seed, 0), split
        self.renderer = Renderer(self.schema, size=size, jitter=jitter, noise=noise, stroke=stroke)
        if cache:
            side = self.renderer.size
            check_in_memory(f"RenderedScenes(cache=True): {self.n} images of {side}x{side}x3", self.n * side * side * 3)
        # one object per scene: [n, K]; several: object slots [n, M, K], absent ones -1 (scenes.objects)
        self.multi = self.schema.max_objects > 1
        draw = sample_object_sets if self.multi else sample_indices
        self.indices = torch.from_numpy(draw(self.schema, self.n, seed=self.seed, split=split))
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
        render = self.renderer.render_objects if self.multi else self.renderer.render_indices
        img = render(self.indices[i].tolist(), seed=_nuisance_seed(self.seed, self.split, i))
        return torch.from_numpy(img).permute(2, 0, 1).contiguous(), self.indices[i]


# -- generation to disk -----------------------------------------------------------------------


def format_version(schema: Schema) -> int:
    """The format version of a dataset of ``schema``: 1 for one object a scene, 2 for several."""
    return MULTI_FORMAT_VERSION if schema.max_objects > 1 else FORMAT_VERSION


def dataset_config(schema: Schema, counts: Mapping[str, int], seed: int, shard_size: int, size: int,
                   jitter: float, noise: float) -> dict[str, Any]:
    return {"format": FORMAT, "version": format_version(schema), "schema": schema.to_dict(), "seed": int(seed),
            "counts": {s: int(counts.get(s, 0)) for s in SPLITS}, "shard_size": int(shard_size), "size": int(size),
            "jitter": float(jitter), "noise": float(noise)}


def _write_shard(path: str, images: np.ndarray) -> None:
    with atomic_path(path, suffix=".npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, images)


def generate_dataset(out: str | os.PathLike, schema: Schema | str = "default", n: int = 50000,
                     val: int | None = None, test: int | None = None, heldout: int | None = None, seed: int = 0,
                     shard_size: int = 5000, size: int | None = None, jitter: float = 0.0, noise: float = 0.0,
                     overwrite: bool = False, preview: bool = False, progress: bool = True,
                     log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Render a dataset to ``out``; resume an interrupted run or repair a damaged one; return the manifest.

    ``n`` train images (scenes of one object, or of 1 to ``schema.max_objects`` for a schema of
    several: see :mod:`.labels` for their rows); ``val``/``test``/``heldout`` default to
    ``max(1000, n // 10)`` each (heldout 0 when the schema holds nothing out). Refuses a folder
    holding a different dataset (or other files) unless ``overwrite``, which removes only the files
    a dataset consists of. Refuses up front a split the schema leaves empty, a split of more than
    ``MAX_SHARDS`` shards, and a dataset the free space of the target filesystem cannot hold
    (``OSError`` with the estimate and the free space).
    Every shard already on disk is checked (size, header, and the manifest's sha256, or without a
    manifest its first and last images against a fresh render); what is missing or damaged is
    rendered again, so the result is the same bytes as an uninterrupted run. Memory stays bounded
    by one shard: scenes are drawn and labels written shard by shard."""
    schema = load_schema(schema)
    counts = _split_counts(schema, n, val, test, heldout)
    shard_size = check_int("shard_size", shard_size, 1)
    seed = check_int("seed", seed, 0)
    renderer = Renderer(schema, size=size, jitter=jitter, noise=noise)
    config = dataset_config(schema, counts, seed, shard_size, renderer.size, jitter, noise)
    shards = plan_shards(config)
    streams = {s: scene_stream(schema, seed, s) for s in SPLITS if counts[s]}  # refuses a split with no scenes
    out = os.fspath(out)
    say = log or (lambda _m: None)
    check_disk_space(out, config, shards, preview, overwrite)
    with dataset_lock(out):  # one run at a time writes a folder
        _prepare_folder(out, config, overwrite)
        for name in [*(f for *_, f in shards), "labels.csv", "manifest.json"]:
            local_file(out, name)  # a link out of the folder is refused, as SceneShards refuses it
        return _generate(out, schema, counts, seed, renderer, config, shards, streams, preview, progress, say)


def _generate(out: str, schema: Schema, counts: Mapping[str, int], seed: int, renderer: Renderer,
              config: Mapping[str, Any], shards: Sequence[Shard], streams: Mapping[str, IndexStream | ObjectSetStream],
              preview: bool, progress: bool, say: Callable[[str], None]) -> dict[str, Any]:
    """The part of :func:`generate_dataset` that runs under the folder's lock, once the folder is prepared."""
    manifest_path = os.path.join(out, "manifest.json")
    known = _known_checksums(manifest_path, config, shards)
    if known is not None and _intact(out, shards, known, renderer.size):
        say(f"{out}: already complete ({sum(counts.values())} images{_objects_note(_read_json(manifest_path))}), "
            "nothing to do")
        if preview and not os.path.exists(os.path.join(out, "preview.png")):
            write_preview(out, schema, renderer, seed)
        return _read_json(manifest_path)
    if os.path.exists(manifest_path):  # an incomplete or damaged dataset is no longer marked complete
        say(f"{out}: shards or labels are missing or damaged; rendering them again")
        os.unlink(manifest_path)

    manifest = dict(config)
    manifest["shards"], objects = _render_shards_and_labels(out, schema, shards, streams, renderer, seed,
                                                            (known or {}).get("shards", {}), progress, say)
    if schema.max_objects > 1:
        manifest["objects"] = objects
    manifest["labels_sha256"] = sha256_file(os.path.join(out, "labels.csv"))
    if preview:
        write_preview(out, schema, renderer, seed)
    atomic_write(manifest_path, lambda f: f.write(json.dumps(manifest, indent=2) + "\n"))
    say(f"{out}: {sum(counts.values())} images{_objects_note(manifest)} in {len(shards)} shards "
        + ", ".join(f"{s} {counts[s]}" for s in SPLITS))
    return manifest


def _objects_note(manifest: Mapping[str, Any]) -> str:
    """`` (N objects, 1 to M a scene)`` for a dataset of several objects, else nothing."""
    objects = manifest.get("objects")
    if not isinstance(objects, Mapping):
        return ""
    most = manifest["schema"].get("max_objects", 1)
    return f" ({sum(objects.values())} objects, 1 to {most} a scene)"


def _known_checksums(manifest_path: str, config: Mapping[str, Any], shards: Sequence[Shard]) -> dict[str, Any] | None:
    """``{"shards": {file: sha256}, "labels": sha256}`` from a manifest of this very dataset, else
    ``None`` (no manifest, an unreadable one, or one of other shards)."""
    try:
        manifest = _read_json(manifest_path)
        listed = [(s["split"], s["start"], s["count"], s["file"]) for s in manifest["shards"]]
        sums = {s["file"]: str(s["sha256"]) for s in manifest["shards"]}
        labels = str(manifest["labels_sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    rest = {k: v for k, v in manifest.items() if k not in ("shards", "labels_sha256", "objects")}
    if rest != dict(config) or listed != list(shards) or not _objects_ok(manifest):
        return None
    return {"shards": sums, "labels": labels}


def _objects_ok(manifest: Mapping[str, Any]) -> bool:
    """Whether a manifest counts the objects of each split as its format asks (only version 2 does)."""
    objects = manifest.get("objects")
    if manifest.get("version") != MULTI_FORMAT_VERSION:
        return objects is None
    return (isinstance(objects, dict) and list(objects) == list(SPLITS)
            and all(type(v) is int and v >= 0 for v in objects.values()))


def _intact(out: str, shards: Sequence[Shard], known: Mapping[str, Any], side: int) -> bool:
    """Whether every shard and labels.csv are whole and have the sha256 the manifest gives."""
    labels = os.path.join(out, "labels.csv")
    if not os.path.isfile(labels) or sha256_file(labels) != known["labels"]:
        return False
    return all(valid_shard_digest(os.path.join(out, f), c, side, known["shards"][f], _no_render) is not None
               for _s, _st, c, f in shards)


def _no_render(_j: int) -> np.ndarray:
    raise AssertionError("a shard with a known checksum is not compared with a render")


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
    present = set(os.listdir(out)) - {LOCK_FILE}  # the lock of the run (dataset_lock) is never removed
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


def _render_shards_and_labels(out: str, schema: Schema, shards: Sequence[Shard],
                              streams: Mapping[str, IndexStream | ObjectSetStream], renderer: Renderer, seed: int,
                              known: Mapping[str, str], progress: bool,
                              say: Callable[[str], None]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Keep every shard on disk that can be trusted, render the others, write labels.csv (atomically,
    row by row as the scenes are drawn); return the manifest's shard entries and the objects of each
    split."""
    whole = sum(shard_is_whole(os.path.join(out, f), c, renderer.size) for *_, c, f in shards)
    if whole:
        say(f"{out}: resuming, {whole} of {len(shards)} shards already written (checking them)")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(c for *_, c, _f in shards), unit="img", desc="rendering")
    entries, objects = [], dict.fromkeys(SPLITS, 0)
    render_one = renderer.render_objects if schema.max_objects > 1 else renderer.render_indices
    try:
        with atomic_path(os.path.join(out, "labels.csv"), suffix=".csv") as tmp, \
                open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(label_header(schema))
            for split, start, count, fname in shards:
                idx = streams[split].take(count)
                seeds = [_nuisance_seed(seed, split, i) for i in range(start, start + count)]
                path = os.path.join(out, fname)
                digest = valid_shard_digest(path, count, renderer.size, known.get(fname),
                                            lambda j, x=idx, s=seeds: render_one(x[j], seed=s[j]))
                if digest is None:
                    _write_shard(path, renderer.render_batch(idx, seeds=seeds))
                    digest = sha256_file(path)
                entries.append({"file": fname, "split": split, "start": start, "count": count, "sha256": digest})
                w.writerows(label_rows(schema, split, start, idx))
                objects[split] += count_objects(idx)
                if bar is not None:
                    bar.update(count)
    finally:
        if bar is not None:
            bar.close()
    return entries, objects


def write_preview(out: str, schema: Schema, renderer: Renderer, seed: int, count: int = 60) -> str:
    """A contact sheet of the first ``count`` training scenes, written as ``out/preview.png``."""
    draw = sample_object_sets if schema.max_objects > 1 else sample_indices
    idx = draw(schema, count, seed=seed, split="train")
    images = renderer.render_batch(idx, seeds=[_nuisance_seed(seed, "train", i) for i in range(count)])
    path = os.path.join(out, "preview.png")
    with atomic_path(path, suffix=".png") as tmp:
        contact_sheet(images, columns=10, scale=2).save(tmp)
    return path


DATASET_SCHEMA = "dataset"  # a schema argument meaning "the schema of the dataset in data_dir"


def _manifest(path: str) -> dict[str, Any]:
    mpath = os.path.join(path, "manifest.json")
    if not os.path.isfile(mpath):
        hint = (" (config.json is there: generation was interrupted; run the generate or import command again to "
                "resume)" if os.path.isfile(os.path.join(path, "config.json")) else "")
        raise FileNotFoundError(f"{path}: not a complete dataset, no manifest.json{hint}")
    try:
        manifest = _read_json(mpath)
    except (OSError, ValueError) as e:
        raise ValueError(f"{mpath}: not readable JSON ({e})") from None
    if isinstance(manifest, dict) and manifest.get("format") == FORMAT and "version" not in manifest:
        raise ValueError(f"{path}/manifest.json: no 'version' (expected {FORMAT_VERSION} or {MULTI_FORMAT_VERSION})")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT \
            or manifest.get("version") not in (FORMAT_VERSION, MULTI_FORMAT_VERSION):
        got = manifest if not isinstance(manifest, dict) else f"{manifest.get('format')!r} v{manifest.get('version')}"
        raise ValueError(f"{path}: manifest format {got} is not {FORMAT!r} v{FORMAT_VERSION} (one object a scene) "
                         f"or v{MULTI_FORMAT_VERSION} (several)")
    return manifest


def dataset_schema(path: str | os.PathLike) -> Schema:
    """The schema of the complete dataset in folder ``path`` (from its manifest)."""
    path = os.fspath(path)
    try:
        return Schema.from_dict(_manifest(path)["schema"])
    except KeyError:
        raise ValueError(f"{path}/manifest.json: no schema") from None


def dataset_counts(path: str | os.PathLike) -> dict[str, int]:
    """Images per split of the complete dataset in folder ``path`` (from its manifest)."""
    path = os.fspath(path)
    counts = _manifest(path).get("counts")
    if not isinstance(counts, dict) or any(type(counts.get(s, 0)) is not int or counts.get(s, 0) < 0 for s in SPLITS):
        raise ValueError(f"{path}/manifest.json: 'counts' must map each split to a number of images, got {counts!r}")
    return {s: counts.get(s, 0) for s in SPLITS}


class SceneShards(Dataset):
    """One split of a dataset written by :func:`generate_dataset`, memory-mapped from its shards.

    Items are ``(uint8 [3, H, W], int64 [K])``, or ``int64 [M, K]`` object slots for a schema of several
    objects: the items of ``RenderedScenes`` with the dataset's schema, seed and nuisances.
    ``verify=True`` checks every shard's and labels.csv's sha256 against the manifest first."""

    def __init__(self, path: str | os.PathLike, split: str = "train", verify: bool = False,
                 schema: Schema | str | None = None) -> None:
        path = os.fspath(path)
        check_choice("split", split, SPLITS)
        manifest = _manifest(path)
        mpath = os.path.join(path, "manifest.json")
        self.manifest = manifest
        try:
            self.schema = Schema.from_dict(manifest["schema"])
        except KeyError:
            raise ValueError(f"{mpath}: no 'schema'") from None
        except (TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"{mpath}: its 'schema' is not a schema ({e})") from None
        if manifest["version"] != format_version(self.schema):
            raise ValueError(f"{path}: manifest v{manifest['version']} does not fit its schema {self.schema.name!r} "
                             f"of up to {self.schema.max_objects} objects a scene (v{format_version(self.schema)})")
        if schema is not None and load_schema(schema).to_dict() != self.schema.to_dict():
            raise ValueError(f"{path}: the dataset's schema {self.schema.name!r} differs from the schema asked for "
                             f"{load_schema(schema).name!r}")
        self.split, self.path = split, path
        entries = shard_entries(mpath, manifest)
        files = {s["file"]: inside(path, s["file"]) for s in entries}  # refuses paths leaving the folder
        shards = [s for s in entries if s["split"] == split]
        labels = os.path.join(path, "labels.csv")
        if verify:
            if not isinstance(manifest.get("labels_sha256"), str):
                raise ValueError(f"{mpath}: no 'labels_sha256' (the checksum of labels.csv) to verify against")
            sums = [(files[s["file"]], s["file"], s["sha256"]) for s in entries]
            for full, name, want in [*sums, (labels, "labels.csv", manifest["labels_sha256"])]:
                if sha256_file(full) != want:
                    raise ValueError(f"{path}/{name}: checksum mismatch (file changed or corrupt)")
        side = manifest.get("size", self.schema.image_size)
        if type(side) is not int or side < 1:
            raise ValueError(f"{mpath}: 'size' must be the images' side in pixels, got {side!r:.80}")
        self._arrays = [open_shard(path, s, files[s["file"]], side) for s in shards]
        self._starts = np.cumsum([0] + [len(a) for a in self._arrays])
        self.n = int(self._starts[-1])
        counts = manifest.get("counts")
        want = counts.get(split) if isinstance(counts, dict) else None
        if type(want) is not int:
            raise ValueError(f"{mpath}: 'counts' gives no number of {split!r} images (got {counts!r:.80})")
        if self.n != want:
            raise ValueError(f"{path}: split {split!r} has {self.n} images in its shards, manifest says {want}")
        self.indices = torch.from_numpy(read_labels(labels, self.schema, split, self.n))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = _item(i, self.n, "images")
        j = int(np.searchsorted(self._starts, i, side="right") - 1)
        img = np.array(self._arrays[j][i - self._starts[j]])
        return torch.from_numpy(img).permute(2, 0, 1).contiguous(), self.indices[i]
