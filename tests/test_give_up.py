"""The give-up rule: a problem whose best answer is still below the caller's bar (``accept``) after
``give_up`` iterations stops there; the set decoder passes its acceptance bar, so a residual that
holds no object stops early instead of running the whole budget."""

import math

import pytest
import torch

from vsa_vision.decompose import decompose_set, get_decomposer
from vsa_vision.decompose.base import IterativeDecomposer
from vsa_vision.vsa import Codebooks


def _noise(n: int, dim: int, seed: int) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("chains", [1, 3])
def test_a_problem_below_the_bar_stops_at_give_up_and_one_above_runs_on(chains):
    cb = Codebooks.random({"a": 8, "b": 8, "c": 8}, dim=512, seed=0)
    idx = torch.tensor([[1, 2, 3], [4, 5, 6]])
    s = torch.cat([cb.bind_indices(idx), _noise(2, 512, 1)])  # two exact objects, two of pure noise
    opts = dict(iterations=200, chains=chains, patience=None, patience_long=None, stop_similarity=None, seed=3)
    full = get_decomposer("diffusion", **opts).decompose(s, cb)
    assert full.iterations.tolist() == [200] * 4
    res = get_decomposer("diffusion", give_up=25, **opts).decompose(s, cb, accept=torch.tensor([0.5, 0.5, 0.5, 0.9]))
    # the noise never reaches the bar: those problems stop at 25; the objects, found, run the budget
    assert res.iterations.tolist() == [200, 200, 25, 25]
    assert torch.equal(res.indices[:2], idx) and torch.equal(res.indices[:2], full.indices[:2])
    assert not bool(res.converged[2:].any())
    # each problem is held to its own bar: one no answer can reach gives up although its object is found
    own = get_decomposer("diffusion", give_up=25, **opts).decompose(s, cb, accept=torch.tensor([1.5, 0.5, 0.5, 0.0]))
    assert own.iterations.tolist() == [25, 200, 25, 200]
    # without a bar, or without the option, nothing gives up
    assert get_decomposer("diffusion", give_up=25, **opts).decompose(s, cb).iterations.tolist() == [200] * 4
    assert get_decomposer("diffusion", **opts).decompose(s, cb, accept=0.9).iterations.tolist() == [200] * 4


