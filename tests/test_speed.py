"""The pieces that make decoding fast keep its answers: noise drawn a block at a time, the compact
tracker and its scorer, the patience rule, the exhaustive search's kept table, and the latency bench."""

import pytest
import torch

from vsa_vision import Codebooks, get_decomposer
from vsa_vision.decompose import bound_similarity
from vsa_vision.decompose.noise import ProblemNoise
from vsa_vision.decompose.tracking import Scorer, Tracker

from .conftest import problems


def _hard(n=12, dim=400, count=16, seed=3, noise=2.0):
    """Noisy targets that the similarity rule never stops: answers settle well below it."""
    p = problems(n, dim=dim, count=count, seed=seed)
    s = p.s + noise * torch.randn(p.s.shape, generator=torch.Generator().manual_seed(seed))
    return p, s


def test_a_block_of_noise_is_the_draws_one_at_a_time():
    s = torch.randn(5, 64, generator=torch.Generator().manual_seed(0))
    noise = ProblemNoise(s, seed=3, chains=1)
    rows, its, streams, widths = torch.tensor([0, 2, 4]), [7, 8, 9], [0, 2, 5], [3, 10, 4]
    block = noise.normal_block(rows, its, streams, widths)
    one_by_one = torch.stack([torch.cat([noise.normal(rows, i, st, w) for st, w in zip(streams, widths)], 1)
                              for i in its], 1)
    assert block.shape == (3, 3, 17) and torch.equal(block, one_by_one)
    with pytest.raises(ValueError, match="one width a stream"):
        noise.normal_block(rows, its, [0, 1], [3])


@pytest.mark.parametrize("bipolar", [True, False])
def test_the_drivers_scorer_is_the_bound_similarity(bipolar):
    p = problems(9, dim=300, count=20, seed=1)
    cb = p.codebooks
    if not bipolar:
        cb = Codebooks.from_tensors({n: t * 0.5 + 0.1 for n, t in zip(cb.names, cb.tensors)}, check_bipolar=False)
    s = p.s + torch.randn(p.s.shape, generator=torch.Generator().manual_seed(2))
    idx = torch.randint(0, 9, (20, 3), generator=torch.Generator().manual_seed(3))
    score = Scorer(s, cb)
    assert torch.allclose(score(idx), bound_similarity(s, cb, idx), atol=1e-6)
    keep = torch.arange(20) % 3 == 0
    score.select(keep)
    assert torch.allclose(score(idx[keep]), bound_similarity(s[keep], cb, idx[keep]), atol=1e-6)


def test_patience_stops_settled_problems_with_the_answer_of_the_whole_budget():
    p, s = _hard()
    full = get_decomposer("diffusion", iterations=400, seed=1, patience=None,
                          patience_long=None).decompose(s, p.codebooks)
    patient = get_decomposer("diffusion", iterations=400, seed=1, patience=40, patience_margin=0.0,
                             patience_long=None).decompose(s, p.codebooks)
    assert bool((full.iterations == 400).all())  # nothing reaches the similarity rule
    assert bool((patient.iterations < 400).all()) and not bool(patient.converged.any())
    assert bool((patient.iterations >= 40).all())
    assert float((patient.indices == full.indices).all(1).float().mean()) >= 0.9


def test_the_margin_holds_back_a_problem_without_a_clear_winner_and_the_long_window_does_not():
    p, s = _hard()
    kw = dict(iterations=200, seed=1, patience=20)
    never = get_decomposer("diffusion", patience_margin=1.0, patience_long=None, **kw).decompose(s, p.codebooks)
    assert bool((never.iterations == 200).all())  # no answer leads every other by a whole unit of similarity
    capped = get_decomposer("diffusion", patience_margin=1.0, patience_long=60, **kw).decompose(s, p.codebooks)
    assert bool((capped.iterations < 200).all()) and bool((capped.iterations >= 60).all())


def _settle(arrives: int, patience: int = 10, chance: float = 0.1) -> int:
    """The iteration after which one problem of two chains stops: chain 0 holds its answer (similarity
    0.9) from the first iteration, chain 1 decodes another (0.2) until ``arrives``, then the same one."""
    tr = Tracker(1, 2, 1, torch.float32, torch.device("cpu"), True, False, None, patience, 0.05, None,
                 chance=chance)
    rows = torch.arange(2)
    for it in range(100):
        second = 3 if it >= arrives else 1
        tr.record(rows, it, torch.tensor([[3], [second]]), torch.tensor([0.9, 0.9 if second == 3 else 0.2]))
        stop = tr.stops(rows, it, None, None)
        if stop is not None and bool(stop.all()):
            return it + 1
    return -1


def test_a_chain_that_reaches_the_leading_answer_later_does_not_restart_the_window():
    # the problem's best answer has been the same since the first iteration: it stops after the window,
    # whenever the second chain gets there
    assert _settle(arrives=5) == _settle(arrives=50) == _settle(arrives=1000) == 11  # quiet for 10 after the first
    assert _settle(arrives=5, chance=0.95) == -1  # a leader below chance never settles


