import pytest
import torch

from vsa_vision import Codebooks, bind, bundle, cosine_similarity, readout, unbind
from vsa_vision.vsa import check_problem, sign


def test_sign_maps_zero_to_plus_one():
    assert sign(torch.tensor([-2.0, 0.0, 3.0])).tolist() == [-1.0, 1.0, 1.0]


def test_bind_is_self_inverse_and_commutative():
    cb = Codebooks.random({"a": 5, "b": 7}, dim=256, seed=1)
    a, b = cb["a"][2], cb["b"][3]
    assert torch.equal(unbind(bind(a, b), b), a)
    assert torch.equal(bind(a, b), bind(b, a))
    # batched over leading dims
    A = cb["a"][:, None, :]  # [5, 1, D]
    B = cb["b"][None, :, :]  # [1, 7, D]
    assert bind(A, B).shape == (5, 7, 256)


def test_binding_is_quasi_orthogonal_to_its_inputs():
    cb = Codebooks.random({"a": 20, "b": 20}, dim=2000, seed=2)
    s = bind(cb["a"], cb["b"])  # [20, D]
    cos_a = cosine_similarity(s, cb["a"]).abs()
    assert float(cos_a.max()) < 0.12  # ~N(0, 1/D): 5 sigma is 0.11
    cross = (cb["a"] @ cb["a"].T / 2000).fill_diagonal_(0).abs()
    assert float(cross.max()) < 0.12


def test_bundle_is_similar_to_its_members():
    cb = Codebooks.random({"a": 10}, dim=2000, seed=3)
    sup = bundle(cb["a"][:3], binarize=True)
    sims = cosine_similarity(sup[None], cb["a"])
    assert set(sims.topk(3).indices.tolist()) == {0, 1, 2}
    assert set(sup.unique().tolist()) <= {-1.0, 1.0}


def test_readout_of_clean_bound_vector_is_exact():
    cb = Codebooks.random({"a": 30, "b": 20, "c": 10}, dim=1000, seed=4)
    idx = torch.tensor([[3, 14, 5], [29, 0, 9]])
    s = cb.bind_indices(idx)
    words = cb.codewords(idx)
    # unbinding the other two true factors leaves exactly the third
    est = [s * words[1] * words[2], s * words[0] * words[2], s * words[0] * words[1]]
    got, sims = readout(est, cb)
    assert torch.equal(got, idx)
    assert torch.allclose(sims, torch.ones_like(sims))
    # sign-invariant readout of a negated estimate finds the same codeword
    got2, _ = readout([-e for e in est], cb)
    assert torch.equal(got2, idx)
    got3, _ = readout([-e for e in est], cb, sign_invariant=False)
    assert not torch.equal(got3, idx)


def test_random_is_seeded_and_sizes_may_differ():
    a = Codebooks.random({"x": 3, "y": ["r", "g"]}, dim=64, seed=7)
    b = Codebooks.random({"x": 3, "y": ["r", "g"]}, dim=64, seed=7)
    c = Codebooks.random({"x": 3, "y": ["r", "g"]}, dim=64, seed=8)
    assert a == b and a != c
    assert a.sizes == (3, 2) and a.labels[1] == ("r", "g") and a.search_space == 6
    assert set(a["x"].unique().tolist()) == {-1.0, 1.0}


def test_labels_round_trip():
    cb = Codebooks.random({"shape": ["star", "disc"], "colour": ["red", "green", "blue"]}, dim=32, seed=0)
    s = cb.bind_labels({"shape": "star", "colour": "blue"})
    assert torch.equal(s, cb.bind_indices(torch.tensor([0, 2])))
    assert cb.labels_of(torch.tensor([[1, 0]])) == [{"shape": "disc", "colour": "red"}]
    with pytest.raises(ValueError, match="unknown value 'pink'.*valid values are"):
        cb.indices_of({"shape": "star", "colour": "pink"})
    with pytest.raises(ValueError, match="missing \\['colour'\\]"):
        cb.indices_of({"shape": "star"})


def test_to_moves_dtype_and_keeps_labels():
    cb = Codebooks.random({"a": 4, "b": 5}, dim=16, seed=0)
    half = cb.to(dtype=torch.float64)
    assert half.dtype == torch.float64 and half.labels == cb.labels and half == cb
    with pytest.raises(TypeError, match="floating dtype"):
        cb.to(dtype=torch.int32)


