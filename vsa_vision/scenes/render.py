"""A deterministic Pillow renderer: one object per image on a black background, drawn at a multiple
of the output size and box-downsampled (anti-aliased).

Positions are laid out so that the largest object of the schema, plus the jitter allowance, stays
inside the frame at every position, and an ``x`` label means the same place at every size.
Optional nuisances that leave the labels unchanged: ``jitter`` (a uniform offset of the centre, in
output pixels), ``noise`` (Gaussian pixel noise, std in 0..255 units) and ``stroke`` given as a
range (the outline width of an outlined shape, a fraction of its radius, drawn uniformly per image).
They are drawn from a seed, so the same attributes and seed give the same pixels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ..checks import check_float, check_int
from .schema import Schema, load_schema
from .shapes import SHAPE_POLYGONS, SHAPE_SYMMETRY

_DEFAULTS = {"shape": "circle", "colour": (245, 245, 245), "size": 0.14, "x": 0.5, "y": 0.5, "fill": "solid",
             "rotation": 0.0}
STROKE = 0.16  # the standard outline width, a fraction of the object's radius


def stroke_range(stroke: Any) -> tuple[float, float]:
    """``stroke`` as a ``(low, high)`` range of outline widths (fractions of the radius, in (0, 1])."""
    lo_hi = (stroke, stroke) if isinstance(stroke, (int, float)) and not isinstance(stroke, bool) else stroke
    try:
        lo, hi = (float(v) for v in lo_hi)
        ok = 0 < lo <= hi <= 1 and not any(isinstance(v, bool) for v in lo_hi)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"stroke: expected an outline width in (0, 1] (a fraction of the radius) or a "
                         f"[low, high] range of them, got {stroke!r}")
    return lo, hi


class Renderer:
    """Renders scenes of one schema. ``supersample`` is the drawing multiple (anti-aliasing)."""

    def __init__(self, schema: Schema | str | Mapping[str, Any] = "default", size: int | None = None,
                 supersample: int = 4, jitter: float = 0.0, noise: float = 0.0,
                 stroke: float | Sequence[float] = STROKE) -> None:
        self.schema = load_schema(schema)
        self.schema.check_renderable()
        self.size = self.schema.image_size if size is None else check_int("size (image side in pixels)", size, 16, 1024)
        self.supersample = check_int("supersample", supersample, 1, 8)
        self.jitter = check_float("jitter", jitter, lo=0.0)
        self.noise = check_float("noise", noise, lo=0.0)
        self.stroke = stroke_range(stroke)
        self._params = [a.render_params() for a in self.schema.attributes]
        self._roles = [a.role for a in self.schema.attributes]
        k = self.schema.by_role("size")
        rmax = max(self._params[k]) if k is not None else _DEFAULTS["size"]
        self._margin = rmax * self.size + self.jitter + 1.5  # output pixels: the border row stays empty
        if 2 * self._margin >= self.size:
            raise ValueError(f"objects of radius {rmax} (+ jitter {self.jitter}) do not fit a {self.size}px image")

    def _resolve(self, row: Sequence[int]) -> dict[str, Any]:
        p = dict(_DEFAULTS)
        for role, params, v in zip(self._roles, self._params, row):
            p[role] = params[int(v)]
        return p

    def _place(self, v: Any) -> Any:
        """A position value in [0, 1] as output pixels (continuous coordinates): the margin keeps the
        largest object, jittered, inside the frame."""
        return self._margin + v * (self.size - 2 * self._margin)

    def centres(self, indices: Any) -> np.ndarray:
        """The centres in output pixels ``float64 [..., 2]`` (x, y) of objects ``[..., K]`` (value
        indices; negative ones, absent slots, read as the first value) as drawn without jitter; the
        image's centre on an axis the schema has no attribute for."""
        idx = np.asarray(indices)
        out = np.empty(idx.shape[:-1] + (2,), dtype=np.float64)
        for axis, role in enumerate(("x", "y")):
            if role in self._roles:
                k = self._roles.index(role)
                values = np.asarray(self._params[k], dtype=np.float64)
                out[..., axis] = self._place(values[np.clip(idx[..., k], 0, None)])
            else:
                out[..., axis] = self._place(_DEFAULTS[role])
        return out

    def render_indices(self, row: Sequence[int], seed: int | Sequence[int] | None = None) -> np.ndarray:
        """One image ``uint8 [H, W, 3]`` from a row of value indices (trusted: see :meth:`render`).

        ``seed`` (an int or a sequence of ints, as :func:`numpy.random.default_rng` takes) drives the
        nuisances; without nuisances it is unused."""
        return self.render_objects([row], seed=seed)

    def render_objects(self, rows: Sequence[Sequence[int]], seed: int | Sequence[int] | None = None) -> np.ndarray:
        """One image ``uint8 [H, W, 3]`` of several objects, each a row of value indices (rows with a
        negative index are absent slots and skipped), drawn in order on one canvas; the nuisances
        (per object: jitter, then outline width; per image: pixel noise) come from ``seed``."""
        ss, side = self.supersample, self.size
        varied_stroke = self.stroke[0] != self.stroke[1]
        rng = (np.random.default_rng(seed if seed is not None else 0)
               if (self.jitter or self.noise or varied_stroke) else None)
        canvas = Image.new("RGB", (side * ss, side * ss), (0, 0, 0))
        draw = ImageDraw.Draw(canvas)
        for row in rows:
            if min(int(v) for v in row) >= 0:
                self._draw(draw, self._resolve(row), rng)
        img = canvas.reduce(ss) if ss > 1 else canvas
        arr = np.array(img, dtype=np.uint8)
        if rng is not None and self.noise:
            noisy = arr.astype(np.float32) + rng.normal(0.0, self.noise, size=arr.shape).astype(np.float32)
            arr = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
        return arr

    def _draw(self, draw: ImageDraw.ImageDraw, p: dict[str, Any], rng: np.random.Generator | None) -> None:
        """One object of resolved parameters ``p`` onto the supersampled canvas."""
        ss, side = self.supersample, self.size
        cx, cy = self._place(p["x"]), self._place(p["y"])
        if rng is not None and self.jitter:
            dx, dy = rng.uniform(-self.jitter, self.jitter, size=2)
            cx, cy = cx + dx, cy + dy
        r = p["size"] * side
        # continuous image coordinates [0, side] -> Pillow's, whose integer points are pixel centres
        cxs, cys, rs = cx * ss - 0.5, cy * ss - 0.5, r * ss
        solid = p["fill"] == "solid"
        stroke = self.stroke[0]
        if rng is not None and self.stroke[0] != self.stroke[1] and not solid:
            stroke = rng.uniform(*self.stroke)
        width = max(1, round(stroke * rs)) if not solid else 0
        colour = p["colour"]
        poly = SHAPE_POLYGONS[p["shape"]]
        turn, sym = p["rotation"], SHAPE_SYMMETRY[p["shape"]]
        if poly is not None and turn and sym:  # a turn is a fraction of the shape's symmetry period
            c, s = math.cos(2 * math.pi * turn / sym), math.sin(2 * math.pi * turn / sym)
            poly = [(x * c - y * s, x * s + y * c) for x, y in poly]
        if poly is None:
            box = [cxs - rs, cys - rs, cxs + rs, cys + rs]
            draw.ellipse(box, fill=colour if solid else None, outline=None if solid else colour, width=width)
        else:
            pts = [(cxs + rs * x, cys + rs * y) for x, y in poly]
            draw.polygon(pts, fill=colour if solid else None, outline=None if solid else colour, width=width)

    def render(self, scene: Mapping[str, Any] | Sequence[Mapping[str, Any]], seed: int | None = None) -> Image.Image:
        """A PIL RGB image of ``scene``: one object ``{attribute: value label}`` (every attribute
        required), or, for a schema of several objects, a list of them (at distinct positions).

        A list is refused where the schema draws one object per image (``max_objects`` 1)."""
        check_scene_count(self.schema, scene)
        if isinstance(scene, Mapping):
            return Image.fromarray(self.render_indices(self.schema.encode(scene)[0], seed=seed), mode="RGB")
        rows = self.schema.encode(list(scene)) if len(scene) else np.zeros((0, len(self.schema.sizes)), np.int64)
        check_distinct_places(self.schema, rows)
        return Image.fromarray(self.render_objects(rows, seed=seed), mode="RGB")

    def render_batch(self, indices: Any, seeds: Sequence[Any] | None = None) -> np.ndarray:
        """Images ``uint8 [N, H, W, 3]`` of value indices ``[N, K]`` (one object each) or ``[N, M, K]``
        (up to M objects each, absent slots -1); ``seeds[i]`` drives image i's nuisances."""
        arr = np.asarray(indices)
        sets = arr.ndim == 3
        idx = self.schema.check_object_sets(arr) if sets else self.schema.check_indices(indices)
        if seeds is not None and len(seeds) != len(idx):
            raise ValueError(f"seeds: expected {len(idx)} seeds, got {len(seeds)}")
        out = np.empty((len(idx), self.size, self.size, 3), dtype=np.uint8)
        for i, row in enumerate(idx):
            seed = None if seeds is None else seeds[i]
            out[i] = self.render_objects(row, seed=seed) if sets else self.render_indices(row, seed=seed)
        return out