def test_patience_works_alike_with_one_chain_and_with_several():
    p, s = _hard(count=8)
    for chains in (1, 3):
        d = get_decomposer("diffusion", iterations=300, seed=0, chains=chains, patience=30, patience_margin=0.0,
                           patience_long=None)
        res = d.decompose(s, p.codebooks)
        assert bool((res.iterations < 300).all()) and bool((res.iterations >= 30).all())


def test_patience_leaves_exact_problems_to_the_similarity_rule():
    p = problems(10, dim=500, count=20, seed=4)
    res = get_decomposer("diffusion", iterations=300, seed=0).decompose(p.s, p.codebooks)
    assert torch.equal(res.indices, p.indices) and bool(res.converged.all())


def test_patience_options_are_checked():
    with pytest.raises(Exception, match="patience"):
        get_decomposer("diffusion", patience=0)
    with pytest.raises(Exception, match="patience_margin"):
        get_decomposer("diffusion", patience_margin=-0.1)
    assert get_decomposer("resonator").patience is None  # off unless asked, outside diffusion


def test_diffusion_reads_unequal_codebooks_as_the_argmax_of_each_factor():
    from vsa_vision.decompose.diffusion.fused import readout

    cb = Codebooks.random({"a": 3, "b": 7, "c": 5}, dim=256, seed=0)
    w = torch.randn(4, 15, generator=torch.Generator().manual_seed(0))
    want = torch.stack([part.abs().argmax(-1) for part in w.split([3, 7, 5], 1)], 1)
    assert torch.equal(readout(w, list(cb.sizes), sign_invariant=True), want)
    signed = torch.stack([part.argmax(-1) for part in w.split([3, 7, 5], 1)], 1)
    assert torch.equal(readout(w, list(cb.sizes), sign_invariant=False), signed)


def test_the_exhaustive_search_keeps_its_table_and_rebuilds_it_when_the_codebooks_change():
    p, s = _hard(n=8, count=10, noise=1.0)
    cached, plain = get_decomposer("brute_force"), get_decomposer("brute_force", cache_bytes=0)
    assert torch.equal(cached.decompose(s, p.codebooks).indices, plain.decompose(s, p.codebooks).indices)
    table = cached._cache[1]
    cached.decompose(s[:1], p.codebooks)
    assert cached._cache[1] is table  # one table per codebooks, built once
    cb = Codebooks.from_tensors({n: t.clone() for n, t in zip(p.codebooks.names, p.codebooks.tensors)})
    cb.tensors[0][0].neg_()  # changed in place: the kept table is stale
    assert torch.equal(cached.decompose(s, cb).indices, plain.decompose(s, cb).indices)
    assert cached._cache[1] is not table
    small = get_decomposer("brute_force", cache_bytes=1024)  # too small to keep: products formed per call
    assert torch.equal(small.decompose(s, p.codebooks).indices, plain.decompose(s, p.codebooks).indices)
    assert small._cache is None


def test_the_exhaustive_search_keeps_its_table_for_half_precision_codebooks_too():
    """float16 codebooks are searched in a float32 copy made every call: the table is kept per the
    caller's tensors, so a second call costs one product, and a change to them is still seen."""
    cb = Codebooks.random({"a": 5, "b": 6, "c": 7}, dim=256, seed=0).to(dtype=torch.float16)
    s = cb.bind_indices(torch.tensor([[1, 2, 3], [4, 5, 6]]))
    search = get_decomposer("brute_force")
    assert search.decompose(s, cb).indices.tolist() == [[1, 2, 3], [4, 5, 6]]
    table = search._cache[1]
    assert table.dtype == torch.float32
    search.decompose(s[:1], cb)
    assert search._cache[1] is table
    cb.tensors[0].neg_()  # changed in place: the kept table is stale
    search.decompose(s, cb)
    assert search._cache[1] is not table


def test_the_latency_bench_times_every_head_one_image_at_a_time():
    from vsa_vision import Pipeline
    from vsa_vision.bench.latency import FIELDS, _full_budget, latency_rows, latency_table

    assert _full_budget("diffusion") == "diffusion:patience=None,patience_long=None,give_up=None"
    assert _full_budget("diffusion:chains=1") == "diffusion:chains=1,patience=None,patience_long=None,give_up=None"
    assert _full_budget("brute_force") is None
    # the model's own options for its own method (the shipped default model's chains) are kept
    assert _full_budget("diffusion", {"chains": 16, "patience": 13}) == \
        "diffusion:chains=16,patience=None,patience_long=None,give_up=None"
    pipe = Pipeline.from_checkpoint("default")
    rows = latency_rows(pipe, "default", ["brute_force"], images=3, batch=2, edits=1, splits=("test",),
                        log=lambda m: None)
    assert len(rows) == 1 and set(rows[0]) == set(FIELDS)
    r = rows[0]
    assert r["images"] == 3 and 0 <= r["right"] <= 1 and r["same_as_full"] is None
    assert 0 < r["decode_p50_ms"] <= r["decode_p99_ms"] <= r["decode_max_ms"] and r["encoder_ms"] > 0
    assert "| default | test | brute_force |" in latency_table(rows)
