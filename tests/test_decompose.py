import pytest
import torch

from vsa_vision import Codebooks, Decomposition, available_decomposers, get_decomposer
from vsa_vision.decompose import (
    Decomposer,
    bound_similarity,
    capabilities,
    decomposer_options,
    method_spec,
    parse_method,
    torchhd_available,
    with_options,
)
from vsa_vision.decompose.noise import ProblemNoise, problem_keys
from vsa_vision.decompose.resonator import symmetric_softmax

from .conftest import problems

BASELINES = ["resonator", "attention_resonator", "stochastic_resonator", "diffusion"]
ALL = ["brute_force"] + BASELINES


def test_public_api_contract():
    A, B, C = (Codebooks.random({"x": 50}, dim=1000, seed=i)["x"] for i in range(3))
    own = Codebooks.from_tensors({"a": A, "b": B, "c": C})
    assert own.names == ("a", "b", "c") and own.sizes == (50, 50, 50) and torch.equal(own["b"], B)
    mine = get_decomposer("resonator", iterations=100).decompose(own.bind_indices(torch.tensor([[1, 2, 3]])), own)
    assert mine.indices.tolist() == [[1, 2, 3]]
    cb = Codebooks.random({"shape": 50, "colour": 50, "size": 50}, dim=1000, seed=0)
    idx = torch.tensor([[3, 14, 15]])
    s = cb.bind_indices(idx)
    res = get_decomposer("resonator", iterations=100, seed=0).decompose(s, cb)
    assert isinstance(res, Decomposition)
    assert res.indices.shape == (1, 3) and res.indices.dtype == torch.long
    assert res.confidence.shape == (1, 3) and res.iterations.shape == (1,) and res.converged.shape == (1,)
    assert res.indices.tolist() == [[3, 14, 15]]
    assert res.labels == [{"shape": "3", "colour": "14", "size": "15"}]
    assert set(ALL) <= set(available_decomposers())


@pytest.mark.parametrize("name", available_decomposers())
def test_decomposers_declare_what_they_can_do_and_do_it(name):
    """The capabilities a decomposer declares are what the benches and the CLI act on: check each
    against its options and its behaviour."""
    caps = capabilities(name)
    if caps.peer and not torchhd_available():
        pytest.skip("torchhd is not installed")
    opts = decomposer_options(name)
    d = get_decomposer(name, iterations=7, seed=3)
    assert isinstance(d, Decomposer) and d.iterations == 7 and d.seed == 3
    assert ("stop_similarity" in opts) == caps.early_stop
    assert ("chains" in opts) == caps.chains
    assert callable(getattr(d, "settings", None)) == caps.adaptive
    p = problems(6, dim=256, count=8, seed=1)
    res = d.decompose(p.s, p.codebooks)
    if caps.exhaustive:  # one pass, always the exact answer
        assert res.accuracy(p.indices)[0] == 1.0 and bool((res.iterations == 1).all())
    else:
        assert bool((res.iterations >= 1).all()) and bool((res.iterations <= 7).all())
    if caps.chains:
        two = get_decomposer(name, iterations=7, seed=3, chains=2).decompose(p.s, p.codebooks)
        assert two.indices.shape == res.indices.shape
    unequal = Codebooks.random({"a": 3, "b": 5}, dim=256, seed=0)
    target = unequal.bind_indices(torch.tensor([[1, 4]]))
    if caps.equal_sizes:
        with pytest.raises(ValueError, match="same size"):
            d.decompose(target, unequal)
    else:
        assert d.decompose(target, unequal).indices.shape == (1, 2)


def test_capabilities_of_a_spec_are_those_of_its_method():
    assert capabilities("diffusion:space='latent'") == capabilities("diffusion")
    assert capabilities("brute_force").exhaustive and not capabilities("brute_force").iterative
    assert capabilities("stochastic_resonator").stochastic and not capabilities("resonator").stochastic
    with pytest.raises(ValueError, match="unknown decomposer"):
        capabilities("nonsense:x=1")
    assert method_spec("resonator", update="sync") == "resonator:update='sync'"
    assert with_options("resonator:update='sync'", iterations=5) == "resonator:update='sync',iterations=5"
    assert parse_method(method_spec("diffusion", steps=4, space="latent")) == (
        "diffusion", {"steps": 4, "space": "latent"})


