"""The in-memory factorizer with asymmetric codebooks (``vsa_vision/decompose/in_memory.py``): the
update rule against a transcription of the authors' loop, the published defaults, the protocol of
the other decomposers (batches, seeds, dtypes, options, early stop, the registry)."""

import pytest
import torch

from vsa_vision import Codebooks, get_decomposer
from vsa_vision.decompose import (
    InMemoryFactorizer,
    available_decomposers,
    build_method,
    capabilities,
    decomposer_options,
    method_spec,
    parse_method,
)
from vsa_vision.decompose.in_memory import auto_noise, iteration_cap, published_settings

from .conftest import problems

NAME = "in_memory_factorizer"


def _repo_decode(s, R, X, threshold, detect, max_iter):
    """``densebipolarbatched.decode`` (IBM/in-memory-factorizer, L338-500) as it is written, without
    noise: read with ``R``, project with ``X``, stop a problem when any factor's similarity passes
    ``detect``; returns (u_hat, the repository's iteration count, converged)."""
    B, F, D = s.shape[0], len(R), s.shape[1]
    init = []
    for f in range(F):
        tie = torch.zeros(D)
        if X[f].shape[0] % 2 == 0:
            tie = (torch.argsort(torch.argsort(X[f].sum(0), stable=True), stable=True) >= D // 2).float() * 2 - 1
        init.append(torch.sign(X[f].sum(0) + tie))
    x_hat = torch.stack(init).unsqueeze(0).repeat(B, 1, 1)
    done = torch.zeros(B, dtype=torch.bool)
    conv_idx = torch.full((B,), max_iter - 1)
    sim = [torch.zeros(B, r.shape[0]) for r in R]
    for itr in range(1, max_iter + 1):
        state_converged = torch.zeros(B, F, dtype=torch.bool)
        for f in range(F):
            s_f = s.clone()
            for g in range(F):
                if g != f:
                    s_f = s_f * x_hat[:, g]
            attn = s_f[~done] @ R[f].T / D
            act = attn.clone()
            act[act < threshold] = 0
            sim[f][~done] = act
            est = torch.sign(act @ X[f])
            est[est == 0] = 1
            x_hat[~done, f] = est
            state_converged[~done, f] = attn.max(1).values > detect
        done = done | state_converged.any(1)
        conv_idx[done] = torch.minimum(conv_idx[done], torch.full_like(conv_idx[done], itr))
        if bool(done.all()):
            break
    u_hat = torch.stack([sm.abs().argmax(1) for sm in sim], 1)
    return u_hat, conv_idx + 1, done


def _repo_problem(n, dim, count, seed, fraction, rolled=False):
    """The repository's experiment: clean codebooks X, the perturbed ones R encode the targets and
    are handed to the decomposer, whose projection codebooks are then X."""
    from vsa_vision.bench.capacity import repo_codebooks

    d = InMemoryFactorizer(seed=seed, flip_fraction=fraction, flip_pattern="rolled" if rolled else "independent")
    X = repo_codebooks(n, dim, 3, rolled, seed)
    R = Codebooks.from_tensors(dict(zip(X.names, d.projection_codebooks(X))), check_bipolar=False)
    truth = torch.randint(0, n, (count, 3), generator=torch.Generator().manual_seed(seed + 1))
    return X, R, truth, R.bind_indices(truth)


@pytest.mark.parametrize("rolled", [False, True])
def test_the_update_is_the_repository_loop(rolled):
    X, R, truth, s = _repo_problem(30, 256, 40, seed=3, fraction=0.08, rolled=rolled)
    d = get_decomposer(NAME, iterations=40, seed=3, threshold=0.08, flip_fraction=0.08,
                       flip_pattern="rolled" if rolled else "independent")
    assert all(torch.equal(p, x) for p, x in zip(d.projection_codebooks(R), X.tensors))  # the map undoes itself
    res = d.decompose(s, R)
    ref_idx, ref_iters, ref_done = _repo_decode(s, R.tensors, X.tensors, 0.08, 0.625, 40)
    assert torch.equal(res.converged, ref_done)
    assert 0 < int(ref_done.sum()) < 40  # both kinds of problem are compared
    # the repository counts one more for a converged problem, at most the cap (dbb:L473, L507)
    assert torch.equal((res.iterations + res.converged.long()).clamp(max=40), ref_iters)
    assert torch.equal(res.indices[ref_done], ref_idx[ref_done])


def test_solves_easy_problems_exactly():
    p = problems(5, dim=1000, count=100, seed=1)
    res = get_decomposer(NAME).decompose(p.s, p.codebooks)
    assert res.accuracy(p.indices) == (1.0, 1.0)
    assert bool(res.converged.all()) and torch.allclose(res.similarity, torch.ones(100))
    # the published row n = 21 (100%) in the repository's experiment, at its dimension
    X, R, truth, s = _repo_problem(21, 1500, 100, seed=2, fraction=0.1, rolled=True)
    res = get_decomposer(NAME, seed=2, flip_pattern="rolled").decompose(s, R)
    assert res.accuracy(truth)[0] == 1.0 and float(res.iterations.float().mean()) < 20


def test_without_asymmetry_or_noise_at_the_published_threshold_it_cycles():
    # the published row n = 99 (d = 1500): the same problems, the codebooks made symmetric, stall
    X, R, truth, s = _repo_problem(99, 1500, 40, seed=4, fraction=0.1)
    asym = get_decomposer(NAME, seed=4, flip_fraction=0.1, iterations=400).decompose(s, R)
    sym = get_decomposer(NAME, seed=4, flip_fraction=0.0, iterations=400).decompose(X.bind_indices(truth), X)
    assert asym.accuracy(truth)[0] >= 0.9 and sym.accuracy(truth)[0] <= asym.accuracy(truth)[0] - 0.4


@pytest.mark.parametrize("opts", [{}, {"noise": "auto"}, {"top_a": 3, "noise": 0.01}])
def test_batch_results_do_not_depend_on_the_batch(opts):
    p = problems(40, dim=500, count=16, seed=5)
    d = get_decomposer(NAME, iterations=60, seed=1, threshold=0.04, flip_fraction=0.05, **opts)
    full = d.decompose(p.s, p.codebooks)
    assert len(set(full.iterations.tolist())) > 1  # problems stop at their own iteration
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    shuffled = d.decompose(p.s[perm], p.codebooks)
    assert torch.equal(shuffled.indices, full.indices[perm]) and torch.equal(shuffled.iterations, full.iterations[perm])
    for i in (0, 7, 15):
        one = d.decompose(p.s[i], p.codebooks)
        assert torch.equal(one.indices[0], full.indices[i]) and one.iterations[0] == full.iterations[i]


def test_real_targets_are_read_in_float64_and_keep_their_answer_alone():
    p = problems(20, dim=500, count=12, seed=6)
    s = p.s + 0.5 * torch.randn(p.s.shape, generator=torch.Generator().manual_seed(1))
    d = get_decomposer(NAME, iterations=50, seed=0)
    full = d.decompose(s, p.codebooks)
    for i in range(12):
        assert torch.equal(d.decompose(s[i], p.codebooks).indices[0], full.indices[i])


def test_seed_reproduces_and_changes_the_perturbation():
    X, R, truth, s = _repo_problem(60, 1000, 60, seed=7, fraction=0.1)
    a = get_decomposer(NAME, seed=11, flip_fraction=0.1, iterations=300).decompose(s, R)
    b = get_decomposer(NAME, seed=11, flip_fraction=0.1, iterations=300).decompose(s, R)
    c = get_decomposer(NAME, seed=12, flip_fraction=0.1, iterations=300).decompose(s, R)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.iterations, b.iterations)
    assert not torch.equal(a.iterations, c.iterations)
    P11 = InMemoryFactorizer(seed=11, flip_fraction=0.1).projection_codebooks(X)
    P12 = InMemoryFactorizer(seed=12, flip_fraction=0.1).projection_codebooks(X)
    assert not torch.equal(P11[0], P12[0])


