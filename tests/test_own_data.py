"""Your own images: attributes as data, labels files, the importer, training on an imported dataset,
calibration without the renderer, and edits drawn by a learned decoder or a renderer of the user's."""

import csv
import importlib.util
import json
import os
import pathlib
import time

import numpy as np
import pytest
import torch
from PIL import Image

from vsa_vision.metrics import attribute_metrics
from vsa_vision.scenes import Attribute, Renderer, SceneShards, Schema, load_schema
from vsa_vision.scenes.importing import assign_splits, import_arrays, import_dataset, import_image_folder
from vsa_vision.scenes.labels_file import read_label_rows
from vsa_vision.scenes.schema import natural_sorted

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _sprites():
    spec = importlib.util.spec_from_file_location("make_sprites", ROOT / "docs" / "examples" / "make_sprites.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def sprite_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("sprites")
    _sprites().make(out, train=120, val=20, test=20, heldout=12, seed=0)
    return out


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _folder(tmp_path, rows, header=("file_name", "shape", "hue")):
    for r in rows:
        if not (tmp_path / r[0]).exists():
            Image.fromarray(np.full((20, 30, 3), 40 * len(r[0]) % 255, np.uint8)).save(tmp_path / r[0])
    _write_csv(tmp_path / "metadata.csv", header, rows)
    return tmp_path


# -- attributes as data ---------------------------------------------------------------------------


def test_an_attribute_needs_no_role_and_may_be_ordinal():
    a = Attribute(name="angle", values=["a0", "a15", "a30"], ordinal=True)
    assert a.role is None and a.is_ordinal
    s = Schema(attributes=(a, Attribute(name="hue", values=["h0", "h1"])), name="mine")
    assert not s.renderable and s.ordinal == (True, False)
    assert Schema.from_dict(json.loads(s.to_json())) == s
    with pytest.raises(ValueError, match="unknown role 'spin'"):
        Attribute(name="angle", values=["a0"], role="spin")


def test_a_role_name_whose_values_the_renderer_cannot_draw_is_data_only():
    a = Attribute(name="shape", values=["star_4", "spoke_4"])
    assert a.role is None
    assert Attribute(name="shape", values=["circle", "star"]).role == "shape"
    s = Schema(attributes=(a,))
    assert Schema.from_dict(s.to_dict()).attributes[0].role is None
    with pytest.raises(ValueError, match="has no role|have none"):
        Renderer(s)


def test_the_shipped_schemas_read_as_before():
    for name in ("default", "multi"):
        path = ROOT / "vsa_vision" / "scenes" / "schemas" / f"{name}.json"
        s = load_schema(name)
        assert s.renderable
        assert s.to_dict() == {k: v for k, v in json.loads(path.read_text()).items()}


def test_params_that_are_not_numbers_name_the_attribute():
    with pytest.raises(ValueError, match=r"attribute 'size' \(role size\): params\[1\] = 'big' is not a number"):
        Attribute(name="size", values=["a", "b"], role="size", params=[0.1, "big"])
    with pytest.raises(ValueError, match=r"params\[0\] = nan is not a number"):
        Attribute(name="x", values=["a", "b"], role="x", params=[float("nan"), 0.5])
    assert Attribute(name="size", values=["a", "b"], params=["big", "small"]).role is None  # data only


def test_duplicate_values_are_found_in_linear_time():
    values = [str(i) for i in range(20000)]
    t = time.perf_counter()
    Attribute(name="v", values=values)
    assert time.perf_counter() - t < 1.0
    with pytest.raises(ValueError, match=r"duplicate values \['7'\]"):
        Attribute(name="v", values=[*values, "7"])


def test_a_schema_from_a_labels_file(tmp_path):
    rows = [[f"{i}.png", s, h, x] for i, (s, h, x) in enumerate(
        [("star", "h10", "3"), ("tri", "h2", "1.5"), ("star", "h9", "10"), ("sq", "h2", "3")])]
    _write_csv(tmp_path / "metadata.csv", ["file_name", "shape", "hue", "x"], rows)
    s = Schema.from_labels(tmp_path / "metadata.csv")
    assert s.factors() == {"shape": ("sq", "star", "tri"), "hue": ("h2", "h9", "h10"), "x": ("1.5", "3", "10")}
    assert s.ordinal == (False, True, True) and not s.renderable
    assert Schema.from_labels(tmp_path / "metadata.csv", ordinal=["shape"]).ordinal == (True, False, False)
    assert Schema.from_labels(tmp_path / "metadata.csv", nominal=["hue"]).ordinal == (False, False, True)
    _write_csv(tmp_path / "metadata.csv", ["file_name", "shape", "hue"], [["a.png", "star", "h1"],
                                                                         ["b.png", "star", "h2"]])
    with pytest.raises(ValueError, match="column 'shape' holds one value"):
        Schema.from_labels(tmp_path / "metadata.csv")
    assert natural_sorted(["a10", "a2", "b1", "-1", "3"]) == ["-1", "3", "a2", "a10", "b1"]


def test_ordinal_attributes_report_off_by_one_and_mean_absolute_error():
    truth = torch.tensor([[0, 0], [1, 1], [2, 2], [3, 0]])
    decoded = torch.tensor([[0, 1], [2, 1], [0, 2], [3, 0]])
    m = attribute_metrics(decoded, truth, {"x": "0123", "c": "012"}, ordinal=[True, False])
    assert m["x"]["accuracy"] == 0.5 and m["x"]["off_by_one"] == 0.25 and m["x"]["mae"] == 0.75
    assert "mae" not in m["c"]


# -- labels files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    ("shape,hue\nstar,h1\n", "no file_name column"),
    ("file_name\na.png\n", "no attribute columns"),
    ("file_name,shape\na.png,star\nb.png\n", r"metadata.csv:3: 1 fields, the header has 2"),
    ("file_name,shape\na.png,star\na.png,tri\n", "listed twice"),
    ("file_name,shape\na.png, \n", "metadata.csv:2: column 'shape' is empty"),
    ("file_name,shape,shape\na.png,x,y\n", "appear twice"),
    ("", "empty file"),
])
def test_a_malformed_labels_file_is_refused_with_its_line(tmp_path, text, message):
    (tmp_path / "metadata.csv").write_text(text)
    with pytest.raises(ValueError, match=message):
        read_label_rows(tmp_path)


