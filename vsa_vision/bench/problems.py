"""Decomposition problems for tests and benchmarks: random codebooks, random answers, and the
bound vectors, optionally corrupted (sign flips, additive Gaussian noise at a given SNR)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..vsa import Codebooks


@dataclass
class Problems:
    codebooks: Codebooks
    indices: Tensor  # [B, K] the true answers
    s: Tensor        # [B, D] the (possibly corrupted) bound vectors

    def __len__(self) -> int:
        return self.indices.shape[0]


def factor_sizes(sizes: int | Sequence[int] | Mapping[str, int], k: int | None = None) -> dict[str, int]:
    """Normalise a size spec: ``50`` with ``k=3`` -> three factors of 50; a list -> one per entry."""
    if isinstance(sizes, Mapping):
        return dict(sizes)
    if isinstance(sizes, int):
        if k is None:
            raise ValueError("k: the number of factors is needed when sizes is a single int")
        sizes = [sizes] * k
    return {f"f{i}": int(n) for i, n in enumerate(sizes)}


def brute_force_flop(sizes: Sequence[int], dim: int, count: int) -> float:
    """FLOPs (2 x multiply-adds) of exhaustive search over ``count`` problems: every combination of
    the codebook ``sizes`` scored against every target of dimension ``dim``."""
    return 2.0 * count * math.prod(sizes) * dim


def make_problems(
    sizes: int | Sequence[int] | Mapping[str, int],
    dim: int,
    count: int,
    seed: int = 0,
    k: int | None = None,
    flip: float = 0.0,
    snr_db: float | None = None,
    codebook_seed: int | None = None,
    device: torch.device | str | None = None,
) -> Problems:
    """``count`` problems over random codebooks (seeded by ``codebook_seed``, default ``seed``).

    ``flip``: fraction of the signs of ``s`` flipped (exactly ``round(flip * D)`` per vector, at
    random positions). ``snr_db``: additive Gaussian noise with power ``|s|^2 / D * 10^(-snr/10)``."""
    if count < 1:
        raise ValueError(f"count: expected >= 1, got {count}")
    if not 0.0 <= flip <= 1.0:
        raise ValueError(f"flip: expected a fraction in [0, 1], got {flip}")
    cb = Codebooks.random(factor_sizes(sizes, k), dim=dim,
                          seed=seed if codebook_seed is None else codebook_seed)
    gen = torch.Generator().manual_seed(seed + 1_000_003)
    idx = torch.stack([torch.randint(0, n, (count,), generator=gen) for n in cb.sizes], 1)
    s = cb.bind_indices(idx)
    if flip > 0:
        m = int(round(flip * dim))
        order = torch.rand(count, dim, generator=gen).argsort(dim=1)[:, :m]
        mask = torch.zeros(count, dim, dtype=torch.bool).scatter_(1, order, True)
        s = torch.where(mask, -s, s)
    if snr_db is not None:
        noise_std = math.sqrt(10 ** (-snr_db / 10))
        s = s + noise_std * torch.randn(count, dim, generator=gen)
    if device is not None:
        cb, idx, s = cb.to(device), idx.to(device), s.to(device)
    return Problems(cb, idx, s)


@dataclass
class SetProblems:
    codebooks: Codebooks
    objects: list[Tensor]  # per scene, the true objects [m, K]
    s: Tensor              # [B, D] the scene vectors (sums of the objects' bound vectors, possibly corrupted)

    def __len__(self) -> int:
        return len(self.objects)

    @property
    def counts(self) -> Tensor:
        return torch.tensor([len(o) for o in self.objects], dtype=torch.long)


def make_set_problems(
    sizes: int | Sequence[int] | Mapping[str, int],
    dim: int,
    count: int,
    objects: int | tuple[int, int],
    seed: int = 0,
    k: int | None = None,
    distinct: Sequence[int] = (),
    snr_db: float | None = None,
    codebook_seed: int | None = None,
) -> SetProblems:
    """``count`` scenes of ``objects`` objects each (an int, or ``(lo, hi)``: drawn uniformly per
    scene), their vectors the sums of the objects' bound vectors. ``distinct``: factors whose joint
    value no two objects of a scene share (e.g. the two position factors: objects never overlap).
    ``snr_db``: additive Gaussian noise relative to the power of one object."""
    from ..decompose.sets import bundle_objects

    cb = Codebooks.random(factor_sizes(sizes, k), dim=dim, seed=seed if codebook_seed is None else codebook_seed)
    lo, hi = (objects, objects) if isinstance(objects, int) else objects
    places = math.prod(cb.sizes[f] for f in distinct) if distinct else 0
    if lo < 0 or hi < lo or (distinct and hi > places):
        raise ValueError(f"objects: expected 0 <= lo <= hi (<= {places} distinct places), got {objects}")
    gen = torch.Generator().manual_seed(seed + 2_000_003)
    m = torch.randint(lo, hi + 1, (count,), generator=gen)
    idx = torch.stack([torch.randint(0, n, (count, hi), generator=gen) for n in cb.sizes], -1)  # [B, hi, K]
    if distinct:
        # distinct places: the first hi of a random permutation of all joint values, per scene
        perm = torch.rand(count, places, generator=gen).argsort(dim=1)[:, :hi]
        for f in reversed(distinct):
            idx[..., f] = perm % cb.sizes[f]
            perm = perm // cb.sizes[f]
    sets = [idx[i, : int(m[i])] for i in range(count)]
    s = bundle_objects(cb, sets)
    if snr_db is not None:
        s = s + math.sqrt(10 ** (-snr_db / 10)) * torch.randn(count, dim, generator=gen)
    return SetProblems(cb, sets, s)
