"""The diffusion decomposer's adaptive defaults: anchor settings, chosen per problem shape.

The options that set the temperature, sparsity and pace of the search (:data:`ADAPTIVE_OPTIONS`)
default to None; each call then chooses them from the problem's *load* (:func:`problem_load`,
``ln(prod_k n_k) - 2 ln D``: the search space against the squared dimension, since a resonator's
capacity grows about as ``D^2``) and its number of factors. Among the :class:`Anchor` settings
tuned for the nearest number of factors, every option is interpolated linearly in the load (the
guidance scale geometrically, the steps rounded; between two anchors whose named options
``estimate`` or ``activation`` differ, two regimes, the nearer anchor's settings hold whole); outside
them the nearest anchor's settings hold
(:func:`auto_settings`). An anchor may serve only problems of at least ``min_dim`` or below
``max_dim`` dimensions. The dense regime's reach grows little with D (about 5e6 combinations within
1000 iterations at D = 512 and 1024 alike), the capacity regime's (hard estimates, sparse positive
activation) much faster; so the capacity anchors serve D >= 1200, where they lead from loads near
1.4 (D = 1500). From D = 3000 the dense ``high`` anchor (tuned at D = 1000) stops: a ``dense_wide``
anchor (the low anchor's settings at the load of n = 320, D = 4096) and a ``wide`` anchor (the
capacity settings at n = 345) put the switch near n = 333 at D = 4096, between the measured n = 297
(dense ahead) and n = 400 (capacity regime ahead).

The anchors live in ``vsa_vision/defaults/diffusion.json`` (only what is used: name, load, number
of factors, options; an anchor may say ``"same_as": "<name>"`` where its search chose another
anchor's settings). How each was tuned is in ``docs/tuning/diffusion.json``. ``vsa-vision tune
diffusion --portfolio <anchor>`` writes an anchor to a file the user names; setting the environment
variable ``VSA_VISION_DIFFUSION_ANCHORS`` to that file makes every later decomposer use it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...checks import check_int
from ...io import atomic_write

__all__ = ["ADAPTIVE_OPTIONS", "CHOICE_OPTIONS", "Anchor", "PACKAGE_ANCHORS", "ANCHORS_ENV", "problem_load",
           "load_anchors", "anchors_in_force", "auto_settings", "auto_chains", "write_anchor", "FALLBACK_ANCHORS",
           "DEFAULT_CHAINS"]

#: the options chosen per problem when left unset (None)
ADAPTIVE_OPTIONS = ("guidance_scale", "steps", "lambda_min", "lambda_max", "eta", "restart", "threshold", "estimate",
                    "activation")
#: the adaptive options that take one of a few names: taken from the nearer anchor, not interpolated
CHOICE_OPTIONS = ("estimate", "activation")

#: the value of an adaptive option that an anchor does not set (written before the option existed)
MISSING = {"threshold": 0.0, "estimate": "mean", "activation": "magnitude"}

#: the chains per problem where the nearest anchor names none
DEFAULT_CHAINS = 2

#: the anchors file shipped with the package
PACKAGE_ANCHORS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                               "defaults", "diffusion.json")
#: an environment variable naming another anchors file (written by ``vsa-vision tune``)
ANCHORS_ENV = "VSA_VISION_DIFFUSION_ANCHORS"


@dataclass(frozen=True)
class Anchor:
    """Settings of the adaptive options tuned on problems of one ``load`` and number of ``factors``
    (None: serves every number of factors); ``min_dim`` / ``max_dim``: serves only problems of at
    least / below that dimension (None: no bound)."""

    name: str
    load: float
    options: Mapping[str, Any] = field(default_factory=dict)
    factors: int | None = None
    min_dim: int | None = None
    max_dim: int | None = None
    #: independent chains per problem the nearest anchor gives (None: :data:`DEFAULT_CHAINS`)
    chains: int | None = None

    def serves(self, dim: int) -> bool:
        """Whether the anchor serves problems of dimension ``dim``."""
        return (self.min_dim is None or dim >= self.min_dim) and (self.max_dim is None or dim < self.max_dim)

    def get(self, key: str) -> Any:
        """The anchor's value of an adaptive option (:data:`MISSING` where it predates the option)."""
        return self.options.get(key, MISSING.get(key))


