"""The head that chooses by cost: exhaustive search where one product with its kept table is cheaper
than an iterative search, the iterative method (diffusion by default) where it is not.

Exhaustive search costs ``prod_k n_k * D`` multiply-adds a problem, run as one large matrix product
at the machine's full rate; the diffusion decomposer costs a few passes over ``sum_k n_k`` codewords
an iteration, for tens of iterations, in many small kernels. On a small space the product wins (the
shipped ``default`` model: 115,200 combinations, 1.2e8 multiply-adds, exhaustive search 1.6x faster
at batch 64 and 3x at batch 1 on 2 CPU cores); on a large one it loses (the ``clutter`` model's
objects: 1.1e6 combinations at D = 2048, 2.3e9 multiply-adds, 2.5 to 3x slower a scene even with its
whole table kept; 500 to 1,700x slower a problem at 1.5e6 to 7.1e7 combinations and D = 4096).
:data:`LOOKUP_WORK` sits between them, where the measured costs cross (``docs/BENCHMARKS.md``, the
head that chooses by cost).

The choice depends only on the codebooks' shape, never on the batch, so a problem gets the same
answer alone and in any batch; the result's ``method`` says which search answered.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..checks import check_int
from ..vsa import Codebooks, check_problem
from .base import Capabilities, Decomposition
from .brute_force import BruteForce
from .registry import build_method, capabilities, parse_method

__all__ = ["CheapestDecomposer", "LOOKUP_WORK"]

#: the most multiply-adds a problem (``prod_k n_k * D``) for which exhaustive search is chosen: 2^28,
#: about 2.7e8 (measured on 2 CPU cores: at batch 1 the table is faster to 3.5e8 at K = 3 and beyond
#: 5e8 at K = 6; at batch 64 diffusion overtakes it from about 5e7 at K = 3 and 1.2e8 to 2.7e8 at K = 6)
LOOKUP_WORK = 1 << 28


class CheapestDecomposer:
    """``get_decomposer("auto")``, or ``"auto:method='diffusion:chains=4'"``: exhaustive search
    when a problem's work ``prod_k n_k * D`` is at most ``lookup_work`` multiply-adds and its kept
    table (the products of all factors but the largest) fits ``cache_bytes``, else ``method`` (an
    iterative spec, default ``"diffusion"``).

    ``iterations``, ``seed`` and ``stop_similarity`` go to ``method`` where given (``iterations=None`` and
    ``stop_similarity="own"``: the method's own; ``stop_similarity=None`` turns it off, as for the
    method itself); any other option of it goes in its spec. ``iterations`` then reads the method's
    budget. A callback is passed to the iterative method; exhaustive search calls none."""

    name = "auto"
    # what a caller needs to know before the codebooks: it may iterate (``iterations=`` is taken and
    # passed on) and stop early (``stop_similarity=``); chains and settings are the iterative method's
    capabilities = Capabilities(iterative=True, stochastic=True, early_stop=True)

    def __init__(self, method: str = "diffusion", lookup_work: int = LOOKUP_WORK, cache_bytes: int = 1 << 28,
                 iterations: int | None = None, seed: int = 0, stop_similarity: float | str | None = "own") -> None:
        name, _ = parse_method(method)
        caps = capabilities(name)
        if name == self.name or not caps.iterative:
            raise ValueError(f"method: expected an iterative decomposer for the spaces too large to search "
                             f"exhaustively (e.g. 'diffusion'), got {method!r}")
        self.method = method
        self.lookup_work = check_int("lookup_work", lookup_work, 0)
        self.cache_bytes = check_int("cache_bytes", cache_bytes, 0)
        iterations = None if iterations is None else check_int("iterations", iterations, 1)
        self.seed = check_int("seed", seed, 0)
        if isinstance(stop_similarity, str) and stop_similarity != "own":
            raise ValueError(f"stop_similarity: expected a similarity, None (off) or 'own' (the method's own), "
                             f"got {stop_similarity!r}")
        self.stop_similarity = stop_similarity
        extra: dict[str, Any] = {} if stop_similarity == "own" or not caps.early_stop else {
            "stop_similarity": stop_similarity}
        self.iterative = build_method(method, iterations=iterations, seed=self.seed, **extra)
        #: the iterative method's budget (what a caller that sets budgets, such as ``decompose_set``, reads)
        self.iterations = getattr(self.iterative, "iterations", iterations)
        #: the iterative method's give-up rule (``decompose_set`` passes its bar where it is set)
        self.give_up = getattr(self.iterative, "give_up", None)
        self.lookup = BruteForce(seed=self.seed, cache_bytes=self.cache_bytes)

    def __repr__(self) -> str:
        return f"CheapestDecomposer(method={self.method!r}, lookup_work={self.lookup_work})"

    def options(self) -> dict[str, Any]:
        return {"method": self.method, "lookup_work": self.lookup_work, "cache_bytes": self.cache_bytes,
                "iterations": self.iterations, "seed": self.seed, "stop_similarity": self.stop_similarity}

    def choose(self, codebooks: Codebooks) -> Any:
        """The decomposer a call on ``codebooks`` runs."""
        work = codebooks.search_space * codebooks.dim
        fits = self.lookup.table_bytes(codebooks) <= self.cache_bytes
        return self.lookup if work <= self.lookup_work and fits else self.iterative

    def decompose(self, s: Tensor, codebooks: Codebooks, callback=None, accept=None) -> Decomposition:
        """``accept``: the bar of the iterative method's give-up rule (exhaustive search needs none)."""
        check_problem(s, codebooks)  # bad input is refused with the decomposers' own messages
        chosen = self.choose(codebooks)
        if chosen is self.lookup:
            return chosen.decompose(s, codebooks)
        if accept is None:
            return chosen.decompose(s, codebooks, callback=callback)
        return chosen.decompose(s, codebooks, callback=callback, accept=accept)