def test_save_load_round_trip_and_is_atomic(tmp_path):
    cb = Codebooks.random({"shape": ["star", "disc", "square"], "n": 7}, dim=100, seed=5)
    path = tmp_path / "cb.safetensors"
    cb.save(path)
    back = Codebooks.load(path)
    assert back == cb and back.names == cb.names and back.dtype == cb.dtype
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cb.safetensors"]  # no temporary left
    # a file of another kind is refused clearly, not unpickled
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match="cannot read codebooks"):
        Codebooks.load(bad)
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(path.read_bytes()[:50])
    with pytest.raises(ValueError):
        Codebooks.load(trunc)


def test_padded_stacks_unequal_factors():
    cb = Codebooks.random({"a": 2, "b": 4}, dim=8, seed=0)
    X, mask = cb.padded()
    assert X.shape == (2, 4, 8) and mask.sum().item() == 6
    assert torch.equal(X[0, :2], cb["a"]) and torch.all(X[0, 2:] == 0)


@pytest.mark.parametrize(
    "factors, err, match",
    [
        ({}, ValueError, "non-empty mapping"),
        ({"a": 0}, ValueError, "size >= 1"),
        ({"a": []}, ValueError, "at least one value label"),
        ({"a": ["x", "x"]}, ValueError, "unique"),
        ({"": 3}, ValueError, "non-empty string"),
    ],
)
def test_random_rejects_bad_factors(factors, err, match):
    with pytest.raises(err, match=match):
        Codebooks.random(factors, dim=10)


def test_from_tensors_validates():
    A = torch.ones(3, 10)
    with pytest.raises(ValueError, match="dimension D must match"):
        Codebooks.from_tensors({"a": A, "b": torch.ones(3, 11)})
    with pytest.raises(ValueError, match="entries \\+1/-1"):
        Codebooks.from_tensors({"a": A * 0.5})
    with pytest.raises(ValueError, match="at least one codeword"):
        Codebooks.from_tensors({"a": torch.ones(0, 10)})
    with pytest.raises(ValueError, match="2-D tensor"):
        Codebooks.from_tensors({"a": torch.ones(10)})
    with pytest.raises(TypeError, match="torch.Tensor"):
        Codebooks.from_tensors({"a": [[1, -1]]})
    cb = Codebooks.from_tensors({"a": A.int(), "b": -A}, labels={"a": ["p", "q", "r"]})
    assert cb.dtype == torch.float32 and cb.labels[0] == ("p", "q", "r")


def test_indices_are_checked():
    cb = Codebooks.random({"a": 3, "b": 4}, dim=10, seed=0)
    with pytest.raises(ValueError, match="out of range for factor 'b' with 4 values"):
        cb.bind_indices(torch.tensor([[0, 4]]))
    with pytest.raises(ValueError, match="shape \\[..., K\\] with K = 2"):
        cb.bind_indices(torch.tensor([[0, 1, 2]]))
    with pytest.raises(TypeError, match="integer tensor"):
        cb.bind_indices(torch.tensor([[0.0, 1.0]]))


def test_check_problem_errors_name_the_argument():
    cb = Codebooks.random({"a": 3, "b": 4}, dim=10, seed=0)
    with pytest.raises(ValueError, match="s: dimension mismatch.*D = 10"):
        check_problem(torch.ones(2, 11), cb)
    with pytest.raises(ValueError, match="s: expected shape \\[B, D\\]"):
        check_problem(torch.ones(2, 3, 10), cb)
    with pytest.raises(ValueError, match="non-finite.*row\\(s\\) \\[1\\]"):
        check_problem(torch.tensor([[1.0] * 10, [float("nan")] * 10]), cb)
    with pytest.raises(TypeError, match="codebooks: expected vsa_vision.Codebooks"):
        check_problem(torch.ones(2, 10), {"a": 1})
    with pytest.raises(TypeError, match="s: expected a torch.Tensor"):
        check_problem([[1.0] * 10], cb)
    s, _, single = check_problem(torch.ones(10, dtype=torch.float64), cb)
    assert single and s.shape == (1, 10) and s.dtype == torch.float32


