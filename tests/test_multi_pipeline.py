"""Recognising and editing scenes of several objects through the Pipeline, with an oracle encoder
(the exact bundle of each image's objects): checks the pipeline's bookkeeping, not a trained model."""

import numpy as np
import pytest
import torch

from vsa_vision.multi import MultiVSAModel
from vsa_vision.pipeline import Pipeline
from vsa_vision.scenes import load_schema, render_scene, sample_scenes


@pytest.fixture(scope="module")
def oracle():
    schema = load_schema("multi")
    model = MultiVSAModel(dim=1024, width=8, features=32, slot_hidden=16, iterations=200, method="brute_force")
    scenes = sample_scenes(schema, 6, seed=7, split="test")
    images = [render_scene(schema, s) for s in scenes]
    truth = {np.asarray(img).tobytes(): model.codebooks.bind_labels(s).sum(0) for img, s in zip(images, scenes)}

    def encode(x):  # uint8 [B, 3, H, W] -> the exact bundle of each image's objects
        return torch.stack([truth[np.ascontiguousarray(a.permute(1, 2, 0).numpy()).tobytes()] for a in x])

    model.forward = encode
    return Pipeline(model.eval()), schema, scenes, images


def _key(objs):
    return sorted(tuple(sorted(o.items())) for o in objs)


def test_recognition_lists_every_object_by_position(oracle):
    pipe, schema, scenes, images = oracle
    recs = pipe.recognize(images)
    for rec, scene in zip(recs, scenes):
        assert _key(rec.objects) == _key(scene) and len(rec.object_confidence) == len(scene)
        assert all(c > 0.99 for c in rec.object_confidence)
        ys = [(int(o["y"]), int(o["x"])) for o in rec.objects]
        assert ys == sorted(ys)  # ordered by position


def test_edits_change_remove_and_add_objects(oracle):
    pipe, schema, scenes, images = oracle
    scene, image = scenes[0], images[0]
    target = scene[0]
    new_colour = "red" if target["colour"] != "red" else "blue"
    out = pipe.edit(image, where={"shape": target["shape"], "colour": target["colour"]}, colour=new_colour)
    want = [dict(o, colour=new_colour) if o == target else o for o in scene]
    assert _key(out.objects) == _key(want)
    assert np.array_equal(np.asarray(out.image), np.asarray(render_scene(schema, want)))
    by_index = pipe.edit(image, object=0, size="small")
    first = pipe.recognize([image])[0].objects[0]
    assert _key(by_index.objects) == _key([dict(o, size="small") if o == first else o for o in scene])
    removed = pipe.edit(image, object=0, remove=True)
    assert _key(removed.objects) == _key([o for o in scene if o != first])
    free = next((x, y) for x in "0123" for y in "0123" if all((o["x"], o["y"]) != (x, y) for o in scene))
    new = {"shape": "star", "colour": "green", "size": "large", "x": free[0], "y": free[1], "fill": "solid"}
    if len(scene) < schema.max_objects:
        added = pipe.edit(image, add=new)
        assert _key(added.objects) == _key(scene + [new])


def test_edits_that_match_nothing_or_collide_are_refused(oracle):
    pipe, schema, scenes, images = oracle
    scene, image = scenes[0], images[0]
    absent = next(s for s in schema.attribute("shape").values if all(o["shape"] != s for o in scene))
    with pytest.raises(ValueError, match="no object of the scene matches"):
        pipe.edit(image, where={"shape": absent}, colour="red")
    multi_scene = next((s, i) for s, i in zip(scenes, images) if len(s) >= 2)
    objs, img = multi_scene
    with pytest.raises(ValueError, match="same position"):
        pipe.edit(img, object=0, x=objs[1]["x"], y=objs[1]["y"])
    with pytest.raises(ValueError, match="exactly one of where"):
        pipe.edit(img, where={"shape": objs[0]["shape"]}, object=0, colour="red")


