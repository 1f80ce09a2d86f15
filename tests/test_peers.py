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
    assert torch.equal(peer.indices, ours.indices)  # the same step: the same answer on every problem
    assert torch.equal(peer.iterations, torch.full((64,), 30))
    unequal = make_problems([8, 9, 10], 256, 4, seed=0)
    with pytest.raises(ValueError, match="same size"):
        get_decomposer("torchhd_resonator").decompose(unequal.s, unequal.codebooks)


@pytest.mark.perf
def test_our_classic_resonator_is_at_least_5x_faster_than_torchhds_at_the_same_accuracy():
    """On the same CPU and batch: one matrix product per codebook against torchhd's broadcast over
    the batch (a prototype measured 7.5x to 26x). A timing: run apart with ``-m perf``."""
    pytest.importorskip("torchhd")
    import time

    p = make_problems(20, 1000, 256, seed=5, k=3)  # a benchmark-sized batch (bench accuracy runs 1000)
    ours = get_decomposer("resonator", update="sync", iterations=15, stop_similarity=None)
    peer = get_decomposer("torchhd_resonator", iterations=15)

    def best_time(d):
        d.decompose(p.s[:4], p.codebooks)
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            res = d.decompose(p.s, p.codebooks)
            times.append(time.perf_counter() - t0)
        return min(times), res.accuracy(p.indices)[0]

    t_ours, acc_ours = best_time(ours)
    t_peer, acc_peer = best_time(peer)
    assert abs(acc_ours - acc_peer) <= 0.02
    assert t_peer >= 5 * t_ours, f"torchhd {t_peer:.3f}s vs ours {t_ours:.3f}s"
