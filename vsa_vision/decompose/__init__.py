"""Decomposers: recover every factor of a bound vector. See :func:`get_decomposer`."""

from .auto import LOOKUP_WORK, CheapestDecomposer
from .base import Capabilities, Decomposer, Decomposition, IterativeDecomposer, StepInfo, bound_similarity
from .brute_force import BruteForce
from .diffusion import DiffusionDecomposer
from .in_memory import InMemoryFactorizer
from .peers import TorchhdResonator, torchhd_available
from .registry import (
    available_decomposers,
    build_method,
    capabilities,
    decomposer_options,
    get_decomposer,
    method_spec,
    parse_method,
    register,
    with_options,
)
from .resonator import AttentionResonator, Resonator, StochasticResonator
from .sets import SetDecomposition, bundle_objects, decompose_set

register("brute_force", BruteForce)
register("resonator", Resonator)
register("attention_resonator", AttentionResonator)
register("stochastic_resonator", StochasticResonator)
register("in_memory_factorizer", InMemoryFactorizer)
register("diffusion", DiffusionDecomposer)
register("auto", CheapestDecomposer)  # the cheaper of exhaustive search and diffusion
register("torchhd_resonator", TorchhdResonator)  # a peer: needs the optional torchhd package

__all__ = [
    "decompose_set",
    "SetDecomposition",
    "bundle_objects",
    "Capabilities",
    "capabilities",
    "method_spec",
    "with_options",
    "Decomposer",
    "Decomposition",
    "IterativeDecomposer",
    "StepInfo",
    "bound_similarity",
    "BruteForce",
    "Resonator",
    "AttentionResonator",
    "StochasticResonator",
    "InMemoryFactorizer",
    "DiffusionDecomposer",
    "CheapestDecomposer",
    "LOOKUP_WORK",
    "TorchhdResonator",
    "torchhd_available",
    "available_decomposers",
    "decomposer_options",
    "get_decomposer",
    "build_method",
    "parse_method",
    "register",
]
