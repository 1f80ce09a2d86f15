"""Vector-symbolic algebra of the MAP (multiply-add-permute) model with bipolar codebooks.

Every function is batched over leading dimensions: vectors are ``[..., D]``.

- binding is the elementwise (Hadamard) product, ``bind(a, b) = a * b``; a bipolar vector is its own
  inverse, so ``unbind(bind(a, b), b) == a``;
- bundling is the elementwise sum (optionally binarised with ``sign``, sgn(0) = +1);
- similarity is the dot product or the cosine;
- readout finds, for each factor, the codeword nearest to an estimate.

A :class:`Codebooks` holds K named factors. Factor k has ``n_k`` value labels and a bipolar matrix of
shape ``[n_k, D]``; the sizes ``n_k`` may differ, the dimension ``D`` is shared.
"""

from .codebooks import Codebooks, check_problem
from .ops import (
    LeaveOneOut,
    bind,
    bind_combinations,
    bundle,
    cosine_similarity,
    dot_similarity,
    eps_for,
    is_exact_integer,
    random_bipolar,
    readout,
    rowwise_matmul,
    sign,
    similarity_matrix,
    tensors_key,
    unbind,
    wide_dtype,
)

__all__ = [
    "Codebooks",
    "check_problem",
    "LeaveOneOut",
    "bind",
    "unbind",
    "bundle",
    "sign",
    "dot_similarity",
    "cosine_similarity",
    "similarity_matrix",
    "readout",
    "random_bipolar",
    "eps_for",
    "wide_dtype",
    "is_exact_integer",
    "rowwise_matmul",
    "bind_combinations",
    "tensors_key",
]
