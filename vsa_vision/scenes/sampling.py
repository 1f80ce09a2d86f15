"""Drawing scenes of a split: uniform over the split's part of the product space, seeded, prefix-stable.

A split is the whole space (``None``), the scenes outside the held-out combinations (``"train"``,
``"val"``, ``"test"``, each its own stream) or only the held-out ones (``"heldout"``). Whether a
scene is held out depends only on the attributes the ``holdout`` rules name, so the split's share of
that (usually small) projected space is counted exactly before anything is drawn:

* no admissible scene (rules that cover the whole space): a ``ValueError`` naming schema and split;
* a share of at least ``MIN_ACCEPT``: rejection sampling, chunk by chunk (what every schema with a
  reasonable split has always used, so its draws are unchanged);
* a rarer share: the admissible projected combinations are enumerated and drawn directly;
* a projected space too large to enumerate (over ``ENUMERATE_LIMIT``): rejection sampling that gives
  up with a ``ValueError`` when fewer than ``MIN_ACCEPT`` of the first ``PROBE_DRAWS`` draws are
  admissible.

Seeds: any int >= 0. numpy's generators take a seed of any size, so every seed is used whole and
gives the draws it always gave. Where a 64-bit seed is needed (torch's generator, see
:func:`seed63`) a seed >= 2**63 is reduced to 63 bits by SHA-256; smaller seeds pass unchanged.

Memory: :func:`sample_indices` returns one in-memory array of ``n x K`` int64 and refuses an ``n``
whose array would exceed ``MAX_IN_MEMORY_BYTES`` (8 GiB; a module attribute, raise it on a large
machine). :class:`IndexStream` draws the same scenes a block at a time, in bounded memory (what
``generate_dataset`` uses).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ..checks import check_int

SPLITS = ("train", "val", "test", "heldout")
_SPLIT_STREAM = {"all": 0, "train": 1, "val": 2, "test": 3, "heldout": 4}
_CHUNK = 4096  # draws per block; part of what the draws are, so never change it
MIN_ACCEPT = 1 / 1024  # below this share of the space, a split's scenes are drawn directly
ENUMERATE_LIMIT = 1 << 22  # projected combinations counted and enumerated exactly (a bool each)
PROBE_DRAWS = 1 << 22  # draws after which a split of unknown share must have shown MIN_ACCEPT of hits
MAX_IN_MEMORY_BYTES = 8 << 30


def seed63(seed: int) -> int:
    """``seed`` as an int in ``[0, 2**63)``: itself when it is below 2**63, else 63 bits of its SHA-256."""
    seed = check_int("seed", seed, 0)
    if seed < 1 << 63:
        return seed
    digest = hashlib.sha256(b"vsa_vision.seed:" + str(seed).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def check_in_memory(what: str, nbytes: int) -> None:
    """Refuse an in-memory array of ``nbytes`` over ``MAX_IN_MEMORY_BYTES``, naming ``what`` it holds."""
    if nbytes > MAX_IN_MEMORY_BYTES:
        raise ValueError(f"{what} would take {format_bytes(nbytes)} of memory, more than the "
                         f"{format_bytes(MAX_IN_MEMORY_BYTES)} allowed "
                         "(vsa_vision.scenes.sampling.MAX_IN_MEMORY_BYTES); "
                         "use fewer, or generate them to disk with generate_dataset, which works shard by shard")


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _split_key(schema: Any, split: str | None) -> str:
    key = "all" if split is None else split
    if key not in _SPLIT_STREAM:
        raise ValueError(f"split: expected one of {list(SPLITS)} or None, got {split!r}")
    if key == "heldout" and not schema.holdout:
        raise ValueError(f"schema {schema.name!r} has no held-out combinations, so there is no 'heldout' split")
    return key


class _Admissible:
    """Which scenes a split admits, over the attributes the holdout rules name (``dims``).

    ``mask`` (bool, one entry per projected combination) is ``None`` when that space is over
    ``ENUMERATE_LIMIT``; then ``share`` is ``None`` too."""

    def __init__(self, schema: Any, key: str) -> None:
        self.named = sorted({schema.names.index(name) for combo in schema.holdout for name in combo})
        sizes = schema.sizes
        self.dims = tuple(sizes[k] for k in self.named)
        self.mask: np.ndarray | None = None
        self.share: float | None = None
        if int(np.prod(self.dims, dtype=object)) > ENUMERATE_LIMIT:
            return
        held = np.zeros(self.dims, dtype=bool)
        for combo in schema.holdout:
            where: list[Any] = [slice(None)] * len(self.named)
            for name, value in combo.items():
                where[self.named.index(schema.names.index(name))] = schema.attribute(name).index(value)
            held[tuple(where)] = True
        self.mask = held if key == "heldout" else ~held
        self.share = float(self.mask.mean())

    def admitted(self, idx: np.ndarray) -> np.ndarray:
        assert self.mask is not None
        return self.mask[tuple(idx[:, self.named].T)]


class IndexStream:
    """The scenes :func:`sample_indices` draws, taken ``m`` at a time (``take``) in bounded memory:
    ``take(a)`` then ``take(b)`` gives the rows of ``sample_indices(..., a + b)``."""

    def __init__(self, schema: Any, seed: int = 0, split: str | None = None, stream: int | None = None) -> None:
        self.schema = schema
        self.seed = check_int("seed", seed, 0)
        self.split = split
        self.key = _split_key(schema, split)
        # ``stream``: another random stream for the same split (the split's own stream by default)
        self._rng = np.random.default_rng([self.seed, _SPLIT_STREAM[self.key] if stream is None else stream])
        self._sizes = np.asarray(schema.sizes)
        self._space: _Admissible | None = None
        if self.key != "all" and schema.holdout:
            self._space = _Admissible(schema, self.key)
            if self._space.share == 0.0:
                raise ValueError(f"schema {schema.name!r}: the {split!r} split is empty: its held-out combinations "
                                 f"cover all {schema.num_combinations} scenes; hold fewer combinations out")
        self._direct = self._space is not None and self._space.share is not None and self._space.share < MIN_ACCEPT
        self._pool = (np.flatnonzero(self._space.mask) if self._direct and self._space.mask is not None else None)
        self._drawn = self._hits = 0
        self._left = np.zeros((0, len(self._sizes)), dtype=np.int64)

    def _block(self) -> np.ndarray:
        """The next block of admissible rows (possibly empty)."""
        if self._pool is not None:
            return self._direct_block()
        idx = (self._rng.random((_CHUNK, len(self._sizes))) * self._sizes).astype(np.int64)
        space = self._space
        if space is None:
            return idx
        if space.mask is not None:
            keep = space.admitted(idx)
        else:
            held = self.schema.is_held_out(idx)
            keep = held if self.key == "heldout" else ~held
        idx = idx[keep]
        self._probe(len(idx))
        return idx

    def _direct_block(self) -> np.ndarray:
        space, pool = self._space, self._pool
        assert space is not None and pool is not None
        idx = (self._rng.random((_CHUNK, len(self._sizes))) * self._sizes).astype(np.int64)
        picked = pool[self._rng.integers(len(pool), size=_CHUNK)]
        idx[:, space.named] = np.stack(np.unravel_index(picked, space.dims), axis=1)
        return idx

    def _probe(self, hits: int) -> None:
        """Give up on a split of unknown share that shows too few admissible draws (none, or too rare)."""
        if self._space is None or self._space.share is not None or self._drawn >= PROBE_DRAWS:
            return
        self._drawn += _CHUNK
        self._hits += hits
        if self._drawn >= PROBE_DRAWS and self._hits < MIN_ACCEPT * self._drawn:
            what = "no" if self._hits == 0 else f"too few ({self._hits})"
            raise ValueError(f"schema {self.schema.name!r}: the {self.split!r} split admits {what} scenes in "
                             f"{self._drawn} random draws; its held-out combinations cover (nearly) every scene, "
                             "hold fewer combinations out")

    def take(self, m: int) -> np.ndarray:
        """The next ``m`` scenes as value indices ``[m, K]`` (int64, C-contiguous)."""
        m = check_int("m", m, 0)
        out = np.empty((m, len(self._sizes)), dtype=np.int64)
        have = min(m, len(self._left))
        out[:have], self._left = self._left[:have], self._left[have:]
        while have < m:
            block = self._block()
            use = min(m - have, len(block))
            out[have:have + use] = block[:use]
            have += use
            if use < len(block):
                self._left = block[use:]
        return out


def sample_indices(schema: Any, n: int, seed: int = 0, split: str | None = None) -> np.ndarray:
    """``n`` scenes as value indices ``[n, K]``, uniform over the split's part of the product space.

    ``split``: ``None`` (the whole space), ``"train"`` / ``"val"`` / ``"test"`` (every scene except
    the held-out combinations; independent draws per split), or ``"heldout"`` (only the held-out
    combinations). The draw is prefix-stable: the first ``m`` of ``n`` scenes are the ``m`` scenes
    of a call with ``n = m``. A split the held-out combinations leave empty is refused with a
    ``ValueError``; so is an ``n`` whose array would exceed ``MAX_IN_MEMORY_BYTES``."""
    n = check_int("n", n, 0)
    seed = check_int("seed", seed, 0)
    key = _split_key(schema, split)
    if n == 0:
        return np.zeros((0, len(schema.sizes)), dtype=np.int64)
    check_in_memory(f"n: {n} scenes of {len(schema.sizes)} attributes", n * len(schema.sizes) * 8)
    return IndexStream(schema, seed, None if key == "all" else key).take(n)


def sample_scenes(schema: Any, n: int, seed: int = 0, split: str | None = None) -> list[Any]:
    """``n`` random scenes, each ``{attribute name: value label}`` (see :func:`sample_indices`); for a
    schema of several objects each scene is a list of them (see :mod:`vsa_vision.scenes.objects`)."""
    if schema.max_objects > 1:
        from .objects import decode_object_sets, sample_object_sets

        return decode_object_sets(schema, sample_object_sets(schema, n, seed=seed, split=split))
    return schema.decode(sample_indices(schema, n, seed=seed, split=split)) if n else []
