"""The fused iteration of the diffusion decomposer: the same answers as the general step, bit for bit,
for every configuration it covers; the general step for the others; torch.compile with a fallback."""

import shutil
import warnings

import pytest
import torch

from vsa_vision import Codebooks, get_decomposer
from vsa_vision.decompose.diffusion import DiffusionDecomposer
from vsa_vision.decompose.diffusion import fused as fused_module


def _sizes(*ns):
    return {f"f{k}": n for k, n in enumerate(ns)}


def _run(opts, s, cb, fuse):
    d = get_decomposer("diffusion", **opts)
    d.fuse = fuse
    seen = []
    r = d.decompose(s, cb, callback=lambda info: seen.append((info.state.h.clone(), info.state.x.clone())))
    return r, seen


VARIANTS = [
    {},
    {"space": "latent"},
    {"coupling": "parallel"},
    {"estimate": "sign"},
    {"activation": "positive"},
    {"threshold": 0.0},
    {"threshold": 0.3, "space": "latent", "estimate": "sign", "eta": 0.0},
    {"chains": 3, "steps": 4, "restart": 1.0},
    {"sign_invariant": False},
]


@pytest.mark.parametrize("opts", VARIANTS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults")
def test_fused_iteration_equals_the_general_step_bit_for_bit(opts):
    # unequal codebook sizes (the padded readout), a noisy target, enough iterations for restarts
    cb = Codebooks.random(_sizes(7, 4, 9), 512, seed=3)
    s = cb.bind_indices(torch.stack([torch.arange(12) % n for n in cb.sizes], 1))
    s = s + 0.8 * torch.randn(s.shape, generator=torch.Generator().manual_seed(5))
    opts = {"iterations": 40, "stop_similarity": None, **opts}
    fused, fused_states = _run(opts, s, cb, True)
    general, general_states = _run(opts, s, cb, False)
    assert torch.equal(fused.indices, general.indices)
    assert torch.equal(fused.similarity, general.similarity)
    assert torch.equal(fused.iterations, general.iterations)
    assert len(fused_states) == len(general_states) == 40
    for (h1, x1), (h2, x2) in zip(fused_states, general_states):
        assert torch.equal(h1, h2) and torch.equal(x1, x2)


def test_the_fused_iteration_runs_the_configurations_it_covers_and_no_other():
    cb = Codebooks.random(_sizes(5, 6), 256, seed=0)
    s = torch.randn(2, 256)
    for opts, fused in (({}, True), ({"space": "latent"}, True), ({"prior": "positive"}, False),
                        ({"guidance": "dps"}, False), ({"energy": "gaussian"}, False), ({"normalize": "zscore"}, False),
                        ({"clip": 2.0}, False)):
        d = get_decomposer("diffusion", **opts)
        assert (d._setup(s, cb).spec is not None) == fused, opts
    d = get_decomposer("diffusion")
    d.fuse = False
    assert d._setup(s, cb).spec is None


def test_compile_refuses_a_configuration_it_does_not_cover():
    with pytest.raises(ValueError, match="compile=True.*energy='gaussian'"):
        get_decomposer("diffusion", compile=True, energy="gaussian")
    with pytest.raises(ValueError, match="compile=True.*prior='positive'"):
        DiffusionDecomposer(compile=True, prior="positive")


def test_a_failed_compilation_warns_once_and_runs_the_same_iteration_eagerly(monkeypatch):
    calls = []

    def broken_compile(fn, **kw):
        def run(*args):
            calls.append(1)
            raise RuntimeError("no C++ compiler found")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(fused_module, "_COMPILED", {})
    monkeypatch.setattr(fused_module, "_FAILED", set())
    cb = Codebooks.random(_sizes(6, 5, 4), 512, seed=1)
    s = cb.bind_indices(torch.tensor([[1, 2, 3], [5, 4, 0]]))
    with pytest.warns(RuntimeWarning, match="torch.compile failed.*no C\\+\\+ compiler found"):
        r = get_decomposer("diffusion", compile=True, iterations=30).decompose(s, cb)
    eager = get_decomposer("diffusion", iterations=30).decompose(s, cb)
    assert torch.equal(r.indices, eager.indices) and torch.equal(r.similarity, eager.similarity)
    assert len(calls) == 1  # the first iteration's attempt; the rest ran eagerly
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning: the failure is remembered for the process
        get_decomposer("diffusion", compile=True, iterations=5).decompose(s, cb)
    assert len(calls) == 1


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++") or shutil.which("cc")),
                    reason="torch.compile on a CPU needs a C++ compiler")
def test_compiled_iterations_give_the_eager_answers():
    cb = Codebooks.random(_sizes(8, 6, 5), 256, seed=2)
    truth = torch.stack([torch.arange(24) % n for n in cb.sizes], 1)
    s = cb.bind_indices(truth) + 0.5 * torch.randn(24, 256, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback to eager would not test the compiled code
        compiled = get_decomposer("diffusion", compile=True, iterations=60).decompose(s, cb)
    eager = get_decomposer("diffusion", iterations=60).decompose(s, cb)
    assert torch.equal(compiled.indices, eager.indices)
    assert torch.allclose(compiled.similarity, eager.similarity, atol=1e-5)
    assert (compiled.indices == truth).all(-1).float().mean() >= 0.9


def test_the_restart_plan_is_laid_out_once_per_decomposer_and_settings(monkeypatch):
    from vsa_vision.decompose.diffusion import sampler

    laid = []
    real = sampler._levels
    monkeypatch.setattr(sampler, "_levels", lambda plan, eta: laid.append(1) or real(plan, eta))
    d = get_decomposer("diffusion", iterations=50)
    small = Codebooks.random(_sizes(5, 6), 256, seed=0)
    large = Codebooks.random(_sizes(10, 10, 4, 12, 12, 2), 1024, seed=0)  # six factors: other settings
    assert d.settings(small) != d.settings(large)
    first = d.decompose(torch.randn(3, 256), small)
    for _ in range(3):
        again = d.decompose(torch.randn(3, 256, generator=torch.Generator().manual_seed(0)), small)
    assert len(laid) == 1  # one plan for one shape, whatever the calls
    d.decompose(torch.randn(2, 1024), large)
    assert len(laid) == 2  # another shape: other settings, another plan
    assert first.indices.shape == again.indices.shape
    # the kept plan gives the answers a fresh decomposer gives
    s = torch.randn(4, 256, generator=torch.Generator().manual_seed(1))
    fresh = get_decomposer("diffusion", iterations=50).decompose(s, small)
    assert torch.equal(d.decompose(s, small).indices, fresh.indices)
