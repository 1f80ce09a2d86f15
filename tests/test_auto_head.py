"""The head that chooses by cost (``method="auto"``): exhaustive search on small spaces, the iterative
method on large ones, chosen from the codebooks' shape alone."""

import pytest
import torch

from tests.conftest import problems
from vsa_vision.decompose import (
    LOOKUP_WORK,
    BruteForce,
    CheapestDecomposer,
    DiffusionDecomposer,
    decompose_set,
    get_decomposer,
)
from vsa_vision.vsa import Codebooks


def test_small_space_is_searched_exhaustively_with_the_exact_answer():
    p = problems(12, k=3, dim=512, count=40, seed=3, flip=0.3)  # noisy: a hard target for any search
    head = get_decomposer("auto")
    assert isinstance(head.choose(p.codebooks), BruteForce)
    out = head.decompose(p.s, p.codebooks)
    exact = BruteForce().decompose(p.s, p.codebooks)
    assert out.method == "brute_force"
    assert torch.equal(out.indices, exact.indices)


def test_large_space_goes_to_the_iterative_method():
    cb = Codebooks.random({f: 60 for f in 'abcd'}, dim=1024, seed=0)  # 1.3e7 combinations, 1.3e10 multiply-adds
    assert cb.search_space * cb.dim > LOOKUP_WORK
    head = get_decomposer("auto", method="diffusion:chains=1")
    assert isinstance(head.choose(cb), DiffusionDecomposer)
    assert head.choose(cb).chains == 1


def test_the_bound_on_work_decides_and_the_iterative_answer_is_returned():
    p = problems(8, k=3, dim=1000, count=16, seed=1)
    head = get_decomposer("auto", lookup_work=0, iterations=200)
    out = head.decompose(p.s, p.codebooks)
    assert out.method == "diffusion"
    assert head.iterative.iterations == 200
    assert bool((out.indices == p.indices).all())


def test_a_table_too_large_to_keep_goes_to_the_iterative_method():
    cb = Codebooks.random({f: 20 for f in 'abc'}, dim=256, seed=0)  # table of 400 x 256 floats = 400 KiB
    assert isinstance(get_decomposer("auto").choose(cb), BruteForce)
    assert isinstance(get_decomposer("auto", cache_bytes=1 << 16).choose(cb), DiffusionDecomposer)


def test_the_iterative_path_answers_the_same_alone_and_in_a_batch():
    p = problems(10, k=3, dim=512, count=24, seed=5, flip=0.2)
    head = get_decomposer("auto", lookup_work=0, iterations=150)
    batch = head.decompose(p.s, p.codebooks).indices
    alone = torch.cat([head.decompose(p.s[i:i + 1], p.codebooks).indices for i in range(0, 24, 5)])
    assert torch.equal(alone, batch[::5])


@pytest.mark.parametrize("method", ["brute_force", "auto", "auto:method='diffusion'"])
def test_a_method_that_does_not_iterate_is_refused(method):
    with pytest.raises(ValueError, match="iterative decomposer"):
        CheapestDecomposer(method=method)


def test_sets_of_objects_decode_with_the_auto_head():
    cb = Codebooks.random({'a': 6, 'b': 5, 'c': 4}, dim=1024, seed=2)
    gen = torch.Generator().manual_seed(0)
    objs = [torch.stack([torch.randperm(n, generator=gen)[:3] for n in cb.sizes], 1) for _ in range(8)]
    s = torch.stack([cb.bind_indices(o).sum(0) for o in objs])
    res = decompose_set(s, cb, method="auto", max_objects=4)
    assert res.method.startswith("auto")
    assert res.accuracy(objs) == (1.0, 1.0)


def test_the_pipeline_head_defaults_to_auto_around_the_models_method(shipped):
    from vsa_vision import Pipeline

    assert shipped.method == "auto"
    head = shipped.model.head(shipped.method)
    # the model's own method with its own options, for spaces too large for the table
    assert head.method == "diffusion:chains=16,patience=13,patience_long=19"
    assert shipped.model.hparams.method_options == {"chains": 16, "patience": 13, "patience_long": 19}
    assert isinstance(head.choose(shipped.codebooks), BruteForce)  # 115,200 combinations at D = 1024
    assert Pipeline(shipped.model, method="diffusion").method == "diffusion"


def test_the_shipped_models_answers_are_those_of_their_diffusion_head(shipped):
    from vsa_vision.scenes import Renderer, sample_indices

    idx = sample_indices(shipped.schema, 12, seed=4, split="test")
    x = torch.from_numpy(Renderer(shipped.schema).render_batch(idx)).permute(0, 3, 1, 2).contiguous()
    q = shipped.encode(x)
    auto, diffusion = shipped.decode(q), shipped.decode(q, "diffusion")
    assert auto.method == "brute_force" and diffusion.method == "diffusion"
    assert torch.equal(auto.indices, diffusion.indices)
    assert torch.equal(auto.indices, torch.as_tensor(idx))


def test_bench_latency_times_the_pipeline_head_and_the_two_it_chooses_between_by_default():
    from vsa_vision.cli import build_parser

    assert build_parser().parse_args(["bench", "latency"]).methods == ["auto", "diffusion", "brute_force"]


def test_a_model_method_of_several_options_is_wrapped_whole():
    from vsa_vision.decompose import parse_method
    from vsa_vision.model import VSAModel

    assert parse_method("auto:method='diffusion:chains=2,restarts=1',lookup_work=5") == (
        "auto", {"method": "diffusion:chains=2,restarts=1", "lookup_work": 5})
    m = VSAModel(dim=64, width=8, features=16, method_options={"chains": 2, "restarts": 1})
    head = m.head("auto")
    assert head.iterative.chains == 2 and head.iterative.config.restarts == 1


def test_sets_give_the_auto_heads_iterative_method_the_set_budget_and_none_turns_the_stop_off():
    from vsa_vision.decompose.sets import SET_ITERATIONS, _inner

    assert _inner("auto", 3, {}).iterative.iterations == SET_ITERATIONS
    assert get_decomposer("auto", stop_similarity=None).iterative.stop_similarity is None
    assert get_decomposer("auto").iterative.stop_similarity == get_decomposer("diffusion").stop_similarity
    with pytest.raises(ValueError, match="stop_similarity"):
        get_decomposer("auto", stop_similarity="off")