def test_jsonl_labels(tmp_path):
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "a.png", "shape": "star", "n": 3}\n\n'
                                             '{"file_name": "b.png", "shape": "tri", "n": 4}\n')
    assert read_label_rows(tmp_path) == [{"file_name": "a.png", "shape": "star", "n": "3"},
                                         {"file_name": "b.png", "shape": "tri", "n": "4"}]
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "a.png", "shape": "star"}\n{"file_name": "b.png"}\n')
    with pytest.raises(ValueError, match="metadata.jsonl:2: keys"):
        read_label_rows(tmp_path)


# -- the importer ---------------------------------------------------------------------------------


def test_an_image_folder_becomes_a_dataset_of_its_own_attributes(sprite_folder, tmp_path):
    out = tmp_path / "ds"
    manifest = import_image_folder(sprite_folder, out, progress=False, log=None)
    assert manifest["counts"] == {"train": 120, "val": 20, "test": 20, "heldout": 12}
    rows = read_label_rows(sprite_folder)
    train = SceneShards(out, "train", verify=True)
    assert train.schema.names == ("shape", "hue", "scale", "x", "y", "angle") and not train.schema.renderable
    first = next(r for r in rows if r["split"] == "train")
    img, lab = train[0]
    assert train.schema.decode(lab.numpy())[0] == {k: first[k] for k in train.schema.names}
    want = np.asarray(Image.open(sprite_folder / first["file_name"]).convert("RGB"))
    assert np.array_equal(img.permute(1, 2, 0).numpy(), want)
    assert len(SceneShards(out, "heldout")) == 12


def test_import_resumes_and_keeps_what_is_whole(sprite_folder, tmp_path, monkeypatch):
    out = tmp_path / "ds"
    import_image_folder(sprite_folder, out, progress=False, log=None, shard_size=50)
    shard = out / "train-00001.npy"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    shard.unlink()
    (out / "manifest.json").unlink()
    import_image_folder(sprite_folder, out, progress=False, log=None, shard_size=50)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    said = []
    import_image_folder(sprite_folder, out, progress=False, log=said.append, shard_size=50)
    assert "already complete" in said[0]


