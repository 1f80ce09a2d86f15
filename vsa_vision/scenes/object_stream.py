"""The scenes of a split taken a block at a time, in bounded memory, for a schema of one or several objects.

:class:`ObjectSetStream` gives the object sets :func:`objects.sample_object_sets` draws: ``take(a)``
then ``take(b)`` are the rows of ``sample_object_sets(..., a + b)`` (the same random streams, drawn
in the same order: the object counts, the split's own objects, a held-out scene's other objects).
:func:`scene_stream` picks it or :class:`sampling.IndexStream` by the schema, as
``RenderedScenes`` picks ``sample_object_sets`` or ``sample_indices``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..checks import check_int
from .objects import _COUNT_STREAM, _OTHER_STREAM, _places, object_order
from .sampling import IndexStream

__all__ = ["ObjectSetStream", "scene_stream"]


class ObjectSetStream:
    """The scenes ``[m, M, K]`` of :func:`objects.sample_object_sets`, taken ``m`` at a time."""

    def __init__(self, schema: Any, seed: int = 0, split: str | None = None) -> None:
        self.schema = schema
        seed = check_int("seed", seed, 0)
        self._counts = np.random.default_rng([seed, _COUNT_STREAM])
        self._first = IndexStream(schema, seed, split)  # refuses a split with no scenes
        self._others = (IndexStream(schema, seed, "train", stream=_OTHER_STREAM) if split == "heldout"
                        else self._first)

    def take(self, m: int) -> np.ndarray:
        """The next ``m`` scenes as object slots ``[m, M, K]`` (int64; absent slots -1)."""
        m = check_int("m", m, 0)
        schema = self.schema
        M = schema.max_objects
        out = np.full((m, M, len(schema.sizes)), -1, dtype=np.int64)
        if m == 0:
            return out
        counts = self._counts.integers(1, M + 1, size=m)  # numpy draws these the same in blocks as at once
        for i in range(m):
            objs = [self._first.take(1)[0]]
            taken = {int(_places(schema, objs[0]))}
            while len(objs) < counts[i]:
                cand = self._others.take(1)[0]
                place = int(_places(schema, cand))
                if place not in taken:
                    objs.append(cand)
                    taken.add(place)
            rows = np.stack(objs)
            out[i, : len(rows)] = rows[object_order(schema, rows)]
        return out


def scene_stream(schema: Any, seed: int, split: str) -> IndexStream | ObjectSetStream:
    """The stream of the split's scenes: value indices ``[m, K]`` for a one-object schema, object
    slots ``[m, M, K]`` for a schema of several objects."""
    return ObjectSetStream(schema, seed, split) if schema.max_objects > 1 else IndexStream(schema, seed, split)
