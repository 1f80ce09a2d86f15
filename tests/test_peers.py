"""The torchhd peer: the same problems through torchhd's resonator step."""

import sys

import pytest
import torch

from vsa_vision.bench.problems import make_problems
from vsa_vision.cli import default_methods
from vsa_vision.decompose import get_decomposer


def test_without_torchhd_the_peer_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torchhd", None)  # import torchhd now raises ImportError
    p = make_problems(8, 256, 4, seed=0, k=3)
    with pytest.raises(ImportError, match=r"vsa_vision\[peers\]"):
        get_decomposer("torchhd_resonator").decompose(p.s, p.codebooks)
    methods = default_methods()
    assert "torchhd_resonator" not in methods and "diffusion" in methods
    assert "torchhd is not installed" in capsys.readouterr().out


def test_torchhd_resonator_matches_the_synchronous_resonator():
    pytest.importorskip("torchhd")
    p = make_problems(12, 1000, 64, seed=3, k=3)
    peer = get_decomposer("torchhd_resonator", iterations=30).decompose(p.s, p.codebooks)
    ours = get_decomposer("resonator", update="sync", iterations=30, stop_similarity=None).decompose(
        p.s, p.codebooks)
    assert peer.accuracy(p.indices)[0] >= 0.95
    assert abs(peer.accuracy(p.indices)[0] - ours.accuracy(p.indices)[0]) <= 0.05
    assert torch.equal(peer.iterations, torch.full((64,), 30))
    unequal = make_problems([8, 9, 10], 256, 4, seed=0)
    with pytest.raises(ValueError, match="same size"):
        get_decomposer("torchhd_resonator").decompose(unequal.s, unequal.codebooks)