def test_cli_lists_objects_and_edits_need_a_selection(tmp_path, capsys):
    import json

    from vsa_vision.checkpoint import export_model
    from vsa_vision.cli import main

    schema = load_schema("multi")
    model = MultiVSAModel(dim=256, width=8, features=16, slot_hidden=8, iterations=5, method="brute_force")
    ckpt = export_model(model, str(tmp_path / "multi.safetensors"))
    img = tmp_path / "scene.png"
    render_scene(schema, sample_scenes(schema, 1, seed=3, split="test")[0]).save(img)
    assert main(["recognize", str(img), "--checkpoint", ckpt, "--json", "--allow-unknown"]) == 0  # untrained
    out = json.loads(capsys.readouterr().out)["images"][0]
    assert set(out) == {"path", "known", "objects", "probability", "object_probability", "object_confidence",
                        "similarity"}
    assert main(["recognize", str(img), "--checkpoint", ckpt, "--allow-unknown"]) == 0
    assert "objects (shape colour size x y fill), ordered by position" in capsys.readouterr().out
    assert main(["edit", str(img), "--checkpoint", ckpt, "--set", "colour=red", "--out", str(tmp_path / "e.png")]) == 2
    assert "select what to change with --where" in capsys.readouterr().err
    assert main(["edit", str(img), "--where", "shape=circle", "--where", "shape=star", "--set", "colour=red",
                 "--checkpoint", ckpt, "--out", str(tmp_path / "e.png")]) == 2
    assert "--where: shape is given twice" in capsys.readouterr().err
    # the single-object model refuses object selection
    assert main(["edit", str(img), "--where", "shape=circle", "--set", "colour=red", "--out",
                 str(tmp_path / "f.png")]) == 2
    assert "holds one object an image" in capsys.readouterr().err


def test_the_shipped_multi_object_checkpoint_reads_and_edits_unseen_scenes():
    from vsa_vision.checkpoint import shipped_checkpoints

    assert "multi" in shipped_checkpoints()
    pipe = Pipeline.from_checkpoint("multi", method="brute_force")
    assert isinstance(pipe.model, MultiVSAModel) and pipe.schema.name == "multi"
    schema = pipe.schema
    scenes = sample_scenes(schema, 12, seed=123, split="test")
    recs = pipe.recognize([render_scene(schema, s) for s in scenes])
    assert sum(_key(r.objects) == _key(s) for r, s in zip(recs, scenes)) >= 11
    scene = next(s for s, r in zip(scenes, recs) if _key(r.objects) == _key(s))
    first = pipe.recognize([render_scene(schema, scene)])[0].objects[0]
    colour = "red" if first["colour"] != "red" else "green"
    out = pipe.edit(render_scene(schema, scene), object=0, colour=colour)
    assert _key(out.objects) == _key([dict(o, colour=colour) if o == first else o for o in scene])


def test_cli_demo_shows_the_shipped_multi_object_model(tmp_path, capsys):
    from PIL import Image

    from vsa_vision.cli import main

    out = tmp_path / "demo.png"
    assert main(["demo", "--schema", "multi", "--count", "2", "--method", "brute_force", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2/2 recognised right" in text and text.count("as intended") == 2
    assert Image.open(out).size[0] > 3 * 96
    assert main(["demo", "--schema", "multi", "--checkpoint", "default", "--out", str(out)]) == 2
    assert "the checkpoint's schema is 'default'" in capsys.readouterr().err


def test_the_object_edit_benchmark_counts_edits_and_refusals():
    from vsa_vision import Pipeline
    from vsa_vision.bench.object_edits import object_edit_benchmark

    r = object_edit_benchmark(Pipeline.from_checkpoint("multi", method="brute_force"), scenes=6, seed=11)
    assert r["edits"] + r["refused"] == 6
    assert r["right"] == r["edits"] and r["accuracy"] == 1.0


def test_the_heldout_breakdown_of_sets_counts_objects_and_names_what_was_misread():
    import torch

    from vsa_vision.bench.vision import heldout_objects

    schema = load_schema("multi")
    key = ",".join(f"{k}={v}" for k, v in schema.holdout[0].items())
    held = dict(zip(schema.names, [schema.attributes[k].values[0] for k in range(len(schema.names))]))
    held.update(schema.holdout[0])
    held.update(x="0", y="0")
    other = dict(held, x="2", y="2", **{n: schema.attribute(n).values[1] for n in schema.holdout[0]})
    truth = torch.full((2, 3, len(schema.names)), -1)
    truth[0, :2] = torch.tensor(schema.encode([held, other]))
    truth[1, :1] = torch.tensor(schema.encode([held]))
    wrong = dict(held, colour=next(c for c in schema.attribute("colour").values if c != held["colour"]))
    found = [torch.tensor(schema.encode([held, other])), torch.tensor(schema.encode([wrong]))]
    counts, misread = heldout_objects(schema, truth, found)
    assert counts[key] == (2, 0.5)                     # two objects of the combination, one found
    assert misread[key] == {"colour": 1.0}             # the other read at its place in another colour
    counts, misread = heldout_objects(schema, truth, [found[0], torch.zeros(0, len(schema.names), dtype=torch.long)])
    assert misread[key] == {"place": 1.0}              # nothing decoded at its place