def test_brute_force_recovers_every_factor_and_chunks():
    p = problems([5, 7, 3, 4], k=4, dim=256, count=60, seed=1)
    full = get_decomposer("brute_force").decompose(p.s, p.codebooks)
    tiny = get_decomposer("brute_force", max_elements=1024).decompose(p.s, p.codebooks)  # many chunks
    assert torch.equal(full.indices, p.indices)
    assert torch.equal(tiny.indices, p.indices)
    assert torch.allclose(full.similarity, torch.ones(60))
    assert bool(full.converged.all()) and full.iterations.tolist() == [1] * 60


def test_brute_force_finds_maximum_similarity_on_noisy_targets():
    # with heavy noise the answer may be wrong, but no combination may score higher
    p = problems([4, 5, 6], dim=64, count=30, seed=2, flip=0.4)
    res = get_decomposer("brute_force").decompose(p.s, p.codebooks)
    cb = p.codebooks
    grid = torch.cartesian_prod(*[torch.arange(n) for n in cb.sizes])  # [120, 3]
    all_s = cb.bind_indices(grid)  # [120, D]
    best = (p.s @ all_s.T).abs().max(1).values
    got = (p.s * cb.bind_indices(res.indices)).sum(1).abs()
    assert torch.allclose(got, best)


@pytest.mark.parametrize("name,opts", [
    ("resonator", {"update": "sync"}), ("resonator", {"update": "sequential"}),
    ("attention_resonator", {}), ("attention_resonator", {"sign_symmetric": False, "update": "sync"}),
    ("stochastic_resonator", {}),
])
def test_baselines_solve_small_problems(name, opts):
    p = problems(10, dim=1000, count=300, seed=3)
    res = get_decomposer(name, iterations=100, seed=0, **opts).decompose(p.s, p.codebooks)
    acc_all, _ = res.accuracy(p.indices)
    assert acc_all >= 0.99, (name, opts, acc_all)


@pytest.mark.parametrize("name", ALL)
def test_batched_equals_one_at_a_time(name):
    p = problems(25, dim=500, count=12, seed=4)
    d = get_decomposer(name, iterations=30, seed=1)
    batched = d.decompose(p.s, p.codebooks)
    for i in range(len(p)):
        one = d.decompose(p.s[i], p.codebooks)
        assert torch.equal(one.indices[0], batched.indices[i]), (name, i)
        assert one.iterations[0] == batched.iterations[i]
        assert torch.allclose(one.similarity[0], batched.similarity[i])


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_result(name):
    p = problems(40, dim=500, count=40, seed=5)
    a = get_decomposer(name, iterations=40, seed=11).decompose(p.s, p.codebooks)
    b = get_decomposer(name, iterations=40, seed=11).decompose(p.s, p.codebooks)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.iterations, b.iterations)


def test_stochastic_seed_changes_the_noise():
    p = problems(60, dim=500, count=40, seed=6)
    a = get_decomposer("stochastic_resonator", iterations=40, seed=1).decompose(p.s, p.codebooks)
    b = get_decomposer("stochastic_resonator", iterations=40, seed=2).decompose(p.s, p.codebooks)
    assert not torch.equal(a.iterations, b.iterations)


