"""Resonator networks: the baselines the diffusion decomposer must beat.

All three share one iteration (Frady, Kent, Olshausen & Sommer 2020): for each factor k,

    u_k = s * prod_{j != k} x_j          # unbind the current estimates of the other factors
    a_k = similarities of u_k to the codewords of factor k                     [n_k]
    x_k = cleanup(a_k) projected back:  X_k^T f(a_k)                           [D]

and differ in the cleanup ``f``:

- :class:`Resonator` (``"resonator"``): the classic network, ``x_k = sign(X_k^T X_k u_k)`` (outer-
  product weights, sgn(0) = +1); initialised to the sign of the codebook superposition; a problem
  stops at a fixed point, and at a limit cycle (a state seen before), where a deterministic network
  would only repeat itself;
- :class:`AttentionResonator` (``"attention_resonator"``): ``x_k = X_k^T softmax(beta a_k)``, the
  modern-Hopfield cleanup, with an optional annealed ``beta`` and a sign-symmetric variant
  (weights ``sinh(beta a) / sum cosh(beta a)``);
- :class:`StochasticResonator` (``"stochastic_resonator"``): the in-memory-factorizer update of
  Langenegger et al. (2023): Gaussian noise added to the normalised similarities, a sparse threshold
  activation (entries with ``|a| < threshold`` set to 0), then ``sign(X_k^T a)``.

``update="sequential"`` updates the factors in turn, each using the newest estimates of the others;
``update="sync"`` updates all from the previous iteration's estimates. Every factor is read out from
its similarity vector ``a_k`` by the largest absolute value (sign-invariant readout) unless
``sign_invariant=False``.

Batch invariance: the similarities ``X_k u_k`` are exact when ``s`` is integer-valued (bipolar
targets, sign-flipped or not: then every sum is an exact integer in any order); otherwise they are
summed in float64 and rounded to the working dtype (:func:`~vsa_vision.vsa.rowwise_matmul`), so
that a row's similarities do not depend on the batch, except with a probability of about 2**-29
(times the sum's condition number) a similarity. The cleanup products are exact (integers in at
least float32), and the noise is keyed by the problem (:mod:`~vsa_vision.decompose.noise`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..checks import check_choice, check_float, check_int
from ..vsa import Codebooks, LeaveOneOut, eps_for, is_exact_integer, rowwise_matmul, sign, wide_dtype
from .base import Capabilities, IterativeDecomposer, State, Step

__all__ = ["Resonator", "AttentionResonator", "StochasticResonator", "symmetric_softmax"]

_MASK31 = 0x7FFFFFFF


def symmetric_softmax(logits: Tensor) -> Tensor:
    """``sinh(l_i) / sum_j cosh(l_j)`` along the last dim, computed stably.

    The posterior weights of a prior with atoms at ``+c_i`` and ``-c_i``: the weight of ``+c_i``
    minus that of ``-c_i``, read off one softmax over the 2n atoms (one fused, max-shifted kernel)."""
    n = logits.shape[-1]
    p = torch.softmax(torch.cat([logits, -logits], dim=-1), dim=-1)
    return p[..., :n] - p[..., n:]


@dataclass
class ResonatorState(State):
    """``x`` ``[A, K, D]``: the estimates of every factor (bipolar for the classic and stochastic
    resonators, real for the attention resonator); ``history`` ``[A, W]``: fingerprints of the last
    ``W`` states (the classic resonator's limit-cycle test), else None."""

    x: Tensor
    history: Tensor | None = None


@dataclass
class _Context:
    """Per call: ``integer`` (``s`` is integer-valued and small enough that sums of D of its entries
    are exact in its dtype), the fingerprint ``weights`` of the classic resonator's cycle test, the
    stochastic resonator's ``noise``."""

    integer: bool = False
    weights: Tensor | None = None
    noise: Any = field(default=None)


def _exact_sign_product(q: Tensor, X: Tensor) -> Tensor:
    """``sign(q @ X)`` for integer-valued ``q``, summed in at least float32 (exact below 2**24, so in
    any order: the same bits alone or in any batch), in ``X``'s dtype."""
    wide = wide_dtype(X.dtype)
    return sign(q.to(wide) @ X.to(wide)).to(X.dtype)


class _ResonatorBase(IterativeDecomposer):
    """Shared loop of the three resonators; subclasses define the cleanup."""

    #: the state is bipolar (+-1), which allows the product-of-all trick and exact fixed points
    binary = True

    def __init__(self, iterations: int = 100, seed: int = 0, update: str = "sequential",
                 keep_best: bool = True, stop_similarity: float | None = 0.5,
                 sign_invariant: bool = True, record_trajectory: bool = False) -> None:
        super().__init__(iterations, seed, keep_best, stop_similarity, sign_invariant, record_trajectory)
        self.update = check_choice("update", update, ("sequential", "sync"))

    # -- pieces for subclasses ---------------------------------------------------------------

    def _initial(self, X: Tensor) -> Tensor:
        """The initial estimate of a factor: its codebook superposition."""
        return sign(X.sum(0)) if self.binary else X.mean(0)

    def _setup(self, s: Tensor, cb: Codebooks) -> _Context:
        return _Context(integer=is_exact_integer(s, cb.dim))

    def _similarities(self, u: Tensor, X: Tensor, ctx: _Context) -> Tensor:
        if ctx.integer:  # bipolar estimates: u is integer-valued and the product exact
            return (u @ X.T) / X.shape[1]
        return ((u.double() @ X.T.double()) / X.shape[1]).to(u.dtype)

    def _cleanup(self, a: Tensor, X: Tensor, k: int, it: int, rows: Tensor, ctx: Any) -> Tensor:
        raise NotImplementedError

    def _status(self, old: Tensor, state: ResonatorState, ctx: Any, it: int) -> Step:
        return Step(state, None)

    # -- the iteration -----------------------------------------------------------------------

    def _init(self, s: Tensor, cb: Codebooks, ctx: Any, rows: Tensor) -> ResonatorState:
        x0 = torch.stack([self._initial(X) for X in cb.tensors])  # [K, D]
        return ResonatorState(x0.unsqueeze(0).expand(s.shape[0], -1, -1).contiguous())

    def _step(self, state, s, cb, ctx, it, rows):
        old = state.x
        xs = list(old.unbind(1))
        scores, new = [], []
        loo = LeaveOneOut(xs, start=s)  # u_k = s * prod_{j != k} x_j, newest x_j first when sequential
        for k, X in enumerate(cb.tensors):
            a = self._similarities(loo.others(k), X, ctx)
            xk = self._cleanup(a, X, k, it, rows, ctx)
            scores.append(a)
            new.append(xk)
            loo.advance(xk if self.update == "sequential" else xs[k])
        step = self._status(old, ResonatorState(torch.stack(new, 1), state.history), ctx, it)
        step.indices = torch.stack([(a.abs() if self.sign_invariant else a).argmax(-1) for a in scores], -1)
        return step


class Resonator(_ResonatorBase):
    """The classic resonator network. ``get_decomposer("resonator", update="sequential")``.

    Options beyond the common ones: ``update`` (``"sequential"`` or ``"sync"``), ``detect_cycles``
    (stop a problem whose state repeats one of the last ``cycle_window`` states; default True).

    State (for callbacks): :class:`ResonatorState`, bipolar ``x``."""

    name = "resonator"
    binary = True

    def __init__(self, iterations: int = 100, seed: int = 0, update: str = "sequential",
                 keep_best: bool = True, stop_similarity: float | None = 0.5,
                 sign_invariant: bool = True, detect_cycles: bool = True, cycle_window: int = 1024,
                 record_trajectory: bool = False) -> None:
        super().__init__(iterations, seed, update, keep_best, stop_similarity, sign_invariant,
                         record_trajectory)
        self.detect_cycles = bool(detect_cycles)
        self.cycle_window = check_int("cycle_window", cycle_window, 1)

    def _setup(self, s, cb):
        """The context, with the weights of the state fingerprint (None without cycle detection)."""
        ctx = super()._setup(s, cb)
        if self.detect_cycles:
            gen = torch.Generator().manual_seed(0)
            w = torch.randint(1, _MASK31, (cb.num_factors, cb.dim), generator=gen, dtype=torch.int64)
            ctx.weights = w.to(s.device)
        return ctx

    def _init(self, s, cb, ctx, rows):
        state = super()._init(s, cb, ctx, rows)
        if self.detect_cycles:
            W = min(self.cycle_window, self.iterations)
            state.history = torch.full((s.shape[0], W), -1, dtype=torch.int64, device=s.device)
        return state

    def _cleanup(self, a, X, k, it, rows, ctx):
        # a * D is the integer inner product X u: the product below is then exact, so sgn(0) = +1
        # is applied to true zeros whatever the summation order (batched == one at a time)
        return _exact_sign_product(torch.round(a * X.shape[1]), X)

    def _status(self, old, state, ctx, it):
        fixed = (old == state.x).flatten(1).all(1)
        if not self.detect_cycles:
            return Step(state, None, fixed)
        # exact integer fingerprint of the bipolar state, independent of reduction order
        fp = ((state.x > 0).to(torch.int64) * ctx.weights).sum((1, 2)) & ((1 << 62) - 1)
        stalled = (state.history == fp[:, None]).any(1) & ~fixed
        hist = state.history.clone()
        hist[:, it % hist.shape[1]] = fp
        state.history = hist
        return Step(state, None, fixed, stalled)


class AttentionResonator(_ResonatorBase):
    """Resonator with softmax (modern-Hopfield) cleanup. ``get_decomposer("attention_resonator")``.

    ``x_k <- X_k^T softmax(beta * a_k)`` where ``a_k`` is the similarity of the unbinding estimate
    to the codewords: ``similarity="cosine"`` (default, scale-free) or ``"dot"`` (``X_k u_k / D``,
    the form in which one diffusion step equals one attention step with ``beta / D = alpha /
    sigma^2``). ``beta_end`` anneals beta linearly from ``beta`` to ``beta_end`` over the budget.
    ``sign_symmetric=True`` uses the weights ``sinh / sum cosh`` of a prior with atoms at +-codewords.

    State: :class:`ResonatorState`, real-valued ``x``."""

    name = "attention_resonator"
    binary = False

    def __init__(self, iterations: int = 100, seed: int = 0, beta: float = 5.0,
                 beta_end: float | None = None, similarity: str = "cosine", sign_symmetric: bool = True,
                 update: str = "sequential", keep_best: bool = True, stop_similarity: float | None = 0.5,
                 sign_invariant: bool = True, tolerance: float = 1e-6,
                 record_trajectory: bool = False) -> None:
        super().__init__(iterations, seed, update, keep_best, stop_similarity, sign_invariant,
                         record_trajectory)
        self.beta = check_float("beta", beta, 0.0)
        self.beta_end = check_float("beta_end", beta_end, 0.0, allow_none=True)
        self.similarity = check_choice("similarity", similarity, ("cosine", "dot"))
        self.sign_symmetric = bool(sign_symmetric)
        self.tolerance = check_float("tolerance", tolerance, 0.0)

    def beta_at(self, it: int) -> float:
        if self.beta_end is None or self.iterations == 1:
            return self.beta
        return self.beta + (self.beta_end - self.beta) * it / (self.iterations - 1)

    def _similarities(self, u, X, ctx):
        # real estimates: the product is not exact; on a real-valued target it is summed in float64
        # (batch-invariant), on an integer-valued one in the dtype, as it always was
        sims = u @ X.T if ctx.integer else rowwise_matmul(u, X.T)
        if self.similarity == "dot":
            return sims / X.shape[1]
        return sims / (u.norm(dim=-1, keepdim=True).clamp_min(eps_for(u.dtype)) * X.shape[1] ** 0.5)

    def attention(self, a: Tensor, beta: float) -> Tensor:
        """The cleanup weights of similarities ``a`` at inverse temperature ``beta``."""
        logits = beta * a
        return symmetric_softmax(logits) if self.sign_symmetric else torch.softmax(logits, dim=-1)

    def _cleanup(self, a, X, k, it, rows, ctx):
        w = self.attention(a, self.beta_at(it))
        return w @ X if ctx.integer else rowwise_matmul(w, X)

    def _status(self, old, state, ctx, it):
        return Step(state, None, (old - state.x).abs().flatten(1).amax(1) <= self.tolerance)


class StochasticResonator(_ResonatorBase):
    """The in-memory-factorizer resonator (Langenegger et al., Nature Nanotechnology 2023).

    ``a_k = X_k u_k / D + noise * N(0, 1)``; entries with ``|a_k| < threshold`` are zeroed (if none
    is left the noisy vector is used whole); ``x_k = sign(X_k^T a_k)``. The noise breaks the limit
    cycles of the classic network; the threshold keeps the update sparse. Stops by the common
    similarity criterion (``stop_similarity``). Readout uses the noiseless similarities. ``chains``:
    independent chains per problem (see :class:`IterativeDecomposer`), 1 by default.

    State: :class:`ResonatorState`, bipolar ``x``."""

    name = "stochastic_resonator"
    binary = True
    capabilities = Capabilities(stochastic=True, chains=True)

    def __init__(self, iterations: int = 100, seed: int = 0, noise: float = 0.02, threshold: float = 0.045,
                 update: str = "sequential", keep_best: bool = True, stop_similarity: float | None = 0.5,
                 sign_invariant: bool = True, record_trajectory: bool = False, chains: int = 1) -> None:
        super().__init__(iterations, seed, update, keep_best, stop_similarity, sign_invariant,
                         record_trajectory)
        self._set_chains(chains)
        self.noise = check_float("noise", noise, 0.0)
        self.threshold = check_float("threshold", threshold, 0.0)
        if self.noise == 0 and self.chains > 1:
            raise ValueError(f"chains: with noise=0 the stochastic resonator is deterministic, so every chain "
                             f"would repeat the first; expected 1, got {chains}")

    def _setup(self, s, cb):
        """The context, with the per-problem noise of the call (None without noise)."""
        ctx = super()._setup(s, cb)
        ctx.noise = self._noise(s) if self.noise > 0 else None
        return ctx

    def _cleanup(self, a, X, k, it, rows, ctx):
        if self.noise > 0:
            a = a + self.noise * ctx.noise.normal(rows, it, k, a.shape[1])
        if self.threshold > 0:
            keep = a.abs() >= self.threshold
            none = ~keep.any(-1, keepdim=True)
            a = torch.where(keep | none, a, torch.zeros_like(a))
        # quantised to 1/4096 (far below the noise) so that the product is exact in floating point
        # and its sign does not depend on summation order (batched == one at a time)
        return _exact_sign_product(torch.round(a * 4096), X)
