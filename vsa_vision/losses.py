"""Training terms on the encoder's outputs and its factorised head's K vectors.

``factor_loss`` is a term per attribute that does not pass through the other attributes' product: the
cross-entropy of the factor vector's similarities to the attribute's codebook (or 1 - cos to the true
codeword). For an ordinal attribute (values that are ordered steps of one quantity: positions, sizes,
angles) the cross-entropy may take a soft target, a discretised Gaussian of width ``sigma`` steps around
the true value (``ordinal_targets``). Its neighbours then share the credit, so the head learns the
values as an ordered scale rather than as unrelated classes: an image between two seen values (a
rotation never trained on for one shape, seen for the others) reads as the value between them instead
of the nearest seen one. Its mode stays the true value, so exact accuracy is what it measures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def ordinal_targets(labels: Tensor, n: int, sigma: float) -> Tensor:
    """Soft targets ``[B, n]`` over ``n`` ordered values: ``exp(-(j - label)^2 / (2 sigma^2))``,
    normalised; ``sigma`` in steps, > 0."""
    if not sigma > 0:
        raise ValueError(f"sigma: expected > 0 steps, got {sigma!r}")
    steps = torch.arange(n, device=labels.device, dtype=torch.float32)
    logits = -(steps[None, :] - labels[:, None].float()).pow(2) / (2.0 * sigma * sigma)
    return logits.softmax(-1)


def factor_loss(factors: Tensor, labels: Tensor, codebooks: Sequence[Tensor], temperature: float,
                contrastive: bool = True, sigmas: Sequence[float] | None = None) -> Tensor:
    """Mean over attributes of a term on the head's factor vectors ``factors [B, K, D]``.

    ``contrastive``: cross-entropy of ``temperature * cos(f_k, c_j)`` over attribute k's (bipolar) codewords
    against its label, or against ``ordinal_targets`` of width ``sigmas[k]`` where that is > 0;
    otherwise 1 - cos to the true codeword. ``codebooks[k]``: attribute k's ``[n_k, D]`` codewords."""
    K = len(codebooks)
    sigmas = list(sigmas) if sigmas is not None else [0.0] * K
    if len(sigmas) != K:
        raise ValueError(f"sigmas: expected one per attribute ({K}), got {len(sigmas)}")
    term = factors.new_zeros(())
    for k, C in enumerate(codebooks):  # a loop over K attributes, not over problems
        if contrastive:
            fk = F.normalize(factors[:, k], dim=-1)
            logits = temperature * (fk @ C.T) / math.sqrt(C.shape[-1])
            target = ordinal_targets(labels[:, k], C.shape[0], sigmas[k]) if sigmas[k] > 0 else labels[:, k]
            term = term + F.cross_entropy(logits, target)
        else:
            term = term + (1 - F.cosine_similarity(factors[:, k], C[labels[:, k]], dim=-1)).mean()
    return term / K


def reading_loss(factors: Tensor, labels: Tensor, codebooks: Sequence[Tensor], temperature: float,
                 contrastive: bool = True, sigmas: Sequence[float] | None = None,
                 at: Sequence[int] | None = None, positions: Tensor | None = None) -> Tensor:
    """:func:`factor_loss` on every factor's class projection ``factors``, plus, for the factors read as
    positions (``at``: their indices, in the order of ``positions [B, len(at)]``), the positions' absolute
    error in value steps, weighted like one factor's term each."""
    term = factor_loss(factors, labels, codebooks, temperature, contrastive, sigmas)
    at = list(at or [])
    if at and positions is not None:
        term = term + (positions - labels[:, at].float()).abs().sum(1).mean() / len(codebooks)
    return term


def unbinding_contrastive_loss(q: Tensor, target: Tensor, labels: Tensor, codebooks: Sequence[Tensor],
                               temperature: float) -> Tensor:
    """Mean over attributes of the cross-entropy of attribute k's unbinding estimate ``q * target * c_k``
    against all of its codewords."""
    base = q * target  # unbinding all factors: q * target * c_k is factor k's estimate
    norm = base.norm(dim=-1, keepdim=True).clamp_min(1e-6) * math.sqrt(q.shape[-1])
    ce = q.new_zeros(())
    for k, C in enumerate(codebooks):  # a loop over K attributes, not over problems
        est = base * C[labels[:, k]]
        logits = temperature * (est @ C.T) / norm
        ce = ce + F.cross_entropy(logits, labels[:, k])
    return ce / len(codebooks)


__all__ = ["factor_loss", "ordinal_targets", "reading_loss", "unbinding_contrastive_loss"]
