"""The algebra of the MAP (multiply-add-permute) model on plain tensors, batched over leading dims.

- binding is the elementwise (Hadamard) product, ``bind(a, b) = a * b``; a bipolar vector is its own
  inverse, so ``unbind(bind(a, b), b) == a``;
- bundling is the elementwise sum (optionally binarised with ``sign``, sgn(0) = +1);
- similarity is the dot product or the cosine;
- readout finds, for each factor, the codeword nearest to an estimate;
- :class:`LeaveOneOut` gives, for a sweep over the factors, the product of all factors but one: the
  unbinding ``u_k = s * prod_{j != k} x_j`` that every decomposer computes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from .codebooks import Codebooks

__all__ = [
    "bind", "unbind", "bundle", "sign", "dot_similarity", "cosine_similarity", "similarity_matrix", "readout",
    "random_bipolar", "is_bipolar", "LeaveOneOut", "eps_for", "wide_dtype", "rowwise_matmul", "is_exact_integer",
    "bind_combinations", "tensors_key",
]


# ----------------------------------------------------------------------------------------------


def eps_for(dtype: torch.dtype, eps: float = 1e-12) -> float:
    """A positive floor for denominators in ``dtype``: ``eps``, or the smallest normal number of the
    dtype where ``eps`` would round to 0 (float16: 1e-12 is 0, and ``x / 0`` is NaN)."""
    return max(eps, torch.finfo(dtype).tiny) if dtype.is_floating_point else eps


def wide_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype to accumulate in: ``dtype`` itself from 32 bits up, float32 for float16 / bfloat16."""
    return dtype if torch.finfo(dtype).bits >= 32 else torch.float32


def is_exact_integer(x: Tensor, terms: int) -> bool:
    """Whether every entry of ``x`` is an integer small enough that a sum of ``terms`` of them (times
    +-1) is exact in ``x``'s dtype: then any summation order, so any batch, gives the same bits."""
    if x.numel() == 0:
        return True
    limit = 2.0 / torch.finfo(x.dtype).eps  # 2**(mantissa bits + 1): every integer up to it is exact
    return bool(torch.equal(x, torch.round(x))) and float(x.abs().max()) * terms <= limit


def rowwise_matmul(a: Tensor, b: Tensor, exact: bool = False) -> Tensor:
    """``a @ b`` such that each row of the result does not depend on the other rows of ``a``.

    A float32 matrix product sums in an order chosen by the library for the whole shape (one row
    alone takes a matrix-vector path, a batch a blocked one), so a row's last bits depend on the
    batch. Here the sums run in float64 and are rounded to ``a``'s dtype: a row then differs between
    batches only when its float64 sum lies within float64 rounding error of a rounding boundary of
    the dtype (about 2**-29 times the sum's condition number a float32 entry). ``exact=True``: the
    caller knows every sum is exact in the dtype (:func:`is_exact_integer`), and the plain product
    is used. float64 inputs are multiplied as they are."""
    if exact or a.dtype == torch.float64:
        return a @ b
    return (a.double() @ b.double()).to(a.dtype)


def sign(x: Tensor) -> Tensor:
    """Bipolar sign with sgn(0) = +1, same dtype as ``x``."""
    one = torch.ones((), dtype=x.dtype, device=x.device)
    return torch.where(x >= 0, one, -one)


def bind(*xs: Tensor) -> Tensor:
    """Bind vectors by elementwise product: ``x_1 * x_2 * ... * x_m`` (broadcasting leading dims)."""
    if not xs:
        raise ValueError("bind: expected at least one tensor, got none")
    out = xs[0]
    for x in xs[1:]:
        if x.shape[-1] != out.shape[-1]:
            raise ValueError(
                f"bind: all vectors must share the last dimension D; got {out.shape[-1]} and {x.shape[-1]}"
            )
        out = out * x
    return out


def bind_combinations(xs: Sequence[Tensor]) -> Tensor:
    """The bound vectors of every combination of one row of each of ``xs`` (``[n_i, D]`` each) ->
    ``[prod n_i, D]``: row ``r`` binds row ``(r // stride_i) % n_i`` of ``xs[i]``, the last varying fastest."""
    out = xs[0]
    for x in xs[1:]:
        out = (out[:, None, :] * x[None, :, :]).reshape(-1, out.shape[-1])
    return out


def tensors_key(xs: Sequence[Tensor]) -> tuple:
    """A key that changes when any of ``xs`` is replaced or changed in place, for results kept per
    tensors: hold the tensors beside it, so that their ids stay theirs."""
    return tuple((id(x), x.data_ptr(), x._version) for x in xs)


def unbind(s: Tensor, *xs: Tensor) -> Tensor:
    """Unbind ``xs`` from ``s``. For bipolar vectors the inverse is the vector itself, so this is
    ``bind(s, *xs)``: ``unbind(bind(a, b), b) == a``."""
    return bind(s, *xs)


def bundle(xs: Tensor, dim: int = -2, binarize: bool = False) -> Tensor:
    """Superpose vectors by summing along ``dim`` (default: the one before D).

    With ``binarize=True`` the sum is mapped back to a bipolar vector by ``sign`` (sgn(0) = +1)."""
    out = xs.sum(dim=dim)
    return sign(out) if binarize else out


def dot_similarity(x: Tensor, y: Tensor) -> Tensor:
    """``<x, y>`` over the last dimension. With ``y`` of shape ``[n, D]`` and ``x`` of shape
    ``[..., D]`` use :func:`similarity_matrix`; this function pairs vectors elementwise."""
    return (x * y).sum(-1)


