"""The rendering parameter of every value of an attribute, by the role it plays for the built-in
renderer (:class:`~vsa_vision.scenes.schema.Attribute`): checked here, once, for the schema and the
renderer alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .shapes import FILLS, SHAPES

__all__ = ["role_params"]


def _colour_rgb(spec: str) -> tuple[int, int, int]:
    from PIL import ImageColor

    rgb = ImageColor.getrgb(spec)
    return tuple(int(c) for c in rgb[:3])  # type: ignore[return-value]


def _numbers(where: str, params: Sequence[Any]) -> tuple[float, ...]:
    """``params`` as finite numbers, or a ``ValueError`` naming the attribute and the first bad one."""
    out = []
    for i, v in enumerate(params):
        try:
            x = float(v) if not isinstance(v, bool) else None
        except (TypeError, ValueError):
            x = None
        if x is None or not np.isfinite(x):
            raise ValueError(f"{where}: params[{i}] = {v!r} is not a number")
        out.append(x)
    return tuple(out)


def role_params(name: str, role: str | None, values: Sequence[str], params: Sequence[Any] | None) -> tuple[Any, ...]:
    """The rendering parameter of every value (validated, a ``ValueError`` naming the attribute):
    rgb tuples (colour), radii (size), positions (x, y), turns as fractions of the shape's symmetry
    period (rotation) or names (shape, fill); without a role, ``params`` (or the labels) as they are."""
    n = len(values)
    p = params
    if role is None:
        return tuple(p) if p is not None else values
    where = f"attribute {name!r} (role {role})"
    if role in ("shape", "fill"):
        known = SHAPES if role == "shape" else FILLS
        names = tuple(str(v) for v in (p if p is not None else values))
        bad = [v for v in names if v not in known]
        if bad:
            raise ValueError(f"{where}: unknown {role}(s) {bad}; known: {list(known)} "
                             "(give 'params' to map other labels onto them)")
        return names
    if role == "colour":
        specs = p if p is not None else values
        out = []
        for label, spec in zip(values, specs):
            try:
                out.append(_colour_rgb(str(spec)))
            except ValueError:
                raise ValueError(f"{where}: value {label!r} has no colour: {spec!r} is not a colour name "
                                 "or '#rrggbb'") from None
        if len(set(out)) != n:
            raise ValueError(f"{where}: two values have the same colour")
        return tuple(out)
    if role == "size":
        radii = _numbers(where, p) if p is not None else tuple(np.linspace(0.09, 0.2, n).tolist()) \
            if n > 1 else (0.14,)
        if any(not (0.02 <= r <= 0.3) for r in radii) or len(set(radii)) != n:
            raise ValueError(f"{where}: radii must be distinct fractions of the image side in [0.02, 0.3], "
                             f"got {list(radii)}")
        return radii
    if role == "rotation":
        turns = _numbers(where, p) if p is not None else tuple((np.arange(n) / n).tolist())
        if any(not (0.0 <= t < 1.0) for t in turns) or len(set(turns)) != n:
            raise ValueError(f"{where}: turns must be distinct fractions of the shape's symmetry period in "
                             f"[0, 1), got {list(turns)}")
        return turns
    # x / y
    pos = _numbers(where, p) if p is not None else tuple(np.linspace(0.0, 1.0, n).tolist()) \
        if n > 1 else (0.5,)
    if any(not (0.0 <= v <= 1.0) for v in pos) or len(set(pos)) != n:
        raise ValueError(f"{where}: positions must be distinct numbers in [0, 1], got {list(pos)}")
    return pos
