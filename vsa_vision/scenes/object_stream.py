"""The scenes of a split taken a block at a time, in bounded memory, for a schema of one or several objects.

:func:`scene_stream` picks :class:`~vsa_vision.scenes.objects.ObjectSetStream` (the object sets of
:func:`objects.sample_object_sets`, a block at a time) or :class:`sampling.IndexStream` by the schema,
as ``RenderedScenes`` picks ``sample_object_sets`` or ``sample_indices``.
"""

from __future__ import annotations

from typing import Any

from .objects import ObjectSetStream
from .sampling import IndexStream

__all__ = ["ObjectSetStream", "scene_stream"]


def scene_stream(schema: Any, seed: int, split: str) -> IndexStream | ObjectSetStream:
    """The stream of the split's scenes: value indices ``[m, K]`` for a one-object schema, object
    slots ``[m, M, K]`` for a schema of several objects."""
    return ObjectSetStream(schema, seed, split) if schema.max_objects > 1 else IndexStream(schema, seed, split)
