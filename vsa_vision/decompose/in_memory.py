"""The in-memory factorizer with asymmetric codebooks: ``get_decomposer("in_memory_factorizer")``.

Our own code, written from the papers and from the authors' repository and its configurations:

- J. Langenegger, G. Karunaratne, M. Hersche, L. Benini, A. Sebastian, A. Rahimi, "In-memory
  factorization of holographic perceptual representations", Nature Nanotechnology 18, 479-485
  (2023): sequential decoding, a sparse threshold activation, the crossbar's noise, convergence
  detection;
- G. Karunaratne, M. Hersche, A. Sebastian, A. Rahimi, "On the role of noise in factorizers for
  disentangling distributed representations", NeurIPS 2024 workshop MLNCP: the asymmetric codebooks
  that replace the noise of the iterations by a fixed perturbation made once;
- github.com/IBM/in-memory-factorizer (commit a353f1e): ``models/densebipolarbatched.py`` (the
  model; lines cited as ``dbb:L``), ``main_capacity.py`` (the iteration cap and the scoring,
  ``mc:L``), ``experiments/300a_assymetric_cb/`` (the configurations and ``f3_optimum.csv``, the
  published table at d = 1500, three factors: :data:`PUBLISHED`).

The iteration (dbb:L380-473), for each factor k in turn (sequential: the others' newest estimates),
with ``X_k`` the given codebook (the one the targets are bound from, the repository's ``_readout``,
which is its item memory ``_IM``) and ``P_k`` the projection codebook (its ``_reconstruction``):

    u_k = s * prod_{j != k} x_j                   unbind                                   dbb:L387-397
    a_k = X_k u_k / D                             similarity read-out                      dbb:L409-412
    a_k += noise * N(0, 1)                        optional: the crossbar's noise, Gaussian  dbb:L422
    h_k = a_k * [a_k >= threshold]                sparse activation; negatives are dropped  dbb:L600
          (keeping at most the top_a largest with ``top_a``)                               dbb:L546-582
    h_k += 0.001 * N(0, 1)                        only with noise, as the repository does   dbb:L440
    x_k = sign(P_k^T h_k), sgn(0) = +1            projection                                dbb:L455-456
    converged_k = max_i a_k,i > detect_threshold                                            dbb:L463

and a problem stops, converged, after the first iteration in which any factor is converged
(dbb:L469); the answer is then ``argmax_i a_k,i`` of that iteration per factor (dbb:L674 takes the
largest |activation|, and the activation holds only the positive similarities: the same index
wherever one passes the threshold). The signed read-out is the default (``sign_invariant=False``):
the activation drops negative similarities, so the iteration settles where they are positive, and a
large negative similarity of another codeword is not an answer (``sign_invariant=True`` takes it).
If no similarity passes the threshold, ``h_k = 0`` and ``x_k`` is all +1, as in the repository (its
fall-back to the dense similarities is commented out, dbb:L610-611). The start is the sign of each
projection codebook's superposition, ties broken by rank for an even number of values (dbb:L192-202,
computed before the perturbation, i.e. from ``_reconstruction``).

**Asymmetric codebooks** (dbb:L279-294). The repository draws bipolar codebooks, keeps a copy for
the projection (``_reconstruction``), then replaces a fraction g0 (``G0_noise_std_rel``) of the
entries of the item memory, exactly ``int(g0 n D)`` at random positions, by ``1 - x`` (+1 becomes
0, -1 becomes 2: the operation is not a sign flip); that perturbed memory both encodes the targets
(mc:L179, dbb:L334) and reads the similarities. So the codebook that made ``s`` is the one read,
and the projection codebook differs from it by ``P = 1 - X`` at those positions (the map is its own
inverse): here :meth:`InMemoryFactorizer.projection_codebooks`, with ``flip_fraction`` = g0.
``flip_pattern="rolled"`` draws the positions for factor 0 and rolls them by k along D for factor
k, the repository's ``permutation=True`` (whose codebooks are rolled copies of factor 0's);
``"independent"`` draws them per factor (``permutation=False``). Handing this decomposer the
repository's perturbed item memory therefore reproduces its arithmetic exactly (a test transcribes
its loop; ``bench.capacity.reproduce_imf`` runs its experiment). With bipolar codebooks the same
rule gives a projection codebook with entries 0 and 2 (measured worse: see the benchmark).

**Defaults** are the published configuration: ``iterations=None`` is the repository's cap
``int(n^(K-1) / K * iteration_factor)`` (mc:L125; n the geometric mean of the sizes when they
differ); ``threshold=None`` and ``flip_fraction=None`` take the row of :data:`PUBLISHED` whose
search space is nearest (log scale) to the problem's (:func:`published_settings`; tuned at D = 1500
and three factors, used as they are elsewhere). ``noise=0``: the published asymmetric runs switch the
iteration noise off (``noisyAttn: false``); ``noise="auto"`` is the repository's Gaussian model of
the crossbar, its standard deviation interpolated in D (dbb:L257-260). The phase-change-memory
conductance model (``pcm_noise_model.py``: programming noise, drift, read noise of a crossbar shared
by the batch) is not modelled. ``top_a`` is off: with an explicit threshold the repository's
``topaPT`` activation ignores ``topa`` (it derives a threshold from it only when none is given).

Unlike the other iterative methods the defaults keep the last answer (``keep_best=False``, as the
repository), read out signed similarities (``sign_invariant=False``) and stop by the repository's
convergence detection, not by the bound similarity (``stop_similarity=None``); both common criteria
remain available.

Batch invariance: a row's arithmetic does not depend on the batch. For an integer-valued target
(bipolar, or bound from perturbed codebooks) the read-out is an exact integer product; the activations
are rounded to a grid (1/D without noise, 1/4096 with it) and projected exactly; the noise is keyed
by the problem (:mod:`~vsa_vision.decompose.noise`); the perturbation depends on the seed and the
codebook shapes only. A real-valued target's read-out is summed in float64 (as the resonators do).
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..checks import check_choice, check_float, check_int
from ..vsa import Codebooks, LeaveOneOut, check_problem, is_exact_integer, rowwise_matmul, sign, wide_dtype
from .base import Capabilities, Decomposition, IterativeDecomposer, State, Step, StepInfo

__all__ = ["InMemoryFactorizer", "PUBLISHED", "published_settings", "iteration_cap", "auto_noise"]

#: ``experiments/300a_assymetric_cb/f3_optimum.csv`` (d = 1500, three factors, 5,120 problems a row,
#: seed 40): codebook size n (``M.fixed``; the csv's ``ss_id`` labels the row with (n + 1)^3, the
#: grid it was meant for, from n = 4 on), activation threshold ``at``, flipped fraction ``g0``,
#: rolled codebooks ``perm``, accuracy (the fraction of *factors* right, mc:L216) and mean
#: iterations (the repository's count, detection iteration + 1, dbb:L473, L507). One row per n (the
#: csv's second n = 3 row is left out). Measured with this module in the repository's experiment
#: (2026-12-02, means over codebook draws): n = 59, 128, 166, 214, 463 within 10% of these
#: iterations, n = 76 at +21%, n = 99 at -39% (101, sd 11 over 40 draws, against 167).
PUBLISHED: tuple[tuple[int, float, float, bool, float, float], ...] = (
    (2, 0.1, 0.0005, True, 1.0, 1.0), (3, 0.1, 0.0005, True, 1.0, 2.0), (4, 0.05, 0.0, True, 1.0, 2.0),
    (5, 0.001, 0.0, True, 1.0, 2.0615234375), (7, 0.001, 0.0005, False, 1.0, 2.2529296875),
    (9, 0.001, 0.0, False, 0.9938151041666666, 2.689453125), (12, 0.001, 0.01, False, 0.9892578125, 3.796875),
    (16, 0.01, 0.1, True, 1.0, 7.4287109375), (21, 0.01, 0.1, True, 1.0, 11.6875),
    (27, 0.01, 0.1, True, 0.998046875, 20.38671875), (35, 0.01, 0.05, True, 0.9990234375, 27.1376953125),
    (45, 0.01, 0.05, True, 0.994140625, 47.0517578125), (59, 0.01, 0.005, False, 0.9895833333333334, 80.9814453125),
    (76, 0.05, 0.1, False, 0.9931640625, 97.9951171875), (99, 0.05, 0.1, False, 0.9990234375, 166.8984375),
    (128, 0.05, 0.1, True, 1.0, 154.8837890625), (166, 0.05, 0.05, True, 1.0, 177.6640625),
    (214, 0.05, 0.05, True, 1.0, 283.5380859375), (277, 0.05, 0.01, True, 1.0, 438.55078125),
    (358, 0.05, 0.01, True, 1.0, 706.3671875), (463, 0.05, 0.0005, False, 1.0, 1354.697265625),
    (598, 0.05, 0.0, False, 1.0, 2858.4052734375), (773, 0.05, 0.0, False, 1.0, 7572.9951171875),
    (999, 0.05, 0.0, False, 0.9970703125, 27560.5458984375),
)

#: the repository's Gaussian noise of the crossbar against D (dbb:L257-258)
_NOISE_DIMS = (256, 512, 1024, 2048, 3072, 4096, 5120, 6144)
_NOISE_STD = (0.0136, 0.01074, 0.008, 0.0058, 0.0045, 0.0038, 0.0033, 0.0029)
_OUTPUT_NOISE = 0.001  # added to the activation when the iterations are noisy (dbb:L440)
_GRID = 4096  # the grid of noisy or real activations: exact products, far below the noise


def published_settings(sizes: Sequence[int]) -> dict[str, Any]:
    """The :data:`PUBLISHED` row whose search space (n^3) is nearest on a log scale to ``prod(sizes)``:
    ``{"threshold", "flip_fraction", "rolled", "n"}``."""
    space = math.log(math.prod(sizes))
    row = min(PUBLISHED, key=lambda r: abs(3 * math.log(r[0]) - space))
    return {"threshold": row[1], "flip_fraction": row[2], "rolled": row[3], "n": row[0]}


def iteration_cap(sizes: Sequence[int], factor: float = 1.0) -> int:
    """The repository's cap ``int(n^(K-1) / K * factor)`` (mc:L125), n the geometric mean of ``sizes``
    (exact for equal sizes), at least 1."""
    K, space = len(sizes), math.prod(sizes)
    n = sizes[0] if len(set(sizes)) == 1 else space ** (1.0 / K)
    return max(1, int(space / n / K * factor))


def auto_noise(dim: int) -> float:
    """The repository's standard deviation of the crossbar's noise at dimension ``dim`` (dbb:L257-260)."""
    return round(float(np.interp(dim, _NOISE_DIMS, _NOISE_STD)), 4)


@functools.lru_cache(maxsize=16)
def _flip_positions(seed: int, sizes: tuple[int, ...], dim: int, fraction: float, rolled: bool) -> tuple[Tensor, ...]:
    """Per factor, the flat positions (CPU, long) of the ``int(fraction * n_k * D)`` entries of the read
    codebook that are perturbed; the same for a seed and shape on every device and in every batch."""
    gen = torch.Generator().manual_seed(seed)
    if rolled:
        n = sizes[0]
        mask = torch.zeros(n * dim, dtype=torch.bool)
        mask[torch.randperm(n * dim, generator=gen)[: int(fraction * n * dim)]] = True
        mask = mask.view(n, dim)
        return tuple(torch.roll(mask, k, 1).flatten().nonzero().flatten() for k in range(len(sizes)))
    return tuple(torch.randperm(n * dim, generator=gen)[: int(fraction * n * dim)] for n in sizes)


def _initial(X: Tensor) -> Tensor:
    """The sign of the codebook's superposition; for an even number of values the zero sums are broken
    by rank (+1 for the upper half of the sums), as dbb:L192-202."""
    total = X.sum(0)
    if X.shape[0] % 2 == 0:
        rank = torch.argsort(torch.argsort(total, stable=True), stable=True)
        total = total + torch.where(rank >= X.shape[1] // 2, 1.0, -1.0).to(total.dtype)
    return sign(total)


def _exact_sign_product(h: Tensor, X: Tensor) -> Tensor:
    """``sign(h @ X)`` for integer-valued ``h`` and ``X``: in the working dtype when every partial sum
    is an exact integer there, else in float64 (exact too); either way the same bits in any batch."""
    wide = wide_dtype(X.dtype)
    bound = float(h.abs().sum(-1).max()) * float(X.abs().max()) if h.numel() else 0.0
    work = wide if bound * 2 <= 2.0 / torch.finfo(wide).eps else torch.float64
    return sign(h.to(work) @ X.to(work)).to(X.dtype)


@dataclass
class FactorizerState(State):
    """``x`` ``[A, K, D]``: the bipolar estimates of every factor."""

    x: Tensor


@dataclass
class _Context:
    """Per call: the projection codebooks, the settings in force, whether the read-out is an exact integer
    product, the grid of the activations, the per-problem noise (None without noise)."""

    project: tuple[Tensor, ...]
    threshold: float
    integer: bool
    grid: float
    noise: Any = None
    noise_std: float = 0.0


class InMemoryFactorizer(IterativeDecomposer):
    """The in-memory factorizer with asymmetric codebooks (see the module docstring for the update).

    Options (beyond ``seed``, ``keep_best``, ``stop_similarity``, ``sign_invariant``,
    ``record_trajectory`` of :class:`IterativeDecomposer`):

    - ``iterations``: the budget; None (default): the repository's cap, growing with the search
      space (:func:`iteration_cap`, times ``iteration_factor``);
    - ``threshold``: the activation threshold on the normalised similarities ``X_k u_k / D``; None
      (default): the published one for the search space (:func:`published_settings`);
    - ``flip_fraction``: the fraction of entries of each projection codebook perturbed (g0); None
      (default): the published one; 0 makes the codebooks symmetric;
    - ``flip_pattern``: ``"independent"`` (default) or ``"rolled"`` (needs equal sizes);
    - ``top_a``: keep at most the ``top_a`` largest activations (ties kept); None (default): no limit;
    - ``detect_threshold``: a problem is converged once any factor's largest similarity exceeds it
      (0.625, the repository's ``convergenceDetectionThreshold``); None: no detection;
    - ``noise``: standard deviation of Gaussian noise on the similarities, or ``"auto"`` (the
      repository's value for D); default 0;
    - ``normalize``: scale every target to RMS 1 first (the thresholds assume entries of about +-1).

    State (for callbacks): :class:`FactorizerState`. ``iterations`` of the result counts the
    iterations run; the repository reports one more for a converged problem (dbb:L473, L507)."""

    name = "in_memory_factorizer"
    capabilities = Capabilities(stochastic=True, adaptive=True)
    compute_dtype = torch.float32

    def __init__(self, iterations: int | None = None, seed: int = 0, threshold: float | None = None,
                 flip_fraction: float | None = None, flip_pattern: str = "independent", top_a: int | None = None,
                 detect_threshold: float | None = 0.625, noise: float | str = 0.0, iteration_factor: float = 1.0,
                 normalize: bool = False, keep_best: bool = False, stop_similarity: float | None = None,
                 sign_invariant: bool = False, record_trajectory: bool = False) -> None:
        super().__init__(1 if iterations is None else iterations, seed, keep_best, stop_similarity,
                         sign_invariant, record_trajectory)
        self.iterations = None if iterations is None else self.iterations
        self.threshold = check_float("threshold", threshold, 0.0, allow_none=True)
        self.flip_fraction = check_float("flip_fraction", flip_fraction, 0.0, 1.0, allow_none=True)
        self.flip_pattern = check_choice("flip_pattern", flip_pattern, ("independent", "rolled"))
        self.top_a = None if top_a is None else check_int("top_a", top_a, 1)
        self.detect_threshold = check_float("detect_threshold", detect_threshold, 0.0, allow_none=True)
        if isinstance(noise, str):
            self.noise = check_choice("noise", noise, ("auto",))
        else:
            self.noise = check_float("noise", noise, 0.0)
        self.iteration_factor = check_float("iteration_factor", iteration_factor, 0.0)
        if self.iteration_factor == 0:
            raise ValueError("iteration_factor: expected a number > 0, got 0.0")
        self.normalize = bool(normalize)

    # -- settings --------------------------------------------------------------------------

    def settings(self, codebooks: Codebooks) -> dict[str, Any]:
        """The options in force on ``codebooks``: those given, the others from the published
        configuration (``iterations``, ``threshold``, ``flip_fraction``, ``noise`` as a number)."""
        sizes = codebooks.sizes
        pub = published_settings(sizes)
        return {
            "iterations": iteration_cap(sizes, self.iteration_factor) if self.iterations is None else self.iterations,
            "threshold": pub["threshold"] if self.threshold is None else self.threshold,
            "flip_fraction": pub["flip_fraction"] if self.flip_fraction is None else self.flip_fraction,
            "noise": auto_noise(codebooks.dim) if self.noise == "auto" else self.noise,
        }

    def projection_codebooks(self, codebooks: Codebooks) -> tuple[Tensor, ...]:
        """The projection codebooks ``P_k`` this decomposer uses on ``codebooks`` (same device and
        dtype): the given ones with the entries at the perturbed positions replaced by ``1 - x``. The
        map is its own inverse: applied to the ``P_k`` (as codebooks) it gives the given ones back."""
        fraction = self.settings(codebooks)["flip_fraction"]
        if fraction == 0:
            return codebooks.tensors
        if self.flip_pattern == "rolled" and len(set(codebooks.sizes)) > 1:
            raise ValueError(f"flip_pattern='rolled': needs codebooks of the same size, got sizes {codebooks.sizes}")
        pos = _flip_positions(self.seed, codebooks.sizes, codebooks.dim, fraction, self.flip_pattern == "rolled")
        out = []
        for X, p in zip(codebooks.tensors, pos):
            R = X.clone().view(-1)
            p = p.to(X.device)
            R[p] = 1 - R[p]
            out.append(R.view_as(X))
        return tuple(out)

    # -- the driver --------------------------------------------------------------------------

    def decompose(self, s: Tensor, codebooks: Codebooks,
                  callback: Callable[[StepInfo], None] | None = None) -> Decomposition:
        s, cb, _ = check_problem(s, codebooks)
        run = self
        if self.iterations is None:
            run = copy.copy(self)
            run.iterations = self.settings(cb)["iterations"]
        if self.normalize and s.shape[0]:  # rows already at RMS 1 (bipolar ones) are left exact
            scale = cb.dim ** 0.5 / s.norm(dim=1, keepdim=True).clamp_min(torch.finfo(s.dtype).tiny)
            s = s * torch.where((scale - 1).abs() < 1e-4, torch.ones_like(scale), scale)
        return IterativeDecomposer.decompose(run, s, cb, callback)

    def _setup(self, s: Tensor, cb: Codebooks) -> _Context:
        cfg = self.settings(cb)
        project = self.projection_codebooks(cb)
        books = project + cb.tensors
        rmax = max(float(t.abs().max()) for t in books)
        integer = (is_exact_integer(s, cb.dim * max(rmax, 1.0))
                   and all(is_exact_integer(t, 1) for t in books))
        noisy = cfg["noise"] > 0
        ctx = _Context(project, cfg["threshold"], integer, float(cb.dim) if integer and not noisy else float(_GRID))
        if noisy:
            ctx.noise, ctx.noise_std = self._noise(s), cfg["noise"]
        return ctx

    def _init(self, s: Tensor, cb: Codebooks, ctx: _Context, rows: Tensor) -> FactorizerState:
        x0 = torch.stack([_initial(P) for P in ctx.project])  # [K, D]
        return FactorizerState(x0.unsqueeze(0).expand(s.shape[0], -1, -1).contiguous())

    def _read_out(self, u: Tensor, R: Tensor, ctx: _Context) -> Tensor:
        """``R u / D`` per row, [A, n]: an exact integer product divided by D, or summed in float64."""
        if ctx.integer:
            wide = wide_dtype(u.dtype)
            return ((u.to(wide) @ R.T.to(wide)) / u.shape[1]).to(u.dtype)
        return rowwise_matmul(u, R.T) / u.shape[1]

    def _activate(self, a: Tensor, threshold: float) -> Tensor:
        """The sparse activation: the similarities at or above the threshold (and among the ``top_a``
        largest), the others 0."""
        keep = a >= threshold
        if self.top_a is not None and self.top_a < a.shape[1]:
            keep &= a >= a.topk(self.top_a, dim=1).values[:, -1:]
        return torch.where(keep, a, torch.zeros_like(a))

    def _step(self, state: FactorizerState, s: Tensor, cb: Codebooks, ctx: _Context, it: int, rows: Tensor) -> Step:
        K = cb.num_factors
        loo = LeaveOneOut(list(state.x.unbind(1)), start=s)  # sequential: newest estimates first
        new, idx = [], []
        detected = torch.zeros(s.shape[0], dtype=torch.bool, device=s.device)
        for k, (X, P) in enumerate(zip(cb.tensors, ctx.project)):
            a = self._read_out(loo.others(k), X, ctx)
            if ctx.noise is not None:
                a = a + ctx.noise_std * ctx.noise.normal(rows, it, k, a.shape[1])
            if self.detect_threshold is not None:
                detected |= a.amax(1) > self.detect_threshold
            h = self._activate(a, ctx.threshold)
            if ctx.noise is not None:
                h = h + _OUTPUT_NOISE * ctx.noise.normal(rows, it, K + k, a.shape[1])
            xk = _exact_sign_product(torch.round(h * ctx.grid), P)
            idx.append((a.abs() if self.sign_invariant else a).argmax(1))
            new.append(xk)
            loo.advance(xk)
        fixed = detected if self.detect_threshold is not None else None
        return Step(FactorizerState(torch.stack(new, 1)), torch.stack(idx, 1), fixed)
