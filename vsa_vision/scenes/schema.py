"""The attribute schema of a scene: named attributes, each an ordered list of values, as plain data.

A schema is a JSON file (see ``schemas/default.json``), the dataclasses below, or the columns of a
labels file (:meth:`Schema.from_labels`). It holds any number of attributes with any names and any
value labels: an attribute is data first. Two optional properties say more about one:

- ``role`` tells the built-in renderer what the attribute controls: ``shape``, ``colour``, ``size``,
  ``x``, ``y``, ``fill`` or ``rotation``, or ``"none"`` (data only); a role may be used once. Without ``role``, an
  attribute named after a role takes it when the renderer can draw its values, else none. A schema
  whose every attribute has a role can be drawn by the built-in renderer (:attr:`Schema.renderable`);
  a role no attribute takes is drawn at a fixed default (a white, solid, medium circle in the
  centre). An attribute without a role is drawn by nothing built in: the user's images carry it.
  ``params`` optionally gives each value's rendering parameter: a colour spec (``"#ff0000"``,
  ``"red"``), a radius as a fraction of the image side, a position in [0, 1], a turn as a fraction
  of the shape's symmetry period in [0, 1) (a square turned by 0.5 is turned by 45 degrees, a
  triangle by 60: every label a distinct picture), or a shape / fill name; without them the value
  names are used (shapes, fills, colours) or the values are spread evenly (sizes, positions, turns).
  Without a role, ``params`` are kept as they are and not read.
- ``ordinal`` says the values are ordered steps of one quantity (positions, sizes, angles, hue
  buckets): reports then give the off-by-one rate and the mean absolute error in steps beside exact
  accuracy. Default: true for the roles ``size``, ``x`` and ``y``, false otherwise. A ``rotation`` role
  is taken only when given.

``spacing`` (scenes of several objects) is the least distance, in cells of the x / y grid (the larger
of the two axes' distances), between the objects of a sampled scene: 1 (the default) keeps them in
distinct cells; a grid finer than the objects lets them overlap partly, drawn in slot order (``y``,
then ``x``), so a later object hides part of an earlier one.

``holdout`` lists combinations of attribute values (usually pairs, e.g. every red star) that the
train, val and test splits never contain and the ``heldout`` split contains only: a test of
compositional generalisation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..checks import check_int
from .role_params import role_params
from .sampling import SPLITS, sample_indices, sample_scenes
from .shapes import ROTATION_TWINS

__all__ = ["ROLES", "SPLITS", "Attribute", "Schema", "load_schema", "default_schema", "sample_indices",
           "sample_scenes"]

ROLES = ("shape", "colour", "size", "x", "y", "fill", "rotation")
#: the roles an attribute takes from its name alone (a rotation only when given: a user's "rotation"
#: column of degrees means turns of the picture, not fractions of each shape's symmetry)
INFERRED_ROLES = ROLES[:6]
NO_ROLE = "none"  # an attribute's role when it is data only, whatever its name
LABEL_FILE_COLUMNS = ("file_name", "split")  # the columns of a labels file that are not attributes
_ROLE_ALIASES = {"color": "colour"}
_SCHEMA_DIR = os.path.join(os.path.dirname(__file__), "schemas")


ORDINAL_ROLES = ("size", "x", "y")


def _duplicates(items: Sequence[Any]) -> list[Any]:
    """The items that occur more than once, sorted (linear in the number of items)."""
    from collections import Counter

    return sorted(v for v, c in Counter(items).items() if c > 1)


@dataclass(frozen=True)
class Attribute:
    """One attribute: a name, its ordered value labels, the role it plays in rendering (optional),
    optional params, and whether its values are ordered steps (``ordinal``)."""

    name: str
    values: tuple[str, ...]
    role: str | None = None
    params: tuple[Any, ...] | None = None
    ordinal: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"attribute name: expected a non-empty string, got {self.name!r}")
        if isinstance(self.values, (str, bytes)) or not isinstance(self.values, Sequence):
            raise ValueError(f"attribute {self.name!r}: values must be a list of labels, got {self.values!r}")
        values = tuple(str(v) for v in self.values)
        if not values:
            raise ValueError(f"attribute {self.name!r}: the value list is empty")
        dup = _duplicates(values)
        if dup:
            raise ValueError(f"attribute {self.name!r}: duplicate values {dup[:10]}")
        object.__setattr__(self, "values", values)
        infer = self.role is None
        if infer:  # named after a role: takes it where its values fit it; any other name: no role (data only)
            role = _ROLE_ALIASES.get(self.name, self.name)
            role = role if role in INFERRED_ROLES else None
        elif self.role == NO_ROLE:
            role = None
        else:
            if not isinstance(self.role, str):
                raise ValueError(f"attribute {self.name!r}: role must be a string or null, got {self.role!r}")
            role = _ROLE_ALIASES.get(self.role, self.role)
            if role not in ROLES:
                raise ValueError(f"attribute {self.name!r}: unknown role {role!r}; roles are {list(ROLES)} "
                                 "(or leave 'role' out: an attribute without a role is data the renderer does not "
                                 "draw)")
        object.__setattr__(self, "role", role)
        if infer and role is not None:
            try:
                self.render_params()
            except (ValueError, TypeError):  # values the renderer cannot draw under that role: data only
                object.__setattr__(self, "role", None)
        if self.ordinal is not None and not isinstance(self.ordinal, bool):
            raise ValueError(f"attribute {self.name!r}: ordinal must be true or false, got {self.ordinal!r}")
        if self.params is not None:
            if isinstance(self.params, (str, bytes)) or not isinstance(self.params, Sequence):
                raise ValueError(f"attribute {self.name!r}: params must be a list, got {self.params!r}")
            if len(self.params) != len(values):
                raise ValueError(f"attribute {self.name!r}: {len(self.params)} params for {len(values)} values")
            object.__setattr__(self, "params", tuple(self.params))
        self.render_params()  # validates

    def __len__(self) -> int:
        return len(self.values)

    @property
    def is_ordinal(self) -> bool:
        """Whether the values are ordered steps: ``ordinal`` when given, else whether the role is a
        size or a position."""
        return self.ordinal if self.ordinal is not None else self.role in ORDINAL_ROLES

    def render_params(self) -> tuple[Any, ...]:
        """The rendering parameter of every value (validated): rgb tuples, radii, positions, turns or
        names; for an attribute without a role, its params (or value labels) as they are
        (:func:`~vsa_vision.scenes.role_params.role_params`)."""
        return role_params(self.name, self.role, self.values, self.params)

    def index(self, value: Any) -> int:
        try:
            return self.values.index(str(value))
        except ValueError:
            raise ValueError(f"attribute {self.name!r}: unknown value {value!r}; valid values: "
                             f"{list(self.values)}") from None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name}
        if self.role is not None:
            d["role"] = self.role
        elif _ROLE_ALIASES.get(self.name, self.name) in ROLES:
            d["role"] = NO_ROLE  # named after a role but not drawn by it: stays so when read back
        d["values"] = list(self.values)
        if self.params is not None:
            d["params"] = list(self.params)
        if self.ordinal is not None and self.ordinal != (self.role in ORDINAL_ROLES):
            d["ordinal"] = self.ordinal  # written only where it differs from the role's default
        return d


@dataclass(frozen=True)
class Schema:
    """An ordered set of attributes, the rendered image size and the held-out combinations.

    ``max_objects``: how many objects one scene may hold (1, the only kind the renderer draws today;
    written to a schema file only when it is not 1)."""

    attributes: tuple[Attribute, ...]
    name: str = "custom"
    image_size: int = 64
    holdout: tuple[Mapping[str, str], ...] = field(default=())
    max_objects: int = 1
    spacing: int = 1

    def __post_init__(self) -> None:
        attrs = tuple(a if isinstance(a, Attribute) else Attribute(**a) for a in self.attributes)
        if not attrs:
            raise ValueError("schema: no attributes")
        dup = _duplicates([a.name for a in attrs])
        if dup:
            raise ValueError(f"schema: duplicate attribute names {dup}")
        dup = _duplicates([a.role for a in attrs if a.role is not None])
        if dup:
            raise ValueError(f"schema: role(s) {dup} used by more than one attribute")
        object.__setattr__(self, "attributes", attrs)
        object.__setattr__(self, "image_size", check_int("schema: image_size", self.image_size, 16, 1024))
        object.__setattr__(self, "max_objects", check_int("schema: max_objects", self.max_objects, 1))
        object.__setattr__(self, "spacing", check_int("schema: spacing", self.spacing, 1))
        self._check_rotation(attrs)
        hold = []
        for i, combo in enumerate(self.holdout):
            if not isinstance(combo, Mapping) or not combo:
                raise ValueError(f"schema: holdout[{i}] must be a non-empty mapping attribute -> value, got {combo!r}")
            for k, v in combo.items():
                self.attribute(k).index(v)
            hold.append(dict((str(k), str(v)) for k, v in combo.items()))
        object.__setattr__(self, "holdout", tuple(hold))
        from .objects import check_object_room

        check_object_room(self)  # the objects of a scene must fit distinct places, or sampling never ends

    @staticmethod
    def _check_rotation(attrs: tuple[Attribute, ...]) -> None:
        """With a rotation attribute, every label must name one picture: no circle (it looks the same at
        every turn) and no two shapes that are turns of one another."""
        roles = {a.role: a for a in attrs}
        if "rotation" not in roles or "shape" not in roles or len(roles["rotation"]) < 2:
            return
        shapes = set(roles["shape"].render_params())
        if "circle" in shapes:
            raise ValueError(f"schema: attribute {roles['rotation'].name!r} turns the shapes, but a circle looks the "
                             "same at every turn (its labels would not be unique): drop the circle")
        for twins in ROTATION_TWINS:
            if twins <= shapes:
                raise ValueError(f"schema: attribute {roles['rotation'].name!r} turns the shapes, but "
                                 f"{' and '.join(sorted(twins))} are turns of one another (their labels would not be "
                                 "unique): keep one")

    # -- access --------------------------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(len(a) for a in self.attributes)

    @property
    def renderable(self) -> bool:
        """Whether the built-in renderer can draw this schema's scenes: every attribute has a role."""
        return all(a.role is not None for a in self.attributes)

    def check_renderable(self, what: str = "the built-in renderer") -> None:
        """Raise ``ValueError`` naming the attributes without a role unless :attr:`renderable`."""
        bare = [a.name for a in self.attributes if a.role is None]
        if bare:
            raise ValueError(f"schema {self.name!r}: {what} draws only attributes with a role "
                             f"({', '.join(ROLES)}); {bare} have none: these are the user's own attributes, "
                             "drawn by the user's images (or a learned decoder, or a renderer passed to Pipeline)")

    @property
    def ordinal(self) -> tuple[bool, ...]:
        """Per attribute, whether its values are ordered steps (:attr:`Attribute.is_ordinal`)."""
        return tuple(a.is_ordinal for a in self.attributes)

    @property
    def num_combinations(self) -> int:
        return int(np.prod(self.sizes, dtype=object))

    def factors(self) -> dict[str, tuple[str, ...]]:
        """``{attribute name: value labels}``, the form :meth:`vsa_vision.Codebooks.random` takes."""
        return {a.name: a.values for a in self.attributes}

    def attribute(self, name: str) -> Attribute:
        for a in self.attributes:
            if a.name == name:
                return a
        raise ValueError(f"schema {self.name!r}: unknown attribute {name!r}; attributes: {list(self.names)}")

    def by_role(self, role: str) -> int | None:
        for k, a in enumerate(self.attributes):
            if a.role == role:
                return k
        return None

    # -- scenes <-> indices ------------------------------------------------------------------

    def encode(self, scenes: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Value indices ``[N, K]`` (int64) of scenes given as ``{attribute: value label}``."""
        single = isinstance(scenes, Mapping)
        rows = [scenes] if single else list(scenes)
        out = np.empty((len(rows), len(self.attributes)), dtype=np.int64)
        for i, scene in enumerate(rows):
            if not isinstance(scene, Mapping):
                raise TypeError(f"scene {i}: expected a mapping attribute -> value, got {type(scene).__name__}")
            unknown = sorted(set(scene) - set(self.names), key=repr)
            if unknown:
                raise ValueError(f"scene {i}: unknown attribute(s) {unknown}; attributes: {list(self.names)}")
            missing = [n for n in self.names if n not in scene]
            if missing:
                raise ValueError(f"scene {i}: missing attribute(s) {missing}")
            for k, a in enumerate(self.attributes):
                out[i, k] = a.index(scene[a.name])
        return out

    def decode(self, indices: Any) -> list[dict[str, str]]:
        """Scenes ``{attribute: value label}`` from value indices ``[N, K]``."""
        idx = self.check_indices(indices)
        return [{a.name: a.values[int(v)] for a, v in zip(self.attributes, row)} for row in idx]

    def check_indices(self, indices: Any) -> np.ndarray:
        idx = np.asarray(indices)
        if idx.ndim == 1:
            idx = idx[None]
        if idx.ndim != 2 or idx.shape[1] != len(self.attributes) or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"indices: expected integers of shape [N, {len(self.attributes)}], "
                             f"got {idx.dtype} {tuple(idx.shape)}")
        bad = (idx < 0) | (idx >= np.asarray(self.sizes))
        if bad.any():
            i, k = map(int, np.argwhere(bad)[0])
            raise ValueError(f"indices[{i}, {k}] = {int(idx[i, k])} is out of range for attribute "
                             f"{self.names[k]!r} of {self.sizes[k]} values")
        return idx.astype(np.int64, copy=False)

    def check_object_sets(self, indices: Any) -> np.ndarray:
        """Validate object sets ``[N, M, K]`` (M <= ``max_objects``; an absent object is a row of -1,
        after the present ones); returns them as int64."""
        idx = np.asarray(indices)
        if idx.ndim != 3 or idx.shape[2] != len(self.attributes) or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"indices: expected integers of shape [N, M, {len(self.attributes)}], "
                             f"got {idx.dtype} {tuple(idx.shape)}")
        if idx.shape[1] > self.max_objects:
            raise ValueError(f"indices: {idx.shape[1]} objects a scene, schema {self.name!r} holds at most "
                             f"{self.max_objects}")
        absent = (idx == -1).all(-1)
        if bool(((idx == -1).any(-1) & ~absent).any()):
            raise ValueError("indices: an object is either all -1 (absent) or a valid row")
        if bool((absent[:, :-1] & ~absent[:, 1:]).any()):
            raise ValueError("indices: absent objects (-1 rows) must come after the present ones")
        self.check_indices(idx[~absent])
        return idx.astype(np.int64, copy=False)

    def held_out_masks(self, indices: Any) -> dict[str, np.ndarray]:
        """Per held-out combination, in the order of ``holdout``, the boolean mask ``[N]`` of the rows
        that match it, keyed ``"shape=star,colour=red"``."""
        idx = self.check_indices(indices)
        out = {}
        for combo in self.holdout:
            mask = np.ones(len(idx), dtype=bool)
            for name, value in combo.items():
                k = self.names.index(name)
                mask &= idx[:, k] == self.attributes[k].index(value)
            out[",".join(f"{k}={v}" for k, v in combo.items())] = mask
        return out

    def is_held_out(self, indices: Any) -> np.ndarray:
        """Boolean mask ``[N]``: which rows match any held-out combination."""
        idx = self.check_indices(indices)
        mask = np.zeros(len(idx), dtype=bool)
        for m in self.held_out_masks(idx).values():
            mask |= m
        return mask

    # -- files ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "image_size": self.image_size, "attributes": [a.to_dict() for a in self.attributes],
             "holdout": [dict(c) for c in self.holdout]}
        if self.max_objects != 1:
            d["max_objects"] = self.max_objects
        if self.spacing != 1:
            d["spacing"] = self.spacing
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Schema:
        if not isinstance(d, Mapping):
            raise ValueError(f"schema: expected a JSON object, got {type(d).__name__}")
        unknown = sorted(set(d) - {"name", "image_size", "attributes", "holdout", "max_objects", "spacing"})
        if unknown:
            raise ValueError(f"schema: unknown key(s) {unknown}; keys are name, image_size, attributes, holdout, "
                             "max_objects, spacing")
        if "attributes" not in d:
            raise ValueError("schema: missing 'attributes'")
        attrs = []
        for i, a in enumerate(d["attributes"]):
            if not isinstance(a, Mapping):
                raise ValueError(f"schema: attributes[{i}] must be an object, got {a!r}")
            extra = sorted(set(a) - {"name", "values", "role", "params", "ordinal"})
            if extra or "name" not in a or "values" not in a:
                raise ValueError(f"schema: attributes[{i}] needs 'name' and 'values' (optional 'role', "
                                 f"'params', 'ordinal'); got keys {sorted(a)}")
            attrs.append(Attribute(name=a["name"], values=a["values"], role=a.get("role"), params=a.get("params"),
                                   ordinal=a.get("ordinal")))
        return cls(attributes=tuple(attrs), name=str(d.get("name", "custom")),
                   image_size=d.get("image_size", 64), holdout=tuple(d.get("holdout", ())),
                   max_objects=d.get("max_objects", 1), spacing=d.get("spacing", 1))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_labels(cls, source: str | os.PathLike | Sequence[Mapping[str, Any]], name: str = "own",
                    image_size: int = 64, ordinal: Sequence[str] | None = None, nominal: Sequence[str] = (),
                    ignore: Sequence[str] = LABEL_FILE_COLUMNS, holdout: Sequence[Mapping[str, str]] = ()) -> Schema:
        """A schema whose attributes are the columns of a labels file (``metadata.csv`` or
        ``metadata.jsonl``, or rows as dicts), every column but ``ignore`` (the file name and split).

        Each attribute's values are the distinct labels of its column, in natural order (numbers by
        value; ``h2`` before ``h10``). An attribute is ordinal when named in ``ordinal``, else (when
        ``ordinal`` is None) when every value is a number or every value is one prefix followed by a
        number (``x0 .. x7``, ``a0 .. a45``), unless named in ``nominal``. A column with one value is
        refused (it says nothing about an image; drop it with ``ignore``)."""
        from .labels_file import read_label_rows

        rows = read_label_rows(source) if isinstance(source, (str, os.PathLike)) else list(source)
        where = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "rows"
        if not rows:
            raise ValueError(f"{where}: no rows")
        columns = [c for c in rows[0] if c not in set(ignore)]
        if not columns:
            raise ValueError(f"{where}: no attribute columns (only {sorted(rows[0])})")
        for c in [*(ordinal or ()), *nominal]:
            if c not in columns:
                raise ValueError(f"{where}: ordinal / nominal names {c!r}, which is not an attribute column; "
                                 f"columns: {columns}")
        attrs = []
        for c in columns:
            values = natural_sorted({str(r[c]) for r in rows})
            if len(values) < 2:
                raise ValueError(f"{where}: column {c!r} holds one value ({values[0]!r}) in every row: it tells "
                                 "nothing apart; drop it (ignore=[...], --ignore)")
            is_ord = (c in ordinal) if ordinal is not None else (c not in nominal and looks_ordinal(values))
            attrs.append(Attribute(name=c, values=values, role=NO_ROLE, ordinal=is_ord))
        return cls(attributes=tuple(attrs), name=name, image_size=image_size, holdout=tuple(holdout))



def _natural_key(v: str) -> tuple:
    try:
        return (0, float(v), "")
    except ValueError:
        import re

        parts = re.split(r"(\d+(?:\.\d+)?)", v)
        return (1, 0.0, tuple((0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts)))


def natural_sorted(values: Any) -> list[str]:
    """Labels in natural order: numbers by value first, then text with its digit runs read as numbers."""
    return sorted((str(v) for v in values), key=_natural_key)


def looks_ordinal(values: Sequence[str]) -> bool:
    """Whether labels read as ordered steps: every one a number, or every one the same prefix
    followed by a number (``x0 .. x7``, ``a15``)."""
    import re

    try:
        [float(v) for v in values]
        return True
    except ValueError:
        pass
    m = [re.fullmatch(r"(.*?)(-?\d+(?:\.\d+)?)", v) for v in values]
    return all(m) and len({x.group(1) for x in m}) == 1


def load_schema(spec: str | os.PathLike | Mapping[str, Any] | Schema = "default") -> Schema:
    """A schema from a built-in name (``"default"``), a JSON file path, a dict, or a :class:`Schema`."""
    if isinstance(spec, Schema):
        return spec
    if isinstance(spec, Mapping):
        return Schema.from_dict(spec)
    spec = os.fspath(spec)
    builtin = os.path.join(_SCHEMA_DIR, f"{spec}.json")
    path = builtin if os.path.sep not in spec and not spec.endswith(".json") else spec
    if not os.path.isfile(path):
        names = sorted(f[:-5] for f in os.listdir(_SCHEMA_DIR) if f.endswith(".json"))
        raise FileNotFoundError(f"schema {spec!r}: no such file, and not a built-in schema ({names})")
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"schema file {path}: not valid JSON ({e})") from None
    return Schema.from_dict(d)


def default_schema() -> Schema:
    """The default schema: 10 shapes x 10 colours x 4 sizes x 12 x x 12 y x 2 fills (115,200 scenes)."""
    return load_schema("default")
