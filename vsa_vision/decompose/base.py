"""The interface every decomposer implements, its result type, and the shared iterative driver.

A decomposer is any object with ``decompose(s, codebooks) -> Decomposition``: ``s`` is ``[B, D]``
(or one vector ``[D]``) on the codebooks' device; the result holds, per problem, the index of the
chosen codeword of every factor.

Iterative methods (resonators, diffusion) subclass :class:`IterativeDecomposer`, which owns what
they share: validation, the loop over iterations, the sign-invariant readout, the best answer kept
across iterations (by similarity of its bound codewords to ``s``), the per-problem early stop, and
removing finished problems from the active batch so that easy batches end early.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from ..vsa import Codebooks, check_problem
from .noise import ProblemNoise

__all__ = ["Capabilities", "Decomposition", "Decomposer", "IterativeDecomposer", "StepInfo", "finalize"]


@dataclass
class Decomposition:
    """The answer of a decomposer for a batch of B problems over K factors.

    - ``indices`` ``[B, K]`` long: the chosen codeword of each factor;
    - ``confidence`` ``[B, K]``: per-factor similarity, the absolute cosine between the factor's
      unbinding estimate (``s`` unbound by the chosen codewords of the other factors) and its chosen
      codeword. With bipolar codebooks every column equals ``similarity``: the answer is judged as a
      whole, which is what decides whether it explains ``s``;
    - ``margin`` ``[B, K]``: that similarity minus the best similarity of any *other* value of the
      same factor under the same unbinding: near 0 means factor k is ambiguous, negative means a
      better value exists for factor k given the others;
    - ``similarity`` ``[B]``: absolute cosine between ``s`` and the bound vector of ``indices``
      (1 for an exact answer to an exact target);
    - ``iterations`` ``[B]`` long: iterations used per problem (1 for exhaustive search);
    - ``converged`` ``[B]`` bool: the method stopped by its own criterion (a fixed point, or the
      answer's similarity passed the stop threshold) rather than by running out of budget;
    - ``trajectory`` ``[T, B, K]`` or None: the decoded indices after every iteration, when asked.
    """

    indices: Tensor
    confidence: Tensor
    margin: Tensor
    similarity: Tensor
    iterations: Tensor
    converged: Tensor
    codebooks: Codebooks = field(repr=False)
    method: str = ""
    trajectory: Tensor | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.indices.shape[0]

    @property
    def labels(self) -> list[dict[str, str]]:
        """``[{factor: value label}]``, one mapping per problem."""
        return self.codebooks.labels_of(self.indices)

    def accuracy(self, truth: Tensor) -> tuple[float, float]:
        """(fraction of problems with every factor right, fraction of factors right)."""
        truth = self.codebooks.check_indices(truth, "truth").to(self.indices.device)
        if truth.shape != self.indices.shape:
            raise ValueError(f"truth: expected shape {tuple(self.indices.shape)}, got {tuple(truth.shape)}")
        hit = truth == self.indices
        return float(hit.all(-1).float().mean()), float(hit.float().mean())

    def to(self, device: torch.device | str) -> Decomposition:
        def mv(t):
            return None if t is None else t.to(device)

        return Decomposition(
            mv(self.indices), mv(self.confidence), mv(self.margin), mv(self.similarity),
            mv(self.iterations), mv(self.converged), self.codebooks.to(device), self.method,
            mv(self.trajectory),
        )


@dataclass(frozen=True)
class Capabilities:
    """What a decomposer can do, declared by its class (``capabilities``) so that benches, the CLI and
    tests ask it instead of testing names:

    - ``iterative``: runs an iteration budget (False: one exhaustive pass);
    - ``stochastic``: its answer depends on random draws, so ``chains`` of it fail apart;
    - ``early_stop``: takes ``stop_similarity`` (stops a problem once explained);
    - ``chains``: takes ``chains=`` (independent chains per problem);
    - ``adaptive``: chooses some options per problem shape (has ``settings(codebooks)``);
    - ``equal_sizes``: needs every factor to have the same number of values;
    - ``exhaustive``: exact search over all combinations (cost ``prod_k n_k * D`` a problem);
    - ``peer``: a reference implementation from an optional package, not the project's own code."""

    iterative: bool = True
    stochastic: bool = False
    early_stop: bool = True
    chains: bool = False
    adaptive: bool = False
    equal_sizes: bool = False
    exhaustive: bool = False
    peer: bool = False


@runtime_checkable
class Decomposer(Protocol):
    """Anything with ``decompose(s, codebooks) -> Decomposition``, batched over the leading dim."""

    def decompose(self, s: Tensor, codebooks: Codebooks) -> Decomposition: ...


# ----------------------------------------------------------------------------------------------
# shared pieces
# ----------------------------------------------------------------------------------------------


def bound_similarity(s: Tensor, codebooks: Codebooks, indices: Tensor) -> Tensor:
    """``|cos(s, c_{1,i_1} * ... * c_{K,i_K})|`` per row: ``s [A, D]``, ``indices [A, K]`` -> ``[A]``."""
    prod = None
    for k, t in enumerate(codebooks.tensors):
        c = t.index_select(0, indices[:, k])
        prod = c if prod is None else prod * c
    num = (s * prod).sum(-1).abs()
    den = s.norm(dim=-1) * prod.norm(dim=-1)
    return num / den.clamp_min(1e-12)


def finalize(
    s: Tensor,
    codebooks: Codebooks,
    indices: Tensor,
    iterations: Tensor,
    converged: Tensor,
    method: str,
    trajectory: Tensor | None = None,
) -> Decomposition:
    """Build a :class:`Decomposition`, computing per-factor confidence and margin from the answer."""
    words = [t.index_select(0, indices[:, k]) for k, t in enumerate(codebooks.tensors)]
    conf, margin = [], []
    for k, t in enumerate(codebooks.tensors):
        u = s
        for j, w in enumerate(words):
            if j != k:
                u = u * w
        sims = (u @ t.T).abs() / (u.norm(dim=-1, keepdim=True).clamp_min(1e-12) * t.norm(dim=-1))
        chosen = sims.gather(1, indices[:, k : k + 1]).squeeze(1)
        if t.shape[0] > 1:
            others = sims.scatter(1, indices[:, k : k + 1], -math.inf).max(dim=1).values
        else:
            others = torch.zeros_like(chosen)
        conf.append(chosen)
        margin.append(chosen - others)
    sim = bound_similarity(s, codebooks, indices)
    return Decomposition(
        indices=indices,
        confidence=torch.stack(conf, -1),
        margin=torch.stack(margin, -1),
        similarity=sim,
        iterations=iterations,
        converged=converged,
        codebooks=codebooks,
        method=method,
        trajectory=trajectory,
    )


def sign_invariant_argmax(scores: Tensor, sign_invariant: bool = True) -> Tensor:
    return (scores.abs() if sign_invariant else scores).argmax(dim=-1)


@dataclass
class StepInfo:
    """What a callback receives after every iteration of an iterative decomposer.

    ``rows`` are the positions in the caller's batch of the problems still active; ``state`` is the
    method's state for those rows (its keys are documented by each method); ``indices`` the decoded
    indices ``[A, K]``; ``similarity`` their bound similarity to ``s`` (None when not computed);
    ``best_indices`` / ``best_similarity`` the best answer kept so far for the whole batch.

    With ``chains = C > 1`` the batch is the chain batch: ``rows`` are positions ``b * C + c`` (chain
    ``c`` of problem ``b``), ``best_*`` have ``B * C`` rows, and :attr:`problems` maps ``rows`` to
    the caller's problems."""

    iteration: int
    rows: Tensor
    state: dict[str, Any]
    indices: Tensor
    similarity: Tensor | None
    best_indices: Tensor
    best_similarity: Tensor
    chains: int = 1

    @property
    def problems(self) -> Tensor:
        """The position in the caller's batch of the problem of every active row."""
        return self.rows // self.chains


# ----------------------------------------------------------------------------------------------
# the iterative driver
# ----------------------------------------------------------------------------------------------


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return value


def _check_float(name: str, value: Any, lo: float | None = None, hi: float | None = None,
                 allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        raise ValueError(f"{name}: expected a finite number in {rng}, got {value}")
    return value


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)}, got {value!r}")
    return value


