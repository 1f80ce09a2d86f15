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
from .scenes.objects import check_spacing
from .scenes.render import check_distinct_places
from .scenes.schema import Schema
from .vsa import Codebooks

__all__ = ["select_objects", "edit_objects", "check_edit", "amplitudes"]


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


#: the part of a scene vector no object explains, relative to the vector, below which it is the float
#: round-off of an exact bundle (dropped) rather than what an encoder gives (kept)
ROUND_OFF = 1e-6


def check_edit(changes: Mapping[str, Any], remove: bool, add: Mapping[str, Any] | None, selected: bool) -> None:
    """Refuse an edit a part of which would not be applied: a change or a removal without selected
    objects (``selected``), a change of the objects it removes, or nothing to do."""
    if not changes and not remove and add is None:
        raise ValueError("edit: give a change (colour='red', ...), remove=True or add={...}")
    said = ", ".join(f"{k}={v!r}" for k, v in changes.items())
    if remove and changes:
        raise ValueError(f"edit: remove=True removes the selected objects, so the change {said} would not be applied; "
                         "make the change and the removal two edits")
    if (changes or remove) and not selected:
        what = f"the change {said}" if changes else "remove=True"
        raise ValueError(f"edit: {what} applies to selected objects; select them with where={{attribute: value}} or "
                         "object=i (--where / --object), or make the add=... its own edit")


def edit_objects(q: Tensor, codebooks: Codebooks, schema: Schema, objects: Tensor, rows: list[int],
                 changes: Mapping[str, Any], remove: bool = False, add: Mapping[str, Any] | None = None,
                 ) -> tuple[Tensor, Tensor]:
    """(the edited vector ``[D]``, the objects it should now hold ``[m', K]``) of the scene vector ``q``
    holding ``objects``: the ``rows`` changed by ``changes`` or removed, and ``add`` (every attribute
    of a new object) added. An object keeps its amplitude in ``q`` when it changes (its old bound
    vector is subtracted, the new one added, both at that amplitude); a new object gets the mean
    amplitude of the others (1 in an empty scene). What no object explains (an encoder's error) is
    kept, unless it is below :data:`ROUND_OFF` of ``q`` (the round-off of an exact bundle, which a
    decoder would read as a faint copy of a removed object).

    Refused (``ValueError``): a part that would not be applied (:func:`check_edit`), two objects at
    one place, and more objects than ``schema.max_objects`` (decoding stops there, so an untouched
    object would be lost)."""
    check_edit(changes, remove, add, bool(rows))
    new = parse_changes(codebooks, dict(changes)) if changes else {}
    keep = [i for i in range(len(objects)) if not (remove and i in rows)]
    after = objects.clone()
    for i in rows:
        for k, v in new.items():
            after[i, k] = v
    after = after[keep]
    if add is not None:
        after = torch.cat([after, codebooks.indices_of(dict(add)).to(after.device)[None]])
    if len(after) > schema.max_objects:
        raise ValueError(f"edit: the scene would hold {len(after)} objects, more than the schema's max_objects "
                         f"{schema.max_objects} (a decode stops there and would lose one); remove an object first")
    rows_after = after.cpu().numpy()
    check_distinct_places(schema, rows_after)  # the renderer's own rule
    kept = {i: j for j, i in enumerate(keep)}
    moves = any(k in new for k in (schema.by_role("x"), schema.by_role("y")) if k is not None)
    placed = [kept[i] for i in rows if i in kept and moves] + ([len(after) - 1] if add is not None else [])
    check_spacing(schema, rows_after, placed)  # the schema's: where its scenes put objects
    amp = amplitudes(q, codebooks, objects)

    def bound(idx: Tensor, weights: Tensor) -> Tensor:
        if not len(idx):
            return torch.zeros_like(q)
        return (weights[:, None] * codebooks.bind_indices(idx).to(q.dtype)).sum(0)

    rest = q - bound(objects, amp)  # what no object explains
    if rest.norm() <= ROUND_OFF * q.norm():
        rest = torch.zeros_like(q)
    edited = rest + bound(after[:len(keep)], amp[keep])  # the kept objects, changed or not, at their amplitudes
    if add is not None:
        mean = amp.mean() if len(amp) else torch.ones((), dtype=q.dtype, device=q.device)
        edited = edited + bound(after[-1:], mean.reshape(1))
    return edited, after
