import csv
import json

import pytest

from vsa_vision.bench.accuracy import FIELDS
from vsa_vision.cli import main
from vsa_vision.decompose import registry


def test_demo_prints_every_method(capsys):
    assert main(["decompose-demo", "--n", "8", "--problems", "20", "--iterations", "20"]) == 0
    out = capsys.readouterr().out
    for name in ["brute_force", "resonator", "attention_resonator", "stochastic_resonator", "diffusion"]:
        assert name in out
    assert "100.0%" in out  # brute force on noiseless problems


def test_bench_accuracy_quick_writes_csv_and_png(tmp_path, capsys):
    methods = "brute_force;resonator;diffusion"
    assert main(["bench", "accuracy", "--quick", "--methods", methods, "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "accuracy-size-K3.csv")))
    assert list(rows[0]) == FIELDS
    assert [(r["method"], r["n"]) for r in rows] == [(m, n) for n in ["10", "20"] for m in methods.split(";")]
    assert all(float(r["acc_all"]) == 1.0 for r in rows if r["method"] == "brute_force")
    assert (tmp_path / "accuracy-size-K3.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_speed_runs(capsys):
    assert main(["bench", "speed", "--n", "8", "--batch", "16", "--iterations", "5", "--methods", "resonator"]) == 0
    assert "problems/s" in capsys.readouterr().out


def test_tune_writes_a_defaults_file_the_registry_reads(tmp_path, monkeypatch, capsys):
    out = tmp_path / "stochastic_resonator.json"
    assert main(["tune", "stochastic_resonator", "--n", "10", "--dim", "200", "--trials", "3", "--problems", "20",
                 "--eval-problems", "20", "--iterations", "10", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["seed"] != report["eval_seed"] and set(report["options"]) <= {"noise", "threshold", "update"}
    monkeypatch.setattr(registry, "DEFAULTS_DIR", str(tmp_path))
    d = registry.get_decomposer("stochastic_resonator")
    assert d.noise == report["options"]["noise"]
    assert registry.get_decomposer("stochastic_resonator", noise=0.5).noise == 0.5  # explicit beats tuned


def test_bad_arguments_exit_with_a_message(capsys):
    with pytest.raises(SystemExit):
        main(["decompose-demo", "--methods", "nonsense"])
    assert "unknown method 'nonsense'" in capsys.readouterr().err
    assert main(["tune", "brute_force", "--trials", "1"]) == 2
    assert "no search space" in capsys.readouterr().err
