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

from collections.abc import Callable

import torch
from torch import Tensor

from ...vsa import Codebooks, rowwise_matmul
from ..noise import ProblemNoise
from ..resonator import symmetric_softmax

__all__ = ["posterior_weights", "denoise_latent", "denoise_codebook", "CodebookSpace",
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
    logits = alpha * proj / sigma**2
    if extra_logits is not None:
        logits = logits + extra_logits
    if prior == "symmetric":
        w = symmetric_softmax(logits)
    elif prior == "positive":
        w = torch.softmax(logits - alpha**2 * norm2 / (2 * sigma**2), dim=-1)
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
        keep = logits.abs() >= threshold
        keep |= ~keep.any(-1, keepdim=True)
        w = torch.where(keep, w, torch.zeros_like(w))
    return w


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
    and the noise is white."""

    name = "codebook"

    def __init__(self, codebooks: Codebooks) -> None:
        self.codebooks = codebooks

    def mean(self, k: int, w: Tensor) -> Tensor:
        """The projected posterior mean of factor ``k`` given its weights ``w``."""
        return w

    def draw(self, noise: ProblemNoise, rows: Tensor, it: int, k: int, stream: int, n: int) -> Tensor:
        """Standard noise of factor ``k`` in this space, keyed by problem, iteration and stream."""
        return noise.normal(rows, it, 2 * k + stream, n)


class LatentSpace(CodebookSpace):
    """The state of factor k is ``x_t`` in R^D, tracked through ``h = X_k x_t / sqrt(D)``: the
    projected mean is ``G_k w`` and the projected noise has covariance ``G_k = X_k X_k^T / D``."""

    name = "latent"

    def __init__(self, codebooks: Codebooks) -> None:
        super().__init__(codebooks)
        #: products in the working dtype (True) or summed in float64 (False: batch-invariant rows);
        #: the sampler sets it per call
        self.exact = True
        D = codebooks.dim
        self.gram, self.chol = [], []
        for X in codebooks.tensors:
            G = (X @ X.T) / D  # covariance of the projected noise: unit diagonal
            G64 = G.double() + 1e-6 * torch.eye(G.shape[0], dtype=torch.float64, device=G.device)
            self.gram.append(G)
            self.chol.append(torch.linalg.cholesky(G64).to(X.dtype))

    def mean(self, k: int, w: Tensor) -> Tensor:
        return rowwise_matmul(w, self.gram[k], self.exact)

    def draw(self, noise: ProblemNoise, rows: Tensor, it: int, k: int, stream: int, n: int) -> Tensor:
        return rowwise_matmul(super().draw(noise, rows, it, k, stream, n), self.chol[k].T, self.exact)


#: the spaces an option string can name: each is built once per call from the codebooks
SPACES: dict[str, Callable[[Codebooks], CodebookSpace]] = {"codebook": CodebookSpace, "latent": LatentSpace}
