import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from vsa_vision.checkpoint import export_model
from vsa_vision.cli import main
from vsa_vision.edit import apply_changes, parse_changes, swap
from vsa_vision.model import VSAModel, schema_codebooks
from vsa_vision.pipeline import Pipeline
from vsa_vision.scenes import default_schema, render_scene, sample_indices


@pytest.fixture(scope="module")
def cb():
    return schema_codebooks(default_schema(), dim=512, seed=0)


def test_swap_replaces_one_factor_exactly(cb):
    idx = torch.tensor([[1, 2, 3, 4, 5, 1], [0, 0, 0, 0, 0, 0]])
    s = cb.bind_indices(idx)
    out = swap(s, cb, {"colour": "red"}, idx)
    want = apply_changes(idx, cb, {"colour": "red"})
    assert torch.equal(want[:, 1], torch.tensor([0, 0]))
    assert torch.equal(out, cb.bind_indices(want))
    # several at once, labels as the stated current value
    both = swap(s[0], cb, {"shape": "star", "x": "11"}, cb.labels_of(idx[0])[0])
    assert torch.equal(both, cb.bind_indices(apply_changes(idx[0], cb, {"shape": "star", "x": "11"})))


def test_swap_to_the_current_value_is_the_identity_and_swap_back_restores(cb):
    idx = torch.tensor([[3, 1, 0, 7, 2, 1]])
    noisy = cb.bind_indices(idx) + 0.3 * torch.randn(1, 512, generator=torch.Generator().manual_seed(0))
    same = swap(noisy, cb, {"colour": cb.labels[1][1]}, idx)
    assert torch.equal(same, noisy)
    there = swap(noisy, cb, {"shape": "hexagon", "y": "9"}, idx)
    back = swap(there, cb, {"shape": cb.labels[0][3], "y": cb.labels[4][2]},
                apply_changes(idx, cb, {"shape": "hexagon", "y": "9"}))
    assert torch.equal(back, noisy)


