import csv
import itertools
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from vsa_vision.cli import main
from vsa_vision.scenes import (
    Attribute,
    RenderedScenes,
    Renderer,
    SceneDataModule,
    SceneShards,
    Schema,
    default_schema,
    generate_dataset,
    load_schema,
    render_scene,
    sample_indices,
    sample_scenes,
)
from vsa_vision.scenes import dataset as dataset_module

from .conftest import count_shard_writes, same_files, within


def test_default_schema_is_rich_enough():
    s = default_schema()
    sizes = dict(zip(s.names, s.sizes))
    assert s.names == ("shape", "colour", "size", "x", "y", "fill")
    assert sizes["shape"] >= 8 and sizes["colour"] >= 10 and sizes["size"] >= 4
    assert sizes["x"] >= 12 and sizes["y"] >= 12 and sizes["fill"] >= 2
    assert s.num_combinations >= 10 ** 5
    assert s.image_size == 64 and len(s.holdout) >= 1


def test_public_api_contract():
    schema = default_schema()
    scenes = sample_scenes(schema, 100, seed=0)
    assert len(scenes) == 100 and all(list(sc) == list(schema.names) for sc in scenes)
    assert all(sc[a.name] in a.values for sc in scenes for a in schema.attributes)
    image = render_scene(schema, scenes[0])
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (64, 64)


def test_sampling_is_seeded_and_prefix_stable():
    s = default_schema()
    a, b = sample_indices(s, 5000, seed=3), sample_indices(s, 5000, seed=3)
    assert np.array_equal(a, b)
    assert np.array_equal(sample_indices(s, 100, seed=3), a[:100])
    assert not np.array_equal(sample_indices(s, 100, seed=4), a[:100])
    # every value of every attribute turns up in a large sample, none out of range
    for k, n in enumerate(s.sizes):
        assert set(a[:, k].tolist()) == set(range(n))


def test_splits_are_independent_and_held_out_combinations_never_in_train():
    s = default_schema()
    train = sample_indices(s, 20000, seed=0, split="train")
    test = sample_indices(s, 2000, seed=0, split="test")
    held = sample_indices(s, 2000, seed=0, split="heldout")
    assert not s.is_held_out(train).any() and not s.is_held_out(test).any()
    assert s.is_held_out(held).all()
    assert not np.array_equal(train[:2000], test)
    # every held-out combination is represented in the held-out split
    star, red = s.attribute("shape").index("star"), s.attribute("colour").index("red")
    assert ((held[:, 0] == star) & (held[:, 1] == red)).any()
    assert not ((train[:, 0] == star) & (train[:, 1] == red)).any()


def test_same_attributes_and_seed_give_the_same_pixels():
    s = default_schema()
    scene = sample_scenes(s, 1, seed=1)[0]
    assert render_scene(s, scene).tobytes() == render_scene(s, scene).tobytes()
    noisy = [render_scene(s, scene, seed=7, jitter=1.5, noise=8.0).tobytes() for _ in range(2)]
    assert noisy[0] == noisy[1]
    assert render_scene(s, scene, seed=8, jitter=1.5, noise=8.0).tobytes() != noisy[0]


def test_every_value_of_every_attribute_is_visibly_distinct():
    s = default_schema()
    r = Renderer(s)
    base = np.array([0, 0, 1, 5, 5, 0])
    for k, attr in enumerate(s.attributes):
        rows = np.repeat(base[None], len(attr), axis=0)
        rows[:, k] = np.arange(len(attr))
        imgs = r.render_batch(rows).reshape(len(attr), -1).astype(np.int32)
        for i, j in itertools.combinations(range(len(attr)), 2):
            diff = np.abs(imgs[i] - imgs[j]).sum()
            assert diff > 255 * 3, f"{attr.name}: {attr.values[i]} and {attr.values[j]} look the same"


