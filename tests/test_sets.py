"""Sets of objects: scene vectors that are sums of bound objects, decoded by explaining away."""

import pytest
import torch

from vsa_vision.decompose import available_decomposers, capabilities, torchhd_available


@pytest.mark.parametrize("method", ["brute_force", "diffusion"])
def test_decompose_set_finds_every_object_and_the_count(method):
    from vsa_vision.bench.problems import make_set_problems
    from vsa_vision.decompose import decompose_set

    p = make_set_problems([4, 5, 3, 6], 512, 24, objects=(0, 3), seed=2, distinct=(2, 3))
    res = decompose_set(p.s, p.codebooks, method=method, **({} if method == "brute_force" else {"iterations": 200}))
    assert torch.equal(res.counts, p.counts)  # 0 to 3 objects, count unknown
    assert res.accuracy(p.objects) == (1.0, 1.0)
    for found, conf, amp in zip(res.objects, res.confidence, res.amplitude):
        assert found.shape[1] == 4 and conf.shape == amp.shape == (len(found),)
    # exact bundles decoded right: each object explains what the others leave, nothing is left over
    assert all(bool((c > 0.999).all()) for c in res.confidence)
    assert all(bool(((a - 1).abs() < 0.3).all()) for a in res.amplitude)
    assert bool((res.residual < 1e-5).all())
    empty = int((p.counts == 0).nonzero()[0])
    assert res.labels[empty] == [] and len(res.labels[int((p.counts == 3).nonzero()[0])]) == 3


def test_decompose_set_with_a_given_count_and_its_errors():
    from vsa_vision.bench.problems import make_set_problems
    from vsa_vision.decompose import bundle_objects, decompose_set

    p = make_set_problems([6, 6, 6], 1024, 10, objects=2, seed=3)
    s = p.s + 0.3 * torch.randn(p.s.shape, generator=torch.Generator().manual_seed(0))
    res = decompose_set(s, p.codebooks, method="brute_force", count=2)
    assert res.counts.tolist() == [2] * 10 and res.accuracy(p.objects)[0] == 1.0
    # bundle_objects is the inverse: the objects found rebuild the exact scene vectors
    assert torch.allclose(bundle_objects(p.codebooks, res.objects), p.s)
    one = decompose_set(p.s[0], p.codebooks, method="brute_force")
    assert len(one) == 1 and _rows(one.objects[0]) == _rows(p.objects[0])
    with pytest.raises(ValueError, match="more than max_objects"):
        decompose_set(p.s, p.codebooks, method="brute_force", count=3, max_objects=2)
    with pytest.raises(ValueError, match="count: expected an integer tensor"):
        decompose_set(p.s, p.codebooks, method="brute_force", count=torch.ones(3))
    with pytest.raises(ValueError, match="unknown decomposer"):
        decompose_set(p.s, p.codebooks, method="nope")


def _rows(t):
    return sorted(map(tuple, t.tolist()))


@pytest.mark.parametrize("name", available_decomposers())
def test_every_decomposer_works_inside_explaining_away(name):
    from vsa_vision.bench.problems import make_set_problems
    from vsa_vision.decompose import decompose_set

    if capabilities(name).peer and not torchhd_available():
        pytest.skip("torchhd is not installed")
    p = make_set_problems(5, 1024, 12, objects=2, seed=4, k=3)
    res = decompose_set(p.s, p.codebooks, method=name, count=2, iterations=50)
    assert res.counts.tolist() == [2] * 12 and res.method == name
    assert res.accuracy(p.objects)[0] >= 0.5  # chance is about 1e-4 for two objects of 125 combinations


def test_joint_strategy_infers_the_objects_at_once():
    from vsa_vision.bench.problems import make_set_problems
    from vsa_vision.decompose import decompose_set

    p = make_set_problems([4, 5, 3, 6], 1024, 16, objects=2, seed=5, distinct=(2, 3))
    known = decompose_set(p.s, p.codebooks, method="diffusion", strategy="joint", count=2, iterations=200)
    assert known.counts.tolist() == [2] * 16 and known.accuracy(p.objects)[0] >= 0.75
    # without the count it runs max_objects slots and keeps the objects whose amplitude passes the
    # threshold (measured worse than peeling, docs/BENCHMARKS.md): at most that many, each fitted
    free = decompose_set(p.s, p.codebooks, method="diffusion", strategy="joint", max_objects=3, iterations=50)
    assert bool((free.counts <= 3).all())
    for found, conf, amp in zip(free.objects, free.confidence, free.amplitude):
        assert conf.shape == amp.shape == (len(found),) and bool((amp > 0.5).all())
    with pytest.raises(ValueError, match="method must be 'diffusion'"):
        decompose_set(p.s, p.codebooks, method="resonator", strategy="joint", count=2)
    with pytest.raises(ValueError, match="strategy: expected one of"):
        decompose_set(p.s, p.codebooks, strategy="greedy")


