"""Reconstruction energies that couple the K factors through ``s``, with closed-form gradients, and
the guidance they give each factor's denoiser.

- :class:`SimilarityEnergy`: ``E_S = -lam <s, prod_k x_k> / D``;
- :class:`GaussianEnergy`: ``E_G = |s - prod_k x_k|^2 / (2 gamma^2 D)``.

The guidance of factor k is ``g_k = X_k (-grad_{x_k} E)`` (for ``E_S`` this is the resonator's
unbinding similarity ``X_k u_k / D`` with ``u_k = s * prod_{j != k} x_j``), normalised over the
codebook (:func:`normalize_guidance`), optionally clipped, and scaled. The sampler evaluates it with
:meth:`SimilarityEnergy.guidance`, which the tests check against :meth:`SimilarityEnergy.grads`
and autograd.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ...vsa import LeaveOneOut, bind, eps_for, rowwise_matmul

__all__ = ["SimilarityEnergy", "GaussianEnergy", "ENERGIES", "similarity_energy", "gaussian_energy",
           "normalize_guidance", "NORMALIZATIONS"]


class SimilarityEnergy:
    """``E = -lam <s, prod_k x_k> / D``; ``-grad_{x_k} E = (lam / D) u_k``."""

    name = "similarity"
    #: whether :meth:`guidance` needs the product of the others' squares
    needs_squares = False

    def __init__(self, lam: float = 1.0) -> None:
        self.lam = lam

    def value(self, s: Tensor, xs: Sequence[Tensor]) -> Tensor:
        D = s.shape[-1]
        return -self.lam * (s * bind(*xs)).sum(-1) / D

    def grads(self, s: Tensor, xs: Sequence[Tensor]) -> list[Tensor]:
        """``grad_{x_k} E`` for every k, ``[..., D]`` each."""
        D = s.shape[-1]
        return [-(self.lam / D) * u for u in LeaveOneOut.all(xs, start=s)]

    def guidance(self, u: Tensor, x: Tensor, others_sq: Tensor | None, X: Tensor, exact: bool = True) -> Tensor:
        """``X_k (-grad_{x_k} E)`` ``[..., n_k]`` from ``u = s * prod_{j != k} x_j`` and ``x = x_k``.
        ``exact=False``: the product is summed in float64 (:func:`~vsa_vision.vsa.rowwise_matmul`)."""
        return self.lam * rowwise_matmul(u, X.T, exact) / X.shape[1]

    def guidance_parts(self, u: Tensor, x: Tensor, others_sq: Tensor | None, X: Tensor) -> tuple[Tensor, float]:
        """:meth:`guidance` as ``(product, factor)`` with guidance ``= factor * product``: the sampler
        folds the factor into the next kernel instead of spending one on it."""
        return u @ X.T, self.lam / X.shape[1]


class GaussianEnergy(SimilarityEnergy):
    """``E = |s - prod_k x_k|^2 / (2 gamma^2 D)``; ``-grad_{x_k} E = (u_k - x_k o_k) / (gamma^2 D)``
    with ``o_k = prod_{j != k} x_j^2``."""

    name = "gaussian"
    needs_squares = True

    def __init__(self, gamma: float = 1.0) -> None:
        self.gamma = gamma

    def value(self, s: Tensor, xs: Sequence[Tensor]) -> Tensor:
        r = s - bind(*xs)
        return (r * r).sum(-1) / (2 * self.gamma**2 * s.shape[-1])

    def grads(self, s: Tensor, xs: Sequence[Tensor]) -> list[Tensor]:
        D = s.shape[-1]
        r = s - bind(*xs)
        others = LeaveOneOut.all(xs)
        return [-(r * (torch.ones_like(s) if o is None else o)) / (self.gamma**2 * D) for o in others]

    def guidance(self, u: Tensor, x: Tensor, others_sq: Tensor | None, X: Tensor, exact: bool = True) -> Tensor:
        return rowwise_matmul(u - x * others_sq, X.T, exact) / (self.gamma**2 * X.shape[1])

    def guidance_parts(self, u: Tensor, x: Tensor, others_sq: Tensor | None, X: Tensor) -> tuple[Tensor, float]:
        return torch.addcmul(u, x, others_sq, value=-1.0) @ X.T, 1.0 / (self.gamma**2 * X.shape[1])


#: the energies an option string can name (built with the decomposer's ``gamma`` for the Gaussian)
ENERGIES: dict[str, Callable[..., SimilarityEnergy]] = {"similarity": SimilarityEnergy, "gaussian": GaussianEnergy}


def make_energy(energy: str | Any, gamma: float = 1.0) -> Any:
    """The energy an option names (the Gaussian built with ``gamma``), or the energy object given."""
    if not isinstance(energy, str):
        return energy
    return ENERGIES[energy](gamma=gamma) if energy == "gaussian" else ENERGIES[energy]()


def similarity_energy(s: Tensor, xs: list[Tensor], lam: float = 1.0) -> tuple[Tensor, list[Tensor]]:
    """``E = -lam <s, prod_k x_k> / D`` per row and its gradients ``-(lam / D) s * prod_{j!=k} x_j``."""
    e = SimilarityEnergy(lam)
    return e.value(s, xs), e.grads(s, xs)


def gaussian_energy(s: Tensor, xs: list[Tensor], gamma: float = 1.0) -> tuple[Tensor, list[Tensor]]:
    """``E = |s - prod_k x_k|^2 / (2 gamma^2 D)`` and its gradients
    ``-(s - prod) * prod_{j!=k} x_j / (gamma^2 D)``."""
    e = GaussianEnergy(gamma)
    return e.value(s, xs), e.grads(s, xs)


#: the normalisations of the guidance over a codebook
NORMALIZATIONS = ("zscore", "rms", "null", "none")


def normalize_guidance(g: Tensor, how: str, null_std: Tensor | None = None, clip: float | None = None) -> Tensor:
    """Normalise a guidance vector over the codebook (last dim):

    ``"zscore"``: ``(g - mean) / std``; ``"rms"``: ``g / rms(g)``; ``"null"``: ``g / null_std``
    (its standard deviation when the estimates are unrelated to ``s``); ``"none"``: unchanged.
    ``clip`` bounds the result to ``[-clip, clip]``."""
    eps = eps_for(g.dtype)  # 1e-12, or the dtype's smallest normal where 1e-12 rounds to 0
    if how == "zscore":
        g = (g - g.mean(-1, keepdim=True)) / g.std(-1, keepdim=True, unbiased=False).clamp_min(eps)
    elif how == "rms":
        g = g / g.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(eps)
    elif how == "null":
        g = g / null_std.clamp_min(eps)
    elif how != "none":
        raise ValueError(f"normalize: expected 'zscore', 'rms', 'null' or 'none', got {how!r}")
    if clip is not None:
        g = g.clamp(-clip, clip)
    return g
