"""Exhaustive search: the exact maximum-similarity answer over the whole product space.

The correctness oracle for small problems. Cost ``B * prod_k n_k * D`` multiply-adds; memory is
bounded by ``max_elements`` whatever the size of the space: the combinations of all factors but the
largest are enumerated in chunks, each chunk's full products ``[C * n_last, D]`` are formed, and one
matrix product scores them against the whole batch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..checks import check_int
from ..vsa import Codebooks, bind_combinations, check_problem, tensors_key, wide_dtype
from .base import Capabilities, Decomposition, empty_result, finalize


class BruteForce:
    """``get_decomposer("brute_force", max_elements=2**24)``.

    Scores every combination by ``|<s, bound>|`` (sign-invariant: a pair of negated factors explains
    ``s`` equally well) and returns the best. ``iterations`` and ``seed`` are accepted for a uniform
    interface and ignored: the search is exact and deterministic. ``max_elements`` bounds the number
    of floats held at once (products plus scores). Scores are summed in at least float32.

    ``max_combinations`` bounds the search space of a problem, ``prod_k n_k`` (default 1e8: about
    ``1e8 * D`` multiply-adds a problem, a minute or more on one CPU core at D = 1000): a larger
    search is refused with an error giving its size, its work and how to allow it
    (``max_combinations=None``: no bound), instead of running for hours unannounced. The bound is
    per problem, so a problem is refused or solved alike alone and in any batch.

    ``cache_bytes`` (default 256 MiB) bounds a table kept between calls: the bound vectors of every
    combination of all factors but the largest, built once per codebooks, so that a call costs one
    matrix product (``s`` bound to each codeword of the largest factor, times the table) instead of
    rebuilding the products; 0 turns it off (the products are then formed in chunks every call)."""

    name = "brute_force"
    capabilities = Capabilities(iterative=False, early_stop=False, exhaustive=True)

    def __init__(self, iterations: int = 1, seed: int = 0, max_elements: int = 2**24,
                 sign_invariant: bool = True, max_combinations: int | None = 10**8,
                 cache_bytes: int = 2**28) -> None:
        self.iterations = check_int("iterations", iterations, 1)
        self.seed = check_int("seed", seed, 0)
        self.max_elements = check_int("max_elements", max_elements, 1024)
        self.sign_invariant = bool(sign_invariant)
        self.max_combinations = None if max_combinations is None else check_int("max_combinations",
                                                                                 max_combinations, 1)
        self.cache_bytes = check_int("cache_bytes", cache_bytes, 0)
        self._cache: tuple | None = None

    def __repr__(self) -> str:
        return (f"BruteForce(max_elements={self.max_elements}, sign_invariant={self.sign_invariant}, "
                f"max_combinations={self.max_combinations}, cache_bytes={self.cache_bytes})")

    def options(self) -> dict[str, Any]:
        return {"iterations": self.iterations, "seed": self.seed, "max_elements": self.max_elements,
                "sign_invariant": self.sign_invariant, "max_combinations": self.max_combinations,
                "cache_bytes": self.cache_bytes}

    def check_size(self, batch: int, codebooks: Codebooks) -> None:
        """Refuse a search space above ``max_combinations``, saying its size, its work and the way out."""
        space = codebooks.search_space
        if self.max_combinations is None or space <= self.max_combinations:
            return
        work = float(batch) * space * codebooks.dim
        raise ValueError(
            f"brute_force: a search space of {space:.3g} combinations ({' x '.join(map(str, codebooks.sizes))}) "
            f"is above max_combinations = {self.max_combinations:.3g}; {batch} problem(s) at D = "
            f"{codebooks.dim} would take {work:.3g} multiply-adds (about {work / 1e9 / 3600:.3g} hours at 1e9 "
            f"a second on one CPU core). Use an iterative decomposer, or allow it with "
            f"max_combinations=None (in a spec: brute_force:max_combinations=None)")

    def table_bytes(self, codebooks: Codebooks) -> int:
        """The memory of the table kept for ``codebooks``: the bound vectors of every combination of all
        factors but the largest, in the dtype searched (float32 at least); 0 for one factor (none kept,
        the search is one product)."""
        sizes = codebooks.sizes
        if len(sizes) == 1:
            return 0
        return codebooks.search_space // max(sizes) * codebooks.dim * max(4, codebooks.dtype.itemsize)

    def _outer_table(self, cb: Codebooks, outer: list[int], given: Codebooks) -> Tensor | None:
        """The bound vectors of every combination of the ``outer`` factors ``[n_outer, D]`` (row ``r``:
        the combination whose factor ``outer[i]`` has index ``(r // stride_i) % n_i``), kept per
        codebooks (their tensors, versions, dtype and device) so that a call costs one product; None
        when it would take more than ``cache_bytes``. ``given``: the codebooks as the caller passed them,
        of which ``cb`` is the copy in the dtype searched (for float16 / bfloat16 a new one every call):
        the table is kept per the caller's tensors."""
        X = cb.tensors
        if not outer or self.table_bytes(cb) > self.cache_bytes:
            return None
        own = given.tensors
        key = (tensors_key(own), tuple(outer), X[0].dtype, X[0].device)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        table = bind_combinations([X[k] for k in outer])  # the last outer factor varies fastest: stride 1
        self._cache = (key, table, own)  # the tensors are held, so their ids stay theirs
        return table

    @torch.no_grad()
    def decompose(self, s: Tensor, codebooks: Codebooks, callback=None) -> Decomposition:
        s, cb, _ = check_problem(s, codebooks)
        B, K = s.shape[0], cb.num_factors
        dev = s.device
        if B == 0:
            return empty_result(s, cb, self.name)
        self.check_size(B, cb)
        s_in, cb_in = s, cb
        s, cb = s.to(wide_dtype(s.dtype)), cb.to(dtype=wide_dtype(s.dtype))  # float16 scores overflow
        sizes = cb.sizes
        last = max(range(K), key=lambda k: sizes[k])  # the largest factor goes inside the product
        outer = [k for k in range(K) if k != last]
        outer_sizes = [sizes[k] for k in outer]
        n_outer = 1
        for n in outer_sizes:
            n_outer *= n
        X_last = cb.tensors[last]
        n_last = X_last.shape[0]
        strides = []
        acc = 1
        for n in reversed(outer_sizes):
            strides.append(acc)
            acc *= n
        strides = list(reversed(strides))
        table = self._outer_table(cb, outer, given=cb_in)
        if table is not None:
            best_flat = self._search_table(s, X_last, table)
        else:
            best_flat = self._search_chunks(s, cb, X_last, outer, outer_sizes, strides, n_outer)
        indices = torch.zeros(B, K, dtype=torch.long, device=dev)
        # the table's rows: the outer factors in C order (the last fastest), then the last factor
        for k, v in zip([*outer, last], torch.unravel_index(best_flat, (*outer_sizes, n_last))):
            indices[:, k] = v
        ones = torch.ones(B, dtype=torch.long, device=dev)
        return finalize(s_in, cb_in, indices, ones, torch.ones(B, dtype=torch.bool, device=dev), self.name)

    def _search_table(self, s: Tensor, X_last: Tensor, table: Tensor) -> Tensor:
        """Best ``outer_row * n_last + j`` per problem against the cached outer table: ``s`` bound to each
        codeword of the last factor, times the table (``max_elements`` bounds the scores held)."""
        B, D = s.shape
        n_last, n_outer = X_last.shape[0], table.shape[0]
        unbound = (s[:, None, :] * X_last[None, :, :]).reshape(B * n_last, D)  # row b * n_last + j
        rows = max(1, self.max_elements // n_outer)  # unbound rows scored at once
        best_val = torch.empty(B * n_last, dtype=s.dtype, device=s.device)
        best_pos = torch.empty(B * n_last, dtype=torch.long, device=s.device)
        for r0 in range(0, B * n_last, rows):
            scores = unbound[r0:r0 + rows] @ table.T
            if self.sign_invariant:
                scores = scores.abs()
            best_val[r0:r0 + rows], best_pos[r0:r0 + rows] = scores.max(dim=1)
        j = best_val.view(B, n_last).argmax(1)  # the first best, as the chunked search keeps it
        outer_row = best_pos.view(B, n_last).gather(1, j[:, None]).squeeze(1)
        return outer_row * n_last + j

    def _search_chunks(self, s, cb, X_last, outer, outer_sizes, strides, n_outer) -> Tensor:
        """Best ``outer_row * n_last + j`` per problem, forming the products chunk by chunk."""
        B, D, dev = s.shape[0], cb.dim, s.device
        n_last = X_last.shape[0]
        # rows of full products per chunk, so that products [rows, D] + scores [B, rows] fit
        rows_budget = max(n_last, self.max_elements // (D + B))
        chunk = max(1, rows_budget // n_last)
        # problems per pass, if even one chunk's scores would not fit
        b_chunk = max(1, min(B, self.max_elements // max(1, chunk * n_last)))
        best_score = torch.full((B,), -float("inf"), dtype=s.dtype, device=dev)
        best_flat = torch.zeros(B, dtype=torch.long, device=dev)  # index into n_outer * n_last
        for start in range(0, n_outer, chunk):
            stop = min(n_outer, start + chunk)
            combo = torch.arange(start, stop, device=dev)
            prod = None
            for k, n, st in zip(outer, outer_sizes, strides):
                w = cb.tensors[k].index_select(0, (combo // st) % n)
                prod = w if prod is None else prod * w
            if prod is None:  # K == 1
                full = X_last
            else:
                full = (prod[:, None, :] * X_last[None, :, :]).reshape(-1, D)
            for b0 in range(0, B, b_chunk):
                b1 = min(B, b0 + b_chunk)
                scores = s[b0:b1] @ full.T
                if self.sign_invariant:
                    scores = scores.abs()
                val, pos = scores.max(dim=1)
                better = val > best_score[b0:b1]
                best_score[b0:b1] = torch.where(better, val, best_score[b0:b1])
                best_flat[b0:b1] = torch.where(better, pos + start * n_last, best_flat[b0:b1])
        return best_flat
