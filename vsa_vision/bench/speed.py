"""Cost of each method: milliseconds per problem and per problem-iteration at a fixed batch.

Early stopping is switched off (``stop_similarity=None``) so every method spends its budget, except
where a method stops by its own criterion (the classic resonator's fixed points and cycles); the
cost per problem-iteration divides the time by the iterations actually run, which makes methods
comparable at equal work.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch

from .accuracy import parse_method
from .problems import make_problems


def cost(methods: Sequence[str], n: int = 50, k: int = 3, dim: int = 1000, batch: int = 500,
         iterations: int = 100, repeats: int = 3, seed: int = 0, device: str = "cpu",
         log=print) -> list[dict[str, Any]]:
    from ..decompose import get_decomposer

    p = make_problems(n, dim, batch, seed=seed, k=k, device=device)
    rows = []
    for spec in methods:
        name, opts = parse_method(spec)
        opts.setdefault("iterations", iterations)
        if name != "brute_force":
            opts.setdefault("stop_similarity", None)
        d = get_decomposer(name, **opts)
        best, its = float("inf"), 0.0
        for _ in range(repeats):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            res = d.decompose(p.s, p.codebooks)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
            its = float(res.iterations.float().sum())
        row = {"method": spec, "n": n, "K": k, "D": dim, "batch": batch, "iterations": iterations,
               "ms_per_problem": 1e3 * best / batch, "mean_iterations": its / batch,
               "us_per_problem_iteration": 1e6 * best / max(its, 1.0),
               "problems_per_s": batch / best}
        rows.append(row)
        if log:
            log(f"{spec:40s} {row['ms_per_problem']:7.3f} ms/problem  {row['mean_iterations']:6.1f} its  "
                f"{row['us_per_problem_iteration']:7.2f} us/problem-iteration  {row['problems_per_s']:9.0f} problems/s")
    return rows