def test_bench_sets_writes_every_method_on_the_same_scenes(tmp_path, capsys):
    import csv

    from vsa_vision.bench.sets import FIELDS
    from vsa_vision.cli import main

    assert main(["bench", "sets", "--objects", "1,2", "--sizes", "3,3,2,4,4,2", "--dim", "256", "--scenes", "6",
                 "--iterations", "30", "--methods", "brute_force;diffusion", "--joint", "--count-known",
                 "--threads", "1", "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "sets-known.csv")))
    assert list(rows[0]) == FIELDS
    assert [(r["method"], r["strategy"], r["objects"]) for r in rows] == [
        (m, s, o) for o in ("1", "2") for m, s in (("brute_force", "peel"), ("diffusion", "peel"),
                                                   ("diffusion", "joint"))]
    assert all(float(r["acc_all"]) == 1.0 for r in rows if r["method"] == "brute_force")
    assert (tmp_path / "sets-known.png").read_bytes()[:4] == b"\x89PNG"
    assert "| `diffusion (joint)` |" in capsys.readouterr().out
    assert main(["bench", "sets", "--objects", "17", "--sizes", "3,3,2,4,4,2", "--out", str(tmp_path)]) == 2


def test_auto_scale_reads_bundles_of_unknown_scale():
    from vsa_vision.bench.problems import make_set_problems
    from vsa_vision.decompose import decompose_set

    p = make_set_problems([4, 5, 3, 6], 1024, 20, objects=(1, 3), seed=6, distinct=(2, 3))
    weak = 0.3 * p.s  # an encoder's bundle whose objects have amplitude 0.3, not 1
    fixed = decompose_set(weak, p.codebooks, method="brute_force")
    assert bool((fixed.counts == 0).all())  # below half an object of amplitude 1: nothing accepted
    auto = decompose_set(weak, p.codebooks, method="brute_force", scale="auto")
    assert auto.accuracy(p.objects) == (1.0, 1.0)
    assert all(bool(((a - 0.3).abs() < 0.1).all()) for a in auto.amplitude)
    # each object is subtracted with its fitted amplitude, which takes in a little crosstalk
    assert all(bool((c > 0.99).all()) for c in auto.confidence)
    # a vector holding no object (noise) is read as empty
    noise = torch.randn(5, 1024, generator=torch.Generator().manual_seed(0))
    assert decompose_set(noise, p.codebooks, method="brute_force", scale="auto").counts.tolist() == [0] * 5
    with pytest.raises(ValueError, match="explaining away only"):
        decompose_set(weak, p.codebooks, method="diffusion", strategy="joint", scale="auto", count=2)


def test_the_default_call_gives_the_inner_decoder_the_set_budget_and_skips_empty_residuals(monkeypatch):
    from vsa_vision.bench.problems import make_set_problems
    from vsa_vision.decompose import decompose_set, registry, sets

    built, decoded = [], []
    real = registry.get_decomposer

    def spy(name, **opts):
        d = real(name, **opts)
        built.append(d)
        inner = d.decompose
        d.decompose = lambda s, cb, *a, **k: (decoded.append(s.shape[0]), inner(s, cb, *a, **k))[1]
        return d

    monkeypatch.setattr(sets, "get_decomposer", spy)
    p = make_set_problems([4, 5, 3, 6], 512, 12, objects=2, seed=3, distinct=(2, 3))
    res = decompose_set(p.s, p.codebooks, method="diffusion")
    assert res.accuracy(p.objects) == (1.0, 1.0)
    assert built[-1].iterations == sets.SET_ITERATIONS  # the diffusion default (100) is raised for sets
    # exact bundles: after the two objects the residual is empty, so no third decode runs
    assert decoded == [12, 12]
    built.clear()
    decompose_set(p.s, p.codebooks, method="diffusion", iterations=40)
    assert built[-1].iterations == 40  # a given budget is kept
    decompose_set(p.s, p.codebooks, method="diffusion:iterations=30")
    assert built[-1].iterations == 30
    zero = decompose_set(torch.zeros(3, 512), p.codebooks, method="diffusion")
    assert zero.counts.tolist() == [0, 0, 0]


def test_unit_noisy_scenes_have_the_asked_cosine_and_unit_norm():
    from vsa_vision.bench.problems import make_set_problems
    from vsa_vision.bench.sets import unit_noisy

    p = make_set_problems([4, 5, 3, 6], 256, 8, objects=3, seed=1, distinct=(2, 3))
    s = unit_noisy(p.s, 0.8, seed=4)
    assert torch.allclose(s.norm(dim=1), torch.ones(8), atol=1e-5)
    assert torch.allclose(torch.nn.functional.cosine_similarity(s, p.s), torch.full((8,), 0.8), atol=1e-5)
    assert torch.equal(s, unit_noisy(p.s, 0.8, seed=4)) and not torch.equal(s, unit_noisy(p.s, 0.8, seed=5))


def test_bench_sets_runs_each_methods_default_budget_on_unit_norm_bundles(tmp_path, capsys):
    from vsa_vision.cli import main

    assert main(["bench", "sets", "--objects", "1,2", "--sizes", "4,5,3,6", "--dim", "256", "--scenes", "6",
                 "--iterations", "default", "--cosine", "0.9", "--methods", "diffusion;brute_force",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "default iterations" in out and "unit norm at cosine 0.9" in out
    import csv

    rows = list(csv.DictReader(open(tmp_path / "sets-cos0.9.csv")))
    assert {r["iterations"] for r in rows} == {"default"} and {r["cosine"] for r in rows} == {"0.9"}
    assert all(float(r["acc_all"]) == 1.0 for r in rows)  # bundles of a small space at cosine 0.9: all read
    with pytest.raises(SystemExit):  # argparse refuses a cosine outside [0, 1]
        main(["bench", "sets", "--cosine", "1.5"])
    assert "cosine from 0 to 1" in capsys.readouterr().err