class IterativeDecomposer:
    """Base of the iterative methods. Subclasses implement ``_init`` and ``_step``.

    Common options (every iterative method takes them):

    - ``iterations``: the budget; one iteration updates every factor once;
    - ``seed``: seeds every random draw (noise is a function of the seed, the problem and the
      iteration, never of the batch: see :mod:`vsa_vision.decompose.noise`);
    - ``keep_best``: return the best answer seen in any iteration, by the similarity of its bound
      codewords to ``s`` (default True), rather than the answer decoded at the last iteration;
    - ``stop_similarity``: a problem stops (and counts as converged) once that similarity reaches
      this value; 1.0 means only an exact explanation of a noiseless target; None disables it;
    - ``sign_invariant``: decode each factor by the largest *absolute* similarity (default True);
    - ``record_trajectory``: keep the decoded indices of every iteration in the result.

    Stochastic methods (``capabilities.stochastic``: the stochastic resonator, diffusion) also take
    ``chains``: each problem is solved by that many independent chains at once (their own noise;
    chain 0 draws the noise of ``chains = 1``), which stop together as soon as one of them reaches
    ``stop_similarity``; the answer is the best of the chains by similarity to ``s``. An iteration
    then costs ``chains`` times the work of one chain, run as one batch. With ``chains > 1`` the
    callback sees the chain batch (row ``b * chains + c`` is chain ``c`` of problem ``b``), the
    trajectory holds after every iteration the decoded answer of the chain most similar to ``s``,
    and ``iterations`` counts the iterations of the chains (not their sum).
    """

    capabilities = Capabilities()

    name = "iterative"

    def __init__(
        self,
        iterations: int = 100,
        seed: int = 0,
        keep_best: bool = True,
        stop_similarity: float | None = 0.5,
        sign_invariant: bool = True,
        record_trajectory: bool = False,
    ) -> None:
        self.iterations = _check_int("iterations", iterations, 1)
        self.seed = _check_int("seed", seed, 0)
        self.keep_best = bool(keep_best)
        self.stop_similarity = _check_float("stop_similarity", stop_similarity, 0.0, 1.0, allow_none=True)
        self.sign_invariant = bool(sign_invariant)
        self.record_trajectory = bool(record_trajectory)
        self.chains = 1

    def _set_chains(self, chains: int) -> None:
        self.chains = _check_int("chains", chains, 1)
        if self.chains > 1 and not self.capabilities.stochastic:
            raise ValueError(f"chains: {type(self).__name__} is deterministic, so every chain would repeat "
                             f"the first; expected 1, got {chains}")

    def _noise(self, s: Tensor) -> ProblemNoise:
        """The per-problem noise of one call (``s`` is the chain batch that ``_setup`` receives)."""
        return ProblemNoise(s, self.seed, chains=self.chains)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({opts})"

    def options(self) -> dict[str, Any]:
        """The options this decomposer was built with (constructor keyword arguments)."""
        import inspect

        params = inspect.signature(type(self).__init__).parameters
        return {k: getattr(self, k) for k in params if k != "self" and hasattr(self, k)}

    # -- to be implemented -------------------------------------------------------------------

    def _setup(self, s: Tensor, cb: Codebooks) -> dict[str, Any]:
        """Per-call constants (built once, shared by all rows)."""
        return {}

    def _init(self, s: Tensor, cb: Codebooks, ctx: dict[str, Any], rows: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def _step(
        self, state: dict[str, Tensor], s: Tensor, cb: Codebooks, ctx: dict[str, Any], it: int, rows: Tensor
    ) -> tuple[dict[str, Tensor], Tensor, Tensor | None, Tensor | None]:
        """One iteration for the active rows. Returns (new state, decoded indices [A, K],
        fixed-point mask [A] or None, limit-cycle mask [A] or None)."""
        raise NotImplementedError

    # -- the loop ----------------------------------------------------------------------------

    @torch.no_grad()
    def decompose(
        self, s: Tensor, codebooks: Codebooks, callback: Callable[[StepInfo], None] | None = None
    ) -> Decomposition:
        s, cb, _ = check_problem(s, codebooks)
        B, K, C = s.shape[0], cb.num_factors, self.chains
        dev = s.device
        if B == 0:
            empty = torch.zeros(0, K, dtype=torch.long, device=dev)
            traj0 = torch.zeros(0, 0, K, dtype=torch.long, device=dev) if self.record_trajectory else None
            return finalize(s, cb, empty, torch.zeros(0, dtype=torch.long, device=dev),
                            torch.zeros(0, dtype=torch.bool, device=dev), self.name, traj0)
        s_run = s.repeat_interleave(C, 0) if C > 1 else s  # row b * C + c: chain c of problem b
        N = s_run.shape[0]
        best_idx = torch.zeros(N, K, dtype=torch.long, device=dev)
        best_sim = torch.full((N,), -1.0, dtype=s.dtype, device=dev)
        iters = torch.zeros(N, dtype=torch.long, device=dev)
        converged = torch.zeros(N, dtype=torch.bool, device=dev)
        traj = [] if self.record_trajectory else None
        cur_idx = torch.zeros(N, K, dtype=torch.long, device=dev)
        cur_sim = torch.full((N,), -1.0, dtype=s.dtype, device=dev)
        ctx = self._setup(s_run, cb)
        rows = torch.arange(N, device=dev)
        s_act = s_run
        state = self._init(s_act, cb, ctx, rows)
        need_sim = self.keep_best or self.stop_similarity is not None or callback is not None or C > 1
        thr = None if self.stop_similarity is None else self.stop_similarity - 1e-5
        for it in range(self.iterations):
            state, idx, fixed, stalled = self._step(state, s_act, cb, ctx, it, rows)
            iters[rows] = it + 1
            sim = bound_similarity(s_act, cb, idx) if need_sim else None
            if self.keep_best:
                better = sim > best_sim[rows]
                best_sim[rows] = torch.where(better, sim, best_sim[rows])
                best_idx[rows] = torch.where(better[:, None], idx, best_idx[rows])
            else:
                best_idx[rows] = idx
                if sim is not None:
                    best_sim[rows] = sim
            if traj is not None:
                cur_idx[rows] = idx
                if C > 1:
                    cur_sim[rows] = sim
                    traj.append(_best_chain(cur_idx, cur_sim, B, C)[0])
                else:
                    traj.append(cur_idx.clone())
            if callback is not None:
                callback(StepInfo(it, rows, state, idx, sim, best_idx, best_sim, C))
            stop = torch.zeros(rows.shape[0], dtype=torch.bool, device=dev)
            if thr is not None:
                solved = best_sim[rows] >= thr
                converged[rows] |= solved
                if C > 1:  # one chain explains s: its problem's other chains stop too
                    done = torch.zeros(B, dtype=torch.bool, device=dev)
                    done[rows[solved] // C] = True
                    solved = done[rows // C]
                stop |= solved
            if fixed is not None:
                converged[rows] |= fixed
                stop |= fixed
            if stalled is not None:
                stop |= stalled
            if bool(stop.any()):
                keep = ~stop
                rows = rows[keep]
                if rows.numel() == 0:
                    break
                s_act = s_act[keep]
                # the state holds per-row tensors only (per-call constants live in ctx)
                state = {k: v[keep] for k, v in state.items()}
        trajectory = torch.stack(traj) if traj else None
        if C > 1:
            best_idx, pick = _best_chain(best_idx, best_sim, B, C)
            converged = converged.view(B, C).gather(1, pick[:, None]).squeeze(1)
            iters = iters.view(B, C).amax(1)
        return finalize(s, cb, best_idx, iters, converged, self.name, trajectory)


def _best_chain(idx: Tensor, sim: Tensor, B: int, C: int) -> tuple[Tensor, Tensor]:
    """Per problem, the indices ``[B, K]`` of the chain with the highest similarity, and that chain."""
    pick = sim.view(B, C).argmax(1)
    return idx.view(B, C, -1)[torch.arange(B, device=idx.device), pick], pick
