"""Editing scenes of several objects in vector space: select objects, change, remove or add them.

A scene vector is the bundle ``q = sum_i b_i`` of its objects' bound vectors. Changing object i to
``b_i'`` is ``q - b_i + b_i'``; removing it ``q - b_i``; adding an object ``q + b_new``. The edited
vector is decoded again (explaining away), so the result is what the vector now holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from .edit import parse_changes
from .scenes.render import check_distinct_places
from .scenes.schema import Schema
from .vsa import Codebooks

__all__ = ["select_objects", "edit_objects", "amplitudes"]


def select_objects(codebooks: Codebooks, objects: Tensor, where: Mapping[str, Any] | None = None,
                   index: int | None = None) -> list[int]:
    """The rows of ``objects [m, K]`` an edit applies to: those whose attributes equal every value of
    ``where`` (labels by attribute name), or the one at ``index``; a selection that matches nothing is
    refused, naming what the scene holds."""
    if (where is None) == (index is None):
        raise ValueError("edit: select the objects with exactly one of where={attribute: value} or object=i")
    held = codebooks.labels_of(objects) if len(objects) else []
    if index is not None:
        if isinstance(index, bool) or not isinstance(index, int) or not -len(objects) <= index < len(objects):
            raise ValueError(f"object: expected an index of the {len(objects)} objects recognised, got {index!r}")
        return [index % len(objects)]
    wanted = parse_changes(codebooks, dict(where))
    rows = [i for i, row in enumerate(objects.tolist()) if all(row[k] == v for k, v in wanted.items())]
    if not rows:
        raise ValueError(f"where={dict(where)}: no object of the scene matches; it holds {held}")
    return rows


def amplitudes(q: Tensor, codebooks: Codebooks, objects: Tensor) -> Tensor:
    """Each object's amplitude in the scene vector ``q`` (least squares over all of them): 1 in an
    exact bundle, what the encoder gives it otherwise."""
    if not len(objects):
        return torch.zeros(0, dtype=q.dtype, device=q.device)
    B = codebooks.bind_indices(objects).to(q.dtype)                   # [m, D]
    return torch.linalg.lstsq(B.T, q[:, None]).solution[:, 0]


def edit_objects(q: Tensor, codebooks: Codebooks, schema: Schema, objects: Tensor, rows: list[int],
                 changes: Mapping[str, Any], remove: bool = False, add: Mapping[str, Any] | None = None,
                 ) -> tuple[Tensor, Tensor]:
    """(the edited vector ``[D]``, the objects it should now hold ``[m', K]``) of the scene vector ``q``
    holding ``objects``: the ``rows`` changed by ``changes`` or removed, and ``add`` (every attribute
    of a new object) added. An object keeps its amplitude in ``q`` when it changes (its old bound
    vector is subtracted, the new one added, both at that amplitude); a new object gets the mean
    amplitude of the others (1 in an empty scene)."""
    new = parse_changes(codebooks, dict(changes)) if changes else {}
    keep = [i for i in range(len(objects)) if not (remove and i in rows)]
    after = objects.clone()
    for i in rows:
        for k, v in new.items():
            after[i, k] = v
    after = after[keep]
    if add is not None:
        after = torch.cat([after, codebooks.indices_of(dict(add)).to(after.device)[None]])
    check_distinct_places(schema, after.cpu().numpy())  # the renderer's own rule
    amp = amplitudes(q, codebooks, objects)

    def bound(idx: Tensor, weights: Tensor) -> Tensor:
        if not len(idx):
            return torch.zeros_like(q)
        return (weights[:, None] * codebooks.bind_indices(idx).to(q.dtype)).sum(0)

    changed = [i for i in rows if i in keep]
    edited = q - bound(objects[rows], amp[rows]) + bound(after[[keep.index(i) for i in changed]], amp[changed])
    if add is not None:
        mean = amp.mean() if len(amp) else torch.ones((), dtype=q.dtype, device=q.device)
        edited = edited + bound(after[-1:], mean.reshape(1))
    return edited, after
