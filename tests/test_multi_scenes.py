"""Scenes of several objects: the multi schema, drawing object sets, rendering them, datasets."""

import numpy as np
import pytest
import torch

from vsa_vision.scenes import RenderedScenes, Renderer, load_schema, render_scene, sample_scenes
from vsa_vision.scenes.objects import decode_object_sets, object_order, sample_object_sets


@pytest.fixture(scope="module")
def multi():
    return load_schema("multi")


def test_the_multi_schema_has_the_default_attributes_and_room_for_three(multi):
    default = load_schema("default")
    assert multi.names == default.names and multi.max_objects >= 3
    assert [a.values for a in multi.attributes if a.name in ("shape", "colour", "fill")] == \
        [a.values for a in default.attributes if a.name in ("shape", "colour", "fill")]
    # the largest objects at neighbouring grid places do not touch: every scene of distinct places is drawable
    r = Renderer(multi)
    big = max(multi.attributes[multi.by_role("size")].render_params()) * r.size
    spacing = (r.size - 2 * r._margin) / (len(multi.attribute("x")) - 1)
    assert spacing > 2 * big


def test_object_sets_keep_to_their_split_and_never_overlap(multi):
    train = sample_object_sets(multi, 600, seed=0, split="train")
    held = sample_object_sets(multi, 300, seed=0, split="heldout")
    assert train.shape == (600, multi.max_objects, len(multi.sizes))
    counts = (train >= 0).all(-1).sum(1)
    assert set(counts.tolist()) == set(range(1, multi.max_objects + 1))  # 1 .. M objects
    for scenes, heldout in ((train, False), (held, True)):
        for s in scenes:
            objs = s[(s >= 0).all(-1)]
            assert bool(multi.is_held_out(objs).any()) == heldout
            places = {(int(o[3]), int(o[4])) for o in objs}
            assert len(places) == len(objs)  # distinct positions
            assert np.array_equal(objs, objs[object_order(multi, objs)])  # ordered by position
    # seeded and prefix-stable
    assert np.array_equal(sample_object_sets(multi, 100, seed=0, split="train"), train[:100])
    assert not np.array_equal(sample_object_sets(multi, 100, seed=1, split="train"), train[:100])


def test_rendering_draws_every_object_and_refuses_overlap(multi):
    scenes = sample_scenes(multi, 5, seed=2, split="test")
    assert all(isinstance(s, list) and 1 <= len(s) <= 3 for s in scenes)
    one = scenes[0][0]
    alone = np.asarray(render_scene(multi, [one]))
    for scene in scenes:
        img = np.asarray(render_scene(multi, scene))
        assert img.shape == (96, 96, 3)
        # the picture is the union of its objects drawn alone (they never touch)
        parts = [np.asarray(render_scene(multi, [o])).astype(int) for o in scene]
        assert np.array_equal(img.astype(int), np.clip(sum(parts), 0, 255))
    assert alone.any()
    clash = [one, {**scenes[1][0], "x": one["x"], "y": one["y"]}]
    with pytest.raises(ValueError, match="same position"):
        render_scene(multi, clash)
    with pytest.raises(ValueError, match="at most 3"):
        render_scene(multi, [one] * 4)
    assert not np.asarray(render_scene(multi, [])).any()  # an empty scene is black


def test_rendered_datasets_carry_object_slots(multi):
    ds = RenderedScenes(multi, n=12, seed=3, split="val")
    img, labels = ds[0]
    assert img.shape == (3, 96, 96) and img.dtype == torch.uint8
    assert labels.shape == (3, len(multi.sizes)) and labels.dtype == torch.int64
    sets = sample_object_sets(multi, 12, seed=3, split="val")
    assert torch.equal(torch.stack([ds[i][1] for i in range(12)]), torch.from_numpy(sets))
    cached = RenderedScenes(multi, n=12, seed=3, split="val", cache=True)
    assert torch.equal(cached[5][0], ds[5][0])
    assert decode_object_sets(multi, sets[:1])[0] == sample_scenes(multi, 1, seed=3, split="val")[0]


def test_single_object_schemas_are_unchanged():
    default = load_schema("default")
    assert default.max_objects == 1
    with pytest.raises(ValueError, match="one object"):
        render_scene(default, sample_scenes(default, 2, seed=0))