def test_classic_resonator_stops_at_fixed_points_and_cycles():
    # small D: the synchronous network falls into short limit cycles on some problems
    p = problems(8, dim=64, count=300, seed=7)
    d = get_decomposer("resonator", update="sync", iterations=300, stop_similarity=None, keep_best=False)
    res = d.decompose(p.s, p.codebooks)
    stalled = (~res.converged) & (res.iterations < 300)
    assert int(stalled.sum()) > 0
    # a detected cycle is real: without detection those problems never reach a fixed point
    nodetect = get_decomposer("resonator", update="sync", iterations=300, stop_similarity=None,
                              keep_best=False, detect_cycles=False)
    again = nodetect.decompose(p.s[stalled], p.codebooks)
    assert not bool(again.converged.any()) and bool((again.iterations == 300).all())
    # and a converged problem is a fixed point: its last sweep decoded what the one before did
    conv = res.converged.nonzero().flatten()
    assert conv.numel() > 0 and bool((res.iterations[conv] < 300).all())
    traced = get_decomposer("resonator", update="sync", iterations=300, stop_similarity=None, keep_best=False,
                            record_trajectory=True).decompose(p.s[conv], p.codebooks)
    assert torch.equal(traced.iterations, res.iterations[conv])
    for j, t in enumerate(traced.iterations.tolist()):
        if t >= 2:
            assert torch.equal(traced.trajectory[t - 1, j], traced.trajectory[t - 2, j])


def test_keep_best_returns_best_seen_answer():
    p = problems(60, dim=1000, count=100, seed=8)
    seen = []
    d = get_decomposer("resonator", update="sync", iterations=50, stop_similarity=None)
    res = d.decompose(p.s, p.codebooks, callback=lambda info: seen.append(info.best_similarity.clone()))
    assert torch.allclose(res.similarity, seen[-1])
    for a, b in zip(seen, seen[1:]):
        assert bool((b >= a).all())  # best-so-far never decreases


def test_stop_similarity_stops_solved_problems_early():
    p = problems(10, dim=1000, count=50, seed=9)
    res = get_decomposer("stochastic_resonator", iterations=100, stop_similarity=1.0).decompose(p.s, p.codebooks)
    assert bool(res.converged.all()) and int(res.iterations.max()) < 100
    assert torch.allclose(res.similarity, torch.ones(50))


def test_result_confidence_margin_and_trajectory():
    p = problems(10, dim=1000, count=20, seed=10)
    res = get_decomposer("resonator", iterations=10, record_trajectory=True).decompose(p.s, p.codebooks)
    assert torch.allclose(res.confidence, torch.ones(20, 3))
    assert bool((res.margin > 0.5).all())  # runner-up codewords are ~orthogonal
    assert res.trajectory.shape[1:] == (20, 3) and torch.equal(res.trajectory[-1], res.indices)
    assert torch.allclose(bound_similarity(p.s, p.codebooks, res.indices), res.similarity)


def test_symmetric_softmax_is_odd_and_stable():
    logits = torch.tensor([[1000.0, -3.0, 2.0], [0.0, 0.0, 0.0]])
    w = symmetric_softmax(logits)
    assert torch.isfinite(w).all()
    assert torch.allclose(symmetric_softmax(-logits), -w)
    ref = torch.sinh(logits[1:]) / torch.cosh(logits[1:]).sum()
    assert torch.allclose(w[1:], ref)


def test_problem_noise_is_keyed_by_problem_not_batch():
    p = problems(10, dim=100, count=5, seed=11)
    a = ProblemNoise(p.s, seed=1)
    b = ProblemNoise(p.s[[3, 1]], seed=1)
    rows = torch.tensor([3, 1])
    assert torch.equal(a.normal(rows, 4, 0, 10), b.normal(torch.tensor([0, 1]), 4, 0, 10))
    assert not torch.equal(a.normal(rows, 4, 0, 10), a.normal(rows, 5, 0, 10))
    assert not torch.equal(a.normal(rows, 4, 0, 10), ProblemNoise(p.s, seed=2).normal(rows, 4, 0, 10))
    z = a.normal(torch.arange(5).repeat(200), 0, 0, 1000)
    assert abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 1) < 0.05
    assert len(set(problem_keys(p.s).tolist())) == 5
    # the hash gives the same on Python ints (per-draw tags) as on tensors (per-problem keys)
    from vsa_vision.decompose.noise import _mix

    vals = [0, 1, 12345, 2**31 - 1, (-1000003 ^ 7920) & 0x7FFFFFFF]
    assert [_mix(v) for v in vals] == _mix(torch.tensor(vals)).tolist()
    assert ProblemNoise(p.s, seed=1).table is a.table  # one table per seed, drawn once


