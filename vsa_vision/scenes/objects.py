"""Scenes of several objects: 1 to ``schema.max_objects`` objects at distinct positions.

A scene is an array of object slots ``[M, K]`` (``M = schema.max_objects``): the present objects
first, ordered by position (``y``, then ``x``), then absent slots of -1. Each object is drawn like a
single-object scene of the split: in the ``train``, ``val`` and ``test`` splits no object is a
held-out combination; a ``heldout`` scene holds at least one held-out object (its first draw) among
objects of the training kind. The number of objects is uniform in ``1 .. M``; an object whose
position another object of the scene already takes (or, with ``schema.spacing`` s > 1, lies fewer than s
cells from, in the larger of the x and y distances) is drawn again. A schema whose ``M`` objects
cannot take distinct places is refused when it is made (:func:`check_object_room`), and the sampler
gives up with a ``ValueError`` rather than draw forever.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..checks import check_int
from .sampling import ENUMERATE_LIMIT, IndexStream, check_in_memory

__all__ = ["ObjectSetStream", "sample_object_sets", "decode_object_sets", "object_order", "object_places",
           "check_object_room"]

_COUNT_STREAM, _OTHER_STREAM = 11, 13
#: draws of one object in a row that all land on places the scene already takes before the sampler gives
#: up (a schema whose objects cannot fit, which :func:`check_object_room` refuses at load, never gets here)
MAX_REDRAWS = 1 << 18


def object_places(schema: Any, split: str | None = "train") -> int | None:
    """How many distinct places (``x``, ``y`` cells) an object of ``split`` can take: every cell of the
    grid (1 without ``x`` / ``y`` attributes) for ``None`` (the whole space); for ``"train"``,
    ``"val"`` or ``"test"`` the cells where some combination of the other attributes is not held out;
    for ``"heldout"`` those where one is. ``None`` when the attributes the count depends on have more
    than ``ENUMERATE_LIMIT`` combinations (not counted)."""
    sizes = schema.sizes
    pos = [k for k in (schema.by_role("x"), schema.by_role("y")) if k is not None]
    total = int(np.prod([sizes[k] for k in pos], dtype=np.int64)) if pos else 1
    if split is None or not schema.holdout:
        return 0 if split == "heldout" else total
    named = sorted({schema.names.index(n) for combo in schema.holdout for n in combo} | set(pos))
    dims = tuple(sizes[k] for k in named)
    if int(np.prod(dims, dtype=object)) > ENUMERATE_LIMIT:
        return None
    held = np.zeros(dims, dtype=bool)
    for combo in schema.holdout:
        where: list[Any] = [slice(None)] * len(named)
        for name, value in combo.items():
            where[named.index(schema.names.index(name))] = schema.attribute(name).index(value)
        held[tuple(where)] = True
    admitted = held if split == "heldout" else ~held
    others = tuple(i for i, k in enumerate(named) if k not in pos)
    return int((admitted.any(axis=others) if others else admitted).sum())


def _room_message(schema: Any, most: int, places: int) -> str:
    kx, ky = schema.by_role("x"), schema.by_role("y")
    if kx is None and ky is None:
        return (f"schema {schema.name!r}: max_objects {most} cannot fit: the objects of a scene take distinct places, "
                "and without an x or y attribute there is 1 place; set max_objects to 1 or add x / y attributes")
    grid = " x ".join(str(schema.sizes[k]) for k in (kx, ky) if k is not None)
    if getattr(schema, "spacing", 1) > 1:
        return (f"schema {schema.name!r}: max_objects {most} cannot fit: the objects of a scene take cells at least "
                f"{schema.spacing} apart (of the {grid} grid of x / y values), and objects outside the held-out "
                f"combinations, placed one after the other, always find room for only {places}; set max_objects to "
                f"at most {places}, lower spacing or add positions")
    return (f"schema {schema.name!r}: max_objects {most} cannot fit: the objects of a scene take distinct places "
            f"(cells of the {grid} grid of x / y values), and objects outside the held-out combinations can take "
            f"only {places} places; set max_objects to at most {places} or add positions")


def check_object_room(schema: Any) -> None:
    """Refuse (``ValueError`` naming ``max_objects`` and the number of places) a schema whose scenes of
    ``max_objects`` objects cannot be drawn: more objects than the places an object of the training
    kind can take (every scene's objects take distinct places; a held-out scene's other objects are of
    the training kind too), which would make the sampler draw forever."""
    if schema.max_objects > 1:
        _refuse_crowding(schema, "train" if schema.holdout else None)


def _refuse_crowding(schema: Any, split: str | None) -> None:
    """Refuse ``max_objects`` beyond what always fits the places an object of ``split`` can take."""
    places = object_places(schema, split)
    fitting = None if places is None else _fitting(schema, places)
    if fitting is not None and schema.max_objects > fitting:
        raise ValueError(_room_message(schema, schema.max_objects, fitting))


def _fitting(schema: Any, places: int) -> int:
    """How many objects always fit ``places`` cells, drawn one after the other: every cell with
    ``spacing`` s = 1; with s > 1 each object shuts at most (2s - 1)^2 cells, so 1 + (places - 1) //
    (2s - 1)^2 objects never run out of room."""
    s = getattr(schema, "spacing", 1)
    return places if s <= 1 else 1 + (places - 1) // (2 * s - 1) ** 2


def too_close(schema: Any, obj: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Which of the objects ``others`` ``[n, K]`` lie fewer than ``schema.spacing`` cells from ``obj``
    ``[K]`` in the larger of the x and y distances (the axes the schema has): bool ``[n]``, all False
    with ``spacing`` 1 (distinct places are checked apart)."""
    axes = [k for k in (schema.by_role("x"), schema.by_role("y")) if k is not None]
    spacing = getattr(schema, "spacing", 1)
    if spacing <= 1 or not axes or not len(others):
        return np.zeros(len(others), dtype=bool)
    return np.abs(np.asarray(others)[:, axes] - np.asarray(obj)[axes]).max(1) < spacing