def test_import_stops_at_an_unreadable_image_and_marks_nothing_complete(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _folder(src, [[f"{i}.png", "star" if i % 2 else "tri", f"h{i % 3}"] for i in range(40)])
    (src / "7.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"row 8 \(7.png\).*not a readable image"):
        import_image_folder(src, tmp_path / "ds", progress=False, log=None)
    assert not (tmp_path / "ds" / "manifest.json").exists()
    assert not [p for p in (tmp_path / "ds").iterdir() if p.name.startswith(".tmp-")]


def test_import_refuses_a_missing_file_and_a_path_outside_the_folder(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _folder(src, [["a.png", "star", "h1"], ["b.png", "tri", "h2"]])
    _write_csv(src / "metadata.csv", ["file_name", "shape", "hue"], [["a.png", "star", "h1"], ["c.png", "tri", "h2"]])
    with pytest.raises(FileNotFoundError, match="row 2: file_name 'c.png': no such file"):
        import_image_folder(src, tmp_path / "ds", progress=False, log=None)
    _write_csv(src / "metadata.csv", ["file_name", "shape", "hue"], [["a.png", "star", "h1"],
                                                                     ["../x.png", "tri", "h2"]])
    with pytest.raises(ValueError, match="row 2: file_name '../x.png' is not a path inside"):
        import_image_folder(src, tmp_path / "ds", progress=False, log=None)
    assert not (tmp_path / "ds").exists()


def test_splits_are_drawn_with_the_seed_without_a_split_column_and_holdout_rules_move_rows():
    held = np.zeros(200, dtype=bool)
    held[:10] = True
    a, b = assign_splits(200, 3, held), assign_splits(200, 3, held)
    assert (a == b).all() and (a[:10] == "heldout").all()
    assert (a == "val").sum() == 10 and (a == "test").sum() == 10 and (a == "train").sum() == 170
    assert not (assign_splits(200, 4, held) == a).all()
    given = assign_splits(3, 0, np.array([False, True, False]), ["train", "train", "val"])
    assert given.tolist() == ["train", "heldout", "val"]
    with pytest.raises(ValueError, match="unknown split"):
        assign_splits(2, 0, np.zeros(2, bool), ["train", "validation"])


def test_holdout_rules_of_an_import(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _folder(src, [[f"{i}.png", ["star", "tri", "sq"][i % 3], f"h{i % 4}"] for i in range(120)])
    m = import_image_folder(src, tmp_path / "ds", holdout=[{"shape": "star", "hue": "h0"}], progress=False, log=None)
    assert m["counts"]["heldout"] == 10 and m["schema"]["holdout"] == [{"shape": "star", "hue": "h0"}]
    train = SceneShards(tmp_path / "ds", "train")
    assert not train.schema.is_held_out(train.indices.numpy()).any()


def test_arrays_in_the_dsprites_layout(tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    classes = np.stack([np.zeros(n, int), rng.integers(0, 3, n), rng.integers(0, 6, n), rng.integers(0, 4, n),
                        rng.integers(0, 32, n), rng.integers(0, 32, n)], 1)
    imgs = (rng.random((n, 64, 64)) < 0.1).astype(np.uint8)
    np.savez(tmp_path / "dsprites.npz", imgs=imgs, latents_classes=classes)
    said = []
    m = import_arrays(tmp_path / "dsprites.npz", tmp_path / "ds", progress=False, log=said.append)
    assert "left out factor(s) ['color']" in said[0]
    ds = SceneShards(tmp_path / "ds", "train")
    assert ds.schema.names == ("shape", "scale", "orientation", "posX", "posY")
    assert ds.schema.attributes[0].values == ("square", "ellipse", "heart") and not ds.schema.ordinal[0]
    assert sum(m["counts"].values()) == n
    img, lab = ds[0]
    assert set(np.unique(img.numpy())) <= {0, 255}
    with pytest.raises(ValueError, match="3 names"):
        import_arrays(tmp_path / "dsprites.npz", tmp_path / "ds2", names=["a", "b", "c"], progress=False, log=None)


def test_any_dataset_of_images_and_labels(tmp_path):
    items = [(torch.rand(3, 32, 32), {"kind": "ab"[i % 2], "size": str(i % 3)}) for i in range(40)]
    import_dataset(items, tmp_path / "ds", progress=False, log=None)
    ds = SceneShards(tmp_path / "ds", "train")
    assert ds.schema.factors() == {"kind": ("a", "b"), "size": ("0", "1", "2")}
    assert ds[0][0].shape == (3, 64, 64)


def test_the_data_import_command(sprite_folder, tmp_path, capsys):
    from vsa_vision.cli import main

    assert main(["data", "import", str(sprite_folder), "--out", str(tmp_path / "ds"), "--no-progress"]) == 0
    assert "configs/own.yaml" in capsys.readouterr().out
    assert main(["data", "import", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 2
    assert main(["data", "import", str(sprite_folder), "--out", str(tmp_path / "y"), "--holdout", "shape"]) == 2
    assert "ATTR=VALUE" in capsys.readouterr().err


# -- training, calibration and editing on a user's dataset ------------------------------------------


@pytest.fixture(scope="module")
def own_run(sprite_folder, tmp_path_factory):
    """configs/own.yaml, shrunk to seconds, on the imported sprites: the exported model with its rules."""
    from vsa_vision.training import cli_main

    root = tmp_path_factory.mktemp("own")
    data = root / "ds"
    import_image_folder(sprite_folder, data, progress=False, log=None)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        cli_main(["fit", "--config", str(ROOT / "configs" / "own.yaml"), "--data.data_dir", str(data),
                  "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", "--trainer.enable_progress_bar",
                  "false", "--model.dim", "256", "--model.width", "8",
                  "--model.features", "32", "--model.iterations", "20", "--model.decoder", "16",
                  "--model.test_methods", "[diffusion, brute_force]", "--data.batch_size", "16",
                  "--calibrate_scenes", "60", "--calibrate_foreign", "28", "--decoder_minutes", "0.02"])
    finally:
        os.chdir(cwd)
    return root, data


def test_own_yaml_trains_calibrates_and_exports_on_an_imported_dataset(own_run, capsys):
    from vsa_vision import Pipeline

    root, data = own_run
    path = root / "checkpoints" / "own-run" / "model.safetensors"
    assert path.exists() and (root / "checkpoints" / "own-run" / "calibration.json").exists()
    pipe = Pipeline.from_checkpoint(str(path))
    assert pipe.schema.names == ("shape", "hue", "scale", "x", "y", "angle")
    assert pipe.model.trust["features"] == ["similarity", "min_margin", "mean_margin", "norm"]
    from vsa_vision.decoders import PlacedDecoder

    assert isinstance(pipe.model.decoder, PlacedDecoder)  # the config's kind
    from vsa_vision.checkpoint import load_model

    before = load_model(str(root / "checkpoints" / "own-run" / "best.ckpt")).decoder.state_dict()
    after = pipe.model.decoder.state_dict()
    assert any(not torch.equal(v, after[k]) for k, v in before.items())  # fitted again after fit
    test = SceneShards(data, "test")
    images = torch.stack([test[i][0] for i in range(4)])
    recs = pipe.recognize(images)
    for r in recs:
        assert set(r.labels) == set(pipe.schema.names)
        assert all(v in pipe.schema.attribute(k).values for k, v in r.labels.items())
        assert isinstance(r.known, bool) and 0.0 <= r.probability <= 1.0
    report = json.loads((root / "checkpoints" / "own-run" / "calibration.json").read_text())
    assert {"known_clean", "unknown_foreign", "ece", "ece_clean"} <= set(report)
    assert set(report["unknown_by_kind"]) == {"blank", "noise", "photo", "inverted"}


def test_an_edit_of_a_user_model_is_drawn_by_its_decoder_or_the_users_renderer(own_run):
    from vsa_vision import Pipeline

    root, data = own_run
    path = str(root / "checkpoints" / "own-run" / "model.safetensors")
    pipe = Pipeline.from_checkpoint(path)
    image = SceneShards(data, "test")[0][0]
    e = pipe.edit(image, hue="h3")  # a model of a few steps: what it decodes is not the point here
    assert e.drawn_by == "decoder" and e.image.size == (64, 64)
    assert np.array_equal(np.asarray(e.image), np.asarray(pipe.render(e.labels)))
    drawn = []

    def mine(labels):
        drawn.append(labels)
        return Image.new("RGB", (64, 64), (9, 9, 9))

    e = Pipeline.from_checkpoint(path, renderer=mine).edit(image, angle="a30")
    assert e.drawn_by == "user" and drawn == [e.labels] and e.image.getpixel((0, 0)) == (9, 9, 9)
    with pytest.raises(TypeError, match="returned int"):
        Pipeline.from_checkpoint(path, renderer=lambda labels: 3).edit(image, angle="a30")


def test_a_user_model_without_a_decoder_says_nothing_can_draw_it(own_run):
    from vsa_vision import Pipeline
    from vsa_vision.checkpoint import load_model

    root, data = own_run
    model = load_model(str(root / "checkpoints" / "own-run" / "model.safetensors"))
    model.decoder = None
    with pytest.raises(ValueError, match="nothing can draw schema"):
        Pipeline(model).edit(SceneShards(data, "test")[0][0], hue="h3")


def test_transfer_starts_the_backbone_from_a_model_of_another_schema(own_run):
    from vsa_vision.checkpoint import load_model
    from vsa_vision.model import VSAModel

    root, _ = own_run
    path = str(root / "checkpoints" / "own-run" / "model.safetensors")
    source = load_model(path)
    other = VSAModel(schema={"attributes": [{"name": "kind", "values": ["a", "b", "c"]}]}, dim=256, width=8,
                     features=32, init_from=path)
    other._init_weights(path)
    for k, v in source.encoder.backbone.state_dict().items():
        assert torch.equal(other.encoder.backbone.state_dict()[k], v)
    wider = VSAModel(schema={"attributes": [{"name": "kind", "values": ["a", "b"]}]}, dim=256, width=16, features=32)
    with pytest.raises(ValueError, match="backbone does not fit"):
        wider._init_weights(path)


def test_calibrate_with_a_dataset(own_run, tmp_path, capsys):
    from vsa_vision.cli import main

    root, data = own_run
    out = tmp_path / "cal.safetensors"
    assert main(["calibrate", "--checkpoint", str(root / "checkpoints" / "own-run" / "model.safetensors"),
                 "--data", str(data), "--out", str(out), "--scenes", "40", "--foreign", "28"]) == 0
    assert "the val images of" in capsys.readouterr().out and out.exists()


def test_the_timed_one_cycle_ends_on_steps_or_on_time_whichever_comes_first():
    from vsa_vision.schedules import TimedOneCycle, one_cycle_factor

    assert one_cycle_factor(0.0) == pytest.approx(1 / 25) and one_cycle_factor(0.15) == pytest.approx(1.0)
    assert one_cycle_factor(1.0) == pytest.approx(1 / 25e4)
    now = [0.0]

    def run(seconds_per_step):
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=0.1)
        now[0] = 0.0
        sched = TimedOneCycle(opt, total_steps=100, seconds=100.0, clock=lambda: now[0], margin=0.0)
        lrs = []
        for _ in range(100):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            now[0] += seconds_per_step
            sched.step()
        return lrs

    fast, slow = run(0.5), run(4.0)  # time binds only for the slow machine: 4 s a step, 100 s in all
    assert fast == pytest.approx([0.1 * one_cycle_factor(i / 100) for i in range(100)])
    assert slow[25] == pytest.approx(0.1 * one_cycle_factor(1.0)) and max(slow) == pytest.approx(0.1, rel=0.05)


def test_own_yaml_without_a_dataset_is_a_usage_error(tmp_path, capsys):
    from vsa_vision.training import cli_main

    config = str(ROOT / "configs" / "own.yaml")
    with pytest.raises(SystemExit) as e:
        cli_main(["fit", "--config", config])
    assert e.value.code == 2 and "no --data.data_dir was given" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli_main(["fit", "--config", config, "--data.data_dir", str(tmp_path)])
    assert e.value.code == 2 and "not a complete dataset, no manifest.json" in capsys.readouterr().err


def test_the_edit_judge_of_the_sprites_example_runs_on_a_user_model(own_run):
    """docs/examples/judge_edits.py runs on a model of the user's sprites and judges the renderer's own
    fresh drawings, its reference, right most of the time (90.7% of 300 on the sprites dataset)."""
    spec = importlib.util.spec_from_file_location("judge_edits", ROOT / "docs" / "examples" / "judge_edits.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    root, data = own_run
    path = str(root / "checkpoints" / "own-run" / "model.safetensors")
    reference = mod.judge(path, str(data), edits=6, renderer=True)
    assert 0.0 <= reference["right"] <= 1.0 and set(reference["by_attribute"]) <= {
        "shape", "hue", "scale", "x", "y", "angle"}
    assert reference["right"] >= 0.5
