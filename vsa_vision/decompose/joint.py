"""Joint inference of every object of a scene vector with the coupled diffusion decomposer.

``s = scale * sum_m prod_k x_{m,k}``: M slots, each a K-factor coupled diffusion, all inferred at
once under one reconstruction energy. In each iteration the slots take turns: slot m runs one guided
step of its K factors against the part of ``s`` that the other slots' current estimates leave,
``s - scale * sum_{m' != m} prod_k x_{m',k}`` (their soft estimates ``w X``, the newest first). Each
slot draws its own noise (slot m of a problem is chain m of :class:`~.noise.ProblemNoise`), so
slots that start alike do not stay alike.

After every iteration the slots are read out, duplicates merged, and each object's amplitude fitted
by least squares; the answer kept per problem is the one whose accepted objects (amplitude above
``accept * scale``) leave the smallest residual. A problem stops once that residual is below
``stop_residual`` of ``|s|``.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import torch
from torch import Tensor

from ..vsa import Codebooks
from .diffusion import DiffusionDecomposer
from .noise import ProblemNoise

__all__ = ["joint_slots"]


def _objects_and_fit(s: Tensor, cb: Codebooks, idx: Tensor, scale: float, threshold: float):
    """Per problem: the slots' objects ``idx [B, M, K]`` with duplicates removed (a repeated object
    counts once), their least-squares amplitudes ``[B, M]`` (0 for removed and rejected slots), the
    accepted mask and the residual norm ``[B]`` of ``s`` minus the accepted objects."""
    B, M, K = idx.shape
    bound = cb.bind_indices(idx.reshape(-1, K)).reshape(B, M, -1).to(s.dtype)
    same = (idx[:, :, None, :] == idx[:, None, :, :]).all(-1)                  # [B, M, M]
    earlier = torch.ones(M, M, dtype=torch.bool, device=s.device).tril(-1)
    unique = ~(same & earlier).any(-1)                                           # first of its kind
    keep = unique
    for _ in range(2):  # fit, drop the objects below the threshold, refit the rest
        G = bound @ bound.transpose(1, 2) / bound.shape[-1]
        eye = torch.eye(M, dtype=s.dtype, device=s.device)
        mask = keep[:, :, None] & keep[:, None, :]
        A = torch.where(mask, G, eye)
        rhs = torch.where(keep, (bound @ s[:, :, None]).squeeze(-1) / bound.shape[-1], torch.zeros_like(s[:, :M]))
        amp = torch.linalg.solve(A, rhs) / scale
        keep = keep & (amp > threshold)
    amp = torch.where(keep, amp, torch.zeros_like(amp))
    left = s - scale * (amp[:, :, None] * bound).sum(1)
    return amp, keep, left.norm(dim=-1)


@torch.no_grad()
def joint_slots(s: Tensor, cb: Codebooks, slots: int, iterations: int = 300, seed: int = 0, scale: float = 1.0,
                accept: float = 0.5, stop_residual: float = 0.05, hard: bool = True, **options: Any):
    """Run ``slots`` joint slots on ``s [B, D]``; returns ``(indices [B, slots, K], accepted [B, slots],
    amplitudes [B, slots], iterations [B])`` of the best read-out per problem. ``hard``: the other
    slots are subtracted as the bound vectors of their current read-out (True; their soft estimates
    ``prod_k w_k X_k`` with False: slower to separate, measured worse). ``options`` are those of the
    diffusion decomposer (its adaptive settings follow the codebooks, as for one object)."""
    B, K, M, D = s.shape[0], cb.num_factors, slots, cb.dim
    # the slots step the factors as given (joined factors, ``merge``, are the decompose loop's)
    d = DiffusionDecomposer(iterations=iterations, seed=seed, chains=1, **{"merge": None, **options})
    s_slots = s.repeat_interleave(M, 0)                                  # row b * M + m: slot m of problem b
    ctx = d._setup(s_slots, cb)
    ctx.noise = ProblemNoise(s_slots, d.seed, chains=M)                  # each slot its own noise
    ctx.block = 1
    rows = torch.arange(B * M, device=s.device)
    state = d._init(s_slots, cb, ctx, rows)
    best_idx = torch.zeros(B, M, K, dtype=torch.long, device=s.device)
    best_amp = torch.zeros(B, M, dtype=s.dtype, device=s.device)
    best_keep = torch.zeros(B, M, dtype=torch.bool, device=s.device)
    best_res = torch.full((B,), float("inf"), dtype=s.dtype, device=s.device)
    its = torch.full((B,), iterations, dtype=torch.long, device=s.device)
    active = torch.ones(B, dtype=torch.bool, device=s.device)
    norm = s.norm(dim=-1)
    idx = torch.zeros(B * M, K, dtype=torch.long, device=s.device)
    for it in range(iterations):
        if it == 0:
            est = torch.zeros(B, M, D, dtype=s.dtype, device=s.device)  # [B, M, D] each slot's object
        for m in range(M):
            sub = rows.view(B, M)[:, m][active]
            target = s[active] - (est[active].sum(1) - est[active, m])
            part = state.select(_rows_mask(sub, B * M))
            part.noise = None  # the slots take turns: each draws its own noise (one iteration a block)
            step = d._step(part, target, cb, ctx, it, sub)
            _put(state, step.state, sub)
            idx[sub] = step.indices
            est[active, m] = cb.bind_indices(step.indices).to(s.dtype) * scale if hard else \
                step.state.x.view(-1, K, D).prod(1) * scale
        amp, keep, res = _objects_and_fit(s, cb, idx.view(B, M, K), scale, accept)
        better = active & (res < best_res)
        best_idx[better], best_amp[better], best_keep[better], best_res[better] = (
            idx.view(B, M, K)[better], amp[better], keep[better], res[better])
        done = active & (best_res <= stop_residual * norm)
        its[done] = it + 1
        active &= ~done
        if not bool(active.any()):
            break
    return best_idx, best_keep, best_amp, its


def _rows_mask(sub: Tensor, n: int) -> Tensor:
    mask = torch.zeros(n, dtype=torch.bool, device=sub.device)
    mask[sub] = True
    return mask


def _put(state, new, rows: Tensor) -> None:
    """Write the rows ``rows`` (in order) of a state back into the full state."""
    for f in fields(state):
        if isinstance(full := getattr(state, f.name), Tensor):
            full[rows] = getattr(new, f.name)
