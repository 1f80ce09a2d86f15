"""Inputs that are no scene of a schema, for fitting and measuring abstention (``Recognition.known``).

:func:`foreign_images` draws ``uint8 [N, 3, S, S]`` images of these kinds (:data:`FOREIGN_KINDS`):

- ``blank``: one flat colour (black, white, grey or any colour);
- ``noise``: Gaussian or uniform pixel noise, grey or coloured, or smooth (low-frequency) noise;
- ``photo``: crops of photographs and terrain maps at random scales, flipped, darkened or lightened
  (the sample images that ship with matplotlib: nothing is downloaded);
- ``inverted``: a scene of the schema with every value inverted (``255 - v``);
- ``unknown_shape``: one object drawn in a palette colour in a shape the renderer does not know
  (an ellipse, a ring, a rounded bar, a random polygon, a letter, a crescent);
- ``unknown_colour``: an object of the schema drawn in a colour far from every colour of the palette;
- ``several``: for a schema of one object a scene, two or three of its objects at distinct places;
  for a schema of several objects, more objects than it holds;
- ``nested``: two objects of the schema at one place, a small one drawn over a large one (inside its
  outline where the schema has outlined shapes): no schema of objects at distinct places holds it.

Every draw comes from ``seed``: the same call gives the same pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..checks import check_int
from .objects import sample_object_sets
from .render import Renderer
from .sampling import sample_indices
from .schema import Schema, load_schema

__all__ = ["FOREIGN_KINDS", "UNRENDERED_KINDS", "default_kinds", "foreign_images", "photo_sources"]

FOREIGN_KINDS = ("blank", "noise", "photo", "inverted", "unknown_shape", "unknown_colour", "several", "nested")
#: the kinds that need no renderer, for a user's schema whose attributes the built-in renderer cannot draw
#: (``inverted`` then inverts the user's own images, passed as ``scenes``)
UNRENDERED_KINDS = ("blank", "noise", "photo", "inverted")


def default_kinds(schema: Schema) -> tuple[str, ...]:
    """Every kind for a schema the built-in renderer draws, else :data:`UNRENDERED_KINDS`."""
    return FOREIGN_KINDS if schema.renderable else UNRENDERED_KINDS


def photo_sources() -> list[np.ndarray]:
    """``uint8 [H, W, 3]`` photographs and terrain maps from matplotlib's sample data (shipped with it)."""
    from matplotlib import cbook
    from matplotlib.colors import LightSource

    out = []
    for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png"):
        with Image.open(cbook.get_sample_data(name, asfileobj=False)) as im:
            out.append(np.asarray(im.convert("RGB")))
    for name, key in (("jacksboro_fault_dem.npz", "elevation"), ("topobathy.npz", "topo")):
        with np.load(cbook.get_sample_data(name, asfileobj=False)) as data:
            z = np.asarray(data[key], dtype=np.float64)
        shaded = LightSource(azdeg=315, altdeg=45).shade(z, cmap=_terrain(), blend_mode="soft")
        out.append((shaded[..., :3] * 255).round().astype(np.uint8))
    return out


def _terrain():
    from matplotlib import colormaps

    return colormaps["gist_earth"]


def _photo(rng: np.random.Generator, sources: Sequence[np.ndarray], side: int) -> np.ndarray:
    src = sources[rng.integers(len(sources))]
    h, w = src.shape[:2]
    crop = int(rng.uniform(0.15, 1.0) * min(h, w))
    y, x = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
    im = Image.fromarray(src[y:y + crop, x:x + crop]).resize((side, side), Image.Resampling.BILINEAR)
    arr = np.asarray(im, dtype=np.float32)
    if rng.random() < 0.5:
        arr = arr[:, ::-1]
    arr = arr * rng.uniform(0.4, 1.3)
    return arr.clip(0, 255).round().astype(np.uint8)


def _blank(rng: np.random.Generator, side: int) -> np.ndarray:
    colour = rng.choice([np.zeros(3), np.full(3, 255.0), np.full(3, rng.uniform(0, 255)), rng.uniform(0, 255, 3)])
    return np.broadcast_to(np.asarray(colour).round().astype(np.uint8), (side, side, 3)).copy()


def _noise(rng: np.random.Generator, side: int) -> np.ndarray:
    style = rng.integers(4)
    channels = 1 if rng.random() < 0.5 else 3
    if style == 0:
        arr = rng.normal(rng.uniform(20, 200), rng.uniform(10, 90), (side, side, channels))
    elif style == 1:
        arr = rng.uniform(0, 255, (side, side, channels))
    elif style == 2:  # smooth blobs: coarse noise enlarged
        coarse = rng.uniform(0, 255, (int(rng.integers(3, 12)),) * 2 + (channels,)).astype(np.uint8)
        mode = "L" if channels == 1 else "RGB"
        im = Image.fromarray(coarse.squeeze(-1) if channels == 1 else coarse, mode)
        arr = np.asarray(im.resize((side, side), Image.Resampling.BICUBIC), dtype=np.float64).reshape(side, side, -1)
    else:  # sparse bright specks on black
        arr = (rng.random((side, side, channels)) < rng.uniform(0.01, 0.2)) * rng.uniform(100, 255)
    arr = np.broadcast_to(arr, (side, side, 3)) if arr.shape[-1] == 1 else arr
    return np.asarray(arr).clip(0, 255).round().astype(np.uint8)