def test_problem_noise_chains_draw_their_own_noise_and_chain_zero_the_single_chain_noise():
    p = problems(10, dim=100, count=4, seed=11)
    one = ProblemNoise(p.s, seed=3)
    three = ProblemNoise(p.s.repeat_interleave(3, 0), seed=3, chains=3)
    z1 = one.normal(torch.arange(4), 2, 1, 50)
    z3 = three.normal(torch.arange(12), 2, 1, 50).view(4, 3, 50)
    assert torch.equal(z3[:, 0], z1)  # chain 0 = the chains=1 noise
    assert not torch.equal(z3[:, 1], z1) and not torch.equal(z3[:, 2], z3[:, 1])
    with pytest.raises(ValueError, match="not a whole number of 3 chains"):
        ProblemNoise(p.s, seed=3, chains=3)


@pytest.mark.parametrize("name", ["stochastic_resonator", "diffusion"])
def test_chains_find_what_one_chain_finds_and_stop_together(name):
    p = problems(60, dim=500, count=60, seed=13)
    one = get_decomposer(name, iterations=40, seed=2, chains=1, stop_similarity=None).decompose(p.s, p.codebooks)
    two = get_decomposer(name, iterations=40, seed=2, chains=2, stop_similarity=None).decompose(p.s, p.codebooks)
    # chain 0 of two runs exactly the single chain, so the best of two is never worse, per problem
    assert bool((two.similarity >= one.similarity - 1e-6).all())
    assert float(two.similarity.mean()) > float(one.similarity.mean())  # and chain 1 adds answers
    assert bool((two.iterations == 40).all())
    # with the early stop, a problem ends when its first chain explains s
    seen = []
    d = get_decomposer(name, iterations=40, seed=2, chains=2, stop_similarity=1.0)
    res = d.decompose(p.s, p.codebooks, callback=lambda info: seen.append(info.problems))
    single = get_decomposer(name, iterations=40, seed=2, chains=1, stop_similarity=1.0).decompose(p.s, p.codebooks)
    assert bool((res.iterations <= single.iterations).all())
    assert bool((res.converged >= single.converged).all()) and bool((res.similarity[res.converged] > 0.999).all())
    for problems_active in seen:  # both chains of a problem are active, or neither
        counts = torch.bincount(problems_active, minlength=len(p))
        assert bool(((counts == 0) | (counts == 2)).all())


def test_chains_batched_equals_one_at_a_time_and_trajectory_has_problem_rows():
    p = problems(25, dim=500, count=6, seed=14)
    d = get_decomposer("diffusion", iterations=30, seed=1, chains=3, record_trajectory=True)
    batched = d.decompose(p.s, p.codebooks)
    assert batched.trajectory.shape[1:] == (6, 3)
    for i in range(len(p)):
        one = d.decompose(p.s[i], p.codebooks)
        assert torch.equal(one.indices[0], batched.indices[i]) and one.iterations[0] == batched.iterations[i]


def test_chains_are_refused_where_the_method_is_deterministic():
    from vsa_vision.decompose.resonator import Resonator

    with pytest.raises(ValueError, match="Resonator is deterministic"):
        Resonator()._set_chains(2)
    with pytest.raises(ValueError, match="chains: expected an int >= 1"):
        get_decomposer("diffusion", chains=0)
    with pytest.raises(ValueError, match="with noise=0 the stochastic resonator is deterministic"):
        get_decomposer("stochastic_resonator", noise=0.0, chains=2)
    assert get_decomposer("stochastic_resonator", noise=0.0).chains == 1


# -- bad input -----------------------------------------------------------------------------------


def test_unknown_name_and_option():
    with pytest.raises(ValueError, match="unknown decomposer 'resonater'.*available"):
        get_decomposer("resonater")
    with pytest.raises(TypeError, match="unknown option\\(s\\) \\['iters'\\].*valid options"):
        get_decomposer("resonator", iters=5)
    with pytest.raises(ValueError, match="update: expected one of"):
        get_decomposer("resonator", update="async")
    with pytest.raises(ValueError, match="iterations: expected an int >= 1, got 0"):
        get_decomposer("resonator", iterations=0)
    with pytest.raises(TypeError, match="iterations: expected an int"):
        get_decomposer("stochastic_resonator", iterations=2.5)
    with pytest.raises(ValueError, match="noise: expected a finite number"):
        get_decomposer("stochastic_resonator", noise=-1)