def test_the_bar_is_checked():
    cb = Codebooks.random({"a": 4, "b": 4}, dim=64, seed=0)
    dec = get_decomposer("diffusion", give_up=5, iterations=10)
    s = cb.bind_indices(torch.tensor([[0, 1], [2, 3]]))
    with pytest.raises(ValueError, match="accept"):
        dec.decompose(s, cb, accept=torch.tensor([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="accept"):
        dec.decompose(s, cb, accept=torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="accept"):
        dec.decompose(s, cb, accept=float("nan"))
    with pytest.raises(ValueError, match="give_up"):
        get_decomposer("diffusion", give_up=0)


def test_decompose_set_passes_its_acceptance_bar_and_finds_the_same_objects(monkeypatch):
    from vsa_vision.bench.problems import make_set_problems

    p = make_set_problems([6, 6, 6], 1024, 12, objects=(1, 3), seed=4)
    u = p.s / p.s.norm(dim=-1, keepdim=True)
    e = _noise(len(u), 1024, 5)
    e = e - (e * u).sum(-1, keepdim=True) * u
    s = 0.8 * u + 0.6 * e / e.norm(dim=-1, keepdim=True)  # unit norm, cosine 0.8: the last round holds no object
    seen = []
    real = IterativeDecomposer.decompose

    def spy(self, r, cb, callback=None, accept=None):
        out = real(self, r, cb, callback, accept)
        seen.append((r, accept, out.iterations))
        return out

    monkeypatch.setattr(IterativeDecomposer, "decompose", spy)
    opts = dict(method="diffusion", max_objects=4, scale="auto", iterations=400, seed=1)
    full = decompose_set(s, p.codebooks, give_up=None, **opts)
    spent_full = sum(int(it.sum()) for _, _, it in seen)
    seen.clear()
    quick = decompose_set(s, p.codebooks, give_up=60, **opts)
    assert full.accuracy(p.objects)[0] == 1.0
    assert [o.tolist() for o in quick.objects] == [o.tolist() for o in full.objects]
    assert sum(int(it.sum()) for _, _, it in seen) < 0.7 * spent_full
    # the bar: first_cosine for the first object, then the amplitude test as a cosine
    (r0, a0, _), (r1, a1, _) = seen[0], seen[1]
    assert torch.allclose(a0, torch.full((len(r0),), 0.2))
    rows = torch.arange(len(s))[quick.counts >= 1]
    scale = torch.stack([quick.amplitude[i][0] for i in rows.tolist()])
    assert torch.allclose(a1, 0.5 * scale * math.sqrt(1024) / r1.norm(dim=-1), rtol=1e-4)
    # the last rounds, which hold no object, stopped at give_up
    assert int(seen[-1][2].max()) <= 60
    # a given count accepts every decode: no bar
    seen.clear()
    decompose_set(s, p.codebooks, count=p.counts.clamp_min(1), give_up=60, **opts)
    assert all(a is None for _, a, _ in seen)


def test_the_set_models_decode_gives_up_at_two_thirds_of_their_budget(monkeypatch):
    import vsa_vision.multi as multi
    from vsa_vision import Pipeline

    model = Pipeline.from_checkpoint("multi").model
    calls = []
    monkeypatch.setattr(multi, "decompose_set", lambda *a, **k: calls.append(k))
    q = torch.zeros(1, model.codebooks.dim)
    model.decode(q)
    model.decode(q, "diffusion:iterations=80")
    model.decode(q, "diffusion:give_up=None")
    model.decode(q, "brute_force")
    model.decode(q, "auto:method='diffusion'")
    budget = model.hparams.iterations
    assert calls[0]["give_up"] == 2 * budget // 3 and calls[0]["iterations"] == budget
    assert calls[1]["give_up"] == 53
    assert "give_up" not in calls[2] and "give_up" not in calls[3]  # switched off in the spec; no rule to give
    assert "give_up=200" in calls[4]["method"] and "give_up" not in calls[4]  # auto's diffusion method
    # the two thirds are of the budget the decoder runs (the model's, which a method option does not override)
    monkeypatch.setitem(model.hparams, "method_options", {"iterations": 90})
    model.decode(q)
    assert calls[5]["iterations"] == budget and calls[5]["give_up"] == 2 * budget // 3


def test_the_rule_reads_the_best_chain_of_each_problem_and_needs_no_other_similarity():
    from vsa_vision.decompose.tracking import Tracker

    # two problems of two chains: problem 0 has one chain above its bar, problem 1 none
    track = Tracker(2, 2, 3, torch.float32, torch.device("cpu"), True, False, None,
                    accept=torch.tensor([0.5, 0.5]), give_up=5)
    rows = torch.arange(4)
    track.record(rows, 0, torch.zeros(4, 3, dtype=torch.long), torch.tensor([0.1, 0.8, 0.3, 0.4]))
    assert track.stops(rows, 3, None, None) is None  # not yet at give_up
    assert track.stops(rows, 4, None, None).tolist() == [False, False, True, True]
    # a decoder that would otherwise compute no similarity (one chain, no best kept, no stop rule)
    cb = Codebooks.random({"a": 8, "b": 8, "c": 8}, dim=512, seed=0)
    s = cb.bind_indices(torch.tensor([[1, 2, 3], [4, 5, 6]]))
    bare = dict(iterations=100, chains=1, patience=None, patience_long=None, stop_similarity=None, keep_best=False)
    res = get_decomposer("diffusion", give_up=10, **bare).decompose(s, cb, accept=0.5)
    assert res.iterations.tolist() == [100, 100] and res.indices.tolist() == [[1, 2, 3], [4, 5, 6]]


def test_the_auto_head_passes_the_bar_to_its_iterative_method():
    from vsa_vision.bench.problems import make_set_problems

    p = make_set_problems([6, 6, 6], 1024, 6, objects=2, seed=4)
    u = p.s / p.s.norm(dim=-1, keepdim=True)
    s = 0.8 * u + 0.6 * torch.nn.functional.normalize(_noise(len(u), 1024, 5), dim=-1)
    seen = []
    real = IterativeDecomposer.decompose

    def spy(self, r, cb, callback=None, accept=None):
        seen.append(accept)
        return real(self, r, cb, callback, accept)

    import unittest.mock

    with unittest.mock.patch.object(IterativeDecomposer, "decompose", spy):
        decompose_set(s, p.codebooks, method="auto:method='diffusion:give_up=30',lookup_work=0", max_objects=3,
                      scale="auto", iterations=200)
    assert seen and all(a is not None for a in seen)
