"""Analytic denoisers of a codebook prior, and the two spaces the sampler runs in.

The prior of a factor is uniform over its codewords (``"positive"``) or over ``+-`` its codewords
(``"symmetric"``: bipolar binding cannot tell ``(a, b)`` from ``(-a, -b)``). The noised prior is a
Gaussian mixture, so the posterior mean (Tweedie) is exact::

    logits_i = alpha_t <c_i, x_t> / sigma_t^2  (- alpha_t^2 |c_i|^2 / (2 sigma_t^2))
    positive:  w = softmax(logits)             x0_hat = sum_i w_i c_i
    symmetric: w = sinh(logits) / sum cosh     x0_hat = sum_i w_i c_i

**Latent space** (:class:`LatentSpace`): ``x_t`` in R^D with atoms at the unit-norm codewords
``c_i / sqrt(D)``. Only the projections ``h = X x_t / sqrt(D)`` enter the posterior, so the sampler
tracks ``h`` (n numbers) instead of ``x_t`` (D numbers) and draws the projected noise exactly, with
covariance ``G = X X^T / D``. **Codebook space** (:class:`CodebookSpace`): ``a_t`` in R^n with atoms
at the one-hot vectors. The two cost the same per step and differ by that covariance.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ...vsa import Codebooks
from ..noise import ProblemNoise
from ..resonator import symmetric_softmax

__all__ = ["posterior_weights", "weights_of_logits", "denoise_latent", "denoise_codebook", "CodebookSpace",
           "LatentSpace", "SPACES"]


def posterior_weights(proj: Tensor, alpha: float | Tensor, sigma: float | Tensor, prior: str = "symmetric",
                      norm2: float | Tensor = 1.0, extra_logits: Tensor | None = None,
                      threshold: float = 0.0, activation: str = "magnitude") -> Tensor:
    """Posterior weights of the atoms given the projections ``proj_i = <c_i, x_t>`` ``[..., n]``.

    ``prior="positive"``: softmax over atoms ``c_i`` (``norm2`` is ``|c_i|^2``);
    ``prior="symmetric"``: atoms at ``+-c_i``, weights ``P(+c_i) - P(-c_i) = sinh(l_i) / sum cosh(l_j)``.
    ``extra_logits`` (guidance) is added to the logits. ``threshold > 0`` makes the weights sparse,
    like the stochastic resonator's activation threshold: atoms whose logit is below it in magnitude
    get weight 0 (the others keep their weights, not renormalised); where no atom reaches it, all
    keep their weights (a zero estimate of one factor would unbind every other factor to zero).
    ``activation="positive"`` keeps only the atoms whose logit is at least ``threshold`` (signed,
    also at threshold 0): the sparse positive activation of the in-memory factorizer. With the
    symmetric prior it fixes each factor's sign (bipolar binding cannot tell ``(a, b)`` from
    ``(-a, -b)``) to the one that agrees with the guidance, so the factors stop trading signs; near
    zero the weights are then linear in the logits (``sinh l ~ l``), as that activation is. Where no
    atom reaches the threshold, the atoms with a positive logit keep their weights (where none has
    one, the largest logit's atom alone): never a negative weight."""
    if isinstance(alpha, float) and isinstance(sigma, float):
        scale = alpha / sigma**2
        logits = proj * scale if extra_logits is None else torch.add(extra_logits, proj, alpha=scale)
    else:
        logits = alpha * proj / sigma**2
        if extra_logits is not None:
            logits = logits + extra_logits
    return weights_of_logits(logits, prior, alpha**2 * norm2 / (2 * sigma**2), threshold, activation)


def weights_of_logits(logits: Tensor, prior: str = "symmetric", offset: float | Tensor = 0.0,
                      threshold: float = 0.0, activation: str = "magnitude", cached: Tensor | None = None) -> Tensor:
    """:func:`posterior_weights` from its logits ``alpha <c_i, x_t> / sigma^2`` (+ guidance);
    ``offset`` is the positive prior's ``alpha^2 |c_i|^2 / (2 sigma^2)`` (a constant offset, which the
    softmax ignores, for atoms of one norm); ``cached``: ``threshold`` as a 0-dim tensor of the
    logits' dtype and device, made once by a caller that calls this many times."""
    if prior == "symmetric":
        w = symmetric_softmax(logits)
    elif prior == "positive":
        w = torch.softmax(logits - offset, dim=-1)
    else:
        raise ValueError(f"prior: expected 'symmetric' or 'positive', got {prior!r}")
    if activation not in ("magnitude", "positive"):
        raise ValueError(f"activation: expected 'magnitude' or 'positive', got {activation!r}")
    if activation == "positive":
        keep = logits >= threshold
        fallback = logits > 0
        fallback |= ~fallback.any(-1, keepdim=True) & (logits == logits.amax(-1, keepdim=True))
        keep = torch.where(keep.any(-1, keepdim=True), keep, fallback)
        w = torch.where(keep, w, torch.zeros_like(w))
    elif threshold > 0:
        # a 0-dim tensor of the logits' dtype: a Python float would be wrapped (and converted) per kernel
        th = torch.tensor(threshold, dtype=logits.dtype, device=logits.device) if cached is None else cached
        size = logits.abs()
        w = torch.where((size >= th) | (size.amax(-1, keepdim=True) < th), w, _zero(logits.dtype, logits.device))
    return w


@functools.lru_cache(maxsize=16)
def _zero(dtype: torch.dtype, device: torch.device) -> Tensor:
    return torch.zeros((), dtype=dtype, device=device)


def denoise_latent(x: Tensor, codebook: Tensor, alpha: float, sigma: float, prior: str = "symmetric") -> Tensor:
    """``E[x_0 | x_t = x]`` for a prior uniform over the rows of ``codebook`` ``[n, D]`` (or over
    ``+-`` them): ``x [..., D]`` -> ``[..., D]``."""
    norm2 = (codebook * codebook).sum(-1)
    w = posterior_weights(x @ codebook.T, alpha, sigma, prior, norm2)
    return w @ codebook


def denoise_codebook(a: Tensor, alpha: float, sigma: float, prior: str = "symmetric") -> Tensor:
    """``E[a_0 | a_t = a]`` for a prior uniform over the one-hot vectors of R^n (or ``+-`` them)."""
    return posterior_weights(a, alpha, sigma, prior, 1.0)


class CodebookSpace:
    """The state of factor k is ``a_t`` in R^{n_k}; the posterior mean of the weights ``w`` is ``w``,
    and the noise is white.

    A space gives the sampler, per factor, ``mean(k, w)`` and ``draw(...)``, and for all factors at
    once (their states concatenated in factor order, ``[A, sum_k n_k]``) ``mean_all(w)`` and
    ``draw_block(...)``, which the sampler calls: one kernel for all factors instead of K."""

    name = "codebook"

    def __init__(self, codebooks: Codebooks) -> None:
        self.codebooks = codebooks

    def mean(self, k: int, w: Tensor) -> Tensor:
        """The projected posterior mean of factor ``k`` given its weights ``w``."""
        return w

    def mean_all(self, w: Tensor) -> Tensor:
        """:meth:`mean` of every factor, on the concatenated weights ``[A, sum_k n_k]``."""
        return w

    def draw(self, noise: ProblemNoise, rows: Tensor, it: int, k: int, stream: int, n: int) -> Tensor:
        """Standard noise of factor ``k`` in this space, keyed by problem, iteration and stream."""
        return noise.normal(rows, it, 2 * k + stream, n)

    def draw_block(self, noise: ProblemNoise, rows: Tensor, iterations: Sequence[int], stream: int) -> Tensor:
        """``[A, T, sum_k n_k]``: at ``[:, t]`` the :meth:`draw` of every factor at ``iterations[t]``,
        concatenated (the same numbers), drawn in one gather."""
        sizes = self.codebooks.sizes
        return noise.normal_block(rows, iterations, [2 * k + stream for k in range(len(sizes))], sizes)


class LatentSpace(CodebookSpace):
    """The state of factor k is ``x_t`` in R^D, tracked through ``h = X_k x_t / sqrt(D)``: the
    projected mean is ``G_k w`` and the projected noise has covariance ``G_k = X_k X_k^T / D``
    (all factors at once: the block-diagonal matrix of the ``G_k``, and of their Cholesky factors)."""

    name = "latent"

    def __init__(self, codebooks: Codebooks) -> None:
        super().__init__(codebooks)
        D = codebooks.dim
        self.gram, self.chol = [], []
        for X in codebooks.tensors:
            G = (X @ X.T) / D  # covariance of the projected noise: unit diagonal
            G64 = G.double() + 1e-6 * torch.eye(G.shape[0], dtype=torch.float64, device=G.device)
            self.gram.append(G)
            self.chol.append(torch.linalg.cholesky(G64).to(X.dtype))
        self.gram_all = torch.block_diag(*self.gram)
        self.chol_all_t = torch.block_diag(*self.chol).T.contiguous()

    def mean(self, k: int, w: Tensor) -> Tensor:
        return w @ self.gram[k]

    def mean_all(self, w: Tensor) -> Tensor:
        return w @ self.gram_all

    def draw(self, noise: ProblemNoise, rows: Tensor, it: int, k: int, stream: int, n: int) -> Tensor:
        return super().draw(noise, rows, it, k, stream, n) @ self.chol[k].T

    def draw_block(self, noise: ProblemNoise, rows: Tensor, iterations: Sequence[int], stream: int) -> Tensor:
        return super().draw_block(noise, rows, iterations, stream) @ self.chol_all_t


#: the spaces an option string can name: each is built once per call from the codebooks
SPACES: dict[str, Callable[[Codebooks], CodebookSpace]] = {"codebook": CodebookSpace, "latent": LatentSpace}
