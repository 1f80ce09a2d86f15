"""Seeded noise that depends on the problem, never on the batch it is solved in.

Stochastic decomposers (the stochastic resonator, diffusion) draw noise every iteration. Drawing it
from one generator for the whole batch would make a problem's answer depend on which other
problems share its batch, and on the batch order. Instead every draw is a window of a table of
standard normals made from the seed, at an offset hashed from

    (seed, a key of the problem's content, the iteration, a stream number),

so a problem gets the same noise alone, in any batch, at any position, and on any device (the
table is drawn on the CPU). Two identical problems get identical noise, which is harmless.

The key of a problem is an exact integer hash of the *signs* of its entries (sgn(0) = +1, so -0.0
and +0.0 agree), not of their bits: a vector computed in another batch (an encoder's output, whose
last bits depend on the batch size) keeps its key unless an entry changes sign. That happens only
for an entry within its rounding error of 0: with errors of ``e`` (absolute) and ``p0`` the density
of the entries at 0, about ``2 e p0 D`` a problem (for D = 1024 entries of unit scale computed in
float32, ``e ~ 1e-7``: about 1e-4 a problem). For a bipolar vector the key equals the hash of its
exact bits (the key these vectors always had). The hash is an order-free integer sum, so it does not
depend on floating-point reduction order. Problems with the same signs share their noise, which is
harmless (the noise is still independent of everything else about them).

What the key buys is the same *noise*; the answer is the same alone or in any batch when the
decomposer's arithmetic on a row does not depend on the batch either (see each method: the
resonators' similarities are exact or computed in float64; the diffusion decomposer's products are
exact on integer-valued targets and float32 on real ones). The cost per draw is one gather, like
``torch.randn``; :meth:`ProblemNoise.normal_block` draws many iterations and streams in one.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor

_MASK = 0x7FFFFFFF  # 31-bit arithmetic in int64: products stay below 2**62, no overflow


def _mix(x):
    """A 31-bit integer hash (xorshift-multiply rounds) on int64 tensors, or Python ints, with values
    < 2**31 (the same arithmetic on both)."""
    x = ((x ^ (x >> 15)) * 0x2C1B3C6D) & _MASK
    x = ((x ^ (x >> 12)) * 0x297A2D39) & _MASK
    return x ^ (x >> 15)


def _tag(iteration: int, stream: int) -> int:
    """The hash of (iteration, stream) that offsets every problem's draw (a Python int: no tensor a draw)."""
    return _mix(((iteration * 1000003) ^ (stream * 7919 + 1)) & _MASK)


#: the float32 bit patterns of +1.0 and -1.0: the key of an entry is that of its sign
_PLUS, _MINUS = 0x3F800000, 0xBF800000


def problem_keys(s: Tensor) -> Tensor:
    """A 31-bit key per row of ``s [B, D]`` from the signs of its entries (sgn(0) = +1; order-free
    sum): the hash of the bits of ``sign(s)`` as float32, so a bipolar row keeps the key of its
    exact bits, and last-bit differences of a real row do not change it."""
    s = s.detach()
    plus = torch.tensor(_PLUS, dtype=torch.int64, device=s.device)
    bits = torch.where(s >= 0, plus, torch.tensor(_MINUS, dtype=torch.int64, device=s.device))
    pos = torch.arange(s.shape[-1], device=s.device, dtype=torch.int64)
    h = _mix((bits & _MASK) ^ _mix(pos + 1)) ^ _mix((bits >> 31) + 2 * pos + 7)
    return _mix(h.sum(-1) & _MASK)


@functools.lru_cache(maxsize=8)
def _table(seed: int, bits: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """The table of standard normals of a seed, drawn once per (seed, size, device, dtype) and kept
    (4 MB at the default size): drawing it took longer than a whole decomposition of a few problems.
    Read-only: every draw is a gather from it."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(1 << bits, generator=gen).to(device=device, dtype=dtype)


class ProblemNoise:
    """Standard-normal noise keyed by (seed, problem, iteration, stream).

    ``noise = ProblemNoise(s, seed)`` once per ``decompose`` call; then
    ``noise.normal(rows, iteration, stream, width)`` gives ``[len(rows), width]`` for the problems at
    positions ``rows`` of ``s``.

    ``chains = C > 1``: ``s`` holds every problem C times in a row (``s.repeat_interleave(C, 0)``),
    one copy per independent chain; copy ``c`` of a problem gets its own noise, and copy 0 the noise
    it gets with ``chains = 1``."""

    def __init__(self, s: Tensor, seed: int, table_bits: int = 20, dtype: torch.dtype | None = None,
                 chains: int = 1) -> None:
        self.size = 1 << table_bits
        self.table = _table(int(seed), table_bits, s.device, dtype or s.dtype)
        self.salt = _mix(int(seed) & _MASK)
        self.keys = problem_keys(s) ^ self.salt
        if chains > 1:
            if s.shape[0] % chains:
                raise ValueError(f"chains: {s.shape[0]} rows are not a whole number of {chains} chains")
            c = torch.arange(s.shape[0], device=s.device, dtype=torch.int64) % chains
            mixed = _mix((self.keys ^ _mix(c * 0x9E3779B + 12345)) & _MASK)
            self.keys = torch.where(c > 0, mixed, self.keys)

    def offsets(self, rows: Tensor, iteration: int, stream: int) -> Tensor:
        return _mix(self.keys[rows] ^ _tag(iteration, stream)) & (self.size - 1)

    def normal(self, rows: Tensor, iteration: int, stream: int, width: int) -> Tensor:
        if width > self.size:
            raise ValueError(f"width: at most {self.size} noise values a draw, got {width}")
        start = self.offsets(rows, iteration, stream)
        idx = (start[:, None] + torch.arange(width, device=rows.device)) & (self.size - 1)
        return self.table[idx]

    def normal_block(self, rows: Tensor, iterations: Sequence[int], streams: Sequence[int],
                     widths: Sequence[int]) -> Tensor:
        """Many draws in one gather: ``[len(rows), len(iterations), sum(widths)]`` whose slice
        ``[:, t, w_0 + .. + w_{j-1} : w_0 + .. + w_j]`` is ``normal(rows, iterations[t], streams[j],
        widths[j])`` exactly. An iterative method draws a block of iterations at once instead of one
        small gather (a dozen kernels at batch 1) per factor and iteration."""
        if len(streams) != len(widths):
            raise ValueError(f"streams and widths: expected one width a stream, got {len(streams)} and {len(widths)}")
        if max(widths, default=0) > self.size:
            raise ValueError(f"width: at most {self.size} noise values a draw, got {max(widths)}")
        dev = rows.device
        tags = torch.tensor([[_tag(it, st) for st in streams] for it in iterations], dtype=torch.int64,
                            device=dev)                                                   # [T, S]
        start = _mix(self.keys[rows][:, None, None] ^ tags) & (self.size - 1)             # [A, T, S]
        widths_t = torch.tensor(list(widths), dtype=torch.int64, device=dev)
        which = torch.repeat_interleave(torch.arange(len(widths), device=dev), widths_t)  # [W] the stream
        first = torch.cumsum(widths_t, 0) - widths_t
        pos = torch.arange(int(widths_t.sum()), device=dev) - first[which]                # [W] within it
        return self.table[(start[:, :, which] + pos) & (self.size - 1)]
