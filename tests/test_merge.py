"""Joined factors: the same search space over fewer, larger codebooks, and the answers mapped back."""

import pytest
import torch

from vsa_vision import Codebooks, get_decomposer
from vsa_vision.bench.problems import make_problems
from vsa_vision.decompose.diffusion.defaults import auto_settings
from vsa_vision.decompose.merge import Merger, auto_cap, merge_groups


def test_the_smallest_factors_are_joined_up_to_the_cap():
    assert auto_cap((10, 10, 4, 12, 12, 2)) == 339  # isqrt(115,200)
    assert merge_groups((10, 10, 4, 12, 12, 2), 339) == ((0, 2, 5), (1, 3), (4,))
    assert merge_groups((10, 10, 4, 4, 4, 2), 113) == ((0, 2, 5), (1,), (3, 4))
    assert merge_groups((80, 80, 80), auto_cap((80, 80, 80))) == ((0,), (1,), (2,))  # nothing fits the cap
    assert merge_groups((5,) * 6, 125) == ((0, 1), (2, 3), (4, 5))
    assert merge_groups((2, 3), 6) == ((0, 1),)  # up to one factor: exhaustive search
    assert merge_groups((2, 3), 5) == ((0,), (1,))
    # joining again changes nothing: the two smallest groups already exceed the cap
    sizes = (6, 10, 4, 4, 2, 24, 24)
    groups = merge_groups(sizes, auto_cap(sizes))
    joined = [torch.tensor([sizes[k] for k in g]).prod().item() for g in groups]
    assert merge_groups(joined, auto_cap(sizes)) == tuple((j,) for j in range(len(joined)))


def test_a_joined_codeword_is_the_binding_of_its_factors_and_splits_back():
    cb = Codebooks.random({"a": 3, "b": 4, "c": 5, "d": 2}, dim=64, seed=1)
    m = Merger(((0, 2), (1,), (3,)))
    joined = m.codebooks(cb)
    assert joined.sizes == (15, 4, 2) and joined.names == ("a*c", "b", "d")
    assert m.codebooks(cb) is joined  # kept per codebooks
    idx = torch.stack([torch.randint(0, n, (50,), generator=torch.Generator().manual_seed(n)) for n in cb.sizes], 1)
    row = idx[:, 0] * 5 + idx[:, 2]  # the last factor of a group varies fastest
    g = torch.stack([row, idx[:, 1], idx[:, 3]], 1)
    assert torch.equal(m.split(g, cb.sizes), idx)
    assert torch.equal(joined.bind_indices(g), cb.bind_indices(idx))
    assert torch.equal(m.split(g[None].expand(3, -1, -1), cb.sizes), idx[None].expand(3, -1, -1))


def test_diffusion_searches_the_joined_factors_and_answers_in_the_given_ones():
    p = make_problems([10, 10, 4, 12, 12, 2], 1024, 32, seed=2)
    joined = get_decomposer("diffusion", iterations=300, record_trajectory=True, merge="auto")
    apart = get_decomposer("diffusion", iterations=300)  # the default: every factor apart
    r = joined.decompose(p.s, p.codebooks)
    assert r.indices.shape == (32, 6) and r.codebooks == p.codebooks
    assert r.accuracy(p.indices)[0] == 1.0
    assert torch.allclose(r.similarity, torch.ones(32))
    # the trajectory in the given factors too: every index within its factor's size
    assert r.trajectory.shape == (int(r.iterations.max()), 32, 6)
    assert bool((r.trajectory < torch.tensor(p.codebooks.sizes)).all()) and bool((r.trajectory >= 0).all())
    # fewer iterations than the six factors apart, on the same problems
    assert r.iterations.float().mean() < apart.decompose(p.s, p.codebooks).iterations.float().mean()
    # the adaptive settings and chains are those of the joined shape
    assert joined.settings(p.codebooks) == auto_settings((80, 120, 12), 1024)
    assert apart.settings(p.codebooks) == auto_settings(p.codebooks.sizes, 1024)


def test_merge_options_are_checked():
    with pytest.raises(ValueError, match="merge"):
        get_decomposer("diffusion", merge="all")
    with pytest.raises(ValueError, match="merge"):
        get_decomposer("diffusion", merge=0)
    d = get_decomposer("diffusion", merge=50)  # a cap: (10, 4) joined, (10, 12, 12, 2) -> (10, 12, 12, 2)...
    assert d.groups((10, 10, 4, 12, 12, 2)) == ((0,), (1,), (2, 5), (3,), (4,))


def test_a_callback_sees_the_answers_in_the_given_factors():
    p = make_problems([10, 10, 4, 12, 12, 2], 512, 4, seed=3)
    seen = []
    d = get_decomposer("diffusion", iterations=5, stop_similarity=None, merge="auto")
    d.decompose(p.s, p.codebooks, callback=lambda info: seen.append((info.indices.shape, info.best_indices.shape)))
    assert len(seen) == 5 and all(a[-1] == 6 and b[-1] == 6 for a, b in seen)
    # the joint slots step the factors as given, whatever ``merge`` says
    from vsa_vision.decompose import decompose_set
    from vsa_vision.decompose.sets import bundle_objects

    objs = [p.indices[:2], p.indices[2:]]
    r = decompose_set(bundle_objects(p.codebooks, objs), p.codebooks, method="diffusion:merge='auto'", count=2,
                      strategy="joint", iterations=50)
    assert [o.shape for o in r.objects] == [(2, 6), (2, 6)]