def _palette(schema: Schema) -> np.ndarray:
    k = schema.by_role("colour")
    return np.array(schema.attributes[k].render_params(), dtype=np.float64) if k is not None else np.zeros((0, 3))


def _off_palette_colour(rng: np.random.Generator, palette: np.ndarray, distance: float = 90.0) -> tuple[int, ...]:
    for _ in range(1000):
        c = rng.uniform(0, 255, 3)
        if c.max() > 70 and (not len(palette) or np.linalg.norm(palette - c, axis=1).min() > distance):
            return tuple(int(v) for v in c.round())
    return (128, 128, 128)


def _unknown_shape(rng: np.random.Generator, schema: Schema, side: int, draw_scale: int = 4) -> np.ndarray:
    big = side * draw_scale
    im = Image.new("RGB", (big, big), (0, 0, 0))
    d = ImageDraw.Draw(im)
    pal = _palette(schema)
    colour = tuple(int(v) for v in pal[rng.integers(len(pal))]) if len(pal) else (245, 245, 245)
    r = rng.uniform(0.08, 0.22) * big
    cx, cy = rng.uniform(r + 2, big - r - 2, 2)
    kind = rng.integers(6)
    if kind == 0:  # ellipse, clearly not a circle
        ratio = rng.uniform(0.35, 0.6)
        d.ellipse([cx - r, cy - r * ratio, cx + r, cy + r * ratio], fill=colour)
    elif kind == 1:  # ring of its own width
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
        ri = r * rng.uniform(0.35, 0.6)
        d.ellipse([cx - ri, cy - ri, cx + ri, cy + ri], fill=(0, 0, 0))
    elif kind == 2:  # a long rounded bar
        w = r * rng.uniform(0.2, 0.4)
        d.rounded_rectangle([cx - r, cy - w, cx + r, cy + w], radius=w, fill=colour)
    elif kind == 3:  # a random polygon
        n = int(rng.integers(5, 9))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = r * rng.uniform(0.3, 1.0, n)
        d.polygon(list(zip(cx + rad * np.cos(ang), cy + rad * np.sin(ang))), fill=colour)
    elif kind == 4:  # a letter
        font = ImageFont.load_default(size=max(8, int(2.2 * r)))
        d.text((cx, cy), "ABEFGHKMRSWXZ"[rng.integers(13)], fill=colour, font=font, anchor="mm")
    else:  # a crescent
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
        off = r * rng.uniform(0.4, 0.7)
        d.ellipse([cx - r + off, cy - r, cx + r + off, cy + r], fill=(0, 0, 0))
    return np.asarray(im.resize((side, side), Image.Resampling.BOX))


def _object_rows(schema: Schema, n: int, seed: int) -> np.ndarray:
    """``[n, K]`` objects of the schema (one-object) or the first object of each scene (several)."""
    if schema.max_objects > 1:
        sets = sample_object_sets(schema, n, seed=seed, split="test")
        return sets[:, 0]
    return sample_indices(schema, n, seed=seed, split="test")


def _several(rng: np.random.Generator, renderer: Renderer, schema: Schema, seed: int) -> np.ndarray:
    """More objects than the schema holds: the pixelwise maximum of scenes at distinct places."""
    want = schema.max_objects + 1 if schema.max_objects > 1 else int(rng.integers(2, 4))
    out = None
    count = 0
    for j in range(20):
        rows = _object_rows(schema, 4, seed * 31 + j)
        for row in rows:
            img = (renderer.render_objects([row.tolist()]) if schema.max_objects > 1
                   else renderer.render_indices(row.tolist()))
            mask = img.max(-1) > 25
            if out is not None and (mask & (out.max(-1) > 25)).any():
                continue
            out = img if out is None else np.maximum(out, img)
            count += 1
            if count == want:
                return out
    return out


def _nested(rng: np.random.Generator, renderer: Renderer, schema: Schema, row: np.ndarray) -> np.ndarray:
    """``row``'s object at its largest size (outlined where the schema has an outlined fill), and over it
    at the same place an object of the smallest size in another colour and shape, solid."""
    outer, inner = row.copy(), row.copy()
    sizes, roles = schema.sizes, [a.role for a in schema.attributes]
    ks, kc, kf, kh = (schema.by_role(r) for r in ("size", "colour", "fill", "shape"))
    if ks is not None:
        order = np.argsort(schema.attributes[ks].render_params())
        outer[ks], inner[ks] = order[-1], order[0]
    if kf is not None:
        fills = list(schema.attributes[kf].render_params())  # the fill each value draws, whatever its label
        outer[kf] = fills.index("outline") if "outline" in fills else outer[kf]
        inner[kf] = fills.index("solid") if "solid" in fills else inner[kf]
    for k in (kc, kh):
        if k is not None and sizes[k] > 1:
            inner[k] = (outer[k] + 1 + rng.integers(sizes[k] - 1)) % sizes[k]
    for k, role in enumerate(roles):  # every other attribute the same: the same place
        if role not in ("size", "colour", "fill", "shape"):
            inner[k] = outer[k]
    return renderer.render_objects([outer.tolist(), inner.tolist()])


