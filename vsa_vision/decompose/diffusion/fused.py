"""One iteration of the diffusion decomposer as one function of tensors, for the configurations most
calls run (the symmetric prior, guidance in the logits normalised by its null spread and unclipped,
the similarity energy, a codebook or latent space, any coupling, estimate and activation).

The sampler's general step (:meth:`~.sampler.DiffusionDecomposer._step`) composes the energy, the
space and the weights from their objects; on a small batch most of its time is spent in Python
between the kernels. :func:`fused_iteration` runs the same kernels in the same order (its results
equal the general step's bit for bit, ``tests/test_fused.py``) with nothing between them, and is the
unit :func:`compiled_iteration` hands to ``torch.compile`` (the option ``compile=True``): there one
iteration becomes a few generated loops instead of about 17 kernels a factor.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ...vsa import sign
from .energies import SimilarityEnergy

__all__ = ["FusedSpec", "covers", "fused_iteration", "scored_iteration", "compiled_iteration", "level_table",
           "readout", "padded_positions"]


@dataclass(frozen=True)
class FusedSpec:
    """What one call fixes: the factor sizes and dimension, the coupling, estimate and activation,
    the sparsity threshold, the guidance's coefficient ``scale * lam`` (the null spread's ``D``
    cancels the energy's ``1 / D``), the floor of ``|u|``, whether the space is the latent one
    (its Gram matrix an input; a compiled iteration is kept per spec), and whether the readout is
    sign-invariant."""

    sizes: tuple[int, ...]
    dim: int
    sequential: bool
    sign_estimate: bool
    activation: str
    threshold: float
    coef: float
    eps: float
    latent: bool
    sign_invariant: bool = True


def covers(config, energy) -> str | None:
    """Why the fused iteration cannot run ``config`` (None: it can)."""
    if config.prior != "symmetric":
        return f"prior={config.prior!r} (the fused iteration has the symmetric prior)"
    if config.guidance != "logits":
        return f"guidance={config.guidance!r} (the fused iteration adds the guidance to the logits)"
    if config.normalize != "null" or config.clip is not None:
        return "normalize/clip (the fused iteration normalises by the null spread, unclipped)"
    if type(energy) is not SimilarityEnergy:
        name = getattr(energy, "name", type(energy).__name__)
        return f"energy={name!r} (the fused iteration has the similarity energy)"
    if config.space not in ("codebook", "latent"):
        return "space (the fused iteration has the codebook and latent spaces)"
    return None


def level_table(levels: Sequence, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The scalars of every iteration as rows of one tensor ``[iterations, 7]`` (alpha, sigma, the
    logit scale, restart or not, and the DDIM update's three weights), for the compiled iteration,
    which must not see a new Python constant each iteration."""
    rows = [[lv.alpha, lv.sigma, lv.logit, float(lv.renoise), lv.mean_w, lv.keep_h, lv.noise_w] for lv in levels]
    return torch.tensor(rows, dtype=dtype, device=device)


