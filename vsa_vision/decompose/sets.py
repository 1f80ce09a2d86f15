"""Sets of objects: a scene vector is the *sum* of its objects' bound vectors,
``s = sum_i prod_k c_{k, i_k}``; recover the set of objects (and how many there are) from ``s``.

Explaining away (:func:`decompose_set`): decode one object from the residual with any registered
decomposer, subtract its bound vector (times the scene's ``scale``, 1 for an exact bundle), repeat.
Each decoded object's *amplitude* in the residual, ``a = <r, b> / |b|^2``, says whether it is there:
a present object has amplitude about 1 (its own share, plus the crosstalk of the others, of standard
deviation ``sqrt((m - 1) / D)``), a spurious decode of what is left about 0. An object is accepted
while ``a > threshold * scale`` (default threshold 0.5: subtracting it then lowers the residual's
energy); the first rejected decode ends the set, unless the number of objects is given (``count``).

Each object's confidence is the cosine between its bound vector and what the *other* accepted
objects leave of ``s``: 1 for an exact bundle decoded right, lower where an object explains its part
of ``s`` badly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..checks import check_choice, check_float, check_int
from ..vsa import Codebooks, check_problem
from .registry import capabilities, get_decomposer, parse_method

__all__ = ["SetDecomposition", "decompose_set", "bundle_objects", "DEFAULT_MAX_OBJECTS"]

#: the cap on the number of objects when neither ``max_objects`` nor ``count`` is given
DEFAULT_MAX_OBJECTS = 8

#: an iterative inner decoder's budget when none is given: on exact and unit-norm noisy (cosine 0.8)
#: bundles of 1 to 4 objects of the vision shape (D = 1024, count unknown) the diffusion decoder found
#: every set at 1000 iterations, 93.3 to 97.5% / 42.9 to 88.8% at its own default of 100
#: (docs/BENCHMARKS.md, the default call of the set decoder)
SET_ITERATIONS = 1000

#: how the objects are found: explaining away, or all at once (diffusion only)
STRATEGIES = ("peel", "joint")


@dataclass
class SetDecomposition:
    """The objects found in each of B scene vectors.

    - ``objects``: one ``LongTensor [m, K]`` per problem, the objects in the order they were found;
    - ``counts`` ``[B]`` long: ``m`` per problem;
    - ``confidence``: one ``[m]`` tensor per problem, the cosine between each object's bound vector
      and what the other objects leave of ``s``;
    - ``amplitude``: one ``[m]`` tensor per problem, each object's amplitude in the residual it was
      decoded from (about 1 in an exact bundle);
    - ``residual`` ``[B]``: the norm of what no object explains, relative to ``|s|`` (for a zero vector
      ``s``: 0 when nothing is left, 1 when objects were taken out of it, as a given ``count`` does)."""

    objects: list[Tensor]
    counts: Tensor
    confidence: list[Tensor]
    amplitude: list[Tensor]
    residual: Tensor
    codebooks: Codebooks = field(repr=False)
    method: str = ""

    def __len__(self) -> int:
        return len(self.objects)

    @property
    def labels(self) -> list[list[dict[str, str]]]:
        """Per problem, the list of objects as ``{factor: value label}``."""
        return [self.codebooks.labels_of(o) if len(o) else [] for o in self.objects]

    def hits(self, truth: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """Per problem ``[B]`` bool: (its set of objects is exactly right, its count is right);
        ``truth`` holds one ``[m, K]`` tensor of true objects per problem, in any order."""
        if len(truth) != len(self.objects):
            raise ValueError(f"truth: expected {len(self.objects)} object sets, got {len(truth)}")
        sets, counts = [], []
        for found, true in zip(self.objects, truth):  # per problem: sets of a few objects
            true = self.codebooks.check_indices(torch.as_tensor(true).reshape(-1, self.codebooks.num_factors))
            counts.append(len(found) == len(true))
            sets.append(counts[-1] and _as_set(found) == _as_set(true))
        return torch.tensor(sets, dtype=torch.bool), torch.tensor(counts, dtype=torch.bool)

    def accuracy(self, truth: Sequence[Tensor]) -> tuple[float, float]:
        """(fraction of problems whose set of objects is exactly right, fraction with the right count)."""
        sets, counts = self.hits(truth)
        n = max(1, len(self.objects))
        return float(sets.sum()) / n, float(counts.sum()) / n


def _as_set(objects: Tensor) -> set[tuple[int, ...]]:
    return {tuple(row) for row in objects.tolist()}


def bundle_objects(codebooks: Codebooks, objects: Sequence[Tensor], scale: float = 1.0) -> Tensor:
    """The scene vectors ``[B, D]`` of B object sets (each ``[m, K]``, m may differ and be 0): the sum
    of the objects' bound vectors, times ``scale``."""
    out = torch.zeros(len(objects), codebooks.dim, dtype=codebooks.dtype, device=codebooks.device)
    sizes = [len(o) for o in objects]
    if sum(sizes):
        flat = torch.cat([torch.as_tensor(o).reshape(-1, codebooks.num_factors) for o in objects])
        owner = torch.repeat_interleave(torch.arange(len(objects), device=codebooks.device),
                                        torch.tensor(sizes, device=codebooks.device))
        out.index_add_(0, owner, codebooks.bind_indices(flat.to(codebooks.device)))
    return out * scale