def foreign_images(schema: Schema | str, n: int, seed: int = 0, kinds: Sequence[str] | None = None,
                   size: int | None = None, scenes: torch.Tensor | None = None) -> tuple[torch.Tensor, list[str]]:
    """``(uint8 [n, 3, S, S], kind of each image)``: ``n`` inputs that are no scene of ``schema``,
    the kinds taken in turn from ``kinds`` (default: :func:`default_kinds`). ``scenes``
    (``uint8 [m, 3, S, S]``, the user's own images): ``inverted`` inverts them instead of renders."""
    schema = load_schema(schema)
    n, seed = check_int("n", n, 0), check_int("seed", seed, 0)
    kinds = list(default_kinds(schema) if kinds is None else kinds)
    for k in kinds:
        if k not in FOREIGN_KINDS:
            raise ValueError(f"kinds: unknown kind {k!r}; expected some of {list(FOREIGN_KINDS)}")
    if not kinds:
        raise ValueError("kinds: expected at least one kind")
    if scenes is not None and (scenes.dtype != torch.uint8 or scenes.ndim != 4 or not len(scenes)):
        raise ValueError(f"scenes: expected uint8 images [m, 3, S, S], got {scenes.dtype} {tuple(scenes.shape)}")
    drawn = [k for k in kinds if k not in UNRENDERED_KINDS or (k == "inverted" and scenes is None)]
    if drawn and not schema.renderable:
        schema.check_renderable(f"foreign inputs of kind(s) {sorted(set(drawn))} need the built-in renderer, which")
    renderer = Renderer(schema, size=size) if drawn else None
    side = renderer.size if renderer is not None else (schema.image_size if size is None else size)
    if scenes is not None and tuple(scenes.shape[-2:]) != (side, side):
        raise ValueError(f"scenes: {tuple(scenes.shape[-2:])} pixels, the foreign inputs are {side} x {side}")
    rng = np.random.default_rng([seed, 0xF0E1])
    sources = photo_sources() if "photo" in kinds else []
    objects = _object_rows(schema, n, seed)
    palette = _palette(schema)
    kc = schema.by_role("colour")
    images, names = [], []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        img = _unrendered(kind, rng, side, sources, scenes)
        if img is not None:
            pass
        elif kind == "inverted":
            rows = sample_object_sets(schema, 1, seed=seed + i, split="test")[0] if schema.max_objects > 1 else None
            img = 255 - (renderer.render_objects(rows.tolist()) if rows is not None
                         else renderer.render_indices(objects[i].tolist()))
        elif kind == "unknown_shape":
            img = _unknown_shape(rng, schema, side)
        elif kind == "unknown_colour":
            scene = schema.decode(objects[i][None])[0]
            img = _recoloured(renderer, schema, scene, _off_palette_colour(rng, palette), kc)
        elif kind == "nested":
            img = _nested(rng, renderer, schema, objects[i])
        else:
            img = _several(rng, renderer, schema, seed * 1000 + i)
        images.append(np.ascontiguousarray(img))
        names.append(kind)
    if not images:
        return torch.empty(0, 3, side, side, dtype=torch.uint8), []
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(), names


def _unrendered(kind: str, rng: np.random.Generator, side: int, sources: Sequence[np.ndarray],
                scenes: torch.Tensor | None) -> np.ndarray | None:
    """An image of a kind that needs no renderer (``inverted`` only with the user's ``scenes``), else None."""
    if kind == "blank":
        return _blank(rng, side)
    if kind == "noise":
        return _noise(rng, side)
    if kind == "photo":
        return _photo(rng, sources, side)
    if kind == "inverted" and scenes is not None:
        return 255 - scenes[int(rng.integers(len(scenes)))].permute(1, 2, 0).numpy()
    return None


def _recoloured(renderer: Renderer, schema: Schema, scene: dict, colour: tuple[int, ...], kc: int | None) -> np.ndarray:
    """The scene drawn with its object in ``colour`` (a colour the schema's palette lacks)."""
    if kc is None:
        return np.asarray(renderer.render(scene))
    img = np.asarray(renderer.render({**scene, schema.attributes[kc].name: schema.attributes[kc].values[0]}))
    # the object drawn in the first palette colour, then every drawn pixel scaled to the new colour
    ref = np.array(schema.attributes[kc].render_params()[0], dtype=np.float64)
    weight = (img.astype(np.float64) / np.maximum(ref, 1.0)).mean(-1, keepdims=True).clip(0, 1)
    return (weight * np.array(colour, dtype=np.float64)).round().astype(np.uint8)