def test_projection_codebooks_perturb_the_published_count_of_entries():
    cb = Codebooks.random({"a": 30, "b": 30, "c": 30}, dim=200, seed=0)
    for pattern in ("independent", "rolled"):
        P = InMemoryFactorizer(flip_fraction=0.1, flip_pattern=pattern).projection_codebooks(cb)
        masks = [p != x for p, x in zip(P, cb.tensors)]
        assert all(int(m.sum()) == int(0.1 * 30 * 200) for m in masks)
        for p, x, m in zip(P, cb.tensors, masks):  # 1 - x: +1 -> 0, -1 -> 2
            assert torch.equal(p[m], 1 - x[m]) and set(p[m].tolist()) <= {0.0, 2.0}
        rolled = all(torch.equal(masks[k], torch.roll(masks[0], k, 1)) for k in (1, 2))
        assert rolled == (pattern == "rolled")
    assert InMemoryFactorizer(flip_fraction=0.0).projection_codebooks(cb) == cb.tensors
    unequal = Codebooks.random({"a": 3, "b": 5}, dim=64, seed=0)
    with pytest.raises(ValueError, match="same size"):
        InMemoryFactorizer(flip_fraction=0.1, flip_pattern="rolled").projection_codebooks(unequal)


def test_defaults_are_the_published_configuration():
    cb = Codebooks.random({"a": 99, "b": 99, "c": 99}, dim=1500, seed=0)
    assert InMemoryFactorizer().settings(cb) == {"iterations": 3267, "threshold": 0.05, "flip_fraction": 0.1,
                                                 "noise": 0.0}
    assert published_settings([214] * 3) == {"threshold": 0.05, "flip_fraction": 0.05, "rolled": True, "n": 214}
    assert published_settings([463] * 3)["flip_fraction"] == 0.0005
    assert [iteration_cap([n] * 3) for n in (99, 214, 463, 999)] == [3267, 15265, 71456, 332667]
    assert iteration_cap([4, 9]) == 3 and iteration_cap([10, 10], factor=0.5) == 2
    assert auto_noise(1500) == 0.007 and auto_noise(100) == 0.0136
    given = InMemoryFactorizer(iterations=5, threshold=0.2, flip_fraction=0.0, noise="auto").settings(cb)
    assert given == {"iterations": 5, "threshold": 0.2, "flip_fraction": 0.0, "noise": 0.007}
    d = InMemoryFactorizer()
    assert (d.keep_best, d.stop_similarity, d.detect_threshold, d.top_a, d.iterations) == (False, None, 0.625,
                                                                                           None, None)


