"""Joining small factors into one: the same search space over fewer, larger codebooks.

A problem over factors of sizes ``n_1 ... n_K`` is also a problem over groups of them: the codebook of
a group holds the bound vector of every combination of its factors' values (``prod n_k`` rows), and a
group's answer names one value of each. The search space is unchanged; an iterative search has fewer
factors to couple (each coupled update, and the kernels it takes, is per factor) and larger codebooks to
read (its arithmetic grows with the sum of the sizes). At one factor it is exhaustive search.

:func:`merge_groups` joins the two smallest groups while their joint size stays at most ``cap``;
:func:`auto_cap`, ``isqrt(prod n_k)``, leaves about three factors where the sizes allow. The diffusion
decomposer's option ``merge`` (off by default): faster on one object's vector, much less accurate on
bundles of several (``docs/BENCHMARKS.md``, joined factors).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..vsa import Codebooks, bind_combinations, tensors_key

__all__ = ["merge_groups", "auto_cap", "Merger"]


def auto_cap(sizes: Sequence[int]) -> int:
    """The default largest joined codebook: the square root of the search space."""
    return math.isqrt(math.prod(int(n) for n in sizes))


def merge_groups(sizes: Sequence[int], cap: int) -> tuple[tuple[int, ...], ...]:
    """The factors joined: repeatedly the two smallest groups, while their joint size is at most ``cap``.
    Each group lists its factors in order; the groups are ordered by their first factor."""
    groups = [((k,), int(n)) for k, n in enumerate(sizes)]
    while len(groups) > 1:
        groups.sort(key=lambda g: (g[1], g[0]))
        (a, na), (b, nb) = groups[0], groups[1]
        if na * nb > cap:
            break
        groups = [(tuple(sorted(a + b)), na * nb)] + groups[2:]
    return tuple(sorted((g for g, _ in groups), key=lambda g: g[0]))


class Merger:
    """The joined codebooks of ``groups`` (built once per codebooks and kept, as exhaustive search keeps
    its table) and the map of their answers back to the factors."""

    def __init__(self, groups: Sequence[Sequence[int]]) -> None:
        self.groups = tuple(tuple(int(k) for k in g) for g in groups)
        self._cache: tuple | None = None

    def codebooks(self, cb: Codebooks) -> Codebooks:
        own = cb.tensors
        key = (tensors_key(own), own[0].dtype, own[0].device)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        # a group's rows: its last factor varies fastest, as split() reads them
        merged = Codebooks(["*".join(cb.names[k] for k in g) for g in self.groups],
                           [bind_combinations([own[k] for k in g]) for g in self.groups])
        self._cache = (key, merged, own)  # the tensors are held, so their ids stay theirs
        return merged

    def split(self, indices: Tensor, sizes: Sequence[int]) -> Tensor:
        """Indices ``[..., G]`` over the groups -> ``[..., K]`` over the factors of ``sizes``."""
        out = indices.new_empty(*indices.shape[:-1], len(sizes))
        for j, g in enumerate(self.groups):  # a group's last factor varies fastest: C order
            for k, v in zip(g, torch.unravel_index(indices[..., j], tuple(sizes[k] for k in g))):
                out[..., k] = v
        return out