@pytest.mark.parametrize("jitter", [0.0, 2.0])
def test_every_object_lies_inside_the_frame(jitter):
    s = default_schema()
    r = Renderer(s, jitter=jitter)
    shapes, sizes = range(s.sizes[0]), [s.sizes[2] - 1]
    xs, ys = [0, s.sizes[3] - 1], [0, s.sizes[4] - 1]
    rows = np.array([[sh, 8, sz, x, y, f] for sh in shapes for sz in sizes for x in xs for y in ys for f in (0, 1)])
    imgs = r.render_batch(rows, seeds=list(range(len(rows))))
    border = np.concatenate([imgs[:, 0], imgs[:, -1], imgs[:, :, 0], imgs[:, :, -1]], axis=1)
    assert border.max() == 0
    assert (imgs.reshape(len(rows), -1).max(axis=1) > 100).all()  # and something was drawn


def test_nuisances_move_pixels_but_keep_the_object():
    s = default_schema()
    row = np.array([[7, 0, 2, 6, 6, 0]])
    clean = Renderer(s).render_batch(row)[0].astype(int)
    jit = Renderer(s, jitter=2.0).render_batch(row, seeds=[3])[0].astype(int)
    assert not np.array_equal(clean, jit)
    assert abs(clean.sum() - jit.sum()) < 0.05 * clean.sum()


@pytest.mark.parametrize("bad, match", [
    ({"attributes": [{"name": "shape", "values": []}]}, "value list is empty"),
    ({"attributes": [{"name": "shape", "values": ["circle"]}, {"name": "shape", "values": ["square"]}]},
     "duplicate attribute names"),
    ({"attributes": [{"name": "shape", "values": ["circle", "circle"]}]}, "duplicate values"),
    ({"attributes": [{"name": "material", "values": ["a"], "role": "texture"}]}, "unknown role 'texture'"),
    ({"attributes": [{"name": "shape", "values": ["blob"], "role": "shape"}]}, "unknown shape"),
    ({"attributes": [{"name": "colour", "values": ["notacolour"], "role": "colour"}]}, "no colour"),
    ({"attributes": [{"name": "shape", "values": ["circle"]}], "holdout": [{"shape": "star"}]}, "unknown value 'star'"),
    ({"attributes": [{"name": "shape", "values": ["circle"]}], "colours": 3}, "unknown key"),
    ({"attributes": [{"name": "size", "values": ["a", "b"], "params": [0.1]}]}, "1 params for 2 values"),
])
def test_bad_schemas_fail_with_a_clear_message(bad, match):
    with pytest.raises(ValueError, match=match):
        load_schema(bad)


def test_custom_schema_from_a_json_file_renders(tmp_path):
    spec = {"name": "tiny", "image_size": 32, "attributes": [
        {"name": "form", "role": "shape", "values": ["round", "box"], "params": ["circle", "square"]},
        {"name": "color", "values": ["red", "blue"]}]}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(spec))
    s = load_schema(str(path))
    assert s.attribute("color").role == "colour"
    img = render_scene(s, {"form": "box", "color": "blue"})
    assert img.size == (32, 32)
    with pytest.raises(ValueError, match="unknown value 'green'.*valid values: \\['red', 'blue'\\]"):
        render_scene(s, {"form": "box", "color": "green"})
    with pytest.raises(ValueError, match="missing attribute"):
        render_scene(s, {"form": "box"})


def test_sample_arguments_are_checked():
    s = default_schema()
    with pytest.raises(ValueError, match="n: expected an int >= 0"):
        sample_indices(s, -1)
    with pytest.raises(ValueError, match="split"):
        sample_indices(s, 3, split="training")
    no_hold = Schema((Attribute("shape", ("circle", "square")),))
    with pytest.raises(ValueError, match="no held-out combinations"):
        sample_indices(no_hold, 3, split="heldout")