def _counts(count: Any, B: int, device: torch.device) -> Tensor | None:
    if count is None:
        return None
    if isinstance(count, Tensor):
        if count.dim() != 1 or count.shape[0] != B or count.is_floating_point():
            raise ValueError(f"count: expected an integer tensor [B] with B = {B}, got {count.dtype} "
                             f"{tuple(count.shape)}")
        if bool((count < 0).any()):
            raise ValueError("count: expected non-negative object counts")
        return count.to(device=device, dtype=torch.long)
    return torch.full((B,), check_int("count", count, 0), dtype=torch.long, device=device)


def _inner(method: str, max_objects: int, options: dict[str, Any]):
    """The decomposer that reads one object at a time. Its default early stop is a similarity that a
    present object reaches even among ``max_objects - 1`` others (cosine about ``1 / sqrt(m)``) and a
    spurious decode does not; an iterative method's default budget is :data:`SET_ITERATIONS` (its
    stop rules end a problem as soon as its object is found or its answer has settled, so the budget
    is spent only where the search needs it)."""
    name, spec_opts = parse_method(method)
    opts = {**spec_opts, **options}
    if capabilities(name).early_stop and "stop_similarity" not in opts:
        opts["stop_similarity"] = min(0.5, 0.7 / math.sqrt(max_objects))
    decoder = get_decomposer(name, **opts)
    own = getattr(decoder, "iterations", None)  # None: a method with its own adaptive budget keeps it
    if capabilities(name).iterative and "iterations" not in opts and isinstance(own, int) and own < SET_ITERATIONS:
        decoder = get_decomposer(name, **opts, iterations=SET_ITERATIONS)
    return decoder