def test_unknown_attribute_or_value_lists_the_valid_ones(cb):
    with pytest.raises(ValueError, match=r"unknown attribute 'color'; attributes: \['shape', 'colour'"):
        parse_changes(cb, {"color": "red"})
    with pytest.raises(ValueError, match=r"unknown value 'mauve' for attribute 'colour'; valid values: \['red'"):
        parse_changes(cb, {"colour": "mauve"})


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    model = VSAModel(dim=256, width=8, features=32, iterations=20, method="brute_force")
    return str(export_model(model, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"))


def test_pipeline_edit_returns_labels_confidence_and_image(tiny_ckpt):
    pipe = Pipeline.from_checkpoint(tiny_ckpt)
    img = render_scene(default_schema(), default_schema().decode(sample_indices(default_schema(), 1, seed=3))[0])
    out = pipe.edit(img, colour="red")
    q = pipe.encode([img])[0]
    before = pipe.decode(q[None]).indices
    assert torch.equal(out.vector, swap(q, pipe.codebooks, {"colour": "red"}, before[0]))
    assert out.before.indices == before[0].tolist()
    assert out.changes == {"colour": "red"}
    assert isinstance(out.image, Image.Image) and out.image.size == (64, 64)
    assert set(out.confidence) == set(default_schema().names)
    with pytest.raises(ValueError, match="valid values"):
        pipe.edit(img, colour="mauve")


def test_cli_recognize_reports_a_corrupt_file_and_goes_on(tiny_ckpt, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    schema = default_schema()
    for i, scene in enumerate(schema.decode(sample_indices(schema, 3, seed=1))):
        render_scene(schema, scene).save(folder / f"s{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    rc = main(["recognize", str(folder), "--json", "--checkpoint", tiny_ckpt])
    captured = capsys.readouterr()
    assert rc == 1
    data = json.loads(captured.out)
    assert len(data["images"]) == 3 and len(data["errors"]) == 1
    assert data["errors"][0]["path"].endswith("broken.png") and "broken.png" in captured.err
    assert all(set(r["labels"]) == set(schema.names) for r in data["images"])
    # an untrained model knows no scene: --allow-unknown keeps the exit status at 0
    assert main(["recognize", str(folder / "s0.png"), "--checkpoint", tiny_ckpt, "--allow-unknown"]) == 0
    table = capsys.readouterr().out.splitlines()
    expect = Pipeline.from_checkpoint(tiny_ckpt).recognize([Image.open(folder / "s0.png")])[0].labels
    # header: image, known, the attributes, probability, similarity
    assert table[0].split()[2:-2] == list(schema.names) and table[0].split()[1] == "known"
    assert table[1].split()[2:-2] == [expect[n] for n in schema.names]  # the pipeline's reading


def test_cli_edit_writes_the_edit_and_grid_and_refuses_bad_input(tiny_ckpt, tmp_path, capsys):
    schema = default_schema()
    src = tmp_path / "in.png"
    render_scene(schema, schema.decode(sample_indices(schema, 1, seed=2))[0]).convert("RGBA").save(src)
    out = tmp_path / "out.png"
    assert main(["edit", str(src), "--set", "colour=red", "--set", "x=3", "--out", str(out), "--grid",
                 "--checkpoint", tiny_ckpt, "--allow-unknown"]) == 0  # an untrained model knows no scene
    assert Image.open(out).size == (64, 64) and (tmp_path / "out-grid.png").exists()
    assert "colour=red" in capsys.readouterr().out
    assert main(["edit", str(src), "--set", "colour=mauve", "--out", str(out), "--checkpoint", tiny_ckpt]) == 2
    assert "valid values" in capsys.readouterr().err
    before = src.read_bytes()
    assert main(["edit", str(src), "--set", "colour=red", "--out", str(src), "--checkpoint", tiny_ckpt]) == 2
    assert "overwrite the input" in capsys.readouterr().err and src.read_bytes() == before
    assert main(["edit", str(tmp_path / "nope.png"), "--set", "colour=red", "--out", str(out),
                 "--checkpoint", tiny_ckpt]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["edit", str(src), "--set", "colour=red", "--out", str(out),
                 "--checkpoint", str(tmp_path / "missing.ckpt")]) == 2
    assert "missing.ckpt: no such file" in capsys.readouterr().err


def test_cli_demo_writes_a_picture(tiny_ckpt, tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert main(["demo", "--count", "2", "--checkpoint", tiny_ckpt, "--out", str(out)]) == 0
    one = tmp_path / "one.png"
    assert main(["demo", "--count", "1", "--checkpoint", tiny_ckpt, "--out", str(one)]) == 0
    two, single = np.asarray(Image.open(out)), np.asarray(Image.open(one))
    assert two.shape[2] == 3 and two.shape[0] > 1.8 * single.shape[0]  # a row a scene
    text = capsys.readouterr().out
    assert sum(line.startswith("recognised ") for line in text.splitlines()) == 3  # one line a scene
    assert re.search(r"\b[0-2]/2 recognised right", text) and re.search(r"\b[01]/1 recognised right", text)


def test_bench_vision_with_an_oracle_encoder_scores_every_edit(tiny_ckpt, monkeypatch):
    """With the exact bound vectors as encoder output, brute force recognises every image and every
    edit decodes to the intended attributes: checks the benchmark's bookkeeping, not a model."""
    from vsa_vision.bench.vision import FIELDS, vision_benchmark, vision_table

    pipe = Pipeline.from_checkpoint(tiny_ckpt)
    truths = iter([torch.from_numpy(sample_indices(pipe.schema, 40, seed=4, split=s)) for s in ("test", "heldout")])
    monkeypatch.setattr(pipe, "encode", lambda x, batch_size=256: pipe.codebooks.bind_indices(next(truths)))
    rows = vision_benchmark(pipe, ["brute_force"], images=40, seed=4, log=lambda m: None)
    assert [(r["split"], r["method"]) for r in rows] == [("test", "brute_force"), ("heldout", "brute_force")]
    assert all(r["recognition"] == r["edit1"] == r["edit2"] == 1.0 for r in rows)
    assert set(FIELDS) <= set(rows[0])
    assert "| heldout | brute_force | 40 | 100.00%" in vision_table(rows)
    by_pair = rows[1]["by_pair"]
    assert list(by_pair) == [",".join(f"{k}={v}" for k, v in c.items()) for c in pipe.schema.holdout]
    assert sum(n for n, _ in by_pair.values()) >= 40  # every held-out image matches a combination
    assert all(acc == 1.0 for n, acc in by_pair.values() if n)


def test_heldout_breakdown_counts_per_combination():
    from vsa_vision.bench.vision import breakdown_table, heldout_breakdown

    schema = default_schema()
    truth = torch.from_numpy(schema.encode([dict(shape="star", colour="red", size="small", x="3", y="3",
                                                 fill="solid"),
                                            dict(shape="triangle", colour="green", size="small", x="3", y="3",
                                                 fill="outline")]))
    wrong = truth.clone()
    wrong[1, 0] = schema.attribute("shape").index("star")
    got = heldout_breakdown(schema, truth, wrong)
    assert got["shape=star,colour=red"] == (1, 1.0) and got["shape=triangle,fill=outline"] == (1, 0.0)
    table = breakdown_table([{"method": "m", "by_pair": got}])
    assert "| shape=triangle,fill=outline | 1 | 0.0% |" in table


def test_random_changes_change_exactly_the_asked_number_of_attributes():
    from vsa_vision.bench.vision import _random_changes

    truth = torch.from_numpy(sample_indices(default_schema(), 500, seed=0))
    for swaps in (1, 2):
        new = _random_changes(truth, default_schema().sizes, swaps, np.random.default_rng(0))
        assert ((new != truth).sum(-1) == swaps).all()
        assert (new < torch.tensor(default_schema().sizes)).all()


def _one_error_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("vsa-vision: ") and "Traceback" not in err, err
    return lines[0]


def test_cli_refuses_malformed_checkpoints_in_one_line(tiny_ckpt, tmp_path, capsys):
    """hparams or state_dict of the wrong type, in both formats: one line naming the file, exit 2."""
    from safetensors.torch import save_file

    model = VSAModel(dim=256, width=8, features=32, iterations=20, method="brute_force")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    hp = dict(model.hparams)
    bad = {}
    for name, hparams in (("list", "[1, 2]"), ("number", "3"), ("string", '"abc"')):
        path = tmp_path / f"hparams-{name}.safetensors"
        save_file(state, str(path), metadata={"format": "vsa_vision.model", "version": "1", "hparams": hparams})
        bad[path.name] = path
    for name, ckpt in (("hparams-list", {"state_dict": state, "hyper_parameters": [1, 2]}),
                       ("hparams-pairs", {"state_dict": state, "hyper_parameters": [["dim", "x"]]}),
                       ("state-list", {"state_dict": list(state.values()), "hyper_parameters": hp}),
                       ("state-none", {"state_dict": None, "hyper_parameters": hp})):
        torch.save(ckpt, tmp_path / f"{name}.ckpt")
        bad[f"{name}.ckpt"] = tmp_path / f"{name}.ckpt"
    img = tmp_path / "scene.png"
    render_scene(default_schema(), default_schema().decode(sample_indices(default_schema(), 1, seed=0))[0]).save(img)
    for name, path in bad.items():
        for words in (["recognize", str(img)], ["demo", "--count", "1", "--out", str(tmp_path / "d.png")]):
            assert main([*words, "--checkpoint", str(path)]) == 2, (name, words)
            assert name in _one_error_line(capsys.readouterr().err), name


def test_cli_edit_refuses_grid_on_out_and_repeated_sets(tiny_ckpt, tmp_path, capsys):
    src = tmp_path / "in.png"
    render_scene(default_schema(), default_schema().decode(sample_indices(default_schema(), 1, seed=2))[0]).save(src)
    out = tmp_path / "out.png"
    (tmp_path / "link.png").symlink_to(out)
    base = ["edit", str(src), "--set", "colour=red", "--checkpoint", tiny_ckpt, "--out", str(out), "--allow-unknown"]
    for grid in (str(out), str(tmp_path / "." / "sub" / ".." / "out.png"), str(tmp_path / "link.png")):
        assert main([*base, "--grid", grid]) == 2
        assert "the grid would overwrite the edit" in _one_error_line(capsys.readouterr().err)
    assert not out.exists()
    assert main([*base, "--set", "colour=blue"]) == 2
    assert "colour is set twice" in _one_error_line(capsys.readouterr().err)
    assert main([*base, "--set", " colour = red"]) == 2  # the same attribute, spelt with spaces
    capsys.readouterr()


def test_cli_writes_the_picture_format_its_name_says(tiny_ckpt, tmp_path, capsys):
    src = tmp_path / "in.png"
    render_scene(default_schema(), default_schema().decode(sample_indices(default_schema(), 1, seed=2))[0]).save(src)
    assert main(["demo", "--count", "1", "--checkpoint", tiny_ckpt, "--out", str(tmp_path / "demo.jpg")]) == 0
    assert Image.open(tmp_path / "demo.jpg").format == "JPEG"
    assert main(["edit", str(src), "--set", "colour=red", "--checkpoint", tiny_ckpt, "--out", str(tmp_path / "e.webp"),
                 "--grid", str(tmp_path / "g.bmp"), "--allow-unknown"]) == 0
    assert Image.open(tmp_path / "e.webp").format == "WEBP" and Image.open(tmp_path / "g.bmp").format == "BMP"
    capsys.readouterr()
    for words in (["demo", "--count", "1", "--out", str(tmp_path / "demo.xyz")],
                  ["edit", str(src), "--set", "colour=red", "--out", str(tmp_path / "e.txt")]):
        assert main([*words, "--checkpoint", tiny_ckpt]) == 2
        assert "cannot write ." in _one_error_line(capsys.readouterr().err)
    assert not list(tmp_path.glob("*.xyz")) and not list(tmp_path.glob("*.txt"))


def test_cli_recognize_refuses_a_path_that_does_not_exist(tiny_ckpt, tmp_path, capsys):
    assert main(["recognize", str(tmp_path / "typo.png"), "--checkpoint", tiny_ckpt]) == 2
    assert "typo.png" in _one_error_line(capsys.readouterr().err)