def cosine_similarity(x: Tensor, y: Tensor, eps: float = 1e-12) -> Tensor:
    """``<x, y> / (|x| |y|)`` over the last dimension, broadcasting leading dims (accumulated in at
    least float32; the result in the inputs' dtype)."""
    out = torch.promote_types(x.dtype, y.dtype)
    wide = wide_dtype(out)
    x, y = x.to(wide), y.to(wide)
    num = (x * y).sum(-1)
    den = x.norm(dim=-1) * y.norm(dim=-1)
    return (num / den.clamp_min(eps_for(wide, eps))).to(out)


def similarity_matrix(x: Tensor, codebook: Tensor, kind: str = "dot") -> Tensor:
    """Similarity of every vector in ``x`` ``[..., D]`` to every codeword ``[n, D]`` -> ``[..., n]``.

    ``kind``: ``"dot"`` (raw inner product), ``"normalized"`` (dot / D, in [-1, 1] for bipolar
    vectors) or ``"cosine"``."""
    sims = x @ codebook.transpose(-1, -2)
    if kind == "dot":
        return sims
    if kind == "normalized":
        return sims / codebook.shape[-1]
    if kind == "cosine":
        xn = x.norm(dim=-1, keepdim=True)
        cn = codebook.norm(dim=-1)
        return sims / (xn * cn).clamp_min(eps_for(sims.dtype))
    raise ValueError(f"similarity_matrix: kind must be 'dot', 'normalized' or 'cosine', got {kind!r}")


def readout(
    estimates: Sequence[Tensor], codebooks: Codebooks, sign_invariant: bool = True
) -> tuple[Tensor, Tensor]:
    """Nearest codeword of each factor estimate.

    ``estimates[k]`` is ``[..., D]``; returns ``indices [..., K]`` (long) and the cosine similarity
    of each estimate to its chosen codeword ``[..., K]``. With ``sign_invariant=True`` (default) the
    codeword of largest *absolute* similarity is chosen and its absolute cosine reported: bipolar
    binding cannot tell ``(a, b)`` from ``(-a, -b)``, so a negated estimate is as good as the codeword.
    """
    if len(estimates) != codebooks.num_factors:
        raise ValueError(
            f"readout: expected {codebooks.num_factors} estimates (one per factor), got {len(estimates)}"
        )
    idx, sims = [], []
    for x, cb in zip(estimates, codebooks.tensors):
        sim = similarity_matrix(x.to(cb.dtype), cb, kind="cosine")
        score = sim.abs() if sign_invariant else sim
        best, i = score.max(dim=-1)
        idx.append(i)
        sims.append(best)
    return torch.stack(idx, dim=-1), torch.stack(sims, dim=-1)


def is_bipolar(t: Tensor) -> bool:
    """Whether every entry of ``t`` is +1 or -1."""
    return bool(((t == 1) | (t == -1)).all())


def random_bipolar(
    shape: Sequence[int], generator: torch.Generator, dtype: torch.dtype = torch.float32
) -> Tensor:
    """I.i.d. +-1 entries drawn on the CPU from ``generator`` (so a seed gives the same vectors
    whatever device they are later moved to)."""
    bits = torch.randint(0, 2, tuple(shape), generator=generator, dtype=torch.int8)
    return (bits.to(dtype) * 2 - 1).contiguous()




class LeaveOneOut:
    """The product of every factor but one, for a sweep over the factors ``k = 0 .. K-1``, in O(K)
    products instead of O(K^2)::

        u_k = start * x'_0 * ... * x'_{k-1} * (x_{K-1} * ... * x_{k+1})

    ``xs`` are the estimates at the start of the sweep; ``x'_j`` is what :meth:`advance` received for
    factor ``j``: its *new* estimate for a sequential (Gauss-Seidel) sweep, its old one for a parallel
    (Jacobi) sweep. ``start`` is the target ``s`` (unbinding) or None (the plain product of the others).
    The order of the products is fixed, so the result does not depend on how it is used.

    >>> x = [torch.tensor([2.0]), torch.tensor([3.0]), torch.tensor([5.0])]
    >>> LeaveOneOut.all(x, start=torch.tensor([1.0]))
    [tensor([15.]), tensor([10.]), tensor([6.])]
    """

    def __init__(self, xs: Sequence[Tensor], start: Tensor | None = None) -> None:
        K = len(xs)
        suffix: list[Tensor | None] = [None] * (K + 1)
        for k in range(K - 1, -1, -1):
            suffix[k] = xs[k] if suffix[k + 1] is None else suffix[k + 1] * xs[k]
        self._suffix = suffix
        self._prefix = start
        self._next = 0

    def others(self, k: int) -> Tensor | None:
        """``u_k`` for the factor the sweep is at (``k`` must be the number of :meth:`advance` calls so
        far); None when there is nothing to multiply (one factor and no start)."""
        if k != self._next:
            raise ValueError(f"LeaveOneOut: the sweep is at factor {self._next}, asked for {k}")
        p, q = self._prefix, self._suffix[k + 1]
        if q is None:
            return p
        return q if p is None else p * q

    def advance(self, x: Tensor) -> None:
        """Factor ``k`` is done: ``x`` joins the prefix for the factors after it."""
        self._prefix = x if self._prefix is None else self._prefix * x
        self._next += 1

    @classmethod
    def all(cls, xs: Sequence[Tensor], start: Tensor | None = None) -> list[Tensor | None]:
        """Every ``u_k`` of a parallel sweep (each factor's product of the others at ``xs``)."""
        loo, out = cls(xs, start), []
        for k, x in enumerate(xs):
            out.append(loo.others(k))
            loo.advance(x)
        return out