#: used only when no anchors file can be read (the settings tuned at K = 3, n = 80)
FALLBACK_ANCHORS = (Anchor("fallback", -0.67, {"guidance_scale": 0.2198, "steps": 6, "lambda_min": -3.931,
                                               "lambda_max": -2.2092, "eta": 0.8928, "restart": 0.9553}),)


def problem_load(sizes: Sequence[int], dim: int) -> float:
    """``ln(prod_k n_k) - 2 ln D``: how hard a decomposition problem is for an iterative decoder
    (about -0.7 for K = 3, n = 80, D = 1000; 0 at n = 100)."""
    sizes = [int(n) for n in sizes]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"sizes: expected positive codebook sizes, got {sizes}")
    check_int("dim", dim, 1)
    return sum(math.log(n) for n in sizes) - 2.0 * math.log(dim)


def _parse(path: str, data: Any) -> list[Anchor]:
    records = data.get("anchors") if isinstance(data, Mapping) else None
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected an object with a list 'anchors'")
    by_name = {r.get("name"): r for r in records if isinstance(r, Mapping)}
    out = []
    for r in records:
        try:
            src = by_name[r["same_as"]] if "same_as" in r else r
            dims = {k: (None if r.get(k) is None else check_int(k, r[k], 1)) for k in ("min_dim", "max_dim", "chains")}
            out.append(Anchor(str(r["name"]), float(r["load"]), dict(src["options"]), r.get("factors"), **dims))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: anchor {r!r} is malformed ({type(e).__name__}: {e})") from None
    return out


_CACHE: dict[tuple[str, int], tuple[Anchor, ...]] = {}


def load_anchors(path: str) -> tuple[Anchor, ...]:
    """The anchors of a file (read once per version of the file: every decompose call asks)."""
    key = (path, os.stat(path).st_mtime_ns)
    if key not in _CACHE:
        with open(path) as f:
            _CACHE[key] = tuple(_parse(path, json.load(f)))
    return _CACHE[key]


def anchors_in_force() -> tuple[Anchor, ...]:
    """The anchors in force: the file named by ``$VSA_VISION_DIFFUSION_ANCHORS``, else the package's
    (else :data:`FALLBACK_ANCHORS`)."""
    path = os.environ.get(ANCHORS_ENV) or PACKAGE_ANCHORS
    if not os.path.isfile(path):
        if path != PACKAGE_ANCHORS:
            raise FileNotFoundError(f"${ANCHORS_ENV}: no anchors file at {path}")
        return FALLBACK_ANCHORS
    return load_anchors(path) or FALLBACK_ANCHORS


def _as_anchor(a: Anchor | Mapping[str, Any]) -> Anchor:
    if isinstance(a, Anchor):
        return a
    return Anchor(str(a.get("name", "")), float(a["load"]), dict(a["options"]), a.get("factors"), a.get("min_dim"),
                  a.get("max_dim"), a.get("chains"))


def _same_factor_count(anchors: Sequence[Anchor], K: int) -> list[Anchor]:
    """The anchors tuned on problems with the number of factors nearest to ``K`` (ties: the fewer
    factors); an anchor without ``factors`` serves every K."""
    counts = {a.factors for a in anchors if a.factors is not None}
    if not counts:
        return list(anchors)
    best = min(counts, key=lambda c: (abs(c - K), c))
    return [a for a in anchors if a.factors in (None, best)]