def fused_iteration(spec: FusedSpec, s: Tensor, h: Tensor, w: Tensor, x: Tensor, draws: Tensor, level,
                    Xs: Sequence[Tensor], gram: Tensor | None, th: Tensor, positions: Tensor
                    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One guided step of every factor: ``(h_next, w, x, indices)`` from the state ``(h, w, x)``.

    ``level`` is the iteration's :class:`~.sampler._Level` (eager: Python scalars and branches) or
    its row of :func:`level_table` (compiled: the restart and the noise blended arithmetically);
    ``draws`` ``[A, 2, sum n_k]`` the step's and the restart's noise; ``gram`` the latent space's
    block-diagonal Gram matrix (None in codebook space); ``th`` the threshold as a 0-dim tensor;
    ``positions`` where each weight goes in the ``[K, max n_k]`` layout of the readout."""
    sizes, K = spec.sizes, len(spec.sizes)
    if isinstance(Xs, Tensor):  # the codebooks stacked [sum n_k, D]: fewer inputs for a compiled call to check
        Xs = Xs.split(sizes, 0)
    tabled = isinstance(level, Tensor)
    if tabled:
        alpha, sigma, logit, renoise = level[0], level[1], level[2], level[3]
        mean_w, keep_h, noise_w = level[4], level[5], level[6]
        mean_old = w if gram is None else w @ gram
        h = torch.where(renoise > 0, draws[:, 1] * sigma + alpha * mean_old, h)
    else:
        logit = level.logit
        if level.renoise:
            h = torch.add(draws[:, 1] * level.sigma, w if gram is None else w @ gram, alpha=level.alpha)
    xs = x.split(spec.dim, 1)
    # u_k = s * x'_0 * ... * x'_{k-1} * (x_{K-1} * ... * x_{k+1}), as LeaveOneOut multiplies
    suffix: list[Tensor | None] = [None] * (K + 1)
    for k in range(K - 1, -1, -1):
        suffix[k] = xs[k] if suffix[k + 1] is None else suffix[k + 1] * xs[k]
    prefix = s
    priors = (h * logit).split(sizes, 1)
    new_w, new_x = [], []
    zero = torch.zeros((), dtype=s.dtype, device=s.device)
    for k in range(K):
        X, q = Xs[k], suffix[k + 1]
        u = prefix if q is None else prefix * q
        spread = torch.linalg.vector_norm(u, dim=-1, keepdim=True).clamp_min(spec.eps)
        logits = torch.addcdiv(priors[k], u @ X.T, spread, value=spec.coef)
        n = logits.shape[-1]
        p = torch.softmax(torch.cat([logits, -logits], dim=-1), dim=-1)
        wk = p[..., :n] - p[..., n:]
        if spec.activation == "positive":
            keep = logits >= th
            fallback = logits > 0
            fallback |= ~fallback.any(-1, keepdim=True) & (logits == logits.amax(-1, keepdim=True))
            keep = torch.where(keep.any(-1, keepdim=True), keep, fallback)
            wk = torch.where(keep, wk, torch.zeros_like(wk))
        elif spec.threshold > 0:
            size = logits.abs()
            wk = torch.where((size >= th) | (size.amax(-1, keepdim=True) < th), wk, zero)
        xk = wk @ X
        if spec.sign_estimate:
            xk = sign(xk)
        new_w.append(wk)
        new_x.append(xk)
        prefix = prefix * (xk if spec.sequential else xs[k])
    w_all = torch.cat(new_w, 1)
    mean_new = w_all if gram is None else w_all @ gram
    if tabled:
        h_next = torch.add(h * keep_h, mean_new * mean_w) + draws[:, 0] * noise_w
    else:
        h_next = torch.add(h * level.keep_h, mean_new, alpha=level.mean_w)
        if level.noise_w > 0:
            h_next = torch.add(h_next, draws[:, 0], alpha=level.noise_w)
    return h_next, w_all, torch.cat(new_x, 1), readout(w_all, sizes, spec.sign_invariant, positions)


def readout(w: Tensor, sizes: Sequence[int], sign_invariant: bool, positions: Tensor | None = None) -> Tensor:
    """The decoded index of every factor ``[A, K]``: its largest weight (in magnitude when
    sign-invariant), read from the concatenated weights ``w`` with one argmax over a padded view
    (``positions``: :func:`padded_positions`, looked up when not given)."""
    score = w.abs() if sign_invariant else w
    K, width = len(sizes), max(sizes)
    if all(n == width for n in sizes):
        return score.view(-1, K, width).argmax(-1)
    if positions is None:
        positions = padded_positions(tuple(sizes), score.device)
    pad = score.new_full((score.shape[0], K * width), -math.inf)
    pad[:, positions] = score
    return pad.view(-1, K, width).argmax(-1)


@functools.lru_cache(maxsize=64)
def padded_positions(sizes: tuple[int, ...], device: torch.device) -> Tensor:
    """Where each entry of the concatenated factors goes in a ``[K, max n_k]`` layout."""
    width = max(sizes)
    return torch.cat([k * width + torch.arange(n, device=device) for k, n in enumerate(sizes)])


def scored_iteration(spec: FusedSpec, norm: float | None, eps: float, s: Tensor, h: Tensor, w: Tensor, x: Tensor,
                     draws: Tensor, level, Xs, gram: Tensor | None, th: Tensor, positions: Tensor, unit: Tensor,
                     table: Tensor, factors: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """:func:`fused_iteration` and the bound similarity of its answers, as the driver's
    :class:`~vsa_vision.decompose.tracking.Scorer` computes it (``unit``, ``table``, ``factors`` are
    the scorer's; ``norm`` its ``sqrt(D)`` for bipolar codebooks, None otherwise), in one graph."""
    h_next, w_all, x_all, idx = fused_iteration(spec, s, h, w, x, draws, level, Xs, gram, th, positions)
    bound = table[factors, idx].prod(1)
    dot = (unit * bound).sum(-1).abs()
    den = norm if norm is not None else bound.norm(dim=-1).clamp_min(eps)
    return h_next, w_all, x_all, idx, (dot / den).to(s.dtype)


#: compiled iterations kept, one per (spec, dtype, device)
_COMPILED: dict[tuple, Callable] = {}
#: configurations whose compilation failed (warned once, then run eagerly)
_FAILED: set[tuple] = set()


def _key(spec: FusedSpec, dtype: torch.dtype, device: torch.device | str) -> tuple:
    return spec, dtype, str(device)


def compiled_iteration(spec: FusedSpec, norm: float | None, eps: float, dtype: torch.dtype,
                       device: torch.device) -> Callable | None:
    """:func:`scored_iteration` for ``spec`` (and the scorer's ``norm`` and ``eps``) compiled by
    ``torch.compile``, kept per ``(spec, dtype, device)`` for the process; None where compilation
    failed before for that ``(spec, dtype, device)`` (a warning said why). Shapes are
    static at first and the batch dimension becomes dynamic at its first change (torch's automatic
    dynamic shapes: one more compilation once problems start to stop), which measured faster at
    batch 1 than a graph dynamic from the start (0.23 against 0.29 ms an iteration)."""
    key = _key(spec, dtype, device)
    if key in _FAILED:
        return None
    fn = _COMPILED.get((key, norm, eps))
    if fn is None:
        fn = torch.compile(functools.partial(scored_iteration, spec, norm, eps))
        _COMPILED[(key, norm, eps)] = fn
    return fn


def run_compiled(spec: FusedSpec, fn: Callable, *args) -> tuple[Tensor, ...] | None:
    """Call a compiled iteration; None (after one warning) where the compiler is unavailable, so the
    caller runs the eager iteration instead."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 (any compiler failure falls back to the same eager function)
        _FAILED.add(_key(spec, args[0].dtype, args[0].device))
        warnings.warn(f"diffusion compile=True: torch.compile failed ({type(exc).__name__}: "
                      f"{str(exc).splitlines()[0] if str(exc) else ''}); running the eager iteration",
                      RuntimeWarning, stacklevel=3)
        return None