def check_scene_count(schema: Schema, scene: Any) -> None:
    """Refuse what is not one scene: a sequence of scenes when the schema draws one object per image,
    or more scenes than ``schema.max_objects``."""
    if isinstance(scene, Mapping):
        return
    if isinstance(scene, (str, bytes)) or not isinstance(scene, Sequence):
        raise TypeError(f"scene: expected a mapping attribute -> value, got {type(scene).__name__} {scene!r}")
    if schema.max_objects == 1:
        raise ValueError(f"scene: got a list of {len(scene)} scenes, but schema {schema.name!r} draws one object "
                         "per image (max_objects 1); render each scene (a mapping attribute -> value) on its own")
    if len(scene) > schema.max_objects:
        raise ValueError(f"scene: got {len(scene)} objects, schema {schema.name!r} holds at most "
                         f"{schema.max_objects} per image")


def check_distinct_places(schema: Schema, rows: np.ndarray) -> None:
    """Refuse two objects of one scene at the same position (they would be drawn over each other)."""
    where = [k for k in (schema.by_role("x"), schema.by_role("y")) if k is not None]
    if not where or len(rows) < 2:
        return
    places = [tuple(int(r[k]) for k in where) for r in rows if min(int(v) for v in r) >= 0]
    names = ", ".join(schema.names[k] for k in where)
    if len(set(places)) < len(places):
        raise ValueError(f"scene: two objects at the same position ({names}); objects of a scene never overlap")