@torch.no_grad()
def decompose_set(s: Tensor, codebooks: Codebooks, method: str = "diffusion", max_objects: int | None = None,
                  count: int | Tensor | None = None, threshold: float = 0.5, scale: float | str = 1.0,
                  strategy: str = "peel", **options: Any) -> SetDecomposition:
    """The objects of each scene vector ``s`` ``[B, D]`` (or one ``[D]``), found by explaining away
    with the decomposer ``method`` (a name or a spec, built with ``options``; every registered
    decomposer works, ``"brute_force"`` is the oracle).

    ``max_objects`` (at least 1) caps the objects per scene (default: the largest ``count``, else
    :data:`DEFAULT_MAX_OBJECTS`); ``count`` (an int of at least 1, or a ``[B]`` tensor, where 0 is a
    scene of no objects) gives the number of objects instead of estimating it; ``threshold``: the
    amplitude, relative to ``scale``, a decoded object needs to be accepted; ``scale``: the amplitude
    of one object in ``s`` (1 for a plain sum), or ``"auto"`` for vectors of unknown scale (an encoder's
    output): the first object is accepted when its cosine with ``s`` exceeds ``first_cosine`` and its
    amplitude sets the scene's scale, and each object is subtracted with its own fitted amplitude.

    ``strategy``: ``"peel"`` (explaining away, the default) or ``"joint"`` (every object inferred at
    once by coupled diffusion slots, :mod:`.joint`; ``method`` must be a diffusion spec, and it runs
    ``count`` slots, or ``max_objects`` and keeps those whose amplitude passes ``threshold``).
    Peeling is the default because it is more accurate and faster on every measured shape
    (``docs/BENCHMARKS.md``, sets of objects)."""
    s, cb, single = check_problem(s, codebooks)
    B, K = s.shape[0], cb.num_factors
    if isinstance(count, int) and not isinstance(count, bool) and count == 0:
        raise ValueError("count: expected at least 1 object a scene, got 0 (a scene of no objects has nothing to "
                         "decode; give count=None to let the decoder count them)")
    counts_given = _counts(count, B, s.device)
    if max_objects is not None:
        max_objects = check_int("max_objects", max_objects, 1)
    cap = max_objects
    if cap is None:
        cap = int(counts_given.max()) if counts_given is not None and B else DEFAULT_MAX_OBJECTS
    if counts_given is not None and B and int(counts_given.max()) > cap:
        raise ValueError(f"count: up to {int(counts_given.max())} objects, more than max_objects = {cap}")
    threshold = check_float("threshold", threshold, 0.0)
    auto = scale == "auto"
    scale = 1.0 if auto else check_float("scale", scale, 1e-12)
    first_cosine = check_float("first_cosine", options.pop("first_cosine", 0.2), 0.0, 1.0)
    check_choice("strategy", strategy, STRATEGIES)
    if strategy == "joint":
        if auto:
            raise ValueError("scale='auto': explaining away only (strategy='peel')")
        return _joint(s, cb, method, cap, counts_given, threshold, scale, options)
    decoder = _inner(method, max(1, cap), options)
    if B == 0 or cap == 0:  # no scenes, or every given count 0: nothing to decode
        return _empty(s, cb, scale, method)

    found = torch.zeros(B, cap, K, dtype=torch.long, device=s.device)
    amp = torch.zeros(B, cap, dtype=s.dtype, device=s.device)
    n = torch.zeros(B, dtype=torch.long, device=s.device)
    residual = s.clone()
    scene_scale = torch.full((B,), scale, dtype=s.dtype, device=s.device)  # "auto": set by the first object
    active = torch.ones(B, dtype=torch.bool, device=s.device) if counts_given is None else counts_given > 0
    # no bipolar object can pass the amplitude test in a residual shorter than threshold * scale * sqrt(D)
    # (a = <r, b> / |b|^2 <= |r| / |b|, |b| = sqrt(D)): such rows are done without a decode
    floor = threshold * math.sqrt(cb.dim) if counts_given is None and cb.bipolar else None
    for j in range(cap):
        if floor is not None and not (auto and j == 0):
            active &= residual.norm(dim=-1) >= floor * scene_scale
        rows = active.nonzero().flatten()
        if rows.numel() == 0:
            break
        r = residual[rows]
        if counts_given is None and getattr(decoder, "give_up", None) is not None:  # the bar for its give-up rule
            bar = _bar(r, cb, scene_scale[rows], threshold, first_cosine, auto and j == 0)
            res = decoder.decompose(r, cb, accept=bar)
        else:
            res = decoder.decompose(r, cb)
        b = cb.bind_indices(res.indices).to(s.dtype)
        a = (r * b).sum(-1) / (b * b).sum(-1)
        if counts_given is not None:
            present = torch.ones_like(a, dtype=torch.bool)
        elif auto and j == 0:
            present = (a > 0) & ((r * b).sum(-1) / (r.norm(dim=-1) * b.norm(dim=-1)).clamp_min(1e-30) > first_cosine)
            scene_scale[rows] = torch.where(present, a, scene_scale[rows])
        else:
            present = a > threshold * scene_scale[rows]
        hit = rows[present]
        found[hit, j] = res.indices[present]
        amp[hit, j] = a[present]
        n[hit] += 1
        residual[hit] -= (a[present] if auto else scene_scale[hit])[:, None] * b[present]
        active[rows[~present]] = False
        if counts_given is not None:
            active &= n < counts_given
    weight = amp if auto else torch.full_like(amp, scale)
    return _result(s, cb, found, amp, n, residual, weight, method)


