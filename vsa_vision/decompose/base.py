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
from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from ..checks import check_float, check_int
from ..vsa import Codebooks, LeaveOneOut, bind, check_problem, eps_for, wide_dtype
from .noise import ProblemNoise
from .tracking import Scorer, Tracker

__all__ = ["Capabilities", "Decomposition", "Decomposer", "IterativeDecomposer", "State", "Step", "StepInfo",
           "bound_similarity", "finalize"]


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
    """``|cos(s, c_{1,i_1} * ... * c_{K,i_K})|`` per row: ``s [A, D]``, ``indices [A, K]`` -> ``[A]``
    (accumulated in at least float32, returned in ``s``'s dtype)."""
    wide = wide_dtype(s.dtype)
    prod = bind(*(t.index_select(0, indices[:, k]).to(wide) for k, t in enumerate(codebooks.tensors)))
    s_w = s.to(wide)
    num = (s_w * prod).sum(-1).abs()
    den = s_w.norm(dim=-1) * prod.norm(dim=-1)
    return (num / den.clamp_min(eps_for(wide))).to(s.dtype)


def finalize(
    s: Tensor,
    codebooks: Codebooks,
    indices: Tensor,
    iterations: Tensor,
    converged: Tensor,
    method: str,
    trajectory: Tensor | None = None,
) -> Decomposition:
    """Build a :class:`Decomposition`, computing per-factor confidence and margin from the answer
    (accumulated in at least float32; the float fields in ``s``'s dtype)."""
    wide = wide_dtype(s.dtype)
    tensors = [t.to(wide) for t in codebooks.tensors]
    words = [t.index_select(0, indices[:, k]) for k, t in enumerate(tensors)]
    conf, margin = [], []
    for k, (t, u) in enumerate(zip(tensors, LeaveOneOut.all(words, start=s.to(wide)))):
        sims = (u @ t.T).abs() / (u.norm(dim=-1, keepdim=True).clamp_min(eps_for(wide)) * t.norm(dim=-1))
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
        confidence=torch.stack(conf, -1).to(s.dtype),
        margin=torch.stack(margin, -1).to(s.dtype),
        similarity=sim,
        iterations=iterations,
        converged=converged,
        codebooks=codebooks,
        method=method,
        trajectory=trajectory,
    )


def empty_result(s: Tensor, cb: Codebooks, method: str, trajectory: bool = False) -> Decomposition:
    """The result of a batch of zero problems."""
    dev, K = s.device, cb.num_factors
    traj = torch.zeros(0, 0, K, dtype=torch.long, device=dev) if trajectory else None
    none = torch.zeros(0, dtype=torch.long, device=dev)
    return finalize(s, cb, torch.zeros(0, K, dtype=torch.long, device=dev), none, none.bool(), method, traj)


@dataclass
class State:
    """The per-row state of an iterative method: every field is a tensor (or None) whose first
    dimension is the active rows. Subclasses are dataclasses that name their fields."""

    def select(self, keep: Tensor) -> State:
        """The state of the rows where ``keep`` is True (fields that are not tensors are shared)."""
        return replace(self, **{f.name: v[keep] for f in fields(self)
                                if isinstance(v := getattr(self, f.name), Tensor)})


@dataclass
class Step:
    """What one iteration returns: the new ``state``, the decoded ``indices`` ``[A, K]``, and the
    rows that reached a fixed point (``fixed``, they count as converged) or a limit cycle
    (``stalled``); None where the method has no such test."""

    state: State
    indices: Tensor
    fixed: Tensor | None = None
    stalled: Tensor | None = None
    #: the bound similarity of ``indices`` when the step computed it itself (as the driver's
    #: :class:`~.tracking.Scorer` would, given to the method by :meth:`IterativeDecomposer._scorer`)
    similarity: Tensor | None = None


