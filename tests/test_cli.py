import csv
import json

import pytest

from vsa_vision import Codebooks
from vsa_vision.bench.accuracy import FIELDS
from vsa_vision.cli import main
from vsa_vision.decompose import registry


def test_demo_prints_every_method(capsys):
    methods = ["brute_force", "resonator", "attention_resonator", "stochastic_resonator", "diffusion"]
    assert main(["decompose-demo", "--n", "8", "--problems", "20", "--iterations", "20",
                 "--methods", ",".join(methods)]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()
            if line.split() and line.split()[0] in methods}
    assert sorted(rows) == sorted(methods)  # one row per method
    assert rows["brute_force"][1] == "100.0%"  # exhaustive search on noiseless problems


def test_bench_accuracy_quick_writes_csv_and_png(tmp_path, capsys):
    methods = "brute_force;resonator;diffusion"
    assert main(["bench", "accuracy", "--quick", "--methods", methods, "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "accuracy-size-K3.csv")))
    assert list(rows[0]) == FIELDS
    assert [(r["method"], r["n"]) for r in rows] == [(m, n) for n in ["10", "20"] for m in methods.split(";")]
    assert all(float(r["acc_all"]) == 1.0 for r in rows if r["method"] == "brute_force")
    assert (tmp_path / "accuracy-size-K3.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("sweep,column,values", [
    ("dim", "D", ["250", "500"]),
    ("noise", "noise", ["none", "flip 20%", "SNR 0 dB"]),
    ("iterations", "iterations", ["10", "50"]),
])
def test_every_sweep_quick_preset_writes_one_row_per_method_and_setting(sweep, column, values, tmp_path, capsys):
    methods = ["brute_force", "resonator", "diffusion"]
    assert main(["bench", "accuracy", "--sweep", sweep, "--quick", "--methods", ",".join(methods),
                 "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / f"accuracy-{sweep}-K3.csv")))
    assert list(rows[0]) == FIELDS
    assert sorted((r["method"], r[column]) for r in rows) == sorted((m, v) for m in methods for v in values)
    assert all(0.0 <= float(r["acc_all_lo"]) <= float(r["acc_all"]) <= float(r["acc_all_hi"]) <= 1.0 for r in rows)
    brute = [r for r in rows if r["method"] == "brute_force" and r["noise"] == "none"]
    assert brute and all(float(r["acc_all"]) == 1.0 for r in brute)
    assert (tmp_path / f"accuracy-{sweep}-K3.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_steps_and_restarts_sweeps_vary_the_diffusion_settings(tmp_path, capsys):
    assert main(["bench", "accuracy", "--sweep", "steps", "--quick", "--methods", "brute_force,diffusion",
                 "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "accuracy-steps-K3.csv")))
    assert sorted((r["method"], r["steps"]) for r in rows) == [("brute_force", ""), ("diffusion", "2"),
                                                               ("diffusion", "6")]
    assert main(["bench", "accuracy", "--sweep", "restarts", "--quick", "--methods", "diffusion,resonator",
                 "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "accuracy-restarts-K3.csv")))
    # the resonator has no restarts; the sweep runs 6 steps a pass where the spec does not set them
    assert sorted((r["method"], r["restart"], r["restarts"], r["steps"]) for r in rows) == [
        ("diffusion", rho, count, "6") for rho in ["0.5", "1.0"] for count in ["0", "2"]]
    assert (tmp_path / "accuracy-restarts-K3.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "restart level rho = 0.5" in out
    # an option the chosen sweep does not read is refused, not ignored
    assert main(["bench", "accuracy", "--sweep", "dim", "--rho", "0.5", "--quick", "--out", str(tmp_path)]) == 2
    assert "--rho applies to the restarts sweep" in capsys.readouterr().err


def test_bench_speed_reports_flops_memory_and_the_ratio_to_brute_force(tmp_path, capsys):
    assert main(["bench", "speed", "--n", "8,16", "--batches", "4,16", "--iterations", "5", "--repeats", "1",
                 "--methods", "brute_force,resonator", "--dtypes", "fp32,bf16", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "problems/s" in out and "crossover" in out
    rows = list(csv.DictReader(open(tmp_path / "speed-cpu-K3.csv")))
    assert len(rows) == 2 * 2 * 2 * 2  # n x batch x dtype x method
    brute = {(r["n"], r["batch"], r["dtype"]): float(r["ms_per_problem"]) for r in rows if r["method"] == "brute_force"}
    for r in rows:
        n, d, batch = int(r["n"]), int(r["D"]), int(r["batch"])
        # the batch's targets alone take batch * D floats (2 bytes in bf16, 4 in fp32)
        assert float(r["peak_mem_mb"]) * 2**20 >= batch * d * (2 if r["dtype"] == "bf16" else 4)
        # the ratio is the method's time over exhaustive search's, at the same n, batch and dtype
        ratio = float(r["ms_per_problem"]) / brute[(r["n"], r["batch"], r["dtype"])]
        assert float(r["ratio_to_brute"]) == pytest.approx(ratio, rel=0.02)
        if r["method"] == "brute_force":
            # scoring every combination is 2 * n^3 * D FLOPs per problem, plus the per-factor read-out
            assert float(r["gflop_per_problem"]) * 1e9 >= 2 * n ** 3 * d
            assert float(r["ratio_to_brute"]) == 1.0
            assert float(r["acc_all"]) == 1.0  # exact in bf16 too: bipolar codebooks are exact there
    with pytest.raises(SystemExit):
        main(["bench", "speed", "--dtypes", "fp64"])
    assert main(["bench", "speed", "--dtypes", "tf32", "--quick", "--methods", "resonator"]) == 2  # CPU: no TF32


def test_bench_cost_times_methods_in_turn_and_reports_ratios_to_the_first(capsys):
    assert main(["bench", "cost", "--methods", "resonator;diffusion;diffusion:chains=1", "--n", "10", "--batch", "16",
                 "--iterations", "5", "--rounds", "2", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "| `resonator` |" in out and "1.00 [1.00, 1.00]" in out and "| `diffusion:chains=1` |" in out
    assert main(["bench", "cost", "--methods", "brute_force"]) == 2  # no iterations to divide by
    assert "iterative methods only" in capsys.readouterr().err


def test_cost_rounds_report_medians_within_their_ranges():
    from vsa_vision.bench.problems import make_problems
    from vsa_vision.bench.speed import cost_rounds

    p = make_problems(20, 1000, 64, seed=0, k=3)
    rows = cost_rounds(["diffusion:chains=1", "diffusion:chains=2"], p, 10, rounds=3)
    assert [r["method"] for r in rows] == ["diffusion:chains=1", "diffusion:chains=2"]
    assert rows[0]["ratio"] == rows[0]["ratio_min"] == rows[0]["ratio_max"] == 1.0 and rows[0]["rounds"] == 3
    for r in rows:
        assert r["us_min"] <= r["us_per_problem_iteration"] <= r["us_max"]
        assert r["ratio_min"] <= r["ratio"] <= r["ratio_max"]
    with pytest.raises(ValueError, match="rounds: expected an int >= 1"):
        cost_rounds(["diffusion"], p, 10, rounds=0)


@pytest.mark.perf
def test_cost_rounds_ratio_follows_the_work():
    from vsa_vision.bench.problems import make_problems
    from vsa_vision.bench.speed import cost_rounds

    p = make_problems(20, 1000, 64, seed=0, k=3)
    rows = cost_rounds(["diffusion:chains=1", "diffusion:chains=8"], p, 10, rounds=3)
    assert rows[1]["ratio"] > 1.5  # eight chains do eight times the work of one (a loose bound: shared CPUs)


def test_bench_chains_reports_each_run_and_the_best_of_the_runs(capsys):
    assert main(["bench", "chains", "--n", "40", "--problems", "60", "--iterations", "15", "--seeds", "0,1,2",
                 "--threads", "1"]) == 0
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and
            line.split("|")[1].strip().isdigit()]
    assert [int(r[0]) for r in rows] == [1, 2, 3]
    single = [float(r[2]) for r in rows]
    best = [float(r[3].split("[")[0]) for r in rows]
    assert best[0] == single[0] and best == sorted(best) and best[-1] >= max(single)
    assert best[-1] > single[0]  # the runs fail on different problems
    assert main(["bench", "chains", "--method", "diffusion:seed=3", "--n", "10", "--problems", "5"]) == 2
    assert "leave it out of the spec" in capsys.readouterr().err


def test_peak_memory_tracks_live_tensors():
    import torch

    from vsa_vision.bench.speed import PeakMemory

    with PeakMemory() as mem:
        a = torch.ones(1000, 250)  # 1 MB
        b = a * 2                   # 2 MB live
        del a
        c = b + 1                   # still 2 MB live at most
        c.add_(1)                   # in place: nothing new
    assert mem.peak == 2 * 1000 * 250 * 4
    del b, c
    assert mem.live == 0


def test_tune_writes_the_file_the_user_names_and_nothing_else(tmp_path, monkeypatch, capsys):
    from vsa_vision.decompose.diffusion.defaults import PACKAGE_ANCHORS

    monkeypatch.chdir(tmp_path)
    package_before = open(PACKAGE_ANCHORS).read()
    out = tmp_path / "stochastic_resonator.json"
    assert main(["tune", "stochastic_resonator", "--n", "10", "--dim", "200", "--trials", "3", "--problems", "20",
                 "--eval-problems", "20", "--iterations", "10", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["method"] == "stochastic_resonator" and set(data["options"]) <= {"noise", "threshold", "update"}
    report = json.loads((tmp_path / "stochastic_resonator-options-report.json").read_text())
    assert report["seed"] != report["eval_seed"] and report["options"] == data["options"]
    # nothing is applied unless asked: the registry keeps the constructor's defaults
    assert registry.get_decomposer("stochastic_resonator").noise == registry.decomposer_options(
        "stochastic_resonator")["noise"]
    d = registry.get_decomposer("stochastic_resonator", **registry.tuned_options(out))
    assert d.noise == data["options"]["noise"]
    # without --out the file goes under ./tuned, never into the package
    assert main(["tune", "attention_resonator", "--n", "6", "--dim", "100", "--trials", "1", "--problems", "5",
                 "--eval-problems", "5", "--iterations", "5"]) == 0
    assert (tmp_path / "tuned" / "attention_resonator.json").is_file()
    assert open(PACKAGE_ANCHORS).read() == package_before
    # only anchors may go into the package, and only when asked
    assert main(["tune", "attention_resonator", "--trials", "1", "--into-package"]) == 2
    assert "only the diffusion anchors" in capsys.readouterr().err


def test_bad_arguments_exit_with_a_message(capsys):
    with pytest.raises(SystemExit):
        main(["decompose-demo", "--methods", "nonsense"])
    assert "unknown method 'nonsense'" in capsys.readouterr().err
    assert main(["tune", "brute_force", "--trials", "1"]) == 2
    assert "no search space" in capsys.readouterr().err


def test_tune_portfolio_scores_every_shape_and_reports_each(tmp_path, capsys):
    from vsa_vision.bench.tune import tune

    shapes = [{"name": "a", "sizes": 6, "k": 3, "dim": 200, "iterations": 10, "problems": 10},
              {"name": "b", "sizes": [4, 2, 5], "dim": 256, "iterations": 20, "problems": 10, "flip": 0.1}]
    lines = []
    report = tune("attention_resonator", trials=2, eval_problems=12, seed=3, portfolio=shapes, log=lines.append)
    assert [r["shape"]["name"] for r in report["portfolio"]] == ["a", "b"]
    accs = [r["eval_acc_all"] for r in report["portfolio"]]
    assert report["eval_acc_all"] == pytest.approx(sum(accs) / 2)
    assert all(0 <= a <= 1 for a in accs) and "problem" not in report
    # every trial is scored on both shapes: one accuracy per shape in its log line
    assert sum(line.startswith("trial") for line in lines) == 2
    assert all(len(line.split("(")[1].split(")")[0].split()) == 2 for line in lines if line.startswith("trial"))
    with pytest.raises(ValueError, match="at least one"):
        tune("attention_resonator", trials=1, portfolio=[])
    # the CLI refuses a shape option next to --portfolio instead of ignoring it
    assert main(["tune", "diffusion", "--portfolio", "--n", "40", "--trials", "1"]) == 2
    assert "--n" in capsys.readouterr().err


def test_anchor_reports_become_anchors_of_the_named_file(tmp_path, monkeypatch):
    from vsa_vision.bench.tune import write_defaults
    from vsa_vision.decompose.diffusion.defaults import (
        ADAPTIVE_OPTIONS,
        ANCHORS_ENV,
        anchors_in_force,
        auto_settings,
        load_anchors,
    )

    path = str(tmp_path / "diffusion.json")
    shipped = {a.name: a for a in anchors_in_force()}
    opts = {"guidance_scale": 0.3, "steps": 5, "lambda_min": -3.0, "lambda_max": -1.0, "eta": 0.9, "restart": 0.9}
    write_defaults({"method": "diffusion", "anchor": "low", "load": -0.5, "factors": 3, "options": opts}, path)
    # a new file starts from the anchors in force; the one tuned replaces its namesake
    got = {a.name: a for a in load_anchors(path)}
    assert set(got) == set(shipped) and got["low"].options == opts and got["low"].load == -0.5
    assert got["high"].options == shipped["high"].options
    # 'mid' shared the old 'low' settings in the package file: it keeps them when low is re-tuned
    assert got["mid"].options == shipped["low"].options
    write_defaults({"method": "diffusion", "anchor": "high", "load": 1.0, "factors": 3,
                    "options": {**opts, "steps": 9}}, path)
    data = json.loads(open(path).read())
    assert sum(r["name"] == "high" for r in data["anchors"]) == 1 and "auto" not in data
    assert json.loads(open(path[:-5] + "-high-report.json").read())["options"]["steps"] == 9
    # the environment variable makes every later decomposer use the file
    monkeypatch.setenv(ANCHORS_ENV, path)
    assert registry.get_decomposer("diffusion").settings(
        Codebooks.random({"a": 100, "b": 100, "c": 100}, 100, seed=0))["steps"] == 9  # past the heavy anchor
    assert set(auto_settings([2, 2, 2], 1000)) == set(ADAPTIVE_OPTIONS)
    monkeypatch.setenv(ANCHORS_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(FileNotFoundError, match=ANCHORS_ENV):
        anchors_in_force()
    monkeypatch.delenv(ANCHORS_ENV)
    assert main(["tune", "stochastic_resonator", "--portfolio", "low", "--trials", "1"]) == 2


def test_tune_portfolio_choices_are_the_portfolios():
    from vsa_vision.bench.tune import PORTFOLIOS
    from vsa_vision.cli import PORTFOLIO_NAMES

    assert sorted(PORTFOLIO_NAMES) == sorted(PORTFOLIOS)


def test_the_shared_device_check_refuses_cuda_where_there_is_none(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for bench in (["speed", "--quick"], ["cost", "--methods", "resonator"]):
        assert main(["bench", *bench, "--device", "cuda", "--threads", "1"]) == 2
        assert "--device cuda: CUDA is not available on this machine" in capsys.readouterr().err


def test_every_bench_module_registers_a_subcommand_and_python_m_runs_the_cli():
    import subprocess
    import sys

    from vsa_vision.cli import build_parser
    from vsa_vision.cli.bench import BENCHES

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    bench = next(a for a in sub.choices["bench"]._actions if a.dest == "bench")
    assert list(bench.choices) == [b.replace("_", "-") for b in BENCHES]
    out = subprocess.run([sys.executable, "-m", "vsa_vision.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("vsa_vision ")


# ---------------------------------------------------------------------------------------------
# errors: one line, distinct exit codes, checked before any work
# ---------------------------------------------------------------------------------------------


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("vsa-vision: ") and "Traceback" not in err, err
    return lines[0]


def _device_commands(tmp_path):
    """Every command with a --device option, with arguments it needs to get that far."""
    from vsa_vision.cli import build_parser

    img = tmp_path / "in.png"
    img.write_bytes(b"")
    needs = {("recognize",): [str(img)], ("edit",): [str(img), "--set", "colour=red", "--out", str(tmp_path / "o.png")],
             ("bench", "cost"): ["--methods", "resonator"], ("bench", "own"): ["--data", str(tmp_path)],
             ("calibrate",): ["--out", str(tmp_path / "c.safetensors")]}
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    found = []
    for name, p in sub.choices.items():
        inner = [a for a in p._actions if a.dest == "bench"]
        leaves = inner[0].choices.items() if inner else [(None, p)]
        for leaf, lp in leaves:
            if any("--device" in a.option_strings for a in lp._actions):
                cmd = (name,) if leaf is None else (name, leaf)
                found.append([*cmd, *needs.get(cmd, [])])
    assert len(found) >= 6  # demo, recognize, edit, bench vision, speed, cost
    return found


def test_a_bad_or_missing_device_is_one_line_on_every_command(tmp_path, capsys):
    import torch

    for words in _device_commands(tmp_path):
        assert main([*words, "--device", "bogus"]) == 2, words
        assert "--device 'bogus': not a device" in _one_error_line(capsys.readouterr().err)
        if not torch.cuda.is_available():
            assert main([*words, "--device", "cuda"]) == 2, words
            assert "CUDA is not available" in _one_error_line(capsys.readouterr().err)


def test_a_real_process_prints_no_traceback():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "vsa_vision.cli", "demo", "--device", "bogus"], capture_output=True,
                         text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("vsa-vision: error: --device 'bogus'") and out.stderr.count("\n") == 1


def test_interrupt_exits_130_and_an_unexpected_error_is_one_line_unless_debug(monkeypatch, capsys):
    from vsa_vision.cli import decompose_demo

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(decompose_demo, "run", interrupted)
    assert main(["decompose-demo"]) == 130
    assert capsys.readouterr().err == "vsa-vision: interrupted\n"

    def broken(args):
        raise ZeroDivisionError("boom\nsecond line")

    monkeypatch.setattr(decompose_demo, "run", broken)
    assert main(["decompose-demo"]) == 3
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("vsa-vision: error: ZeroDivisionError: boom; second line") and "--debug" in line
    for words in (["--debug", "decompose-demo"], ["decompose-demo", "--debug"]):
        assert main(words) == 3
        err = capsys.readouterr().err
        assert "Traceback" in err and "ZeroDivisionError: boom" in err


def test_seeds_beyond_what_the_generators_take_are_refused(capsys):
    for words in (["decompose-demo", "--seed", str(2**63)], ["bench", "chains", "--seeds", f"0,{2**64}"],
                  ["tune", "diffusion", "--eval-seed", "-1"], ["demo", "--seed", str(2**62)]):
        with pytest.raises(SystemExit) as e:
            main(words)
        assert e.value.code == 2
        assert "a seed is an integer from 0 to 2**62 - 1" in capsys.readouterr().err


def test_outputs_are_checked_before_any_work(tmp_path, monkeypatch, capsys):
    """An output that cannot be written is refused first: here the work would fail otherwise."""
    import vsa_vision.bench.accuracy as accuracy

    blocker = tmp_path / "file"
    blocker.write_text("")
    bad = str(blocker / "sub" / "out.png")  # below a plain file: cannot be created
    missing = str(tmp_path / "missing.safetensors")
    monkeypatch.setattr(accuracy, "run_sweep", lambda *a, **k: pytest.fail("the sweep ran"))
    cases = [["demo", "--checkpoint", missing, "--out", bad],
             ["edit", str(tmp_path / "none.png"), "--set", "colour=red", "--out", bad],
             ["bench", "vision", "--checkpoint", missing, "--out", bad],
             ["bench", "accuracy", "--methods", "resonator", "--out", bad],
             ["bench", "speed", "--methods", "resonator", "--device", "cpu", "--n", "4", "--batches", "1",
              "--iterations", "1", "--repeats", "1", "--out", bad],
             ["bench", "training-curve", str(tmp_path / "none.csv"), "--out", bad],
             ["data", "generate", "--schema", str(tmp_path / "none.json"), "--out", bad],
             ["tune", "attention_resonator", "--trials", "1", "--out", bad]]
    for words in cases:
        assert main(words) == 2, words
        line = _one_error_line(capsys.readouterr().err)
        assert "--out" in line and "file" in line, (words, line)


def test_the_training_curve_is_refused_under_a_name_that_is_not_png(tmp_path, capsys):
    assert main(["bench", "training-curve", str(tmp_path / "none.csv"), "--out", str(tmp_path / "c.pdf")]) == 2
    assert "written as PNG" in _one_error_line(capsys.readouterr().err)


def test_cli_messages_do_not_name_internals(tmp_path, capsys):
    """What the user sees names options and files, not variables or temporary files."""
    import re
    from pathlib import Path

    import vsa_vision.cli as cli

    for path in Path(cli.__file__).parent.rglob("*.py"):
        for msg in re.findall(r'(?:Error|print)\(\s*f?"([^"]*)"', path.read_text()):
            msg = re.sub(r"\{[^}]*\}", "", msg)  # the text, not what is interpolated
            assert "args." not in msg and "tmp" not in msg and not re.search(r"\b_[a-z]", msg), (path, msg)


def test_bench_sets_keeps_its_own_default_methods():
    # a None --methods is filled with every registered method by main(); bench sets has its own list
    # (torchhd's peer needs equal factor sizes, which the vision shape has not)
    from vsa_vision.cli import build_parser
    from vsa_vision.cli.bench.sets import SET_METHODS

    assert build_parser().parse_args(["bench", "sets"]).methods == SET_METHODS
    assert build_parser().parse_args(["bench", "sets", "--methods", "diffusion"]).methods == ["diffusion"]