def _bar(r: Tensor, cb: Codebooks, scale: Tensor, threshold: float, first_cosine: float, first: bool) -> Tensor | None:
    """The bound similarity ``|cos(r, b)|`` below which a decoded object ``b`` of the residuals ``r``
    is rejected: ``first_cosine`` for the first object of an ``"auto"`` scene, else the amplitude test
    ``<r, b> / D > threshold * scale`` as a cosine, ``threshold * scale * sqrt(D) / |r|`` (bipolar
    codebooks, ``|b| = sqrt(D)``; None for others, whose ``|b|`` varies)."""
    if first:
        return torch.full_like(scale, first_cosine)
    if not cb.bipolar:
        return None
    return threshold * scale * math.sqrt(cb.dim) / r.norm(dim=-1).clamp_min(torch.finfo(r.dtype).tiny)


def _joint(s: Tensor, cb: Codebooks, method: str, cap: int, counts_given: Tensor | None, threshold: float,
           scale: float, options: dict[str, Any]) -> SetDecomposition:
    from .joint import joint_slots

    name, spec_opts = parse_method(method)
    if name != "diffusion":
        raise ValueError(f"strategy='joint': infers the objects with coupled diffusion slots; method must be "
                         f"'diffusion', got {method!r}")
    if counts_given is not None and bool((counts_given != counts_given[0]).any()):
        raise ValueError("strategy='joint': one count for the whole batch (run the batch by count)")
    slots = int(counts_given[0]) if counts_given is not None and len(counts_given) else cap
    if slots == 0 or s.shape[0] == 0:
        return _empty(s, cb, scale, method)
    opts = {**spec_opts, **options}
    opts.pop("chains", None)  # the slots of a problem play the part of its chains
    idx, keep, amp, _ = joint_slots(s, cb, slots, scale=scale, accept=threshold, **opts)
    if counts_given is not None:  # the count is known: every slot is an object
        keep = torch.ones_like(keep)
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)  # accepted slots first
    found = idx.gather(1, order[:, :, None].expand_as(idx))
    amp = amp.gather(1, order)
    n = keep.sum(1)
    residual = s - scale * bundle_objects(cb, [found[i, :m] for i, m in enumerate(n.tolist())])
    return _result(s, cb, found, amp, n, residual, scale, method)


def _empty(s: Tensor, cb: Codebooks, weight: float, method: str) -> SetDecomposition:
    """No object found in any of the scene vectors ``s`` (none to decode, or a batch of none)."""
    B = s.shape[0]
    return _result(s, cb, torch.zeros(B, 0, cb.num_factors, dtype=torch.long, device=s.device),
                   torch.zeros(B, 0, dtype=s.dtype, device=s.device), torch.zeros(B, dtype=torch.long, device=s.device),
                   s.clone(), weight, method)


def _result(s: Tensor, cb: Codebooks, found: Tensor, amp: Tensor, n: Tensor, residual: Tensor,
            weight: Tensor | float, method: str) -> SetDecomposition:
    """``weight``: each object's amplitude in ``s`` (``[B, cap]``, or one number for all)."""
    B, cap, K = found.shape
    slot = torch.arange(cap, device=s.device)
    real = slot[None, :] < n[:, None]                                                  # [B, cap]
    bound = cb.bind_indices(found.reshape(-1, K)).reshape(B, cap, cb.dim).to(s.dtype)  # [B, cap, D]
    w = weight[..., None] if isinstance(weight, Tensor) else weight
    others_left = residual[:, None, :] + w * bound            # s minus every other accepted object
    num = (others_left * bound).sum(-1)
    den = others_left.norm(dim=-1) * bound.norm(dim=-1)
    conf = torch.where(real, num / den.clamp_min(torch.finfo(s.dtype).tiny), torch.zeros_like(num))
    left, whole = residual.norm(dim=-1), s.norm(dim=-1)
    # a zero vector: nothing left of it is 0; objects taken out of it (a given count) explain none of it: 1
    rel = torch.where(whole > 0, left / whole.clamp_min(torch.finfo(s.dtype).tiny), (left > 0).to(s.dtype))
    counts = n.tolist()
    return SetDecomposition(
        objects=[found[i, :m] for i, m in enumerate(counts)],
        counts=n,
        confidence=[conf[i, :m] for i, m in enumerate(counts)],
        amplitude=[amp[i, :m] for i, m in enumerate(counts)],
        residual=rel,
        codebooks=cb,
        method=method,
    )