def render_scene(schema: Schema | str, scene: Mapping[str, Any] | Sequence[Mapping[str, Any]], size: int | None = None,
                 seed: int | None = None,
                 jitter: float = 0.0, noise: float = 0.0, supersample: int = 4,
                 stroke: float | Sequence[float] = STROKE) -> Image.Image:
    """Render one scene as a PIL RGB image, default ``schema.image_size``: ``{attribute: value label}``,
    or a list of such objects for a schema of several objects (``schema.max_objects > 1``)."""
    return Renderer(schema, size=size, supersample=supersample, jitter=jitter, noise=noise,
                    stroke=stroke).render(scene, seed=seed)


def contact_sheet(images: np.ndarray | Sequence[Image.Image], columns: int = 10, pad: int = 2,
                  scale: int = 1) -> Image.Image:
    """Tile images (``uint8 [N, H, W, 3]`` or PIL images) into one grid image, grey padding between."""
    arrs = [np.asarray(im.convert("RGB")) if isinstance(im, Image.Image) else np.asarray(im) for im in images]
    if not arrs:
        raise ValueError("contact_sheet: no images")
    h, w = arrs[0].shape[:2]
    cols = max(1, min(columns, len(arrs)))
    rows = math.ceil(len(arrs) / cols)
    sheet = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 96, dtype=np.uint8)
    for i, a in enumerate(arrs):
        r, c = divmod(i, cols)
        sheet[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = a
    img = Image.fromarray(sheet, mode="RGB")
    return img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST) if scale > 1 else img
