"""Datasets of scenes of several objects on disk: the same scenes and pixels as RenderedScenes, labels
a row per object, resumable and self-repairing like the single-object datasets, and trainable."""

import csv
import json

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from vsa_vision.cli import main
from vsa_vision.multi import MultiVSAModel
from vsa_vision.scenes import (
    RenderedScenes,
    SceneDataModule,
    SceneShards,
    contact_sheet,
    generate_dataset,
    load_schema,
    storage,
)
from vsa_vision.scenes import dataset as dataset_module
from vsa_vision.scenes.labels import label_header, label_rows
from vsa_vision.scenes.object_stream import ObjectSetStream
from vsa_vision.scenes.objects import sample_object_sets

from .conftest import count_shard_writes, same_files

SPLITS = ("train", "val", "test", "heldout")


@pytest.fixture(scope="module")
def multi():
    return load_schema("multi")


def _small(tmp_path, name="ds", **kw):
    args = dict(schema="multi", n=24, val=6, test=6, heldout=6, shard_size=10, seed=5, progress=False, log=None)
    args.update(kw)
    out = tmp_path / name
    return out, generate_dataset(out, **args)


def test_the_stream_draws_the_object_sets_of_sample_object_sets_in_any_blocks(multi):
    for split in SPLITS:
        for seed in (0, 7):
            stream = ObjectSetStream(multi, seed, split)
            blocks = [stream.take(m) for m in (1, 0, 6, 3, 30)]
            assert np.array_equal(np.concatenate(blocks), sample_object_sets(multi, 40, seed=seed, split=split))


def test_a_multi_dataset_gives_the_items_of_rendered_scenes(tmp_path, multi):
    out, manifest = _small(tmp_path, jitter=1.5, noise=3.0)
    assert manifest["version"] == 2 and manifest["schema"]["max_objects"] == 3
    rows = list(csv.reader(open(out / "labels.csv", newline="")))
    assert rows[0] == ["split", "index", "object", *multi.names]
    for split in SPLITS:
        ds = SceneShards(out, split, verify=True, schema="multi")
        fly = RenderedScenes(multi, len(ds), seed=5, split=split, jitter=1.5, noise=3.0)
        assert len(ds) == manifest["counts"][split]
        for i in range(len(ds)):
            (img, lab), (want_img, want_lab) = ds[i], fly[i]
            assert img.dtype == torch.uint8 and img.shape == (3, 96, 96)
            assert lab.dtype == torch.int64 and lab.shape == (3, len(multi.sizes))
            assert torch.equal(img, want_img) and torch.equal(lab, want_lab)
        labels = torch.stack([ds[i][1] for i in range(len(ds))])
        present = (labels >= 0).all(-1)
        assert manifest["objects"][split] == int(present.sum())
        # the csv rows of the split, one per present object, with every attribute by name
        got = [r for r in rows[1:] if r[0] == split]
        assert len(got) == int(present.sum())
        for r in got:
            i, j = int(r[1]), int(r[2])
            assert multi.encode(dict(zip(multi.names, r[3:])))[0].tolist() == labels[i, j].tolist()
    counts = (torch.stack([x[1] for x in SceneShards(out, "train")]) >= 0).all(-1).sum(1)
    assert set(counts.tolist()) == {1, 2, 3}  # variable counts, every one of them


def test_an_interrupted_multi_generation_resumes_to_the_same_bytes(tmp_path, monkeypatch):
    ref, _ = _small(tmp_path, "ref", preview=True)
    real, calls = dataset_module._write_shard, []

    def flaky(path, images):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(path)
        real(path, images)

    monkeypatch.setattr(dataset_module, "_write_shard", flaky)
    with pytest.raises(KeyboardInterrupt):
        _small(tmp_path, "run", preview=True)
    assert not (tmp_path / "run" / "manifest.json").exists()
    monkeypatch.setattr(dataset_module, "_write_shard", real)
    written = count_shard_writes(monkeypatch)
    _small(tmp_path, "run", preview=True)
    assert len(written) == 6 - 2  # the finished shards were kept
    same_files(tmp_path / "run", ref)
    # the preview is the contact sheet of the first 60 training scenes of several objects
    fly = RenderedScenes("multi", 60, seed=5, split="train")
    sheet = contact_sheet(np.stack([fly[i][0].permute(1, 2, 0).numpy() for i in range(60)]), columns=10, scale=2)
    assert np.array_equal(np.asarray(Image.open(ref / "preview.png").convert("RGB")), np.asarray(sheet))


