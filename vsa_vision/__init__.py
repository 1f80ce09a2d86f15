"""vsa_vision: images to binding-based (vector-symbolic) representations and back.

    >>> import torch
    >>> from vsa_vision import Codebooks, get_decomposer
    >>> cb = Codebooks.random({"shape": 10, "colour": 10, "size": 10}, dim=1000, seed=0)
    >>> s = cb.bind_indices(torch.tensor([[3, 1, 4]]))
    >>> get_decomposer("resonator", iterations=100).decompose(s, cb).indices.tolist()
    [[3, 1, 4]]
"""

from .decompose import Decomposer, Decomposition, available_decomposers, get_decomposer, register
from .vsa import Codebooks, bind, bundle, cosine_similarity, dot_similarity, readout, unbind

__version__ = "0.1.0"

__all__ = [
    "Codebooks",
    "Decomposer",
    "Decomposition",
    "available_decomposers",
    "get_decomposer",
    "register",
    "bind",
    "unbind",
    "bundle",
    "cosine_similarity",
    "dot_similarity",
    "readout",
    "__version__",
]
