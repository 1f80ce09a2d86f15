"""The crossover with exhaustive search: an iterative method against exhaustive search
(``brute_force``) on the same problems, per schema (a list of codebook sizes): accuracy and time per
problem side by side, their ratio, and the smallest search space from which the iterative method is
faster per problem (:func:`exhaustive_crossover`; ``vsa-vision bench capacity --crossover``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..checks import check_int, check_positive_sizes
from ..decompose import get_decomposer
from ..decompose.registry import build_method, capabilities
from .capacity import DEFAULT_ITERATIONS, chains_of, iteration_budget, problem_seed
from .problems import make_problems
from .speed import timed_decompose
from .stats import wilson_interval

__all__ = ["exhaustive_crossover", "crossover_point", "crossover_table", "CROSSOVER_FIELDS", "CROSSOVER_ACCURACY"]


CROSSOVER_FIELDS = [
    "schema", "factors", "search_space", "log10_space", "dim", "method", "iterations", "chains", "problems",
    "accuracy", "acc_lo", "acc_hi", "mean_iterations", "ms_per_problem", "exhaustive_problems",
    "exhaustive_accuracy", "accuracy_on_timed", "exhaustive_ms_per_problem", "speed_ratio", "faster",
    "crossover_space", "crossover_estimate", "device", "seed",
]


#: the accuracy (all factors right) the iterative method needs on a schema to count as faster there
CROSSOVER_ACCURACY = 0.99


def crossover_point(rows: Sequence[dict[str, Any]],
                    min_accuracy: float = CROSSOVER_ACCURACY) -> tuple[int | None, float | None]:
    """The smallest measured search space from which the iterative method is faster, and right on at
    least ``min_accuracy`` of the problems, at every larger one (None: at none); and where its speed
    ratio crosses 1, interpolated in log-log between that space and the next smaller one (None where
    there is no such pair). A schema on which it is less accurate counts as not faster: exhaustive
    search is always right. Rows without an ``accuracy`` count as accurate."""
    pts = sorted((r["search_space"], r["speed_ratio"] if r.get("accuracy", 1.0) >= min_accuracy else 0.0)
                 for r in rows)
    first = None
    for i in range(len(pts) - 1, -1, -1):
        if pts[i][1] <= 1:
            break
        first = i
    if first is None:
        return None, None
    if first == 0:
        return pts[0][0], None
    (x0, q0), (x1, q1) = pts[first - 1], pts[first]
    if q0 <= 0:  # the smaller space failed on accuracy: no speed ratio to interpolate from
        return pts[first][0], None
    t = -math.log(q0) / (math.log(q1) - math.log(q0)) if q1 != q0 else 0.0
    return pts[first][0], math.exp(math.log(x0) + t * (math.log(x1) - math.log(x0)))


def exhaustive_crossover(schemas: Sequence[Sequence[int]], dim: int = 4096, method: str = "diffusion",
                         iterations: int = DEFAULT_ITERATIONS, problems: int = 100, seed: int = 0,
                         device: str = "cpu", exhaustive_problems: int = 2, log=None,
                         max_elements: int | None = None) -> list[dict[str, Any]]:
    """For each schema (a list of codebook sizes), the iterative ``method`` on ``problems`` problems
    and exhaustive search (``brute_force``, no size limit) on the first ``exhaustive_problems`` of
    them, on the same problems: accuracy and time per problem side by side, ``speed_ratio`` =
    exhaustive time / iterative time per problem (> 1: the iterative method is faster), and over the
    schemas the crossover (:func:`crossover_point`). Both are warmed up on a tiny problem of the same
    K and D first. Exhaustive search is timed on a batch of ``exhaustive_problems``: it forms each
    chunk's products once for the batch, so its time per problem falls with a larger batch."""
    if isinstance(schemas, str) or not schemas:
        raise ValueError(f"schemas: expected a non-empty list of codebook size lists, got {schemas!r}")
    schemas = [list(check_positive_sizes(f"schemas[{i}]", s)) for i, s in enumerate(schemas)]
    check_int("dim", dim, 1)
    check_int("problems", problems, 1)
    check_int("seed", seed, 0)
    timed_count = min(check_int("exhaustive_problems", exhaustive_problems, 1), problems)
    if capabilities(method).exhaustive:
        raise ValueError(f"method: expected an iterative method to set against exhaustive search, got {method!r}")
    d = build_method(method, check_int("iterations", iterations, 1), seed)
    opts = {"max_combinations": None, **({} if max_elements is None else {"max_elements": max_elements})}
    brute = get_decomposer("brute_force", **opts)
    rows = []
    for sizes in schemas:
        warm = make_problems([2] * len(sizes), dim, 1, seed=seed, device=device)
        d.decompose(warm.s, warm.codebooks)
        brute.decompose(warm.s, warm.codebooks)
        p = make_problems(sizes, dim, problems, seed=problem_seed(seed, "crossover", dim, *sizes), device=device)
        res, t_it = timed_decompose(d, p.s, p.codebooks, device)
        ex, t_ex = timed_decompose(brute, p.s[:timed_count], p.codebooks, device)
        hit = (res.indices == p.indices).all(-1)
        hits = int(hit.sum())
        lo, hi = wilson_interval(hits, problems)
        ms_it, ms_ex = 1e3 * t_it / problems, 1e3 * t_ex / timed_count
        space = math.prod(sizes)
        rows.append({
            "schema": "x".join(map(str, sizes)), "factors": len(sizes), "search_space": space,
            "log10_space": round(math.log10(space), 3), "dim": dim, "method": method,
            "iterations": iteration_budget(d, p.codebooks), "chains": chains_of(method, d, p.codebooks),
            "problems": problems,
            "accuracy": hits / problems, "acc_lo": lo, "acc_hi": hi,
            "mean_iterations": float(res.iterations.double().mean()), "ms_per_problem": ms_it,
            "exhaustive_problems": timed_count,
            "exhaustive_accuracy": float((ex.indices == p.indices[:timed_count]).all(-1).double().mean()),
            "accuracy_on_timed": float(hit[:timed_count].double().mean()),
            "exhaustive_ms_per_problem": ms_ex, "speed_ratio": ms_ex / ms_it,
            "faster": "iterative" if ms_ex > ms_it else "exhaustive", "device": str(device), "seed": seed,
        })
        if log:
            r = rows[-1]
            log(f"{r['schema']:24s} space={space:9.3g} {method}: {100 * r['accuracy']:5.1f}% {ms_it:9.2f} ms/problem | "
                f"exhaustive ({timed_count} timed): {100 * r['exhaustive_accuracy']:5.1f}% {ms_ex:9.2f} ms/problem "
                f"| ratio {r['speed_ratio']:.3g}")
    first, estimate = crossover_point(rows)
    for r in rows:
        r.update(crossover_space=first, crossover_estimate=estimate)
    return rows


