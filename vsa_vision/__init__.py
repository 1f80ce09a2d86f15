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


def __getattr__(name: str):
    # the vision layer (Lightning, Pillow) loads only when asked for
    if name == "Pipeline":
        from .pipeline import Pipeline

        return Pipeline
    if name == "DecomposerHead":
        from .model import DecomposerHead

        return DecomposerHead
    raise AttributeError(f"module 'vsa_vision' has no attribute {name!r}")

__all__ = [
    "Codebooks",
    "Pipeline",
    "DecomposerHead",
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
