"""Every ``vsa-vision`` command, every option, malformed values: exit 2 with one line on stderr, never a traceback.

The commands are enumerated from the parser, so a new command or option is covered without editing this
file; it only needs tiny valid values for the rest of its options in BASE (a new command without an entry
fails ``test_every_command_has_tiny_valid_arguments``)."""

from __future__ import annotations

import argparse
import os
import shutil

import pytest

from vsa_vision.cli import build_parser, main

#: options the fuzz leaves alone (no value to malform, or the parser's own)
SKIP = {"-h", "--help", "--version", "--debug"}


def leaf_commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """(command words, parser) of every runnable command, e.g. (("bench", "speed"), <parser>)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield prefix, parser
        return
    for name, p in subs[0].choices.items():
        yield from leaf_commands(p, prefix + (name,))


def fuzzed_options(parser: argparse.ArgumentParser):
    """(key, action): key is the option string, or the destination of a positional."""
    for a in parser._actions:
        if isinstance(a, (argparse._HelpAction, argparse._VersionAction)) or a.nargs == 0:
            continue  # switches take no value
        if a.option_strings:
            if not SKIP & set(a.option_strings):
                yield a.option_strings[-1], a
        else:
            yield a.dest, a


COMMANDS = sorted(leaf_commands(build_parser()))


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """A tiny checkpoint and a real image (read only by the commands)."""
    from vsa_vision.checkpoint import export_model
    from vsa_vision.model import VSAModel
    from vsa_vision.scenes import default_schema, render_scene, sample_indices

    d = tmp_path_factory.mktemp("fuzz")
    model = VSAModel(dim=256, width=8, features=32, iterations=5, method="resonator")
    schema = default_schema()
    render_scene(schema, schema.decode(sample_indices(schema, 1, seed=0))[0]).save(d / "scene.png")
    (d / "metrics.csv").write_text("epoch,time/minutes,val/acc_all,val/cos\n0,1.0,0.5,0.7\n1,2.0,0.6,0.8\n")
    from vsa_vision.scenes import generate_dataset

    generate_dataset(d / "ds", n=2, val=1, test=2, heldout=0, shard_size=2, progress=False, log=None)
    own = d / "own"  # a user's image folder: metadata.csv and the images
    own.mkdir()
    (own / "metadata.csv").write_text("file_name,kind\n" + "".join(f"{i}.png,{'ab'[i % 2]}\n" for i in range(8)))
    for i in range(8):
        shutil.copy(d / "scene.png", own / f"{i}.png")
    return {"ckpt": str(export_model(model, d / "tiny.safetensors")), "image": str(d / "scene.png"),
            "metrics": str(d / "metrics.csv"), "dataset": str(d / "ds"), "own": str(own)}


@pytest.fixture
def files(model_files, tmp_path):
    """With a file that is not an image, a folder, a path that does not exist and one no one can create."""
    d = tmp_path / "inputs"
    d.mkdir()
    (d / "text.png").write_text("not an image\n")
    (d / "folder").mkdir()
    return {**model_files, "text": str(d / "text.png"), "folder": str(d / "folder"), "dir": tmp_path,
            "missing": str(d / "missing" / "nothing.png"),
            # below a plain file: no one can create it, root included
            "unwritable": str(d / "text.png" / "sub" / "out.png")}


def base_args(command: tuple[str, ...], f: dict) -> dict[str, list[str]]:
    """Tiny valid arguments of each command: it runs in well under a second with them."""
    out = str(f["dir"] / "out")
    tiny = {"--n": ["4"], "--dim": ["64"], "--problems": ["2"], "--iterations": ["2"]}
    model = {"--checkpoint": [f["ckpt"]], "--method": ["resonator"]}
    table = {
        ("decompose-demo",): {**tiny, "--methods": ["resonator"]},
        ("demo",): {**model, "--count": ["1"], "--out": [out + ".png"]},
        ("recognize",): {"paths": [f["image"]], **model, "--allow-unknown": []},  # an untrained model knows nothing
        ("edit",): {"image": [f["image"]], "--set": ["colour=red"], "--out": [out + ".png"], **model,
                    "--allow-unknown": []},
        ("bench", "accuracy"): {**tiny, "--methods": ["resonator"], "--out": [out]},
        ("bench", "speed"): {**tiny, "--batches": ["2"], "--repeats": ["1"], "--methods": ["resonator"],
                             "--out": [out]},
        ("bench", "cost"): {**tiny, "--methods": ["resonator"], "--batch": ["2"], "--rounds": ["1"]},
        ("bench", "capacity"): {**tiny, "--methods": ["resonator"], "--dims": ["64"], "--shape": ["k3"],
                                "--out": [out]},
        ("bench", "versus"): {**tiny, "--sizes": ["5"], "--methods": ["resonator"], "--protocols": ["bipolar"],
                              "--out": [out]},
        ("bench", "chains"): {**tiny, "--seeds": ["0"], "--method": ["stochastic_resonator"]},
        ("bench", "sets"): {"--objects": ["1"], "--sizes": ["3,3,2,4,4,2"], "--dim": ["64"], "--scenes": ["2"],
                            "--iterations": ["2"], "--methods": ["resonator"], "--cosine": ["0.8"], "--out": [out]},
        ("bench", "vision"): {"--checkpoint": [f["ckpt"]], "--images": ["2"], "--methods": ["resonator"],
                              "--batch-size": ["2"], "--out": [out]},
        ("bench", "latency"): {"--models": [f["ckpt"]], "--images": ["2"], "--batch": ["2"], "--edits": ["1"],
                               "--methods": ["brute_force"], "--out": [out]},
        ("bench", "robustness"): {"--checkpoint": [f["ckpt"]], "--images": ["2"], "--methods": ["resonator"],
                                  "--corruptions": ["jpeg"], "--severities": ["2"], "--batch-size": ["2"],
                                  "--out": [out]},
        ("calibrate",): {**model, "--out": [out + ".safetensors"], "--scenes": ["20"], "--foreign": ["14"],
                         "--eval-scenes": ["4"], "--eval-foreign": ["7"]},
        ("bench", "data"): {"--images": ["4"], "--workers": ["0"], "--batch-size": ["2"]},
        ("bench", "own"): {**model, "--data": [f["dataset"]], "--edits": ["1"], "--batch-size": ["2"], "--out": [out]},
        ("data", "import"): {"source": [f["own"]], "--out": [out + "-own"], "--no-progress": [], "--overwrite": []},
        ("bench", "training-curve"): {"metrics": [f["metrics"]], "--out": [out + ".png"]},
        ("data", "generate"): {"--n": ["2"], "--val": ["0"], "--test": ["0"], "--heldout": ["0"],
                               "--shard-size": ["2"], "--no-progress": [], "--out": [out + "-data"],
                               "--overwrite": []},
        ("tune",): {"method": ["attention_resonator"], **tiny, "--trials": ["1"], "--eval-problems": ["2"],
                    "--dry-run": []},
    }
    return table[command]


def argv(command: tuple[str, ...], args: dict[str, list[str]], parser: argparse.ArgumentParser) -> list[str]:
    positional = {a.dest for a in parser._actions if not a.option_strings}
    known = positional | {o for a in parser._actions for o in a.option_strings}
    words = list(command)
    for key, values in args.items():
        if key not in known:
            continue  # a shared tiny value the command does not take
        if key in positional:
            words += values
        elif len(values) == 1 and values[0].startswith("-"):
            words.append(f"{key}={values[0]}")  # a value like -1 would read as an option
        else:
            words += [key, *values]
    return words


def malformed(f: dict) -> dict[str, str]:
    return {"empty": "", "negative": "-1", "huge float": "1e10", "huge int": str(2 ** 70), "word": "abc",
            "nan": "nan", "missing path": f["missing"], "folder": f["folder"], "unwritable": f["unwritable"],
            "not an image": f["text"]}


#: (command, option) -> the malformed values it rightly accepts (a title may be anything; an output folder
#: may be named "abc" or be an existing folder ...); everything else must exit 2
ACCEPTED = {
    (("bench", "training-curve"), "--title"): "*",
    (("bench", "accuracy"), "--snr-db"): {"negative", "huge float", "huge int"},  # decibels: any finite number
    (("bench", "sets"), "--snr-db"): {"negative", "huge float", "huge int"},
    (("bench", "accuracy"), "--max-brute-flop"): {"huge float", "huge int"},
    (("bench", "speed"), "--max-brute-flop"): {"huge float", "huge int"},
    (("bench", "capacity"), "--max-space"): {"huge float", "huge int"},  # a cap on the search: any size above 1
    (("recognize",), "paths"): {"not an image"},  # skipped, exit 1: some inputs failed
}
for _cmd in [("demo",), ("edit",), ("bench", "training-curve"), ("tune",)]:
    # a file name without an extension is a PNG (tune: JSON); an existing file is replaced; folders are made
    ACCEPTED[(_cmd, "--out")] = {"word", "nan", "huge float", "huge int", "negative", "missing path", "not an image"}
ACCEPTED[(("edit",), "--grid")] = ACCEPTED[(("edit",), "--out")]
# the schema's name is a label: any text but an empty one
ACCEPTED[(("data", "import"), "--name")] = {"negative", "huge float", "huge int", "word", "nan", "missing path",
                                           "folder", "unwritable", "not an image"}
# calibrate: a report may replace any file; the figures are PREFIX-roc.png and PREFIX-reliability.png, any prefix
ACCEPTED[(("calibrate",), "--report")] = {"word", "nan", "huge float", "huge int", "negative", "missing path",
                                          "not an image"}
ACCEPTED[(("calibrate",), "--figures")] = {"word", "nan", "huge float", "huge int", "negative", "missing path",
                                           "not an image", "folder"}
for _cmd in [("bench", "accuracy"), ("bench", "speed"), ("bench", "sets"), ("bench", "vision"), ("bench", "robustness"),
             ("bench", "capacity"), ("bench", "versus"), ("bench", "own"), ("bench", "latency"), ("data", "generate"),
             ("data", "import")]:
    # an output folder may have any name, exist already, or be created with its parents
    ACCEPTED[(_cmd, "--out")] = {"word", "folder", "nan", "huge float", "huge int", "negative", "missing path"}


def check_outcome(rc: int, err: str, out: str) -> None:
    assert "Traceback" not in err + out
    assert rc in (0, 1, 2, 130), rc
    if rc == 0:
        return
    lines = [line for line in err.splitlines() if line.strip()]
    if lines and lines[0].startswith("usage:"):  # argparse: usage (maybe several lines), then one error line
        assert ": error: " in lines[-1] and sum(": error: " in line for line in lines) == 1, err
    else:
        assert lines and all(line.startswith("vsa-vision: ") for line in lines), err
        assert rc == 1 or len(lines) == 1, err  # 1: a line per skipped input


def run(words: list[str], capsys) -> tuple[int, str, str]:
    try:
        rc = main(words)
    except SystemExit as e:  # argparse
        rc = e.code
    cap = capsys.readouterr()
    return rc, cap.err, cap.out


def test_every_command_has_tiny_valid_arguments(files, capsys, tmp_path, monkeypatch):
    """The base arguments of each command run and succeed (so a fuzzed failure is the fuzzed value's)."""
    monkeypatch.chdir(tmp_path)
    for command, parser in COMMANDS:
        rc, err, out = run(argv(command, base_args(command, files), parser), capsys)
        assert rc == 0, (command, err)


CASES = [(command, key) for command, parser in COMMANDS for key, _ in fuzzed_options(parser)]


@pytest.mark.parametrize("command,key", CASES, ids=[" ".join(c) + " " + k for c, k in CASES])
def test_malformed_values_exit_2_with_one_line(command, key, files, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parser = dict(COMMANDS)[command]
    accepted = ACCEPTED.get((command, key), set())
    wrong = []
    for what, value in malformed(files).items():
        if accepted != "*" and "word" in accepted and what in ("nan", "huge float", "huge int"):
            continue  # to a path option these are names like "abc": one full run of a valid name is enough
        with open(files["text"], "w") as f:  # an accepted --out may have replaced it with a picture
            f.write("not an image\n")
        if os.path.exists(os.path.dirname(files["missing"])):
            shutil.rmtree(os.path.dirname(files["missing"]))  # or created it
        args = {**base_args(command, files), key: [value]}
        rc, err, out = run(argv(command, args, parser), capsys)
        try:
            check_outcome(rc, err, out)
            if accepted != "*" and what not in accepted:
                assert rc == 2
        except AssertionError:
            wrong.append((what, value, rc, err[-300:]))
    assert not wrong, wrong