def _small(tmp_path, name="ds", **kw):
    args = dict(n=40, val=8, test=8, heldout=8, shard_size=16, seed=5, progress=False, log=None)
    args.update(kw)
    out = tmp_path / name
    return out, generate_dataset(out, **args)


def test_generated_dataset_agrees_with_its_labels_and_the_renderer(tmp_path):
    out, manifest = _small(tmp_path)
    assert {s["split"] for s in manifest["shards"]} == {"train", "val", "test", "heldout"}
    s = default_schema()
    r = Renderer(s)
    rows = list(csv.DictReader(open(out / "labels.csv")))
    assert len(rows) == 64
    for split in ("train", "heldout"):
        ds = SceneShards(out, split, verify=True)
        for i in (0, len(ds) - 1):
            row = next(x for x in rows if x["split"] == split and int(x["index"]) == i)
            scene = {k: row[k] for k in s.names}
            img, lab = ds[i]
            assert torch.equal(lab, torch.from_numpy(s.encode(scene)[0]))
            assert np.array_equal(img.permute(1, 2, 0).numpy(), np.asarray(r.render(scene)))
    # the on-the-fly source gives the same items
    fly = RenderedScenes(s, 8, seed=5, split="heldout")
    ds = SceneShards(out, "heldout")
    assert all(torch.equal(fly[i][0], ds[i][0]) and torch.equal(fly[i][1], ds[i][1]) for i in range(8))


def test_interrupted_generation_resumes_to_the_same_bytes(tmp_path, monkeypatch):
    ref, ref_manifest = _small(tmp_path, "ref")
    real, calls = dataset_module._write_shard, []

    def flaky(path, images):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(path)
        real(path, images)

    monkeypatch.setattr(dataset_module, "_write_shard", flaky)
    with pytest.raises(KeyboardInterrupt):
        _small(tmp_path, "run")
    assert not (tmp_path / "run" / "manifest.json").exists()
    assert not [f for f in os.listdir(tmp_path / "run") if f.startswith(".tmp-")]  # nothing half-written
    with pytest.raises(FileNotFoundError, match="interrupted"):
        SceneShards(tmp_path / "run")
    monkeypatch.setattr(dataset_module, "_write_shard", real)
    written = []
    monkeypatch.setattr(dataset_module, "_write_shard", lambda p, im: (written.append(p), real(p, im)))
    _, manifest = _small(tmp_path, "run")
    assert len(written) == len(manifest["shards"]) - 2  # finished shards were not redone
    assert [s["sha256"] for s in manifest["shards"]] == [s["sha256"] for s in ref_manifest["shards"]]
    assert (tmp_path / "run" / "labels.csv").read_bytes() == (tmp_path / "ref" / "labels.csv").read_bytes()