def check_spacing(schema: Any, rows: np.ndarray, placed: list[int]) -> None:
    """Refuse objects ``placed`` (indices into ``rows``, objects of one scene) closer to another object
    than the schema's ``spacing`` (:func:`too_close`, the rule its scenes are drawn by): an edit must not
    move or add an object where no scene of the schema has one. Objects not placed are not checked
    against each other (a misread scene is still edited as read)."""
    rows = np.asarray(rows)
    where = [k for k in (schema.by_role("x"), schema.by_role("y")) if k is not None]
    for i in placed:
        near = too_close(schema, rows[i], rows)
        near[i] = False
        if near.any():
            a, b = (tuple(int(v) for v in rows[r, where]) for r in (i, int(np.argmax(near))))
            names = ", ".join(schema.names[k] for k in where)
            raise ValueError(f"edit: an object at ({names}) = {a} would be closer to the object at {b} than the "
                             f"schema's spacing of {schema.spacing} grid steps")


def object_order(schema: Any, rows: np.ndarray) -> np.ndarray:
    """The order of objects ``[m, K]`` by position: ``y`` first, then ``x`` (schema order for ties)."""
    ky, kx = schema.by_role("y"), schema.by_role("x")
    keys = [rows[:, k] for k in (kx, ky) if k is not None]
    return np.lexsort(keys) if keys else np.arange(len(rows))


def _places(schema: Any, idx: np.ndarray) -> np.ndarray:
    """A place number per object ``[..., K]``: its (x, y) cell, or its index when there is no position."""
    kx, ky = schema.by_role("x"), schema.by_role("y")
    out = np.zeros(idx.shape[:-1], dtype=np.int64)
    for k in (kx, ky):
        if k is not None:
            out = out * schema.sizes[k] + idx[..., k]
    return out


class ObjectSetStream:
    """The scenes ``[m, M, K]`` of a split taken ``m`` at a time: ``take(a)`` then ``take(b)`` are the
    rows of ``sample_object_sets(..., a + b)`` (the same random streams, drawn in the same order: the
    object counts, the split's own objects, a held-out scene's other objects)."""

    def __init__(self, schema: Any, seed: int = 0, split: str | None = None) -> None:
        self.schema = schema
        seed = check_int("seed", seed, 0)
        self._counts = np.random.default_rng([seed, _COUNT_STREAM])
        self._first = IndexStream(schema, seed, split)  # the split's own objects; refuses an empty split
        # a held-out scene's other objects are of the training kind, from a stream of their own
        self._others = (IndexStream(schema, seed, "train", stream=_OTHER_STREAM) if split == "heldout"
                        else self._first)
        _refuse_crowding(schema, None if split is None else "train")  # a schema changed after its checks at load

    def take(self, m: int) -> np.ndarray:
        """The next ``m`` scenes as object slots ``[m, M, K]`` (int64; absent slots -1)."""
        m = check_int("m", m, 0)
        schema = self.schema
        M = schema.max_objects
        out = np.full((m, M, len(schema.sizes)), -1, dtype=np.int64)
        if m == 0:
            return out
        counts = self._counts.integers(1, M + 1, size=m)  # numpy draws these the same in blocks as at once
        for i in range(m):  # one scene after the other: prefix-stable, M small
            objs = [self._first.take(1)[0]]
            taken = {int(_places(schema, objs[0]))}
            misses = 0
            while len(objs) < counts[i]:
                cand = self._others.take(1)[0]
                place = int(_places(schema, cand))
                if place not in taken and not too_close(schema, cand, np.stack(objs)).any():
                    objs.append(cand)
                    taken.add(place)
                    misses = 0
                    continue
                misses += 1
                if misses > MAX_REDRAWS:
                    raise ValueError(f"schema {schema.name!r}: {misses} draws found no free place for object "
                                     f"{len(objs) + 1} of a scene of {counts[i]} (max_objects {M}); the objects "
                                     "cannot fit: lower max_objects or add positions")
            rows = np.stack(objs)
            out[i, : len(rows)] = rows[object_order(schema, rows)]
        return out


def sample_object_sets(schema: Any, n: int, seed: int = 0, split: str | None = None) -> np.ndarray:
    """``n`` scenes ``[n, M, K]`` int64 of the split (see the module notes), seeded, prefix-stable."""
    n = check_int("n", n, 0)
    seed = check_int("seed", seed, 0)
    M, K = schema.max_objects, len(schema.sizes)
    check_in_memory(f"n: {n} scenes of {M} objects", n * M * K * 8)
    return ObjectSetStream(schema, seed, split).take(n)


def decode_object_sets(schema: Any, sets: np.ndarray) -> list[list[dict[str, str]]]:
    """Scenes ``[n, M, K]`` (absent slots -1) as lists of ``{attribute: value label}``."""
    sets = schema.check_object_sets(sets)
    return [schema.decode(s[(s >= 0).all(-1)]) if (s >= 0).all(-1).any() else [] for s in sets]