def crossover_table(rows: Sequence[dict[str, Any]]) -> str:
    """The crossover rows as a Markdown table, and the crossover below it."""
    lines = ["| schema | search space | D | method | all right | mean its | ms/problem | exhaustive: all right "
             "(timed) | ms/problem | exhaustive / iterative |",
             "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['schema']} | {r['search_space']:.3g} | {r['dim']} | `{r['method']}` | "
                     f"{100 * r['accuracy']:.1f} | {r['mean_iterations']:.1f} | {r['ms_per_problem']:.3g} | "
                     f"{100 * r['exhaustive_accuracy']:.1f} ({r['exhaustive_problems']}) | "
                     f"{r['exhaustive_ms_per_problem']:.3g} | {r['speed_ratio']:.3g} |")
    if rows:
        first, est = rows[0]["crossover_space"], rows[0]["crossover_estimate"]
        lines.append("")
        lines.append("crossover: " + ("the iterative method is slower, or less accurate than "
                                      f"{100 * CROSSOVER_ACCURACY:g}%, at the largest schema measured"
                                      if first is None else
                                      f"the iterative method is faster (and right on >= {100 * CROSSOVER_ACCURACY:g}%) "
                                      f"from {first:.3g} combinations on"
                                      + ("" if est is None else f" (ratio 1 at about {est:.3g}, log-log)")))
    return "\n".join(lines)
