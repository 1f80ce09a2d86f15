"""The capacity frontier and the crossover with exhaustive search (``vsa-vision bench capacity``):
tiny dimensions, few problems and small budgets, so that each test runs in a few seconds on a CPU."""

import csv
import math
from types import SimpleNamespace

import pytest
import torch

from vsa_vision.bench.accuracy import write_csv
from vsa_vision.bench.capacity import (
    CAPACITY_FIELDS,
    PUBLISHED_CAPACITY,
    capacity_frontier,
    capacity_table,
    evaluate_size,
    frontier_problems,
    plot_capacity,
    search_frontier,
    shape_sizes,
)
from vsa_vision.bench.crossover import CROSSOVER_FIELDS, crossover_point, crossover_table, exhaustive_crossover
from vsa_vision.cli import main
from vsa_vision.decompose import build_method
from vsa_vision.decompose.brute_force import BruteForce
from vsa_vision.decompose.resonator import Resonator

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny problems: one thread is fastest, and keeps these tests quick on a loaded machine."""
    torch.set_num_threads(1)
    yield


def _allowed(problems: int, target: float) -> int:
    return math.floor(problems * (1 - target) + 1e-9)


# ---------------------------------------------------------------------------------------------
# the search
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold,start", [(37, 5), (370, 5), (37, 300), (2, 2)])
def test_the_search_brackets_a_threshold_to_the_resolution(threshold, start):
    calls = []

    def passes(v):
        calls.append(v)
        return v <= threshold

    lo, hi = search_frontier(passes, start, least=2, cap=10_000, growth=1.5, resolution=0.05)
    assert lo == threshold or (lo < threshold < hi)
    assert lo <= threshold < hi and (hi - lo == 1 or hi <= lo * 1.05)
    assert len(calls) == len(set(calls)) and len(calls) <= 25  # no size evaluated twice; geometric, then bisected


def test_the_search_reports_the_cap_and_a_failure_at_the_least_value():
    assert search_frontier(lambda v: True, 5, 2, 40) == (40, None)
    assert search_frontier(lambda v: False, 5, 2, 40) == (None, 2)
    assert search_frontier(lambda v: v <= 2, 50, 2, 40) == (2, 3)  # a start above the cap starts at the cap


def test_shapes_and_their_search_spaces():
    assert shape_sizes("k3", 7) == [7, 7, 7]
    assert shape_sizes("vision", 5) == [10, 12, 6, 5, 5, 2, 8] and math.prod(shape_sizes("vision", 1)) == 11_520
    with pytest.raises(ValueError, match="shape"):
        shape_sizes("k4", 3)


# ---------------------------------------------------------------------------------------------
# the frontier
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec,dim", [("resonator", 64), ("diffusion", 64)])
def test_the_frontier_passed_and_the_first_fail_failed_at_the_reported_accuracies(spec, dim):
    problems, target, its = 16, 0.9, 30
    (row,) = capacity_frontier([spec], dims=(dim,), shape="k3", iterations=its, problems=problems, target=target)
    n, fail = row["frontier"], row["fail_at"]
    assert n is not None and fail is not None and fail > n and (fail - n == 1 or fail <= n * 1.05)
    assert row["search_space"] == n ** 3 and row["fail_search_space"] == fail ** 3
    assert row["accuracy"] >= target and row["acc_lo"] <= row["accuracy"] <= row["acc_hi"]
    assert row["fail_accuracy"] < target
    assert row["log10_space"] == pytest.approx(3 * math.log10(n), abs=1e-3)
    # the same problems and the same method again: the same outcomes
    d = build_method(spec, its, 0)
    allowed = _allowed(problems, target)
    again = evaluate_size(d, frontier_problems("k3", dim, n, problems), 4, allowed)
    assert again["passed"] and again["hits"] / again["evaluated"] == row["accuracy"]
    again = evaluate_size(d, frontier_problems("k3", dim, fail, problems), 4, allowed)
    assert not again["passed"] and again["evaluated"] == row["fail_evaluated"]
    assert again["hits"] / again["evaluated"] == row["fail_accuracy"]
    assert row["mean_iterations"] <= its and row["chain_iterations"] == row["mean_iterations"] * row["chains"]


def test_a_method_that_always_succeeds_up_to_the_cap_reports_the_cap():
    rows = capacity_frontier(["diffusion"], dims=(256,), shape="k3", iterations=50, problems=12, max_space=6 ** 3)
    (row,) = rows
    assert row["frontier"] == 6 and row["cap"] == 6 and row["capped"] is True
    assert row["fail_at"] is None and row["fail_accuracy"] is None and row["accuracy"] == 1.0
    assert row["search_space"] == 216 and row["chains"] == 2  # the diffusion decomposer's default chains


def test_early_stopping_skips_the_rest_of_a_failing_size(monkeypatch):
    batches = []
    original = Resonator.decompose

    def counting(self, s, codebooks, callback=None):
        batches.append(s.shape[0])
        return original(self, s, codebooks, callback)

    monkeypatch.setattr(Resonator, "decompose", counting)
    (row,) = capacity_frontier(["resonator"], dims=(64,), shape="k3", iterations=20, problems=40, target=0.99)
    assert sum(batches) == row["problems_run"] < row["sizes_tried"] * 40  # some sizes stopped early
    assert row["fail_evaluated"] < 40 and set(batches) == {10}  # four chunks of ten
    # a method that never succeeds: one chunk and done
    wrong = SimpleNamespace(iterations=5, decompose=lambda s, cb: SimpleNamespace(
        indices=torch.full((s.shape[0], 3), -1), iterations=torch.ones(s.shape[0], dtype=torch.long)))
    r = evaluate_size(wrong, frontier_problems("k3", 32, 4, 100), chunks=4, allowed=1)
    assert r == {**r, "passed": False, "hits": 0, "evaluated": 25, "budget": 5}


def test_rows_have_the_documented_fields_and_exhaustive_methods_are_skipped():
    notes = []
    rows = capacity_frontier(["brute_force", "resonator"], dims=(32, 64), shape="both", iterations=10, problems=8,
                             log=notes.append)
    assert [(r["shape"], r["method"], r["dim"]) for r in rows] == [
        (sh, "resonator", d) for sh in ("k3", "vision") for d in (32, 64)]
    assert all(set(r) == set(CAPACITY_FIELDS) for r in rows)
    assert any("brute_force: skipped" in n and "time" in n for n in notes)
    for r in rows:
        assert r["parameter"] == ("n" if r["shape"] == "k3" else "p") and r["device"] == "cpu"
        assert r["problems"] == 8 and r["iterations"] == 10 and r["target"] == 0.99 and r["chains"] == 1
    vision = [r for r in rows if r["shape"] == "vision"]
    assert all(r["frontier"] is None or r["sizes"].startswith("10x12x6x") for r in vision)


def test_bad_arguments_are_refused_by_name():
    for kwargs, name in [({"target": 0.0}, "target"), ({"target": 1.5}, "target"), ({"problems": 0}, "problems"),
                         ({"shape": "k4"}, "shape"), ({"dims": (0,)}, "dims"), ({"iterations": 0}, "iterations"),
                         ({"growth": 1.0}, "growth")]:
        with pytest.raises(ValueError, match=name):
            capacity_frontier(["resonator"], **{"dims": (32,), **kwargs})
    with pytest.raises(ValueError, match="methods"):
        capacity_frontier("resonator", dims=(32,))


def test_plot_table_and_csv_are_written(tmp_path):
    rows = capacity_frontier(["resonator", "diffusion"], dims=(32, 64), shape="both", iterations=10, problems=8)
    plot_capacity(rows, str(tmp_path / "capacity.png"))
    assert (tmp_path / "capacity.png").read_bytes()[:8] == PNG
    write_csv(rows, str(tmp_path / "capacity.csv"), CAPACITY_FIELDS)
    back = list(csv.DictReader(open(tmp_path / "capacity.csv")))
    assert list(back[0]) == CAPACITY_FIELDS and len(back) == len(rows)
    table = capacity_table(rows)
    assert table.count("\n| `") == len(rows) and "| `diffusion` | k3 | 64 |" in table
    # the published points: Kent et al.'s resonator and the in-memory factorizer's largest n at >= 99% of factors
    assert {(p["dim"], p["n"]) for p in PUBLISHED_CAPACITY} == {(1500, 79), (2000, 128), (3000, 205), (5000, 323),
                                                                (1500, 999)}


# ---------------------------------------------------------------------------------------------
# the crossover
# ---------------------------------------------------------------------------------------------


def test_the_crossover_compares_the_same_problems(monkeypatch):
    seen = {"brute": [], "iterative": []}
    brute, iterative = BruteForce.decompose, Resonator.decompose

    def spy(kind, original):
        def wrapped(self, s, codebooks, callback=None):
            if max(codebooks.sizes) > 2:  # not the warm-up
                seen[kind].append(s.clone())
            return original(self, s, codebooks, callback)
        return wrapped

    monkeypatch.setattr(BruteForce, "decompose", spy("brute", brute))
    monkeypatch.setattr(Resonator, "decompose", spy("iterative", iterative))
    rows = exhaustive_crossover([[4, 4, 4], [3, 5, 4, 6]], dim=128, method="resonator", iterations=20, problems=6,
                                exhaustive_problems=3)
    assert all(set(r) == set(CROSSOVER_FIELDS) for r in rows)
    assert len(seen["brute"]) == len(seen["iterative"]) == 2  # one call each per schema (after the warm-up)
    for b, it in zip(seen["brute"], seen["iterative"]):
        assert b.shape[0] == 3 and it.shape[0] == 6 and torch.equal(b, it[:3])  # the first three, the same vectors
    for r, sizes in zip(rows, ([4, 4, 4], [3, 5, 4, 6])):
        assert r["schema"] == "x".join(map(str, sizes)) and r["search_space"] == math.prod(sizes)
        assert r["exhaustive_accuracy"] == 1.0 and r["exhaustive_problems"] == 3 and r["problems"] == 6
        assert r["speed_ratio"] == pytest.approx(r["exhaustive_ms_per_problem"] / r["ms_per_problem"])
        assert r["faster"] == ("iterative" if r["speed_ratio"] > 1 else "exhaustive")
    assert "crossover:" in crossover_table(rows)
    with pytest.raises(ValueError, match="iterative method"):
        exhaustive_crossover([[4, 4]], dim=32, method="brute_force")


def test_crossover_alone_refuses_the_frontiers_methods(tmp_path, capsys):
    assert main(["bench", "capacity", "--crossover", "--methods", "resonator", "--out", str(tmp_path)]) == 2
    assert "--methods applies to the frontier" in capsys.readouterr().err


def test_the_crossover_point():
    rows = [{"search_space": s, "speed_ratio": q} for s, q in [(10, 0.5), (100, 2.0), (1000, 0.8), (10**4, 3.0),
                                                               (10**5, 4.0)]]
    first, est = crossover_point(rows)
    assert first == 10**4 and 1000 < est < 10**4
    assert crossover_point([{"search_space": 5, "speed_ratio": 2.0}]) == (5, None)
    assert crossover_point([{"search_space": 5, "speed_ratio": 0.5}]) == (None, None)
    # faster but wrong too often does not count: exhaustive search is always right
    acc = [{"search_space": 10, "speed_ratio": 2.0, "accuracy": 1.0},
           {"search_space": 100, "speed_ratio": 5.0, "accuracy": 0.9}]
    assert crossover_point(acc) == (None, None)
    assert crossover_point(acc, min_accuracy=0.8) == (10, None)
    assert crossover_point(list(reversed(acc)) + [{"search_space": 1000, "speed_ratio": 9.0, "accuracy": 1.0}]) \
        == (1000, None)


# ---------------------------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------------------------


def test_the_command_runs_a_tiny_case(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["bench", "capacity", "--methods", "resonator;diffusion", "--dims", "32,64", "--shape", "k3",
                 "--problems", "8", "--iterations", "10", "--threads", "1", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "capacity.csv")))
    assert list(rows[0]) == CAPACITY_FIELDS and [(r["method"], r["dim"]) for r in rows] == [
        (m, d) for m in ("resonator", "diffusion") for d in ("32", "64")]
    assert (out / "capacity.png").read_bytes()[:8] == PNG
    assert "| `diffusion` | k3 | 64 |" in capsys.readouterr().out
    assert main(["bench", "capacity", "--crossover", "--schemas", "4,4,4;3,5,4,6", "--crossover-dim", "64",
                 "--crossover-method", "resonator", "--problems", "4", "--iterations", "10",
                 "--exhaustive-problems", "2", "--out", str(tmp_path / "x")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "x" / "crossover.csv")))
    assert [r["schema"] for r in rows] == ["4x4x4", "3x5x4x6"] and all(r["exhaustive_accuracy"] == "1.0" for r in rows)
    assert not (tmp_path / "x" / "capacity.csv").exists()  # --crossover alone runs the crossover only
    assert "crossover:" in capsys.readouterr().out


@pytest.mark.parametrize("words,message", [
    (["--target", "0"], "argument --target: expected a fraction above 0"),
    (["--target", "1.5"], "argument --target: expected a fraction from 0 to 1"),
    (["--dims", "64,0"], "argument --dims: expected a positive integer"),
    (["--shape", "k4"], "argument --shape: invalid choice"),
    (["--crossover", "--schemas", "4,x"], "argument --schemas: expected a positive integer"),
])
def test_the_command_refuses_bad_values_naming_the_option(words, message, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["bench", "capacity", *words, "--out", str(tmp_path)])
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("words,message", [
    (["--schemas", "4,4,4"], "--schemas applies to --crossover only"),
    (["--crossover", "--dims", "64"], "--dims applies to the frontier"),
    (["--methods", "brute_force"], "--methods: no iterative method to search"),
    (["--crossover", "--crossover-method", "brute_force"], "--crossover-method: expected an iterative method"),
])
def test_the_command_refuses_options_that_would_be_ignored_or_cannot_run(words, message, tmp_path, capsys):
    assert main(["bench", "capacity", *words, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


# -- every method on the published factorizer's problems ------------------------------------------


def test_published_problems_alter_the_codebooks_only_in_the_repository_protocol():
    from vsa_vision.bench.versus import published_problems

    # n = 99: the published row alters a fraction g0 = 0.1 of the entries (not rolled)
    cb, truth, s = published_problems(99, dim=200, count=8, seed=1, protocol="repo")
    X = torch.stack(cb.tensors)
    altered = ((X == 0) | (X == 2)).double().mean()
    assert set(X.unique().tolist()) == {-1.0, 0.0, 1.0, 2.0} and abs(float(altered) - 0.1) < 0.005
    assert torch.equal(s, cb.bind_indices(truth)) and truth.shape == (8, 3)
    bip, truth_b, s_b = published_problems(99, dim=200, count=8, seed=1, protocol="bipolar")
    B = torch.stack(bip.tensors)
    assert set(B.unique().tolist()) == {-1.0, 1.0} and bool(((B == 1).sum(-1) == 100).all())  # exactly D/2 +1
    assert torch.equal(truth_b, truth) and torch.equal(s_b, bip.bind_indices(truth))  # same answers
    # the alteration is the repository's 1 - x of the bipolar draw, where it altered
    assert torch.equal(torch.where(X != B, 1 - B, B), X)
    with pytest.raises(ValueError, match="protocol"):
        published_problems(99, dim=200, count=2, protocol="leaky")


def test_versus_factorizer_runs_every_method_on_the_same_problems(monkeypatch):
    import vsa_vision.bench.versus as versus

    seen = []
    real = versus._build

    def spy(spec, n, budget, seed):
        d = real(spec, n, budget, seed)
        decompose = d.decompose

        def record(s, cb):
            seen.append((spec, n, s.clone()))
            return decompose(s, cb)

        d.decompose = record
        return d

    monkeypatch.setattr(versus, "_build", spy)
    rows = versus.versus_factorizer(methods=("diffusion", "resonator"), sizes=(5, 9), dim=128, problems=6,
                                    protocols=("bipolar",), seed=2)
    assert [(r["n"], r["method"]) for r in rows] == [(5, "diffusion"), (5, "resonator"), (9, "diffusion"),
                                                     (9, "resonator")]
    for n in (5, 9):  # one draw of problems per n, handed to every method
        a, b = [s for spec, m, s in seen if m == n]
        assert torch.equal(a, b)
    for r in rows:
        assert r["accuracy"] == 1.0  # search spaces of 125 and 729 at D = 128: easy
        assert r["chain_iterations"] == pytest.approx(r["chains"] * r["mean_iterations"])
        assert r["budget"] == 3000  # max(3000, 5 x the published mean iterations: 10 and 14)
    assert [r["chains"] for r in rows] == [2, 1, 2, 1]
    assert versus.versus_factorizer(methods=("resonator",), sizes=(5,), dim=64, problems=2, protocols=("repo",),
                                    iterations=7)[0]["budget"] == 7
    table = versus.versus_table(rows)
    assert table.count("\n") == len(rows) + 1 and "`diffusion`" in table


def test_bench_versus_writes_the_rows_and_refuses_bad_sizes(tmp_path, capsys):
    from vsa_vision.bench.versus import PROTOCOLS, VERSUS_METHODS
    from vsa_vision.cli.bench import versus as cli_versus

    assert cli_versus.VERSUS_METHODS == list(VERSUS_METHODS) and cli_versus.PROTOCOLS == PROTOCOLS
    assert main(["bench", "versus", "--sizes", "5,9", "--dim", "64", "--problems", "3", "--methods",
                 "resonator;diffusion", "--protocols", "bipolar", "--threads", "1", "--out", str(tmp_path)]) == 0
    with open(tmp_path / "versus.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["n"], r["method"], r["protocol"]) for r in rows] == [
        ("5", "resonator", "bipolar"), ("5", "diffusion", "bipolar"), ("9", "resonator", "bipolar"),
        ("9", "diffusion", "bipolar")]
    assert "| bipolar | 9 | `diffusion` |" in capsys.readouterr().out
    assert main(["bench", "versus", "--sizes", "1", "--out", str(tmp_path)]) == 2
    assert "--sizes: expected codebook sizes of at least 2" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # a parse error: argparse's usage message
        main(["bench", "versus", "--protocols", "leaky", "--out", str(tmp_path)])
    assert e.value.code == 2 and "--protocols: expected comma-separated values from ['repo', 'bipolar']" in \
        capsys.readouterr().err


def test_capacity_csv_reads_back_typed_for_a_joint_figure(tmp_path):
    from vsa_vision.bench.capacity import read_capacity_csv

    rows = capacity_frontier(["resonator"], dims=(64,), shape="k3", iterations=20, problems=4, seed=3)
    more = capacity_frontier(["resonator"], dims=(128,), shape="k3", iterations=20, problems=4, seed=3)
    write_csv(rows, str(tmp_path / "a.csv"), CAPACITY_FIELDS)
    write_csv(more, str(tmp_path / "b.csv"), CAPACITY_FIELDS)
    back = read_capacity_csv(str(tmp_path / "a.csv"), str(tmp_path / "b.csv"))
    assert [r["dim"] for r in back] == [64, 128] and back[0]["frontier"] == rows[0]["frontier"]
    assert back[0]["capped"] is rows[0]["capped"] and back[0]["search_space"] == rows[0]["search_space"]
    assert back[0]["method"] == "resonator"
    plot_capacity(back, str(tmp_path / "both.png"))
    assert (tmp_path / "both.png").read_bytes()[:8] == PNG
    assert capacity_table(back).count("| `resonator` |") == 2


def test_tuning_a_capacity_anchor_starts_from_its_shipped_settings():
    # the search's first trial is the current defaults; an anchor's own values must lie in its space
    from vsa_vision.bench.tune import PORTFOLIO_SPACES, PORTFOLIOS, _start_params

    for name in ("capacity", "vast", "wide"):
        folio = PORTFOLIOS[name]
        space = PORTFOLIO_SPACES[folio["space"]]
        shape = {**folio["shapes"][0], "problems": 1}
        assert _start_params("diffusion", {**space}, [shape]) is not None, name


def test_the_factorizer_undoes_the_alteration_it_is_handed():
    from vsa_vision.bench.versus import _build, published_problems

    for n in (99, 214):  # independent and rolled alterations in the published table
        altered, _, _ = published_problems(n, dim=200, count=2, seed=4, protocol="repo")
        clean, _, _ = published_problems(n, dim=200, count=2, seed=4, protocol="bipolar")
        d = _build("in_memory_factorizer", n, 10, 4)
        assert all(torch.equal(P, X) for P, X in zip(d.projection_codebooks(altered), clean.tensors)), n
    with pytest.raises(ValueError, match="sets seed or flip_pattern"):
        _build("in_memory_factorizer:seed=1", 99, 10, 4)
