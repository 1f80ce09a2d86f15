"""External reference implementations, run on the same problems as the project's own methods.

``get_decomposer("torchhd_resonator", iterations=100)`` iterates torchhd's ``resonator`` step (the
``peers`` extra: ``pip install 'vsa_vision[peers]'``, the ``torch-hd`` package) for the whole budget
from torchhd's own starting point, the superposition (``multiset``) of each codebook, and reads
every factor out by the largest absolute similarity to its codebook, as the project's resonators do.
torchhd's step is the synchronous classic resonator: compare it with ``resonator:update=sync``.
It stacks the codebooks into one ``[K, n, D]`` tensor, so every factor must have the same size.
torchhd's MAP tensors refuse float16 and bfloat16: such problems run in float32 (bipolar values are
exact in every dtype) and the answer comes back in their dtype.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..checks import check_int
from ..vsa import Codebooks, check_problem, wide_dtype
from .base import Capabilities, Decomposition, finalize


def _torchhd():
    try:
        import torchhd
    except ImportError as e:
        raise ImportError("torchhd_resonator needs the torchhd package: pip install 'vsa_vision[peers]' "
                          "(or pip install torch-hd)") from e
    return torchhd


def torchhd_available() -> bool:
    """Whether the ``torchhd`` package (``torch-hd`` on PyPI) can be imported."""
    try:
        _torchhd()
    except ImportError:
        return False
    return True


class TorchhdResonator:
    """torchhd's resonator step iterated ``iterations`` times (no early stop; ``seed`` unused: the
    method is deterministic)."""

    name = "torchhd_resonator"
    capabilities = Capabilities(early_stop=False, equal_sizes=True, peer=True)

    def __init__(self, iterations: int = 100, seed: int = 0) -> None:
        self.iterations = check_int("iterations", iterations, 1)
        self.seed = check_int("seed", seed, 0)

    def __repr__(self) -> str:
        return f"TorchhdResonator(iterations={self.iterations})"

    def options(self) -> dict[str, Any]:
        return {"iterations": self.iterations, "seed": self.seed}

    @torch.no_grad()
    def decompose(self, s: Tensor, codebooks: Codebooks, callback=None) -> Decomposition:
        hd = _torchhd()
        s_in, cb_in, _ = check_problem(s, codebooks)
        s, cb = s_in.to(wide_dtype(s_in.dtype)), cb_in.to(dtype=wide_dtype(s_in.dtype))
        if len(set(cb.sizes)) != 1:
            raise ValueError(f"torchhd_resonator: torchhd stacks the codebooks, so every factor needs the same "
                             f"size; got sizes {list(cb.sizes)}")
        B, K = s.shape[0], cb.num_factors
        domains = hd.ensure_vsa_tensor(torch.stack(cb.tensors, 0), vsa="MAP")        # [K, n, D]
        target = hd.ensure_vsa_tensor(s, vsa="MAP")                                   # [B, D]
        est = hd.multiset(domains).unsqueeze(0).expand(B, K, cb.dim).contiguous()     # [B, K, D]
        est = hd.ensure_vsa_tensor(est, vsa="MAP")
        prev = est
        for _ in range(self.iterations):
            prev, est = est, hd.resonator(target, est, domains)
        sims = torch.einsum("bkd,knd->bkn", est.as_subclass(Tensor), domains.as_subclass(Tensor))
        indices = sims.abs().argmax(-1)
        fixed = (est.as_subclass(Tensor) == prev.as_subclass(Tensor)).flatten(1).all(-1)
        its = torch.full((B,), self.iterations, dtype=torch.long, device=s.device)
        return finalize(s_in, cb_in, indices, its, fixed, self.name)