@pytest.mark.parametrize("name", ALL)
def test_bad_inputs_raise_clear_errors(name):
    cb = Codebooks.random({"a": 5, "b": 5}, dim=64, seed=0)
    d = get_decomposer(name, iterations=5)
    with pytest.raises(ValueError, match="dimension mismatch"):
        d.decompose(torch.ones(3, 65), cb)
    with pytest.raises(ValueError, match="expected shape"):
        d.decompose(torch.ones(3, 2, 64), cb)
    with pytest.raises(ValueError, match="non-finite"):
        d.decompose(torch.full((2, 64), float("inf")), cb)
    with pytest.raises(ValueError, match="on meta but the codebooks are on cpu"):
        d.decompose(torch.ones(2, 64, device="meta"), cb)
    with pytest.raises(TypeError, match="codebooks"):
        d.decompose(torch.ones(2, 64), "codebooks")


@pytest.mark.parametrize("name,opts", [
    ("brute_force", {}), ("resonator", {"update": "sync"}), ("attention_resonator", {}),
    ("stochastic_resonator", {}),
])
def test_empty_batch_and_unequal_sizes(name, opts):
    p = problems([16, 4, 24, 2], k=4, dim=1000, count=30, seed=12)
    d = get_decomposer(name, iterations=100, **opts)
    res = d.decompose(p.s, p.codebooks)
    assert res.indices.shape == (30, 4)
    assert res.accuracy(p.indices)[0] >= 0.9
    empty = d.decompose(p.s[:0], p.codebooks)
    assert empty.indices.shape == (0, 4)


def test_sequential_classic_resonator_locks_small_factors():
    # a known weakness, kept visible: a two-value factor collapses onto one codeword at the first
    # sequential update and the network cannot leave it; the synchronous network solves these
    p = problems([16, 4, 24, 2], k=4, dim=1000, count=30, seed=12)
    seq = get_decomposer("resonator", update="sequential").decompose(p.s, p.codebooks)
    sync = get_decomposer("resonator", update="sync").decompose(p.s, p.codebooks)
    assert seq.accuracy(p.indices)[0] < sync.accuracy(p.indices)[0] == 1.0


def test_problem_keys_ignore_last_bit_differences_and_keep_bipolar_keys():
    p = problems(20, dim=500, count=50, seed=3)
    noisy = p.s + 0.8 * torch.randn(p.s.shape, generator=torch.Generator().manual_seed(0))
    nudged = torch.nextafter(noisy, torch.full_like(noisy, float("inf")))  # every entry one ulp up
    assert torch.equal(problem_keys(noisy), problem_keys(nudged))
    assert len(set(problem_keys(noisy).tolist())) == 50
    # a bipolar row's key is the hash of its exact float32 bits (the key it always had)
    from vsa_vision.decompose.noise import _MASK, _mix

    bits = p.s.contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
    pos = torch.arange(500, dtype=torch.int64)
    old = _mix((_mix((bits & _MASK) ^ _mix(pos + 1)) ^ _mix((bits >> 31) + 2 * pos + 7)).sum(-1) & _MASK)
    assert torch.equal(problem_keys(p.s), old)


@pytest.mark.parametrize("name", ["resonator", "stochastic_resonator", "attention_resonator"])
def test_resonator_similarities_on_real_targets_do_not_depend_on_the_batch(name):
    p = problems(60, dim=500, count=40, seed=1)
    s = p.s + 0.8 * torch.randn(p.s.shape, generator=torch.Generator().manual_seed(1))
    d = get_decomposer(name, iterations=3, seed=1)
    ctx = d._setup(s, p.codebooks)
    X = p.codebooks.tensors[0]
    full = d._similarities(s, X, ctx)
    assert all(torch.equal(d._similarities(s[i : i + 1], X, ctx), full[i : i + 1]) for i in range(40))
    # a bipolar target keeps the exact float32 product
    ctx = d._setup(p.s, p.codebooks)
    assert ctx.integer
    if name != "attention_resonator":
        assert torch.equal(d._similarities(p.s, X, ctx), (p.s @ X.T) / 500)


