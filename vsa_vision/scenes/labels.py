"""``labels.csv`` of a dataset on disk: what each image shows, by value label, in a file a person can read.

One object per scene (format version 1)::

    split,index,shape,colour,size,x,y,fill
    train,0,star,blue,large,7,3,solid

Several objects per scene (format version 2): one row per object, ``object`` counting the scene's
objects from 0 in the order of its slots (by position: ``y``, then ``x``); a scene of ``c`` objects
has the rows ``object = 0 .. c - 1``, and its slots ``c .. M - 1`` are absent (-1)::

    split,index,object,shape,colour,size,x,y,fill
    train,0,0,star,blue,large,1,0,solid
    train,0,1,circle,red,small,3,2,outline
    train,1,0,plus,green,huge,2,2,solid

Rows come split by split, scene by scene, in the order of the shards.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["label_header", "label_rows", "read_labels", "count_objects"]


def label_header(schema: Any) -> list[str]:
    """The header row of labels.csv for ``schema``."""
    return ["split", "index", *(["object"] if schema.max_objects > 1 else []), *schema.names]


def label_rows(schema: Any, split: str, start: int, idx: np.ndarray) -> Iterator[list[Any]]:
    """The rows of scenes ``start, start + 1, ...`` of ``split``: ``idx`` is ``[m, K]`` (one object
    each) or ``[m, M, K]`` object slots (absent ones -1)."""
    if schema.max_objects == 1:
        for i, scene in enumerate(schema.decode(idx)):
            yield [split, start + i, *scene.values()]
        return
    for i, slots in enumerate(idx):
        present = slots[(slots >= 0).all(-1)]
        for j, obj in enumerate(schema.decode(present) if len(present) else []):
            yield [split, start + i, j, *obj.values()]


def count_objects(idx: np.ndarray) -> int:
    """The objects in scenes ``[m, M, K]`` (present slots), or ``m`` for one object a scene ``[m, K]``."""
    return int((idx >= 0).all(-1).sum()) if idx.ndim == 3 else len(idx)


def read_labels(path: str, schema: Any, split: str, n: int) -> np.ndarray:
    """The labels of the ``n`` scenes of ``split``: ``int64 [n, K]``, or ``[n, M, K]`` object slots
    for a schema of several objects; a ``ValueError`` names the first row that is not one of them
    and any scene left without labels."""
    if schema.max_objects > 1:
        return _read_object_labels(path, schema, split, n)
    K = len(schema.attributes)
    out = np.full((n, K), -1, dtype=np.int64)
    lookup = [{v: i for i, v in enumerate(a.values)} for a in schema.attributes]
    first: dict[int, int] = {}  # the line of each scene's row
    with open(path, newline="", encoding="utf-8") as f:
        r = csv.reader(f)
        _check_header(path, next(r, []), schema)
        for line, row in enumerate(r, start=2):
            if len(row) != 2 + K:  # every row: split, index and one label per attribute, in every split
                raise ValueError(f"{path}:{line}: a row of {len(row)} fields, expected {2 + K} (split, index, "
                                 f"{', '.join(schema.names)}): {row}")
            if row[0] != split:
                continue
            try:
                i = int(row[1])
            except ValueError:
                raise ValueError(f"{path}:{line}: index {row[1]!r} is not a whole number: {row}") from None
            if not 0 <= i < n:
                raise ValueError(f"{path}:{line}: index {i} is not one of the {n} {split!r} images (0 .. {n - 1})")
            if i in first:
                raise ValueError(f"{path}:{line}: {split!r} image {i} is given twice (first on line {first[i]})")
            first[i] = line
            try:
                out[i] = [lookup[k][v] for k, v in enumerate(row[2:])]
            except KeyError as e:
                k = next(k for k, v in enumerate(row[2:]) if v not in lookup[k])
                raise ValueError(f"{path}:{line}: attribute {schema.names[k]!r} has no value {e.args[0]!r} "
                                 f"(values: {list(schema.attributes[k].values)}): {row}") from None
    if (out < 0).any():
        raise ValueError(f"{path}: labels missing for some of the {n} {split!r} images")
    return out


def _check_header(path: str, header: list[str], schema: Any) -> None:
    want = label_header(schema)
    if header != want:
        raise ValueError(f"{path}: header {header} does not match the schema's attributes {list(schema.names)} "
                         f"(expected {want})")


def _read_object_labels(path: str, schema: Any, split: str, n: int) -> np.ndarray:
    """Object slots ``[n, M, K]``: every scene has the objects 0 .. c - 1 (c >= 1), each once, in order."""
    M, K = schema.max_objects, len(schema.attributes)
    out = np.full((n, M, K), -1, dtype=np.int64)
    lookup = [{v: i for i, v in enumerate(a.values)} for a in schema.attributes]
    with open(path, newline="", encoding="utf-8") as f:
        r = csv.reader(f)
        _check_header(path, next(r, []), schema)
        for line, row in enumerate(r, start=2):
            try:
                if row[0] != split:
                    continue
                i, j = int(row[1]), int(row[2])
                # a known scene and slot, not given before, after the scene's previous object, every attribute
                if not (0 <= i < n and 0 <= j < M) or out[i, j, 0] >= 0 or (j and out[i, j - 1, 0] < 0) \
                        or len(row) != 3 + K:
                    raise IndexError(j)
                out[i, j] = [lookup[k][v] for k, v in enumerate(row[3:])]
            except (ValueError, KeyError, IndexError):
                raise ValueError(f"{path}:{line}: bad label row {row}") from None
    missing = np.flatnonzero(out[:, 0, 0] < 0)
    if len(missing):
        raise ValueError(f"{path}: labels missing for {len(missing)} of the {n} {split!r} scenes "
                         f"(the first: index {int(missing[0])})")
    return out
