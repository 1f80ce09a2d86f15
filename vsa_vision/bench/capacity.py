"""Capacity benchmarks: published factorizer tables, reproduced.

:func:`reproduce_imf` runs the in-memory factorizer with asymmetric codebooks
(``get_decomposer("in_memory_factorizer")``) on the problems of IBM's published table
(``experiments/300a_assymetric_cb/f3_optimum.csv``: d = 1500, three factors) and returns one row per
codebook size, side by side with the published accuracy and mean iterations.

``protocol="repo"`` is the repository's experiment (``main_capacity.py``): codebooks drawn as it
draws them (:func:`repo_codebooks`: every codeword exactly D/2 entries +1; rolled copies of factor
0 where the table says ``perm``), the targets bound from the *perturbed* codebooks (its ``encode``
multiplies rows of the modified item memory), which are therefore the codebooks handed to the
decomposer; its projection codebooks (the perturbation undone) are then the clean ones, as in the
repository. ``protocol="bipolar"``: the clean bipolar codebooks encode the targets and are handed to
the decomposer, which projects with a perturbed copy: the project's own setting.

The published accuracy is the fraction of *factors* right (``main_capacity.py`` L216); the
published iterations count the detection iteration plus one (``densebipolarbatched.py`` L473,
L507; at most the cap). Each row reports both our count and the repository's, and both accuracies.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import torch

from ..decompose import get_decomposer
from ..decompose.in_memory import PUBLISHED, iteration_cap
from ..vsa import Codebooks

__all__ = ["repo_codebooks", "reproduce_imf"]


def repo_codebooks(n: int, dim: int, factors: int, rolled: bool, seed: int) -> Codebooks:
    """Codebooks as ``densebipolarbatched`` draws them with ``im_sampling="ExactDense"`` (L181-189):
    each codeword has exactly ``dim // 2`` entries +1; ``rolled``: factor k is factor 0 rolled by k
    along D (``permutation=True``), else every factor is drawn on its own. Drawn on the CPU."""
    gen = torch.Generator().manual_seed(seed)

    def draw() -> torch.Tensor:
        return (torch.rand(n, dim, generator=gen).argsort(1) < dim // 2).float() * 2 - 1

    first = draw()
    books = [torch.roll(first, k, 1) if rolled else (first if k == 0 else draw()) for k in range(factors)]
    return Codebooks.from_tensors({f"f{k}": b for k, b in enumerate(books)})


def reproduce_imf(sizes: Sequence[int] = (99, 214), dim: int = 1500, problems: int = 300, seed: int = 0,
                  protocol: str = "repo", device: str = "cpu", **options: Any) -> list[dict[str, Any]]:
    """One row per codebook size n (three factors): accuracy and mean iterations of the in-memory
    factorizer on ``problems`` random problems over one codebook draw (the repository also uses one
    draw per row), next to the published row for that n (None where the table has none).

    The decomposer runs with its defaults (the published threshold and flipped fraction for the
    search space, the repository's iteration cap) and the table's flip pattern; ``options`` override
    them. ``seed`` seeds the codebooks, the answers and the decomposer."""
    if protocol not in ("repo", "bipolar"):
        raise ValueError(f"protocol: expected one of ['repo', 'bipolar'], got {protocol!r}")
    published = {row[0]: row for row in PUBLISHED}
    rows = []
    for n in sizes:
        pub = published.get(n)
        rolled = bool(pub[3]) if pub is not None else False
        opts = {"seed": seed, "flip_pattern": "rolled" if rolled else "independent", **options}
        d = get_decomposer("in_memory_factorizer", **opts)
        cb = repo_codebooks(n, dim, 3, opts["flip_pattern"] == "rolled", seed)
        if protocol == "repo":  # the perturbed codebooks encode and are read; projecting undoes it
            cb = Codebooks.from_tensors(dict(zip(cb.names, d.projection_codebooks(cb))), check_bipolar=False)
        cb = cb.to(device)
        gen = torch.Generator().manual_seed(seed + 1)
        truth = torch.randint(0, n, (problems, 3), generator=gen).to(device)
        s = cb.bind_indices(truth)
        cfg = d.settings(cb)
        start = time.perf_counter()
        res = d.decompose(s, cb)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
        hit = res.indices == truth
        its = res.iterations.double()
        repo_its = (its + res.converged.double()).clamp(max=cfg["iterations"])
        rows.append({
            "n": n, "factors": 3, "dim": dim, "search_space": n ** 3, "protocol": protocol, "problems": problems,
            "seed": seed, "threshold": cfg["threshold"], "flip_fraction": cfg["flip_fraction"],
            "flip_pattern": opts["flip_pattern"], "cap": iteration_cap([n] * 3),
            "accuracy": float(hit.all(1).double().mean()), "factor_accuracy": float(hit.double().mean()),
            "converged": float(res.converged.double().mean()),
            "mean_iterations": float(its.mean()), "mean_iterations_repo_count": float(repo_its.mean()),
            "iterations_sem": float(its.std() / math.sqrt(problems)) if problems > 1 else 0.0,
            "median_iterations": float(its.median()), "max_iterations": int(res.iterations.max()),
            "published_factor_accuracy": None if pub is None else pub[4],
            "published_iterations": None if pub is None else pub[5],
            "wall_s": round(wall, 2), "device": device,
        })
    return rows