@dataclass
class StepInfo:
    """What a callback receives after every iteration of an iterative decomposer.

    ``rows`` are the positions in the caller's batch of the problems still active; ``state`` is the
    method's :class:`State` for those rows (its fields are documented by each method); ``indices`` the decoded
    indices ``[A, K]``; ``similarity`` their bound similarity to ``s`` (None when not computed);
    ``best_indices`` / ``best_similarity`` the best answer kept so far for the whole batch.

    With ``chains = C > 1`` the batch is the chain batch: ``rows`` are positions ``b * C + c`` (chain
    ``c`` of problem ``b``), ``best_*`` have ``B * C`` rows, and :attr:`problems` maps ``rows`` to
    the caller's problems."""

    iteration: int
    rows: Tensor
    state: State
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
    - ``record_trajectory``: keep the decoded indices of every iteration in the result;
    - ``patience`` / ``patience_margin``: a problem also stops (not counted as converged) once its
      best answer is above the similarity the best of the search space's answers reaches by chance
      (``sqrt(2 ln(prod_k n_k) / D)``) and has not changed for ``patience`` iterations while leading
      every other answer its chains decoded by at least ``patience_margin``, or for
      ``patience_long`` iterations whatever the margin; None disables each. The rule for real
      encoder outputs, which may never reach ``stop_similarity``: without it they run the whole
      budget for the answer they had long before;
    - ``give_up`` (the methods that take it: diffusion): with ``decompose(..., accept=a)``, a
      problem whose best answer is still below the similarity ``a`` after ``give_up`` iterations
      stops there (not counted as converged): the caller has said it would reject such an answer
      (:func:`~vsa_vision.decompose.decompose_set` passes the bar a decoded object must clear, so a
      residual holding no object stops early); None disables it.

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

    #: the least precise dtype the method iterates in: a problem in a dtype of fewer bits (float16,
    #: bfloat16) is solved in this one and its result returned in its own dtype; None: its own dtype
    compute_dtype: torch.dtype | None = None

    def __init__(
        self,
        iterations: int = 100,
        seed: int = 0,
        keep_best: bool = True,
        stop_similarity: float | None = 0.5,
        sign_invariant: bool = True,
        record_trajectory: bool = False,
        patience: int | None = None,
        patience_margin: float = 0.0,
        patience_long: int | None = None,
        give_up: int | None = None,
    ) -> None:
        self.iterations = check_int("iterations", iterations, 1)
        self.give_up = None if give_up is None else check_int("give_up", give_up, 1)
        self.patience = None if patience is None else check_int("patience", patience, 1)
        self.patience_margin = check_float("patience_margin", patience_margin, 0.0, 1.0)
        self.patience_long = None if patience_long is None else check_int("patience_long", patience_long, 1)
        self.seed = check_int("seed", seed, 0)
        self.keep_best = bool(keep_best)
        self.stop_similarity = check_float("stop_similarity", stop_similarity, 0.0, 1.0, allow_none=True)
        self.sign_invariant = bool(sign_invariant)
        self.record_trajectory = bool(record_trajectory)
        self.chains = 1

    def _set_chains(self, chains: int) -> None:
        self.chains = check_int("chains", chains, 1)
        if self.chains > 1 and not self.capabilities.stochastic:
            raise ValueError(f"chains: {type(self).__name__} is deterministic, so every chain would repeat "
                             f"the first; expected 1, got {chains}")

    def chains_for(self, codebooks: Codebooks) -> int:
        """The chains per problem a call on ``codebooks`` runs (fixed here; a method may choose them
        from the problem shape)."""
        return self.chains

    def _noise(self, s: Tensor, chains: int | None = None) -> ProblemNoise:
        """The per-problem noise of one call (``s`` is the chain batch that ``_setup`` receives, of
        ``chains`` chains a problem: default the fixed ``chains``)."""
        return ProblemNoise(s, self.seed, chains=self.chains if chains is None else chains)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({opts})"

    def options(self) -> dict[str, Any]:
        """The options this decomposer was built with (constructor keyword arguments)."""
        import inspect

        params = inspect.signature(type(self).__init__).parameters
        return {k: getattr(self, k) for k in params if k != "self" and hasattr(self, k)}

    # -- to be implemented -------------------------------------------------------------------

    def _setup(self, s: Tensor, cb: Codebooks) -> Any:
        """Per-call constants (built once, shared by all rows): the method's own context object."""
        return None

    def _init(self, s: Tensor, cb: Codebooks, ctx: Any, rows: Tensor) -> State:
        raise NotImplementedError

    def _scorer(self, ctx: Any, score: Scorer | None) -> None:
        """The driver's scorer of the call (None: no similarity is needed), for a method whose step
        computes the similarity of its answers itself (:attr:`Step.similarity`)."""

    def _step(self, state: State, s: Tensor, cb: Codebooks, ctx: Any, it: int, rows: Tensor) -> Step:
        """One iteration for the active rows."""
        raise NotImplementedError

    # -- the loop ----------------------------------------------------------------------------

    @torch.no_grad()
    def decompose(
        self, s: Tensor, codebooks: Codebooks, callback: Callable[[StepInfo], None] | None = None,
        accept: float | Tensor | None = None,
    ) -> Decomposition:
        """Decode ``s`` ``[B, D]`` (or one ``[D]``); ``callback`` sees every iteration; ``accept`` (a
        number, or one per problem ``[B]``): the bound similarity below which the caller would reject
        an answer, for the ``give_up`` rule (None: no bar)."""
        s_in, cb_in, _ = check_problem(s, codebooks)
        if s_in.shape[0] == 0:
            return empty_result(s_in, cb_in, self.name, self.record_trajectory)
        idx, iters, converged, trajectory = self._search(s_in, cb_in, callback, _accept(accept, s_in))
        return finalize(s_in, cb_in, idx, iters, converged, self.name, trajectory)

    def _search(self, s_in: Tensor, cb_in: Codebooks, callback: Callable[[StepInfo], None] | None,
                accept: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """The iterations on a checked, non-empty batch: (indices ``[B, K]``, iterations ``[B]``,
        converged ``[B]``, trajectory ``[T, B, K]`` or None); ``accept``: the checked bar ``[B]``."""
        s, cb = s_in, cb_in
        work = self.compute_dtype
        if work is not None and torch.finfo(s.dtype).bits < torch.finfo(work).bits:
            s, cb = s.to(work), cb.to(dtype=work)
        C = self.chains_for(cb)
        s_run = s.repeat_interleave(C, 0) if C > 1 else s  # row b * C + c: chain c of problem b
        patient = self.patience is not None or self.patience_long is not None
        gives_up = self.give_up is not None and accept is not None
        need_sim = (self.keep_best or self.stop_similarity is not None or callback is not None or C > 1 or patient
                    or gives_up)
        track = Tracker(s.shape[0], C, cb.num_factors, s.dtype, s.device, self.keep_best, self.record_trajectory,
                         None if self.stop_similarity is None else self.stop_similarity - 1e-5,
                         self.patience, self.patience_margin, self.patience_long,
                         full_every_step=callback is not None,
                         chance=math.sqrt(2 * math.log(max(2, cb.search_space)) / cb.dim),
                         accept=None if accept is None else accept.to(s.dtype), give_up=self.give_up)
        ctx = self._setup(s_run, cb)
        rows = torch.arange(s_run.shape[0], device=s.device)
        s_act = s_run
        score = Scorer(s_run, cb) if need_sim else None
        self._scorer(ctx, score)
        state = self._init(s_act, cb, ctx, rows)
        it = -1
        for it in range(self.iterations):
            step = self._step(state, s_act, cb, ctx, it, rows)
            state = step.state
            sim = step.similarity
            if sim is None and score is not None:
                sim = score(step.indices)
            track.record(rows, it, step.indices, sim)
            if callback is not None:
                callback(StepInfo(it, rows, state, step.indices, sim, track.best_idx, track.best_sim, C))
            stop = track.stops(rows, it, step.fixed, step.stalled)
            if stop is not None and bool(stop.any()):
                keep = ~stop
                track.retire(rows, stop, it)
                rows = rows[keep]
                if rows.numel() == 0:
                    break
                s_act = s_act[keep]
                state = state.select(keep)
                if score is not None:
                    score.select(keep)
        track.retire(rows, None, it)
        bad = need_sim and not bool((track.best_sim >= 0).all())  # |cos| >= 0: a NaN similarity
        if bad or not _finite(state):
            raise FloatingPointError(f"{self.name}: the iteration produced NaN or inf in {s.dtype} (input "
                                     f"{s_in.dtype}); its answer would be garbage. Solve in a wider dtype, "
                                     f"e.g. float32")
        return (*track.answer(), track.trajectory())


def _accept(accept: float | Tensor | None, s: Tensor) -> Tensor | None:
    """The bar of :meth:`IterativeDecomposer.decompose`, checked: ``[B]`` on ``s``'s device, or None."""
    if accept is None:
        return None
    B = s.shape[0]
    if isinstance(accept, Tensor):
        if accept.dim() > 1 or (accept.dim() == 1 and accept.shape[0] != B) or not accept.is_floating_point():
            raise ValueError(f"accept: expected a number or a float tensor [B] with B = {B}, got {accept.dtype} "
                             f"{tuple(accept.shape)}")
        bar = accept.to(device=s.device).expand(B)
    else:
        bar = torch.full((B,), check_float("accept", accept), device=s.device)
    if not bool(torch.isfinite(bar).all()):
        raise ValueError("accept: expected finite similarities, got NaN or inf in the bar")
    return bar


def _finite(state: State) -> bool:
    """Whether every floating field of ``state`` is finite (a NaN state decodes to garbage indices)."""
    return all(bool(torch.isfinite(v).all()) for f in fields(state)
               if isinstance(v := getattr(state, f.name), Tensor) and v.is_floating_point())