def test_a_different_dataset_is_not_overwritten_unless_asked(tmp_path):
    out, _ = _small(tmp_path)
    with pytest.raises(ValueError, match="different dataset"):
        _small(tmp_path, n=48)
    _, m = _small(tmp_path, n=48, overwrite=True)
    assert m["counts"]["train"] == 48 and len(SceneShards(out, "train")) == 48
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not part of a dataset"):
        _small(tmp_path, "mine", overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"


def test_bad_generate_arguments(tmp_path):
    with pytest.raises(ValueError, match="n: expected a positive"):
        _small(tmp_path, n=0)
    with pytest.raises(ValueError, match="n: expected an int >= 0"):
        _small(tmp_path, n=-3)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        generate_dataset(tmp_path / "afile", n=4, progress=False, log=None)
    with pytest.raises(OSError):
        generate_dataset(tmp_path / "afile" / "sub", n=4, progress=False, log=None)


def test_datamodule_batches_and_test_loaders(tmp_path):
    dm = SceneDataModule(train_size=50, val_size=10, test_size=10, heldout_size=10, batch_size=16, seed=1)
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.dtype == torch.uint8 and x.shape == (16, 3, 64, 64) and y.shape == (16, 6) and y.dtype == torch.int64
    x2, _ = next(iter(dm.train_dataloader()))
    assert torch.equal(x, x2)  # seeded shuffle
    loaders = dm.test_dataloader()
    assert len(loaders) == 2 and dm.test_split_names == ["test", "heldout"]
    out, _ = _small(tmp_path)
    disk = SceneDataModule(data_dir=str(out), batch_size=8)
    xb, yb = next(iter(disk.val_dataloader()))
    assert xb.shape == (8, 3, 64, 64)
    with pytest.raises(FileNotFoundError, match="data_dir"):
        SceneDataModule(data_dir=str(tmp_path / "missing"))


def test_cli_data_generate(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["data", "generate", "--n", "20", "--val", "4", "--test", "4", "--heldout", "4", "--out", str(out),
            "--preview", "--no-progress"]
    assert main(args) == 0
    assert (out / "manifest.json").exists() and (out / "preview.png").read_bytes()[:4] == b"\x89PNG"
    assert main(args[:2] + ["--n", "24"] + args[4:]) == 2
    assert "different dataset" in capsys.readouterr().err


def test_data_benchmark_reports_every_rate(monkeypatch):
    import itertools

    import vsa_vision.bench.data as bench_data

    # a clock that advances one second a reading: every rate is then images over the readings it spans
    clock = itertools.count()
    monkeypatch.setattr(bench_data.time, "perf_counter", lambda: float(next(clock)))
    out = bench_data.data_benchmark(images=256, workers=0, batch_size=64, log=lambda m: None)
    rates = ("render_one_core", "loader_on_the_fly", "loader_disk", "cache_build", "loader_cached")
    assert set(out) == {"images", "workers", "batch_size", *rates}
    assert all(out[key] == 256.0 for key in rates)  # 256 images, one second each (start and stop readings)


def test_stroke_range_varies_outlines_only_and_is_checked():
    from vsa_vision.scenes.render import STROKE, Renderer

    rows = np.array([[2, 0, 3, 5, 5, 1]] * 6 + [[2, 0, 3, 5, 5, 0]])  # outlined triangles, then a solid one
    seeds = [[i] for i in range(len(rows))]
    fixed = Renderer("default").render_batch(rows, seeds=seeds)
    assert np.array_equal(fixed, Renderer("default", stroke=STROKE).render_batch(rows, seeds=seeds))
    varied = Renderer("default", stroke=(0.08, 0.45)).render_batch(rows, seeds=seeds)
    lit = (varied.max(-1) > 0).sum((1, 2))
    assert len(set(lit[:6].tolist())) > 2  # outline widths differ from image to image
    assert np.array_equal(varied[6], fixed[6])  # solid shapes are untouched
    again = Renderer("default", stroke=(0.08, 0.45)).render_batch(rows, seeds=seeds)
    assert np.array_equal(varied, again)  # seeded
    for bad in [0, 1.5, (0.3, 0.1), "thick", (0.1,), True]:
        with pytest.raises(ValueError, match="stroke"):
            Renderer("default", stroke=bad)


def test_datamodule_train_stroke_and_heldout_validation():
    dm = SceneDataModule(train_size=32, val_size=8, test_size=8, heldout_size=8, batch_size=8, seed=2,
                         train_stroke=[0.1, 0.4], val_heldout_size=8)
    plain = SceneDataModule(train_size=32, val_size=8, test_size=8, heldout_size=8, batch_size=8, seed=2)
    dm.setup("fit"), plain.setup("fit")
    assert torch.equal(dm.datasets["val"]._images, plain.datasets["val"]._images)  # evaluation unchanged
    assert not torch.equal(dm.datasets["train"]._images, plain.datasets["train"]._images)
    loaders = dm.val_dataloader()
    assert isinstance(loaders, list) and len(loaders) == 2
    _, y = next(iter(loaders[1]))
    schema = default_schema()
    assert schema.is_held_out(y.numpy()).all()
    with pytest.raises(ValueError, match="val_heldout_size"):
        SceneDataModule(val_heldout_size=-1)


# -- reliability: empty and rare splits, huge sizes, resume, manifest paths, scene lists, seeds ----




#: sha256 of sample_indices(default_schema(), 5000, seed, split) as drawn before sampling was made robust
_DRAWS = {
    (0, None): "740f41379c7390280d7fed4e30099c7a3b6e3f574b9cebddfa726136c22d57f6",
    (0, "train"): "2d80343090b249310b50cd5e9723c20409b69cd67c48994e5849c5b0953ea01f",
    (0, "heldout"): "fcace69cdf4d92660f5a9667bc7c9108195ba047c9293dcdb62c5ba875d9b012",
    (3, "val"): "682d43611d0d6366f6fc57bad4b7a3c8e1ad17215e069b53ae74500d1843ce2a",
    (3, "test"): "e53a59e6c53db46090c286a4018122d71ad193e7ba02c5404221c566573c85bc",
    (2 ** 63 - 1, "heldout"): "d92abe24ce9348a42c61588c3dfaffa943cf0c38fa15387c56ce218edb510825",
}


@pytest.mark.parametrize("seed, split", list(_DRAWS))
def test_the_draws_of_the_default_schema_are_unchanged(seed, split):
    import hashlib

    got = sample_indices(default_schema(), 5000, seed=seed, split=split)
    assert hashlib.sha256(got.tobytes()).hexdigest() == _DRAWS[seed, split]


def _covering_schema():
    """Every combination held out: the train / val / test splits are empty."""
    return Schema((Attribute("shape", ("circle", "square")), Attribute("colour", ("red", "blue"))), name="cover",
                  holdout=({"shape": "circle"}, {"shape": "square", "colour": "red"}, {"colour": "blue"}))


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_a_split_the_holdout_leaves_empty_is_refused_not_looped(split, tmp_path):
    with pytest.raises(ValueError, match=f"schema 'cover': the '{split}' split is empty"):
        within(20, lambda: sample_indices(_covering_schema(), 5, seed=0, split=split))
    assert len(sample_indices(_covering_schema(), 5, split="heldout")) == 5
    with pytest.raises(ValueError, match="schema 'cover': the 'train' split is empty"):
        within(20, lambda: generate_dataset(tmp_path / "ds", _covering_schema(), n=4, val=0, test=0, heldout=2,
                                             progress=False, log=None))
    assert not (tmp_path / "ds").exists()  # refused before anything was written


def _rare_schema():
    """Train admits one shape, colour, size and y: 23 of 28800 scenes, a share under 1/1024."""
    shapes, colours = ("circle", "square", "triangle", "star", "plus"), ("red", "blue", "green", "white", "cyan")
    sizes = ("s", "m", "l", "xl")
    hold = ([{"shape": s} for s in shapes[1:]] + [{"colour": c} for c in colours[1:]]
            + [{"size": z} for z in sizes[1:]] + [{"y": str(y)} for y in range(1, 12)]
            + [{"x": "0", "fill": "outline"}])
    return Schema((Attribute("shape", shapes), Attribute("colour", colours), Attribute("size", sizes),
                   Attribute("x", tuple(str(i) for i in range(12))), Attribute("y", tuple(str(i) for i in range(12))),
                   Attribute("fill", ("solid", "outline"))), name="rare", holdout=tuple(hold))


def test_rare_admissible_scenes_are_drawn_directly_and_uniformly():
    s = _rare_schema()
    got = within(10, lambda: sample_indices(s, 200_000, seed=1, split="train"))
    assert got.shape == (200_000, 6) and not s.is_held_out(got).any()
    assert (got[:, [0, 1, 2, 4]] == 0).all()
    assert np.array_equal(sample_indices(s, 500, seed=1, split="train"), got[:500])  # prefix-stable
    # uniform over the admissible scenes: every x, and fills in the ratio the rule {x: 0, fill: outline} leaves
    assert set(got[:, 3].tolist()) == set(range(12))
    outline = (got[:, 5] == 1).mean()
    assert abs(outline - 11 / 23) < 0.02
    assert not ((got[:, 3] == 0) & (got[:, 5] == 1)).any()


def test_huge_sizes_are_refused_before_memory_grows(tmp_path):
    import subprocess
    import sys

    code = f"""
import resource
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
from vsa_vision.scenes import RenderedScenes, default_schema, generate_dataset, sample_indices
def msg(f):
    try:
        f()
    except (ValueError, OSError) as e:
        return type(e).__name__ + ': ' + str(e)
    return 'accepted'
print(msg(lambda: sample_indices(default_schema(), 10 ** 10)))
print(msg(lambda: RenderedScenes('default', 10 ** 10)))
print(msg(lambda: RenderedScenes('default', 10 ** 6, cache=True)))
print(msg(lambda: generate_dataset({str(tmp_path / 'a')!r}, n=10 ** 10, progress=False, log=None)))
print(msg(lambda: generate_dataset({str(tmp_path / 'b')!r}, n=10 ** 10, shard_size=500_000, progress=False, log=None)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = out.stdout.splitlines()
    assert out.returncode == 0 and len(lines) == 5, out.stdout + out.stderr
    assert lines[0].startswith("ValueError: n: 10000000000 scenes") and "memory" in lines[0]
    assert lines[1].startswith("ValueError: n: 10000000000 scenes") and "generate_dataset" in lines[1]
    assert lines[2].startswith("ValueError: RenderedScenes(cache=True): 1000000 images") and "GiB" in lines[2]
    assert lines[3].startswith("ValueError: n: 10000000000 train images in shards of 5000 make 2000000 shards")
    assert lines[4].startswith("OSError: out: the dataset needs about") and "free" in lines[4]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_generation_refuses_a_filesystem_too_small(tmp_path, monkeypatch):
    from collections import namedtuple

    from vsa_vision.scenes import storage

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda p: usage(10 ** 6, 10 ** 6 - 50_000, 50_000))
    with pytest.raises(OSError, match=r"needs about 7\d\d\.\d KiB .* has 48\.8 KiB \(50000 bytes\) free"):
        _small(tmp_path)  # 64 images of 12 KiB
    assert not (tmp_path / "ds").exists()
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda p: usage(10 ** 9, 0, 10 ** 9))
    _small(tmp_path)
    # the estimate bounds what was written
    written = sum(f.stat().st_size for f in (tmp_path / "ds").iterdir())
    need = storage.estimate_bytes(json.loads((tmp_path / "ds" / "config.json").read_text()),
                                  storage.plan_shards(json.loads((tmp_path / "ds" / "config.json").read_text())),
                                  preview=False)
    assert written <= need < 1.1 * written


def test_resume_repairs_a_damaged_finished_dataset_to_the_clean_bytes(tmp_path, monkeypatch):
    clean, _ = _small(tmp_path, "clean", preview=True)
    out, _ = _small(tmp_path, "run", preview=True)
    data = (out / "train-00001.npy").read_bytes()
    (out / "train-00001.npy").write_bytes(data[: len(data) // 2])  # truncated
    (out / "test-00000.npy").unlink()  # deleted
    written = count_shard_writes(monkeypatch)
    _small(tmp_path, "run", preview=True)
    assert sorted(written) == ["test-00000.npy", "train-00001.npy"]
    same_files(out, clean)
    # a damaged labels.csv is written again; an intact dataset is left alone
    (out / "labels.csv").write_text("split,index\n")
    _small(tmp_path, "run", preview=True)
    same_files(out, clean)
    written.clear()
    _small(tmp_path, "run", preview=True)
    assert written == []


def test_resume_without_a_manifest_checks_the_shards_it_keeps(tmp_path, monkeypatch):
    clean, _ = _small(tmp_path, "clean")
    out, _ = _small(tmp_path, "run")
    (out / "manifest.json").unlink()  # as an interrupted run leaves it: no checksums known
    data = (out / "train-00000.npy").read_bytes()
    (out / "train-00000.npy").write_bytes(data[:-100])  # truncated
    data = (out / "val-00000.npy").read_bytes()
    (out / "val-00000.npy").write_bytes(data[:128] + bytes(len(data) - 128))  # whole, but black images
    (out / "heldout-00000.npy").write_bytes(b"not an npy file")
    written = count_shard_writes(monkeypatch)
    _small(tmp_path, "run")
    assert sorted(written) == ["heldout-00000.npy", "train-00000.npy", "val-00000.npy"]
    same_files(out, clean)


@pytest.mark.parametrize("bad", ["../outside/train-00000.npy", "ABSOLUTE", "../../../../../../etc/passwd"])
def test_shards_refuse_manifest_paths_outside_the_dataset(tmp_path, bad):
    out, _ = _small(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    np.save(outside / "train-00000.npy", np.zeros((16, 64, 64, 3), np.uint8))  # a loadable file elsewhere
    bad = str(outside / "train-00000.npy") if bad == "ABSOLUTE" else bad
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["shards"][0]["file"] = bad
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="outside the dataset folder|not a path inside"):
        SceneShards(out, "train")


def test_a_list_of_scenes_is_refused_by_a_single_object_schema():
    s = default_schema()
    a, b = sample_scenes(s, 2, seed=0)
    with pytest.raises(ValueError, match="list of 2 scenes.*one object per image"):
        render_scene(s, [a, b])
    with pytest.raises(ValueError, match="list of 1 scenes"):
        Renderer(s).render([a])
    assert s.max_objects == 1 and "max_objects" not in s.to_dict()
    multi = Schema.from_dict({**s.to_dict(), "max_objects": 3})
    assert multi.max_objects == 3 and multi.to_dict()["max_objects"] == 3
    assert Schema.from_dict(multi.to_dict()) == multi
    assert Renderer(multi).render([a]).size == (64, 64)  # a schema of several objects draws lists
    with pytest.raises(ValueError, match="max_objects"):
        Schema(s.attributes, max_objects=0)


def test_seeds_of_any_size_work_and_small_ones_are_unchanged(tmp_path):
    from vsa_vision.scenes.sampling import seed63

    big = 2 ** 64 + 5
    assert seed63(0) == 0 and seed63(2 ** 63 - 1) == 2 ** 63 - 1
    assert 0 <= seed63(big) < 2 ** 63 and seed63(big) == seed63(big) != seed63(big + 1)
    s = default_schema()
    assert np.array_equal(sample_indices(s, 50, seed=big, split="heldout"), sample_indices(s, 50, seed=big,
                                                                                          split="heldout"))
    ds = RenderedScenes(s, 4, seed=big, jitter=1.0, noise=2.0)
    assert torch.equal(ds[3][0], RenderedScenes(s, 4, seed=big, jitter=1.0, noise=2.0)[3][0])
    generate_dataset(tmp_path / "big", n=4, val=1, test=1, heldout=1, seed=big, progress=False, log=None)
    dm = SceneDataModule(train_size=8, val_size=2, test_size=2, heldout_size=2, seed=big, batch_size=4)
    first = next(iter(dm.train_dataloader()))[1]
    assert torch.equal(first, next(iter(dm.train_dataloader()))[1])
    for bad in (-1, 1.5, "3"):
        with pytest.raises(ValueError, match="seed"):
            RenderedScenes(s, 4, seed=bad)
        with pytest.raises(ValueError, match="seed"):
            SceneDataModule(seed=bad)
