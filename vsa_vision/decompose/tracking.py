"""The iterative driver's bookkeeping: the bound similarity of each iteration's answers
(:class:`Scorer`) and the per-row tracker of the best answer, convergence and the stop rules
(:class:`Tracker`: the similarity threshold, fixed points, limit cycles, the patience rule and the
give-up rule)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..vsa import Codebooks, eps_for, wide_dtype

__all__ = ["Scorer", "Tracker"]


class Scorer:
    """The bound similarity ``|cos(s, c_{1,i_1} * ... * c_{K,i_K})|`` of the active rows' decoded
    answers, in a handful of kernels: the codebooks stacked (``Codebooks.padded``, one gather for all
    factors), ``s`` normalised once, and ``|bound| = sqrt(D)`` when the codebooks are bipolar."""

    def __init__(self, s: Tensor, cb: Codebooks) -> None:
        wide = wide_dtype(s.dtype)
        self.table = cb.to(dtype=wide).padded()[0]  # [K, n_max, D]
        self.factors = torch.arange(cb.num_factors, device=s.device)
        s_w = s.to(wide)
        self.unit = s_w / s_w.norm(dim=-1, keepdim=True).clamp_min(eps_for(wide))
        self.norm = math.sqrt(cb.dim) if cb.bipolar else None
        self.dtype = s.dtype

    def __call__(self, idx: Tensor) -> Tensor:
        bound = self.table[self.factors, idx].prod(1)  # [A, K, D] -> [A, D]
        dot = (self.unit * bound).sum(-1).abs()
        if self.norm is not None:
            return (dot / self.norm).to(self.dtype)
        return (dot / bound.norm(dim=-1).clamp_min(eps_for(bound.dtype))).to(self.dtype)

    def select(self, keep: Tensor) -> None:
        self.unit = self.unit[keep]


@dataclass
class Tracker:
    """The driver's per-row bookkeeping over the chain batch of ``B * C`` rows: the best answer kept,
    iterations used, convergence, the trajectory, and which rows stop.

    The best answers of the active rows are kept compact (``act_*``, in the order of ``rows``) and
    written to the whole batch's arrays when rows stop (:meth:`retire`), so an iteration costs a few
    kernels on the active rows whatever the batch; a callback sees the whole arrays every iteration.

    The patience rule stops a problem once its best answer (over its chains) has not changed for
    ``patience`` iterations, is above the ``chance`` similarity and leads every other answer its
    chains decoded so far by at least ``margin`` (a clear winner that more iterations would not
    replace), or once it has not changed for ``patience_long`` iterations and is above chance. A
    leader below chance is no answer yet (hard problems wander there for hundreds of iterations
    before they find theirs), so the search goes on to the budget.

    The give-up rule stops a problem at iteration ``give_up`` when its best answer is still below
    ``accept``, the similarity the caller needs of an answer (a set decoder's bar for an object): an
    answer that would pass appears well before then, and a residual that holds no object never
    produces one, so its search would run the whole budget for an answer the caller rejects."""

    B: int
    C: int
    K: int
    dtype: torch.dtype
    device: torch.device
    keep_best: bool
    keep_trajectory: bool
    threshold: float | None
    patience: int | None = None
    margin: float = 0.0
    patience_long: int | None = None
    full_every_step: bool = False
    #: the similarity the best of the search space's answers reaches by chance,
    #: ``sqrt(2 ln(prod_k n_k) / D)``: a leader below it has not won anything yet
    chance: float = 0.0
    #: per problem ``[B]``, the similarity an answer must reach to be of use to the caller, and the
    #: iteration at which a problem whose best answer is still below it stops (the give-up rule)
    accept: Tensor | None = None
    give_up: int | None = None

    def __post_init__(self) -> None:
        N, dev = self.B * self.C, self.device
        self.best_idx = torch.zeros(N, self.K, dtype=torch.long, device=dev)
        self.best_sim = torch.full((N,), -1.0, dtype=self.dtype, device=dev)
        self.iters = torch.zeros(N, dtype=torch.long, device=dev)
        self.converged = torch.zeros(N, dtype=torch.bool, device=dev)
        self.traj: list[Tensor] | None = [] if self.keep_trajectory else None
        self.cur_idx = torch.zeros(N, self.K, dtype=torch.long, device=dev)
        self.cur_sim = torch.full((N,), -1.0, dtype=self.dtype, device=dev)
        # the active rows, in the order of ``rows``
        self.act_idx = self.best_idx.clone()
        self.act_sim = self.best_sim.clone()
        self.act_conv = self.converged.clone()
        self.patient = self.patience is not None or self.patience_long is not None
        #: the fewest quiet iterations after which the rule may stop a problem
        self.first_check = min(p for p in (self.patience, self.patience_long) if p is not None) if self.patient else 0
        if self.patient:
            self.act_runner = torch.full((N,), -1.0, dtype=self.dtype, device=dev)
            self.act_since = torch.zeros(N, dtype=torch.long, device=dev)

    def record(self, rows: Tensor, it: int, idx: Tensor, sim: Tensor | None) -> None:
        """Iteration ``it`` decoded ``idx`` (bound similarity ``sim``) for the active ``rows``."""
        if self.keep_best:
            better = sim > self.act_sim
            if self.patient:
                new = (idx != self.act_idx).any(-1)
                # an answer other than the best is a runner-up: the one just decoded, or the best it replaced
                other = torch.where(better, self.act_sim, sim)
                self.act_runner = torch.where(new, torch.maximum(self.act_runner, other), self.act_runner)
                self.act_since = torch.where(better & new, 0, self.act_since + 1)
            self.act_sim = torch.where(better, sim, self.act_sim)
            self.act_idx = torch.where(better[:, None], idx, self.act_idx)
        else:
            if self.patient:
                new = (idx != self.act_idx).any(-1)
                self.act_since = torch.where(new, 0, self.act_since + 1)
                self.act_runner = torch.where(new, torch.maximum(self.act_runner, self.act_sim), self.act_runner)
            self.act_idx = idx
            if sim is not None:
                self.act_sim = sim
        if self.full_every_step or self.traj is not None:
            self.best_idx[rows] = self.act_idx
            self.best_sim[rows] = self.act_sim
            self.iters[rows] = it + 1
        if self.traj is not None:
            self.cur_idx[rows] = idx
            if self.C > 1:
                self.cur_sim[rows] = sim
                self.traj.append(_best_chain(self.cur_idx, self.cur_sim, self.B, self.C)[0])
            else:
                self.traj.append(self.cur_idx.clone())

    def stops(self, rows: Tensor, it: int, fixed: Tensor | None, stalled: Tensor | None) -> Tensor | None:
        """Which active rows stop now (and mark the converged ones); None: none can."""
        stop = None
        if self.threshold is not None:
            solved = self.act_sim >= self.threshold
            self.act_conv = self.act_conv | solved
            stop = self._whole_problems(rows, solved)
        if fixed is not None:
            self.act_conv = self.act_conv | fixed
            stop = fixed if stop is None else stop | fixed
        if stalled is not None:
            stop = stalled if stop is None else stop | stalled
        if self.patient and it + 1 >= self.first_check:
            settled = self._settled(rows)
            stop = settled if stop is None else stop | settled
        if self.accept is not None and self.give_up is not None and it + 1 == self.give_up:
            short = self._short(rows)
            stop = short if stop is None else stop | short
        return stop

    def _short(self, rows: Tensor) -> Tensor:
        """The active rows whose problem's best answer (over its chains still running) is below ``accept``."""
        if self.C == 1:
            return self.act_sim < self.accept[rows]
        P = rows // self.C
        return (self._problem_max(P, self.act_sim, -math.inf) < self.accept)[P]

    def _whole_problems(self, rows: Tensor, rows_done: Tensor) -> Tensor:
        """With chains: every active chain of a problem one of whose chains is done."""
        if self.C == 1:
            return rows_done
        done = torch.zeros(self.B, dtype=torch.bool, device=rows.device)
        done[rows[rows_done] // self.C] = True
        return done[rows // self.C]

    def _settled(self, rows: Tensor) -> Tensor:
        """The active rows whose problem meets the patience rule."""
        if self.C == 1:
            return self._rule(self.act_since, self.act_sim, self.act_sim - self.act_runner)
        # per problem, over its active chains: the leading answer, the best of the chain that has held it
        # longest (a chain that reaches it later says nothing new: the problem's best answer is the same),
        # against the runner-ups of all chains and the other chains' best answers
        P = rows // self.C
        lead = self._problem_max(P, self.act_sim, -math.inf)
        leading = self.act_sim == lead[P]
        first = torch.full((self.B, self.K), -1, dtype=torch.long, device=rows.device)
        first[P[leading]] = self.act_idx[leading]
        same = (self.act_idx == first[P]).all(-1)
        other = torch.where(same, self.act_runner, torch.maximum(self.act_runner, self.act_sim))
        runner = self._problem_max(P, other, -math.inf)
        quiet = self._problem_max(P, torch.where(same, self.act_since, torch.full_like(self.act_since, -1)), -1)
        return self._rule(quiet, lead, lead - runner)[P]

    def _problem_max(self, P: Tensor, values: Tensor, empty: float) -> Tensor:
        """Per problem ``[B]``, the largest of ``values`` over its active rows (``P``: each row's
        problem); ``empty`` for a problem with none."""
        out = torch.full((self.B,), empty, dtype=values.dtype, device=values.device)
        return out.scatter_reduce_(0, P, values, "amax")

    def _rule(self, quiet: Tensor, lead: Tensor, margin: Tensor) -> Tensor:
        ok = torch.zeros_like(margin, dtype=torch.bool)
        if self.patience is not None:
            ok = (quiet >= self.patience) & (margin >= self.margin)
        if self.patience_long is not None:
            ok = ok | (quiet >= self.patience_long)
        return ok & (lead >= self.chance)  # below chance nothing is found yet: the search goes on

    def retire(self, rows: Tensor, stop: Tensor | None, it: int) -> None:
        """Write the compact state of the rows that stop (``stop``; None: all the active rows, at the end)
        to the whole batch's arrays, and keep the others."""
        if stop is None:
            gone = rows
            sl = slice(None)
        else:
            gone = rows[stop]
            sl = stop
        if gone.numel():
            self.best_idx[gone] = self.act_idx[sl]
            self.best_sim[gone] = self.act_sim[sl]
            self.converged[gone] = self.act_conv[sl]
            self.iters[gone] = it + 1
        if stop is not None:
            keep = ~stop
            self.act_idx, self.act_sim, self.act_conv = self.act_idx[keep], self.act_sim[keep], self.act_conv[keep]
            if self.patient:
                self.act_runner, self.act_since = self.act_runner[keep], self.act_since[keep]

    def answer(self) -> tuple[Tensor, Tensor, Tensor]:
        """Per problem: (indices [B, K], iterations [B], converged [B]), the best chain's."""
        if self.C == 1:
            return self.best_idx, self.iters, self.converged
        best_idx, pick = _best_chain(self.best_idx, self.best_sim, self.B, self.C)
        converged = self.converged.view(self.B, self.C).gather(1, pick[:, None]).squeeze(1)
        return best_idx, self.iters.view(self.B, self.C).amax(1), converged

    def trajectory(self) -> Tensor | None:
        return torch.stack(self.traj) if self.traj else None


def _best_chain(idx: Tensor, sim: Tensor, B: int, C: int) -> tuple[Tensor, Tensor]:
    """Per problem, the indices ``[B, K]`` of the chain with the highest similarity, and that chain."""
    pick = sim.view(B, C).argmax(1)
    return idx.view(B, C, -1)[torch.arange(B, device=idx.device), pick], pick