def auto_settings(sizes: Sequence[int], dim: int,
                  anchors: Sequence[Anchor | Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The adaptive options for a problem shape. Only the anchors whose number of factors is nearest
    to the problem's count serve (the load alone does not tell K = 6 codebooks of 2 to 12 values
    from K = 3 of 40: both sit near -2.5, and they want different settings); between two of them
    every option is interpolated linearly in the load (the guidance scale geometrically, the steps
    rounded); outside them the nearest anchor's settings are used. ``anchors`` are :class:`Anchor`
    records or mappings ``{"load", "factors", "options"}`` (default: :func:`anchors_in_force`)."""
    pool = [_as_anchor(a) for a in (anchors_in_force() if anchors is None else anchors)]
    if not pool:
        raise ValueError("anchors: expected at least one")
    load = problem_load(sizes, dim)
    pool = _serving(pool, sizes, dim)
    lo = max([a for a in pool if a.load <= load], key=lambda a: a.load, default=pool[0])
    hi = min([a for a in pool if a.load >= load], key=lambda a: a.load, default=pool[-1])
    span = hi.load - lo.load
    t = 0.0 if span <= 0 else min(1.0, max(0.0, (load - lo.load) / span))
    if any(lo.get(k) != hi.get(k) for k in CHOICE_OPTIONS):  # two regimes: the nearer one's settings, unmixed
        t = 0.0 if t < 0.5 else 1.0
    out: dict[str, Any] = {}
    for key in ADAPTIVE_OPTIONS:
        a, b = lo.get(key), hi.get(key)
        # an anchor's own value, exactly; the named options always land here (two regimes snap t
        # to 0 or 1 above, one regime has equal names)
        if t in (0.0, 1.0) or a == b:
            out[key] = a if t < 0.5 else b
        elif key == "guidance_scale":
            out[key] = math.exp((1 - t) * math.log(a) + t * math.log(b))
        elif key == "steps":
            out[key] = max(1, int(round((1 - t) * a + t * b)))
        else:
            out[key] = (1 - t) * a + t * b
    out["lambda_max"] = max(out["lambda_max"], out["lambda_min"])
    return out


def _serving(pool: Sequence[Anchor], sizes: Sequence[int], dim: int) -> list[Anchor]:
    """The anchors that serve a problem shape, by load: those of the nearest number of factors, then
    those whose dimension bounds admit ``dim`` (all of that number when none does)."""
    group = _same_factor_count(pool, len(list(sizes)))
    return sorted([a for a in group if a.serves(dim)] or group, key=lambda a: a.load)


def auto_chains(sizes: Sequence[int], dim: int, anchors: Sequence[Anchor | Mapping[str, Any]] | None = None) -> int:
    """The independent chains per problem for a problem shape: those of the serving anchor nearest in
    load (:func:`auto_settings`' pool), :data:`DEFAULT_CHAINS` where it names none. More chains at
    equal chain-iterations buy accuracy on the largest schemas (``docs/BENCHMARKS.md``, exhaustive
    search on large schemas: 10,12,6,64,64,2,12 at D = 4096, 74% with two chains, 99% with eight)."""
    pool = [_as_anchor(a) for a in (anchors_in_force() if anchors is None else anchors)]
    if not pool:
        return DEFAULT_CHAINS
    load = problem_load(sizes, dim)
    near = min(_serving(pool, sizes, dim), key=lambda a: (abs(a.load - load), a.load))
    return DEFAULT_CHAINS if near.chains is None else int(near.chains)


def _dims(a: Anchor) -> dict[str, int]:
    """The dimension bounds and chains of an anchor as its file record writes them (absent when unset)."""
    return {k: v for k, v in (("min_dim", a.min_dim), ("max_dim", a.max_dim), ("chains", a.chains)) if v is not None}


def write_anchor(path: str, anchor: Anchor) -> str:
    """Put ``anchor`` into the anchors file at ``path`` (replacing one of the same name, keeping the
    others; a new file starts from the anchors in force), atomically; returns the path."""
    if os.path.isfile(path):
        with open(path) as f:
            data = json.load(f)
        records = [r for r in data.get("anchors", []) if r.get("name") != anchor.name]
    else:
        data = {"method": "diffusion"}
        records = [{"name": a.name, "load": a.load, "factors": a.factors, "options": dict(a.options),
                    **_dims(a)}
                   for a in anchors_in_force() if a.name != anchor.name]
    for r in records:  # an anchor that shared the replaced one's settings keeps them
        if r.get("same_as") == anchor.name:
            r.pop("same_as")
            r["options"] = dict(next(a for a in load_anchors(path) if a.name == anchor.name).options)
    records.append({"name": anchor.name, "load": round(anchor.load, 4), "factors": anchor.factors,
                    "options": dict(anchor.options), **_dims(anchor)})
    data["anchors"] = sorted(records, key=lambda r: (r.get("factors") or 0, r["load"]))

    def write(f):
        json.dump(data, f, indent=2)
        f.write("\n")

    atomic_write(path, write)
    return path
