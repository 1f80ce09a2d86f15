"""Property-based tests (Hypothesis) of the algebra and the decomposers' contracts: a fixed, small,
derandomized example budget, so the file runs in seconds on a CPU."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vsa_vision import Codebooks, available_decomposers, bind, get_decomposer, unbind
from vsa_vision.decompose import capabilities, torchhd_available

FAST = settings(max_examples=8, deadline=None, derandomize=True)
FEW = settings(max_examples=3, deadline=None, derandomize=True)


def _methods():
    return [m for m in available_decomposers() if not capabilities(m).peer or torchhd_available()]


def _book(sizes, dim, seed, dtype=torch.float32):
    return Codebooks.random({f"f{k}": n for k, n in enumerate(sizes)}, dim=dim, seed=seed, dtype=dtype)


def _truth(cb, count, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, n, (count,), generator=gen) for n in cb.sizes], 1)


sizes = st.lists(st.integers(1, 6), min_size=1, max_size=3)
seeds = st.integers(0, 2**16)


@FAST
@given(sizes=sizes, dim=st.integers(1, 64), seed=seeds)
def test_unbinding_recovers_every_factor(sizes, dim, seed):
    cb = _book(sizes, dim, seed)
    words = cb.codewords(_truth(cb, 4, seed))
    s = bind(*words)
    for k in range(len(words)):
        assert torch.equal(unbind(s, *(w for j, w in enumerate(words) if j != k)), words[k])


@FAST
@given(sizes=st.lists(st.integers(2, 5), min_size=2, max_size=3), seed=seeds, pair=st.integers(0, 2))
def test_answers_are_invariant_under_negating_two_factors(sizes, seed, pair):
    cb = _book(sizes, 256, seed)
    idx = _truth(cb, 3, seed)
    words = cb.codewords(idx)
    i, j = pair % len(words), (pair + 1) % len(words)
    words[i], words[j] = -words[i], -words[j]
    s = bind(*words)
    assert torch.equal(s, cb.bind_indices(idx))  # the same vector: the pair of signs cancels
    for name in ("brute_force", "resonator"):
        res = get_decomposer(name, iterations=20).decompose(bind(*words), cb)
        assert torch.equal(res.indices, get_decomposer(name, iterations=20).decompose(cb.bind_indices(idx), cb).indices)
        assert torch.equal(res.indices, idx) or name != "brute_force"


@FAST
@given(sizes=sizes, dim=st.integers(1, 32), seed=seeds, bipolar=st.booleans(),
       labels=st.lists(st.text(min_size=1, max_size=5), min_size=6, max_size=6, unique=True))
def test_codebooks_save_load_round_trip_with_labels(tmp_path_factory, sizes, dim, seed, bipolar, labels):
    cb = _book(sizes, dim, seed)
    tensors = {n: t if bipolar else t * 0.5 for n, t in zip(cb.names, cb.tensors)}
    own = Codebooks.from_tensors(tensors, labels={n: labels[: t.shape[0]] for n, t in tensors.items()},
                                 check_bipolar=bipolar)
    path = tmp_path_factory.mktemp("cb") / "c.safetensors"
    own.save(path)
    back = Codebooks.load(path)
    assert back == own and back.labels == own.labels and back.dtype == own.dtype


@pytest.mark.parametrize("name", _methods())
@FEW
@given(seed=seeds, count=st.integers(2, 6))
def test_exact_targets_get_the_same_answer_alone_and_in_any_batch(name, seed, count):
    cb = _book([6, 6, 6], 512, seed)  # equal sizes: the torchhd peer stacks them
    idx = _truth(cb, count, seed)
    s = cb.bind_indices(idx)
    d = get_decomposer(name, iterations=30, seed=seed % 7)
    full = d.decompose(s, cb).indices
    perm = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(d.decompose(s[perm], cb).indices, full[perm])
    for i in range(count):
        assert torch.equal(d.decompose(s[i], cb).indices, full[i : i + 1])


@pytest.mark.parametrize("name", _methods())
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@FEW
@given(seed=seeds)
def test_low_precision_gives_the_float32_answers_on_easy_problems(name, dtype, seed):
    cb = _book([5, 5, 5], 256, seed)
    idx = _truth(cb, 6, seed)
    s = cb.bind_indices(idx)
    d = get_decomposer(name, iterations=40, seed=0)
    ref = d.decompose(s, cb)
    low = d.decompose(s.to(dtype), cb.to(dtype=dtype))
    assert torch.equal(low.indices, ref.indices)
    for t in (low.similarity, low.confidence, low.margin):
        assert t.dtype == dtype and bool(torch.isfinite(t).all())


bad_inputs = st.sampled_from(["shape", "dim", "nan", "inf", "dtype", "list", "complex", "codebooks"])


@pytest.mark.parametrize("name", _methods())
@FEW
@given(kind=bad_inputs, seed=seeds)
def test_malformed_input_is_refused_with_a_clear_error(name, kind, seed):
    cb = _book([3, 3], 64, seed)
    s = cb.bind_indices(_truth(cb, 2, seed))
    bad = {
        "shape": (s[None], cb, ValueError, "expected shape"),
        "dim": (s[:, :10], cb, ValueError, "dimension mismatch"),
        "nan": (s.index_fill(1, torch.tensor([3]), float("nan")), cb, ValueError, "non-finite"),
        "inf": (s.index_fill(1, torch.tensor([0]), float("inf")), cb, ValueError, "non-finite"),
        "dtype": (s.bool(), cb, TypeError, "real tensor"),
        "list": (s.tolist(), cb, TypeError, "torch.Tensor"),
        "complex": (s.to(torch.complex64), cb, TypeError, "real tensor"),
        "codebooks": (s, cb.tensors, TypeError, "Codebooks"),
    }
    target, books, err, match = bad[kind]
    with pytest.raises(err, match=match):
        get_decomposer(name, iterations=2).decompose(target, books)


@pytest.mark.parametrize("name", _methods())
def test_a_target_on_another_device_is_refused(name):
    cb = _book([3, 3], 64, 0)
    other = "cuda" if torch.cuda.is_available() else "meta"  # a second device on every machine
    with pytest.raises(ValueError, match="move one with .to"):
        get_decomposer(name, iterations=2).decompose(cb.bind_indices(torch.tensor([[0, 1]])).to(other), cb)