def test_leave_one_out_gives_the_product_of_the_other_factors():
    from vsa_vision.vsa import LeaveOneOut

    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(3, 8, generator=g) for _ in range(4)]
    s = torch.randn(3, 8, generator=g)
    # parallel sweep: every factor sees the others' values at the start
    for k, u in enumerate(LeaveOneOut.all(xs, start=s)):
        expect = s.clone()
        for j in range(4):
            if j != k:
                expect = expect * xs[j]
        assert torch.allclose(u, expect, rtol=1e-5, atol=1e-6)
    # sequential sweep: the factors before k are seen at their new values
    new = [x + 1 for x in xs]
    loo = LeaveOneOut(xs, start=s)
    for k in range(4):
        expect = s * torch.stack([new[j] if j < k else xs[j] for j in range(4) if j != k]).prod(0)
        assert torch.allclose(loo.others(k), expect, rtol=1e-5, atol=1e-6)
        loo.advance(new[k])
    # one factor and no start: nothing to multiply; asking out of turn is an error
    assert LeaveOneOut.all([xs[0]]) == [None]
    with pytest.raises(ValueError, match="at factor 0, asked for 2"):
        LeaveOneOut(xs).others(2)


def _write_codebooks(path, tensors, version="1", dtypes=None):
    import json

    from safetensors.torch import save_file

    meta = {"format": "vsa_vision.codebooks", "version": version,
            "names": json.dumps([f"f{k}" for k in range(len(tensors))]),
            "labels": json.dumps([[str(i) for i in range(t.shape[0])] for t in tensors]),
            "dtypes": json.dumps(dtypes or ["float32"] * len(tensors))}
    save_file({f"factor_{k}": t for k, t in enumerate(tensors)}, str(path), metadata=meta)
    return path


def test_load_refuses_a_malformed_file_naming_it_and_the_fault(tmp_path):
    ok = torch.tensor([[1, -1], [-1, 1]], dtype=torch.int8)
    assert Codebooks.load(_write_codebooks(tmp_path / "ok.safetensors", [ok])).sizes == (2,)
    cases = {
        "version": (dict(tensors=[ok], version="99"), "version '99' is not supported"),
        "nan": (dict(tensors=[torch.tensor([[1.0, float("nan")], [1.0, -1.0]])]), "non-finite"),
        "int8": (dict(tensors=[torch.tensor([[1, 7], [-1, 1]], dtype=torch.int8)]), r"other than \+1/-1, e.g. \[7\]"),
        "dtype": (dict(tensors=[ok], dtypes=["Tensor"]), "dtype 'Tensor'"),
    }
    for name, (kw, match) in cases.items():
        path = _write_codebooks(tmp_path / f"{name}.safetensors", **kw)
        with pytest.raises(ValueError, match=match) as err:
            Codebooks.load(path)
        assert str(path) in str(err.value)


def test_cosine_floor_is_dtype_aware():
    from vsa_vision.vsa import cosine_similarity, eps_for

    assert eps_for(torch.float32) == 1e-12 and eps_for(torch.float16) == torch.finfo(torch.float16).tiny
    z = torch.zeros(3, dtype=torch.float16)
    assert cosine_similarity(z, z).item() == 0.0  # 0 / 0 would be NaN: 1e-12 is 0 in float16


def test_rowwise_matmul_rows_do_not_depend_on_the_batch():
    from vsa_vision.vsa import is_exact_integer, rowwise_matmul

    gen = torch.Generator().manual_seed(0)
    X = Codebooks.random({"x": 50}, dim=1000, seed=0)["x"]
    u = torch.randn(64, 1000, generator=gen)
    full = rowwise_matmul(u, X.T)
    assert all(torch.equal(rowwise_matmul(u[i : i + 1], X.T), full[i : i + 1]) for i in range(64))
    assert torch.allclose(full, u @ X.T, atol=1e-3)
    assert is_exact_integer(torch.tensor([[1.0, -1.0]]), 1000) and not is_exact_integer(u, 1000)
    assert not is_exact_integer(torch.tensor([[3000.0]], dtype=torch.float16), 1000)  # sums beyond 2**11
