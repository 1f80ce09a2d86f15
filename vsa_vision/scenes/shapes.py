"""What the renderer can draw: the unit outline of every shape, and the fill styles.

This table is the one list of shapes: the schema's known shape names (``SHAPES``) are its keys, so
a new shape is added here, once, and both the schema and the renderer know it.
"""

from __future__ import annotations

import math


def _regular(n: int, start_deg: float, radius: float = 1.0) -> list[tuple[float, float]]:
    return [(radius * math.cos(math.radians(start_deg + 360 * i / n)),
             radius * math.sin(math.radians(start_deg + 360 * i / n))) for i in range(n)]


def _star(points: int = 5, inner: float = 0.42) -> list[tuple[float, float]]:
    out = []
    for i in range(2 * points):
        r = 1.0 if i % 2 == 0 else inner
        a = math.radians(-90 + 180 * i / points)
        out.append((r * math.cos(a), r * math.sin(a)))
    return out


def _plus(arm: float = 0.3, extent: float = 0.95, rotate_deg: float = 0.0) -> list[tuple[float, float]]:
    a, e = arm, extent
    pts = [(-a, -e), (a, -e), (a, -a), (e, -a), (e, a), (a, a), (a, e), (-a, e), (-a, a), (-e, a), (-e, -a), (-a, -a)]
    c, s = math.cos(math.radians(rotate_deg)), math.sin(math.radians(rotate_deg))
    return [(x * c - y * s, x * s + y * c) for x, y in pts]


# Unit outlines (centre 0, every point within distance 1, image y pointing down). None: a circle.
SHAPE_POLYGONS: dict[str, list[tuple[float, float]] | None] = {
    "circle": None,
    "square": [(-0.7, -0.7), (0.7, -0.7), (0.7, 0.7), (-0.7, 0.7)],
    "triangle": _regular(3, -90),
    "triangle_down": _regular(3, 90),
    "diamond": [(0.0, -1.0), (0.62, 0.0), (0.0, 1.0), (-0.62, 0.0)],
    "pentagon": _regular(5, -90),
    "hexagon": _regular(6, 0),
    "star": _star(),
    "plus": _plus(),
    "cross": _plus(extent=1.0 / math.sqrt(1 + 0.3 ** 2) * 0.999, rotate_deg=45),
}

SHAPES: tuple[str, ...] = tuple(SHAPE_POLYGONS)
#: each shape's rotational symmetry: it looks the same turned by 360 / n degrees (0: every angle, a circle)
SHAPE_SYMMETRY: dict[str, int] = {"circle": 0, "square": 4, "triangle": 3, "triangle_down": 3, "diamond": 2,
                                  "pentagon": 5, "hexagon": 6, "star": 5, "plus": 4, "cross": 4}
#: shapes that are turns of one another (a downward triangle is a triangle turned by 60 degrees, a cross a
#: plus turned by 45): with a rotation attribute two labels would name one picture, so a schema may hold
#: only one of each pair
ROTATION_TWINS: tuple[frozenset[str], ...] = (frozenset({"triangle", "triangle_down"}), frozenset({"plus", "cross"}))
FILLS: tuple[str, ...] = ("solid", "outline")