def test_brute_force_refuses_a_huge_search_unless_allowed():
    cb = Codebooks.random({"a": 2000, "b": 2000, "c": 2000}, dim=64, seed=0)
    with pytest.raises(ValueError, match=r"8e\+09 combinations .*max_combinations=None"):
        get_decomposer("brute_force").decompose(torch.ones(64), cb)
    assert get_decomposer("brute_force", max_combinations=None).max_combinations is None
    small = problems(8, dim=256, count=3)
    res = get_decomposer("brute_force", max_combinations=512).decompose(small.s, small.codebooks)
    assert torch.equal(res.indices, small.indices)
    with pytest.raises(ValueError, match="above max_combinations = 511"):
        get_decomposer("brute_force", max_combinations=511).decompose(small.s, small.codebooks)


def test_a_nan_state_raises_instead_of_returning_garbage():
    from vsa_vision.decompose.resonator import AttentionResonator

    class Broken(AttentionResonator):
        def _cleanup(self, a, X, k, it, rows, ctx):
            return super()._cleanup(a, X, k, it, rows, ctx) * float("nan")

    p = problems(8, dim=256, count=3)
    with pytest.raises(FloatingPointError, match="NaN or inf in torch.float32"):
        Broken(iterations=3, stop_similarity=None).decompose(p.s, p.codebooks)


def test_noisy_real_targets_get_the_same_answer_alone_and_in_the_batch():
    # rows 20 and 72 of this batch were answered differently alone (float32 products summed in
    # another order for one row than for 300)
    p = problems(60, dim=500, count=300, seed=1)
    s = p.s + 0.8 * torch.randn(p.s.shape, generator=torch.Generator().manual_seed(1))
    d = get_decomposer("stochastic_resonator", iterations=30, seed=1)
    full = d.decompose(s, p.codebooks).indices
    for i in (20, 72):
        assert torch.equal(d.decompose(s[i], p.codebooks).indices, full[i : i + 1])


def test_chains_follow_the_problem_shape_unless_given():
    import types

    from vsa_vision.decompose.diffusion import auto_chains
    from vsa_vision.decompose.diffusion.defaults import DEFAULT_CHAINS, Anchor

    d = get_decomposer("diffusion")
    shape = lambda sizes, dim: types.SimpleNamespace(sizes=sizes, dim=dim)  # noqa: E731
    # the shipped anchors: two chains on the vision shapes, four and eight on the largest schemas
    assert d.chains_for(shape([10, 10, 4, 12, 12, 2], 1024)) == 2
    assert d.chains_for(shape([100, 100, 100], 1000)) == 2
    assert d.chains_for(shape([10, 12, 6, 32, 32, 2, 8], 4096)) == 4
    assert d.chains_for(shape([10, 12, 6, 64, 64, 2, 12], 4096)) == 8
    assert get_decomposer("diffusion", chains=3).chains_for(shape([10, 12, 6, 64, 64, 2, 12], 4096)) == 3
    anchors = [Anchor("a", -2.0, {}, 6), Anchor("b", 0.0, {}, 6, chains=5)]
    assert auto_chains([10, 12, 6, 32, 32, 2], 4096, anchors) == DEFAULT_CHAINS  # load -2.4: nearer a
    assert auto_chains([10, 12, 6, 32, 32, 2, 8], 4096, anchors) == 5  # load -0.35: nearer b
    # the chains chosen run: a problem of the largest schema decodes with eight rows a problem
    cb = Codebooks.random({f"f{k}": n for k, n in enumerate([10, 12, 6, 64, 64, 2, 12])}, 4096, seed=0)
    seen = []
    d = get_decomposer("diffusion", iterations=2, stop_similarity=None)
    s = cb.bind_indices(torch.zeros(1, 7, dtype=torch.long))
    d.decompose(s, cb, callback=lambda info: seen.append(info.chains))
    assert seen == [8, 8]