def test_a_damaged_multi_dataset_is_repaired_to_the_clean_bytes(tmp_path, monkeypatch):
    clean, _ = _small(tmp_path, "clean")
    out, _ = _small(tmp_path, "run")
    data = (out / "train-00001.npy").read_bytes()
    (out / "train-00001.npy").write_bytes(data[: len(data) // 2])  # truncated
    (out / "val-00000.npy").unlink()  # deleted
    written = count_shard_writes(monkeypatch)
    _small(tmp_path, "run")
    assert sorted(written) == ["train-00001.npy", "val-00000.npy"]
    same_files(out, clean)
    # without a manifest, a whole shard is kept only if its first and last scenes render the same
    (out / "manifest.json").unlink()
    data = (out / "test-00000.npy").read_bytes()
    (out / "test-00000.npy").write_bytes(data[:128] + bytes(len(data) - 128))  # whole, but black
    written.clear()
    _small(tmp_path, "run")
    assert written == ["test-00000.npy"]
    same_files(out, clean)
    written.clear()
    _small(tmp_path, "run")  # an intact dataset is left alone
    assert written == []


def test_a_damaged_labels_file_is_detected_and_rewritten(tmp_path):
    clean, _ = _small(tmp_path, "clean")
    out, _ = _small(tmp_path, "run")
    text = (out / "labels.csv").read_text()
    lines = text.splitlines(keepends=True)
    second = next(k for k, line in enumerate(lines) if line.split(",")[2] == "1")  # a scene's second object
    # an object dropped: the rows still parse, only the checksum tells
    (out / "labels.csv").write_text("".join(lines[:second] + lines[second + 1:]))
    SceneShards(out, "train")
    with pytest.raises(ValueError, match="labels.csv: checksum mismatch"):
        SceneShards(out, "train", verify=True)
    # damage to the rows themselves is refused on reading
    split, index = lines[second].split(",")[:2]
    scene = [line for line in lines[1:] if line.split(",")[:2] == [split, index]]
    for bad, match in [(lines[:second + 1] + [lines[second]] + lines[second + 1:], "bad label row"),  # twice
                       ([line for line in lines if line not in scene[:1]], "bad label row"),  # object 0 missing
                       ([line for line in lines if line not in scene], "labels missing for 1 of"),  # no objects
                       (lines[:second] + [lines[second].replace(",1,", ",5,", 1)] + lines[second + 1:],
                        "bad label row"),  # no slot 5
                       ([lines[0].replace("object,", "")] + lines[1:], "header")]:
        (out / "labels.csv").write_text("".join(bad))
        with pytest.raises(ValueError, match=match):
            SceneShards(out, split)
    _small(tmp_path, "run")  # generating again writes it anew
    same_files(out, clean)


def test_multi_manifests_are_version_2_and_single_object_ones_keep_version_1(tmp_path):
    out, manifest = _small(tmp_path)
    single = generate_dataset(tmp_path / "one", n=4, val=1, test=1, heldout=1, progress=False, log=None)
    assert single["version"] == 1 and "objects" not in single
    assert next(csv.reader(open(tmp_path / "one" / "labels.csv"))) == ["split", "index", *load_schema("default").names]
    m = json.loads((out / "manifest.json").read_text())
    m["version"] = 1
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="does not fit its schema 'multi'"):
        SceneShards(out, "train")
    with pytest.raises(ValueError, match="different dataset"):  # a folder of another dataset is refused
        _small(tmp_path, "one")
    with pytest.raises(ValueError, match="schema 'default' differs from the schema asked for 'multi'"):
        SceneShards(tmp_path / "one", "train", schema="multi")


def test_the_disk_estimate_bounds_the_labels_of_full_scenes(tmp_path, multi):
    out, _ = _small(tmp_path)
    config = json.loads((out / "config.json").read_text())
    need = storage.estimate_bytes(config, storage.plan_shards(config), preview=False)
    written = sum(f.stat().st_size for f in out.iterdir())
    assert written <= need < 1.1 * written
    # the worst labels the config allows: every scene of 3 objects, each of the longest value labels
    longest = [max(range(len(a.values)), key=lambda v, a=a: len(a.values[v])) for a in multi.attributes]
    path = tmp_path / "worst.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(label_header(multi))
        for split in SPLITS:
            n = config["counts"][split]
            w.writerows(label_rows(multi, split, 0, np.tile(np.array(longest), (n, 3, 1))))
    worst = written - (out / "labels.csv").stat().st_size + path.stat().st_size
    assert worst <= need


def test_the_datamodule_trains_the_multi_model_from_disk(tmp_path, multi):
    out, _ = _small(tmp_path, n=16, val=4, test=4, heldout=4, shard_size=8)
    dm = SceneDataModule(schema="multi", data_dir=str(out), batch_size=4, seed=0)
    x, y = next(iter(dm.val_dataloader()))
    fly = RenderedScenes(multi, 4, seed=5, split="val")
    assert x.shape == (4, 3, 96, 96) and x.dtype == torch.uint8 and y.shape == (4, 3, 6) and y.dtype == torch.int64
    assert torch.equal(x, torch.stack([fly[i][0] for i in range(4)]))
    assert torch.equal(y, torch.stack([fly[i][1] for i in range(4)]))
    xt, yt = next(iter(dm.train_dataloader()))
    assert xt.shape == (4, 3, 96, 96) and yt.shape == (4, 3, 6) and ((yt >= 0).all(-1).sum(1) >= 1).all()
    assert len(dm.test_dataloader()) == 2 and dm.test_split_names == ["test", "heldout"]
    torch.manual_seed(0)
    model = MultiVSAModel(dim=256, width=8, features=32, slot_hidden=32, iterations=30, test_methods=["brute_force"])
    trainer = pl.Trainer(accelerator="cpu", devices=1, fast_dev_run=True, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path))
    trainer.fit(model, datamodule=dm)
    assert trainer.state.finished and torch.isfinite(trainer.callback_metrics["train/loss"])
    trainer.test(model, datamodule=dm, verbose=False)
    assert model.test_report["splits"]["test"]["brute_force"]["images"] == 4
    with pytest.raises(ValueError, match="differs from the schema asked for"):
        SceneDataModule(schema="default", data_dir=str(out)).setup("fit")


def test_cli_generates_a_multi_dataset_and_says_what_it_wrote(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["data", "generate", "--schema", "multi", "--n", "12", "--val", "3", "--test", "3", "--heldout", "3",
            "--shard-size", "8", "--seed", "2", "--out", str(out), "--preview", "--no-progress"]
    assert main(args) == 0
    said = capsys.readouterr().out
    objects = len((out / "labels.csv").read_text().splitlines()) - 1
    assert f"21 images ({objects} objects, 1 to 3 a scene) in 5 shards train 12, val 3, test 3, heldout 3" in said
    assert (out / "preview.png").read_bytes()[:4] == b"\x89PNG"
    ds = SceneShards(out, "test", verify=True, schema="multi")
    assert torch.equal(ds[2][0], RenderedScenes("multi", 3, seed=2, split="test")[2][0])
    assert main(args) == 0
    assert f"already complete (21 images ({objects} objects, 1 to 3 a scene))" in capsys.readouterr().out
