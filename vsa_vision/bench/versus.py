"""Every method on the published in-memory factorizer's problems, beside the factorizer itself.

:func:`versus_factorizer` draws the problems of IBM's published table (d = 1500, three factors of n
values; ``experiments/300a_assymetric_cb/f3_optimum.csv``) once per n and runs every method on the
same ones, so the diffusion decomposer and the reproduced factorizer
(``get_decomposer("in_memory_factorizer")``, :func:`~vsa_vision.bench.capacity.reproduce_imf`) are
compared on equal terms: accuracy, mean iterations and mean *chain-iterations* (a problem running C
chains pays C per iteration), under one iteration budget.

Two protocols (:func:`published_problems`):

- ``"repo"``: the repository's experiment. Its codebooks are bipolar with exactly D/2 entries +1,
  then a fraction g0 of their entries is replaced by ``1 - x`` (+1 becomes 0, -1 becomes 2), and the
  targets are bound from these altered codebooks, which every method is handed (the factorizer
  projects through the unaltered copy, as the repository does). The target's magnitudes then show
  where the true codewords were altered (an entry 0, 2 or 4 where a factor's codeword has 0 or 2):
  information an ordinary bound vector does not carry, so this is an easier problem than a bipolar one
  wherever g0 is large (n = 99: 0.1, n = 214: 0.05; n = 463: 0.0005).
- ``"bipolar"``: the same codebook sampling without the alteration: plain bipolar targets, the
  project's own problems.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ..checks import check_choice, check_int
from ..decompose.in_memory import PUBLISHED
from ..decompose.registry import build_method, parse_method
from ..vsa import Codebooks
from .capacity import chains_of, repo_codebooks
from .speed import timed_decompose

__all__ = ["published_problems", "versus_factorizer", "versus_table", "PROTOCOLS", "VERSUS_METHODS",
           "VERSUS_FIELDS"]

#: the protocols of :func:`published_problems`
PROTOCOLS = ("repo", "bipolar")
#: the methods compared by default: the diffusion decomposer with two chains (its default) and one,
#: the reproduced factorizer with its published settings, and with its thresholds but no alteration
#: (on the repository's protocol it then projects through the altered codebooks it is handed)
VERSUS_METHODS = ("diffusion", "diffusion:chains=1", "in_memory_factorizer",
                  "in_memory_factorizer:flip_fraction=0.0")


#: the columns of ``versus.csv``
VERSUS_FIELDS = ["protocol", "n", "dim", "search_space", "method", "chains", "problems", "budget", "seed", "accuracy",
                 "factor_accuracy", "mean_iterations", "chain_iterations", "chain_iterations_sem", "wall_s",
                 "ms_per_problem", "device", "published_factor_accuracy", "published_iterations"]


def _published_row(n: int):
    return {row[0]: row for row in PUBLISHED}.get(n)


def published_problems(n: int, dim: int = 1500, count: int = 200, seed: int = 0,
                       protocol: str = "repo") -> tuple[Codebooks, torch.Tensor, torch.Tensor]:
    """``(codebooks, truth [count, 3], s [count, dim])``: ``count`` problems of three factors of ``n``
    values as the repository draws them (one codebook draw, seeded by ``seed``; the answers by
    ``seed + 1``). ``protocol="repo"``: codebooks altered as the published row for ``n`` says (its g0
    and flip pattern; a size without a row: the g0 of the nearest row, as the factorizer's defaults
    choose it, drawn independently per factor), the targets bound from them; ``"bipolar"``:
    unaltered."""
    check_choice("protocol", protocol, PROTOCOLS)
    check_int("n", n, 2)
    check_int("dim", dim, 2)
    check_int("count", count, 1)
    pub = _published_row(n)
    rolled = bool(pub[3]) if pub is not None else False
    cb = repo_codebooks(n, dim, 3, rolled, seed)
    if protocol == "repo":
        imf = build_method("in_memory_factorizer", seed=seed, flip_pattern="rolled" if rolled else "independent")
        cb = Codebooks.from_tensors(dict(zip(cb.names, imf.projection_codebooks(cb))), check_bipolar=False)
    gen = torch.Generator().manual_seed(seed + 1)
    truth = torch.randint(0, n, (count, 3), generator=gen)
    return cb, truth, cb.bind_indices(truth)


def _build(spec: str, n: int, budget: int, seed: int):
    """The method of ``spec`` for problems of size ``n``: the factorizer gets the published row's flip
    pattern and the run's seed (so that its projection undoes the alteration it is handed); a spec
    that sets either is refused, since the projection would then not undo it."""
    name, opts = parse_method(spec)
    if name == "in_memory_factorizer" and {"seed", "flip_pattern"} & set(opts):
        raise ValueError(f"methods: {spec!r} sets seed or flip_pattern; on the published problems the factorizer takes "
                         "the run's seed and the row's flip pattern, so that its projection undoes the alteration")
    extra: dict[str, Any] = {}
    if name == "in_memory_factorizer" and "flip_pattern" not in opts:
        pub = _published_row(n)
        extra["flip_pattern"] = "rolled" if pub is not None and pub[3] else "independent"
    return build_method(spec, iterations=budget, seed=seed, **extra)


def versus_factorizer(methods: Sequence[str] = VERSUS_METHODS, sizes: Sequence[int] = (99, 214, 463),
                      dim: int = 1500, problems: int = 200, protocols: Sequence[str] = PROTOCOLS,
                      iterations: int | None = None, seed: int = 0, device: str = "cpu",
                      log=None) -> list[dict[str, Any]]:
    """One row per (protocol, n, method), every method on the same problems of that protocol and n.

    ``iterations``: the budget of every method (None: ``max(3000, 5 x`` the published mean
    iterations for n``)``, so that a method as fast as the published one fails for budget with a
    probability near e^-5). Rows: accuracy (every factor right) and factor accuracy, mean iterations
    and chain-iterations (with their standard error), wall time, and the published row."""
    if not methods or not sizes or not protocols:
        raise ValueError(f"methods, sizes, protocols: expected at least one each, got {list(methods)}, {list(sizes)}, "
                         f"{list(protocols)}")
    for p in protocols:
        check_choice("protocol", p, PROTOCOLS)
    check_int("problems", problems, 1)
    if iterations is not None:
        check_int("iterations", iterations, 1)
    rows = []
    for protocol in protocols:
        for n in sizes:
            pub = _published_row(n)
            budget = iterations if iterations is not None else max(3000, math.ceil(5 * pub[5]) if pub else 3000)
            cb, truth, s = published_problems(n, dim, problems, seed, protocol)
            cb, truth, s = cb.to(device), truth.to(device), s.to(device)
            for spec in methods:
                d = _build(spec, n, budget, seed)
                chains = chains_of(spec, d, cb)
                res, wall = timed_decompose(d, s, cb, device)
                hit = res.indices == truth
                its = res.iterations.double()
                row = {
                    "protocol": protocol, "n": n, "dim": dim, "search_space": n ** 3, "method": spec,
                    "chains": chains, "problems": problems, "budget": budget, "seed": seed,
                    "accuracy": float(hit.all(1).double().mean()), "factor_accuracy": float(hit.double().mean()),
                    "mean_iterations": float(its.mean()), "chain_iterations": chains * float(its.mean()),
                    "chain_iterations_sem": chains * float(its.std() / math.sqrt(problems)) if problems > 1 else 0.0,
                    "wall_s": round(wall, 2), "ms_per_problem": round(1000 * wall / problems, 2), "device": str(device),
                    "published_factor_accuracy": None if pub is None else pub[4],
                    "published_iterations": None if pub is None else pub[5],
                }
                rows.append(row)
                if log:
                    log(versus_table([row], header=False))
    return rows


def versus_table(rows: Sequence[dict[str, Any]], header: bool = True) -> str:
    """The rows as Markdown: one line per (protocol, n, method)."""
    out = []
    if header:
        out += ["| protocol | n | method | all right | factors right | mean iterations | chain-iterations "
                "| budget | ms/problem | published: factors right, mean iterations |",
                "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        pub = ("" if r["published_iterations"] is None
               else f"{100 * r['published_factor_accuracy']:.1f}%, {r['published_iterations']:,.0f}")
        out.append(f"| {r['protocol']} | {r['n']} | `{r['method']}` | {100 * r['accuracy']:.1f} | "
                   f"{100 * r['factor_accuracy']:.2f} | {r['mean_iterations']:,.1f} | "
                   f"{r['chain_iterations']:,.1f} (se {r['chain_iterations_sem']:,.0f}) | {r['budget']:,} | "
                   f"{r['ms_per_problem']:,.1f} | {pub} |")
    return "\n".join(out)
