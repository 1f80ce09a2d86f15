"""The clutter schema: objects anywhere on a fine grid, turned, overlapping partly, up to six a scene."""

import math

import numpy as np
import pytest

from vsa_vision.scenes import load_schema, render_scene
from vsa_vision.scenes.objects import sample_object_sets
from vsa_vision.scenes.render import Renderer
from vsa_vision.scenes.schema import Schema


def test_the_clutter_schema_is_a_large_space_of_up_to_six_objects():
    s = load_schema("clutter")
    assert s.max_objects >= 6 and s.image_size == 128 and s.spacing > 1
    assert math.prod(s.sizes) >= 1_000_000
    assert s.renderable and s.attribute("rotation").role == "rotation"
    assert Schema.from_dict(s.to_dict()) == s  # spacing travels with the schema


def test_sampled_scenes_keep_their_spacing_and_hold_one_to_six_objects():
    s = load_schema("clutter")
    sets = sample_object_sets(s, 300, seed=4, split="train")
    kx, ky = s.by_role("x"), s.by_role("y")
    counts = (sets >= 0).all(-1).sum(1)
    assert counts.min() == 1 and counts.max() == 6
    for scene in sets:
        objs = scene[(scene >= 0).all(-1)]
        xy = objs[:, [kx, ky]]
        far = np.abs(xy[:, None] - xy[None]).max(-1) + np.eye(len(objs), dtype=int) * 99
        assert far.min() >= s.spacing
    assert not s.is_held_out(sets.reshape(-1, len(s.sizes))[(sets >= 0).all(-1).reshape(-1)]).any()
    close = [(a, b) for scene in sets for a, b in _pairs(scene, kx, ky) if max(abs(a - b)) < 5]
    assert close  # objects closer than their sizes: partial overlaps occur


def _pairs(scene, kx, ky):
    objs = scene[(scene >= 0).all(-1)][:, [kx, ky]]
    return [(objs[i], objs[j]) for i in range(len(objs)) for j in range(i + 1, len(objs))]


def test_every_turn_of_every_shape_is_its_own_picture():
    s = load_schema("clutter")
    r = Renderer(s)
    k = {n: i for i, n in enumerate(s.names)}
    base = np.array([0, 0, 3, 0, 0, 12, 12])  # a huge solid object in the middle
    seen = []
    for shape in range(s.sizes[k["shape"]]):
        for turn in range(s.sizes[k["rotation"]]):
            row = base.copy()
            row[k["shape"]], row[k["rotation"]] = shape, turn
            seen.append(r.render_indices(row).astype(int))
    for i in range(len(seen)):
        for j in range(i + 1, len(seen)):
            assert np.abs(seen[i] - seen[j]).sum() > 2000, (i, j)


def test_a_rotation_refuses_shapes_whose_turns_are_not_unique_and_is_taken_only_when_given():
    attrs = [{"name": "shape", "values": ["circle", "square"]},
             {"name": "turn", "role": "rotation", "values": ["a", "b"]}]
    with pytest.raises(ValueError, match="circle"):
        Schema.from_dict({"attributes": attrs})
    attrs[0]["values"] = ["plus", "cross"]
    with pytest.raises(ValueError, match="turns of one another"):
        Schema.from_dict({"attributes": attrs})
    # a user's column named rotation is data, not the renderer's turn
    own = Schema.from_dict({"attributes": [{"name": "rotation", "values": ["0", "90"]}]})
    assert own.attribute("rotation").role is None


def test_a_spacing_the_grid_cannot_hold_is_refused_at_load():
    d = load_schema("clutter").to_dict()
    with pytest.raises(ValueError, match="cannot fit"):
        Schema.from_dict({**d, "spacing": 12})


def test_average_precision_ranks_by_confidence_and_matches_within_the_threshold():
    from vsa_vision.metrics import average_precision

    truth = [np.array([[0, 1], [2, 3]])]
    pos_t = [np.array([[10.0, 10.0], [40.0, 40.0]])]
    found = [np.array([[5, 5], [0, 1], [2, 3]])]
    pos_f = [np.array([[70.0, 70.0], [10.0, 13.0], [40.0, 40.0]])]
    ap = lambda conf, t=float("inf"): average_precision(found, [np.array(conf)], truth, pos_f, pos_t, [0, 1], t)  # noqa: E731
    assert ap([0.9, 0.8, 0.7]) == pytest.approx(2 / 3)  # the false object ranked first: precision 0, 1/2, 2/3
    assert ap([0.1, 0.8, 0.7]) == pytest.approx(1.0)  # ranked last: every true object found before it
    assert ap([0.1, 0.8, 0.7], 4.0) == pytest.approx(1.0)  # 3 px off: within 4 px
    # not within 2 px: the first-ranked object misses, the second is found (precision 1/2 at recall 1/2)
    assert ap([0.1, 0.8, 0.7], 2.0) == pytest.approx(0.5 * 0.5)
    assert np.isnan(average_precision([], [], [np.zeros((0, 2))], [], [np.zeros((0, 2))], [0, 1]))


def test_detection_ap_of_exact_bundles_of_the_clutter_space_decoded_right_is_one():
    import torch

    from vsa_vision.decompose import bundle_objects, decompose_set
    from vsa_vision.metrics import detection_ap
    from vsa_vision.vsa import Codebooks

    s = load_schema("clutter")
    labels = torch.from_numpy(sample_object_sets(s, 6, seed=2, split="test"))
    cb = Codebooks.random(s.factors(), 1024, seed=0)
    bundles = bundle_objects(cb, [row[(row >= 0).all(-1)] for row in labels])
    res = decompose_set(bundles, cb, method="brute_force", max_objects=s.max_objects)
    assert detection_ap(s, res, labels) == {"inf": 1.0, "4px": 1.0, "2px": 1.0, "1px": 1.0}
    wrong = res.objects[0].clone()
    wrong[:, 0] = (wrong[:, 0] + 1) % s.sizes[0]  # every object of scene 0 in another shape
    res.objects[0] = wrong
    assert detection_ap(s, res, labels)["inf"] < 1.0


def test_moves_and_additions_closer_than_the_spacing_are_refused():
    from vsa_vision.edit_objects import edit_objects
    from vsa_vision.model import schema_codebooks

    schema = load_schema("clutter")
    cb = schema_codebooks(schema, 256)
    o = dict(shape="square", colour="red", size="small", rotation="r0", fill="solid", x="3", y="3")
    scene = [o, dict(o, x="6"), dict(o, x="20", y="20")]
    render_scene(schema, scene)  # three steps apart: a scene of the schema
    objects = cb.indices_of(scene)
    q = cb.bind_indices(objects).sum(0)
    _, after = edit_objects(q, cb, schema, objects, [2], {"x": "9", "y": "3"})  # three from (6, 3): allowed
    assert after[2].tolist() == cb.indices_of([dict(o, x="9", y="3")])[0].tolist()
    with pytest.raises(ValueError, match="closer to the object at .* spacing of 3"):
        edit_objects(q, cb, schema, objects, [2], {"x": "8", "y": "4"})
    with pytest.raises(ValueError, match="spacing of 3"):
        edit_objects(q, cb, schema, objects, [], {}, add=dict(o, x="4", y="5"))
    # a change that moves nothing is not checked: a misread scene is still edited as read
    close = cb.indices_of([o, dict(o, x="4")])
    edit_objects(cb.bind_indices(close).sum(0), cb, schema, close, [0], {"colour": "blue"})