def test_activation_keeps_the_similarities_above_the_threshold_and_at_most_top_a():
    a = torch.tensor([[0.3, 0.1, 0.2, -0.5], [0.01, 0.02, -0.03, 0.0]])
    assert torch.equal(InMemoryFactorizer()._activate(a, 0.15), torch.tensor([[0.3, 0, 0.2, 0], [0, 0, 0, 0.0]]))
    assert torch.equal(InMemoryFactorizer(top_a=1)._activate(a, 0.15), torch.tensor([[0.3, 0, 0, 0], [0, 0, 0, 0.0]]))


def test_nothing_above_the_threshold_projects_to_all_ones():
    p = problems(8, dim=128, count=3, seed=8)
    seen = []
    d = get_decomposer(NAME, iterations=2, threshold=5.0, flip_fraction=0.0)
    d.decompose(p.s, p.codebooks, callback=lambda info: seen.append(info.state.x.clone()))
    assert all(bool((x == 1).all()) for x in seen)


def test_early_stop_counts_iterations_per_problem():
    X, R, truth, s = _repo_problem(50, 1000, 30, seed=9, fraction=0.1)
    active = []
    d = get_decomposer(NAME, seed=9, flip_fraction=0.1, threshold=0.05, iterations=500)
    res = d.decompose(s, R, callback=lambda info: active.append(info.rows.clone()))
    assert float(res.converged.float().mean()) >= 0.9 and len(set(res.iterations.tolist())) > 5
    assert bool((res.iterations[res.converged] < 500).all()) and bool((res.iterations[~res.converged] == 500).all())
    assert len(active) == int(res.iterations.max())
    for b in range(30):  # a problem is active exactly for its own iterations
        assert sum(int((rows == b).any()) for rows in active) == int(res.iterations[b])
    never = get_decomposer(NAME, seed=9, flip_fraction=0.1, threshold=0.05, iterations=20,
                           detect_threshold=None).decompose(s, R)
    assert bool((never.iterations == 20).all()) and not bool(never.converged.any())
    by_similarity = get_decomposer(NAME, seed=9, flip_fraction=0.1, threshold=0.05, iterations=500,
                                   detect_threshold=None, stop_similarity=0.3).decompose(s, R)
    assert float(by_similarity.converged.float().mean()) >= 0.9 and int(by_similarity.iterations.min()) < 100


def test_cap_by_default_grows_with_the_search_space():
    p = problems(6, dim=256, count=4, seed=10)
    seen = []
    d = get_decomposer(NAME, detect_threshold=None, flip_fraction=0.0)
    res = d.decompose(p.s, p.codebooks, callback=lambda info: seen.append(info.iteration))
    assert len(seen) == iteration_cap([6, 6, 6]) == 12 and bool((res.iterations == 12).all())
    assert d.iterations is None  # the call's cap is not kept


