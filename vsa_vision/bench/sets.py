"""Scenes of several objects on exact or noisy vectors: every method on the same scene vectors.

A scene vector is the sum of its objects' bound vectors (objects at distinct places); each row is
one method (a spec, optionally with a strategy ``"peel"`` or ``"joint"``) at one number of objects:
the fraction of scenes whose set of objects is exactly right (``acc_all``, with its 95% interval),
the fraction with the right count, and the time a scene.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import torch

from ..decompose import decompose_set
from ..decompose.registry import capabilities, parse_method
from .accuracy import plot_sweep
from .problems import make_set_problems
from .stats import wilson_interval

__all__ = ["FIELDS", "VISION_SHAPE", "set_benchmark", "sets_table", "plot_sets"]

FIELDS = ["method", "strategy", "objects", "count_known", "scenes", "sizes", "D", "iterations", "snr_db", "cosine",
          "acc_all", "acc_all_lo", "acc_all_hi", "acc_count", "ms_per_scene", "seed"]

#: the default schema's per-object factors (shape, colour, size, x, y, fill)
VISION_SHAPE = (10, 10, 4, 12, 12, 2)


def _split(spec: str) -> tuple[str, str]:
    """``"diffusion@joint"`` -> (``"diffusion"``, ``"joint"``); plain specs peel."""
    method, _, strategy = spec.partition("@")
    return method, strategy or "peel"


def unit_noisy(s: torch.Tensor, cosine: float, seed: int) -> torch.Tensor:
    """Each scene vector scaled to unit norm and mixed with unit noise orthogonal to it, so that its
    cosine to the exact bundle is ``cosine`` (an encoder's output: unknown scale, not exact)."""
    g = torch.Generator().manual_seed(int(seed))
    u = s / s.norm(dim=1, keepdim=True).clamp_min(1e-30)
    z = torch.randn(s.shape, generator=g, dtype=s.dtype).to(s.device)
    z = z - (z * u).sum(1, keepdim=True) * u
    return cosine * u + math.sqrt(max(0.0, 1 - cosine ** 2)) * z / z.norm(dim=1, keepdim=True).clamp_min(1e-30)


def set_benchmark(methods: Sequence[str], objects: Sequence[int] = (1, 2, 3, 4), sizes: Sequence[int] = VISION_SHAPE,
                  dim: int = 1024, scenes: int = 200, iterations: int | None = 300, seed: int = 1,
                  count_known: bool = False, snr_db: float | None = None, distinct: Sequence[int] = (3, 4),
                  cosine: float | None = None, log=print) -> list[dict[str, Any]]:
    """Rows of set accuracy by number of objects; ``methods`` are specs, ``name@joint`` for the joint
    strategy. Scenes of m objects come from seed ``seed + m``; the methods share them.
    ``iterations=None``: each method's default budget (what a call without ``iterations=`` gets);
    ``cosine``: unit-norm scene vectors at that cosine to the exact bundle (:func:`unit_noisy`),
    decoded with ``scale="auto"``."""
    rows = []
    for m in objects:
        p = make_set_problems(list(sizes), dim, scenes, objects=m, seed=seed + m, distinct=distinct, snr_db=snr_db)
        s = p.s if cosine is None else unit_noisy(p.s, cosine, seed + 1000 + m)
        for spec in methods:
            method, strategy = _split(spec)
            opts: dict[str, Any] = {"strategy": strategy, "count": m if count_known else None}
            if cosine is not None:
                opts["scale"] = "auto"
            if capabilities(method).iterative:
                fixed = {"seed": 0} if iterations is None else {"iterations": iterations, "seed": 0}
                opts.update({k: v for k, v in fixed.items() if k not in parse_method(method)[1]})
            if strategy == "joint" and not count_known:
                opts["max_objects"] = max(objects)
            t0 = time.perf_counter()
            res = decompose_set(s, p.codebooks, method=method, **opts)
            if p.s.is_cuda:
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            acc, acc_count = res.accuracy(p.objects)
            lo, hi = wilson_interval(round(acc * len(p)), len(p))
            row = {"method": method, "strategy": strategy, "objects": m, "count_known": count_known, "scenes": len(p),
                   "sizes": "x".join(map(str, sizes)), "D": dim, "iterations": iterations or "default",
                   "snr_db": snr_db, "cosine": cosine,
                   "acc_all": acc, "acc_all_lo": lo, "acc_all_hi": hi, "acc_count": acc_count,
                   "ms_per_scene": 1e3 * dt / len(p), "seed": seed}
            rows.append(row)
            if log:
                log(f"  {m} objects  {spec:32s} set {100 * acc:6.2f}%  count {100 * acc_count:6.2f}%  "
                    f"{row['ms_per_scene']:.1f} ms/scene")
    return rows


def sets_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown: one row per method and strategy, one column per number of objects, 'set% (count%)'."""
    key = lambda r: f"{r['method']}" + ("" if r["strategy"] == "peel" else f" ({r['strategy']})")
    objects = list(dict.fromkeys(r["objects"] for r in rows))
    cell = {(key(r), r["objects"]): r for r in rows}
    lines = ["| method | " + " | ".join(f"{m} object{'s' if m != 1 else ''}" for m in objects) + " | ms / scene |",
             "| --- |" + " ---: |" * (len(objects) + 1)]
    for k in dict.fromkeys(key(r) for r in rows):
        cells = [f"{100 * cell[k, m]['acc_all']:.1f} ({100 * cell[k, m]['acc_count']:.1f})" for m in objects]
        ms = sum(cell[k, m]["ms_per_scene"] for m in objects) / len(objects)
        lines.append(f"| `{k}` | " + " | ".join(cells) + f" | {ms:.1f} |")
    return "\n".join(lines)


def plot_sets(rows: Sequence[dict[str, Any]], path: str, title: str) -> None:
    """Set accuracy (every object right) against the number of objects, one line per method."""
    named = [{**r, "method": r["method"] + ("" if r["strategy"] == "peel" else f" ({r['strategy']})")} for r in rows]
    plot_sweep(named, path, "objects", "objects in the scene", title, ylabel="scenes with every object right (%)")