def test_options_are_checked_with_clear_errors():
    cases = [
        ({"threshold": -0.1}, ValueError, "threshold: expected a finite number"),
        ({"flip_fraction": 1.5}, ValueError, "flip_fraction: expected a finite number in \\[0.0, 1.0\\]"),
        ({"flip_pattern": "shuffled"}, ValueError, "flip_pattern: expected one of"),
        ({"top_a": 0}, ValueError, "top_a: expected an int >= 1"),
        ({"detect_threshold": -1}, ValueError, "detect_threshold: expected a finite number"),
        ({"noise": "loud"}, ValueError, "noise: expected one of \\['auto'\\]"),
        ({"noise": -0.1}, ValueError, "noise: expected a finite number"),
        ({"iteration_factor": 0}, ValueError, "iteration_factor: expected a number > 0"),
        ({"iterations": 0}, ValueError, "iterations: expected an int >= 1"),
        ({"iterations": 2.5}, TypeError, "iterations: expected an int"),
        ({"stop_similarity": 2.0}, ValueError, "stop_similarity"),
        ({"chains": 2}, TypeError, "unknown option\\(s\\) \\['chains'\\]"),
    ]
    for opts, err, match in cases:
        with pytest.raises(err, match=match):
            get_decomposer(NAME, **opts)


def test_registry_round_trip():
    assert NAME in available_decomposers()
    caps = capabilities(NAME)
    assert caps.iterative and caps.stochastic and caps.adaptive and caps.early_stop
    assert not caps.chains and not caps.equal_sizes and not caps.exhaustive and not caps.peer
    opts = decomposer_options(NAME)
    assert opts["iterations"] is None and opts["threshold"] is None and opts["flip_fraction"] is None
    spec = method_spec(NAME, threshold=0.04, flip_pattern="rolled", noise="auto", top_a=7)
    assert parse_method(spec) == (NAME, {"threshold": 0.04, "flip_pattern": "rolled", "noise": "auto", "top_a": 7})
    d = build_method(spec, iterations=9, seed=4)
    assert isinstance(d, InMemoryFactorizer) and d.options() == {**opts, "threshold": 0.04, "flip_pattern": "rolled",
                                                                 "noise": "auto", "top_a": 7, "iterations": 9,
                                                                 "seed": 4}
    again = build_method(method_spec(NAME, **d.options()))
    assert again.options() == d.options() and repr(again) == repr(d)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtypes_give_the_float32_answers(dtype):
    p = problems(10, dim=512, count=8, seed=11)
    d = get_decomposer(NAME, iterations=50, seed=0)
    ref = d.decompose(p.s, p.codebooks)
    low = d.decompose(p.s.to(dtype), p.codebooks.to(dtype=dtype))
    assert torch.equal(low.indices, ref.indices) and torch.equal(low.iterations, ref.iterations)
    for t in (low.similarity, low.confidence, low.margin):
        assert t.dtype == dtype and bool(torch.isfinite(t).all())
    assert low.indices.device == p.s.device and low.indices.dtype == torch.long


def test_normalize_makes_the_thresholds_scale_free():
    p = problems(20, dim=1000, count=20, seed=12)
    d = get_decomposer(NAME, iterations=200, seed=0, normalize=True)
    assert d.decompose(p.s, p.codebooks).accuracy(p.indices)[0] == 1.0
    assert d.decompose(3.0 * p.s, p.codebooks).accuracy(p.indices)[0] == 1.0
    scaled = d.decompose(0.1 * p.s, p.codebooks)
    unscaled = get_decomposer(NAME, iterations=200, seed=0).decompose(0.1 * p.s, p.codebooks)
    assert unscaled.accuracy(p.indices)[0] < 0.5 < scaled.accuracy(p.indices)[0] == 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_cpu_answers():
    X, R, truth, s = _repo_problem(40, 1000, 50, seed=13, fraction=0.1)
    d = get_decomposer(NAME, seed=13, noise="auto", iterations=300)
    cpu = d.decompose(s, R)
    gpu = d.decompose(s.cuda(), R.to("cuda"))
    assert torch.equal(gpu.indices.cpu(), cpu.indices) and torch.equal(gpu.iterations.cpu(), cpu.iterations)


def test_reproduce_imf_rows():
    from vsa_vision.bench.capacity import reproduce_imf

    rows = reproduce_imf(sizes=(16,), dim=512, problems=20, seed=0, iterations=200)
    (row,) = rows
    assert row["n"] == 16 and row["problems"] == 20 and row["published_iterations"] == 7.4287109375
    assert row["flip_pattern"] == "rolled" and row["flip_fraction"] == 0.1 and row["threshold"] == 0.01
    assert row["accuracy"] == 1.0
    assert row["mean_iterations_repo_count"] == pytest.approx(row["mean_iterations"] + row["converged"])
    with pytest.raises(ValueError, match="protocol"):
        reproduce_imf(sizes=(4,), protocol="mine")
