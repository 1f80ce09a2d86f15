"""The encoder not tied to a grid of slots: per-location heads on a stride-8 map, one bundled vector."""

import numpy as np
import pytest
import torch

from vsa_vision.dense import STRIDE, DenseSlotEncoder
from vsa_vision.multi import MultiVSAModel
from vsa_vision.scenes import RenderedScenes
from vsa_vision.scenes.render import Renderer

from .conftest import fit_steps


def _batch(n=8, seed=0, schema="clutter"):
    ds = RenderedScenes(schema, n=n, seed=seed, split="train")
    return torch.stack([ds[i][0] for i in range(n)]), torch.stack([ds[i][1] for i in range(n)])


def tiny(**kw):
    opts = dict(schema="clutter", slots="dense", dim=256, width=8, slot_hidden=32, iterations=30,
                test_methods=["diffusion"], val_head_cos=None, early_val_method="diffusion",
                heldout_method="diffusion")
    return MultiVSAModel(**{**opts, **kw})


def test_each_object_is_assigned_the_location_of_its_drawn_centre():
    m = tiny()
    enc = m.encoder
    assert isinstance(enc, DenseSlotEncoder) and enc.side == 16 and enc.locations == 256
    _, labels = _batch(16)
    present = (labels >= 0).all(-1)
    slots = enc.slots_of(labels.clamp_min(0))[present]
    centres = Renderer("clutter").centres(labels[present].numpy())           # (x, y) in pixels
    cell = np.floor(centres / STRIDE).astype(int)
    assert slots.tolist() == (cell[:, 1] * 16 + cell[:, 0]).tolist()
    # objects of one scene never share a location (their centres lie at least `spacing` steps apart)
    per_scene = enc.slots_of(labels.clamp_min(0))
    for b in range(16):
        s = per_scene[b][present[b]].tolist()
        assert len(set(s)) == len(s)


@pytest.mark.parametrize("head", ["codebook", "tanh"])
def test_the_output_is_the_gated_bundle_of_the_most_present_locations(head):
    m = tiny(factor_head=head).eval()
    images, _ = _batch(4)
    with torch.no_grad():
        q, (z, p) = m.encode(images)
    assert q.shape == (4, 256) and z.shape == (4, 256, 32) and p.shape == (4, 256)
    top = p.topk(6, dim=-1).indices                                         # readout = max_objects
    manual = torch.stack([(torch.sigmoid(p[b, top[b]])[:, None] * m.encoder.factors(z[b, top[b]]).prod(-2)).sum(0)
                          for b in range(4)])
    assert torch.allclose(q, manual, atol=1e-5)
    # the factor projections cover every attribute, positions included (nothing is fixed per location)
    f = m.encoder.factors(z[:, :2])
    assert f.shape == (4, 2, 7, 256)
    if head == "codebook":
        logits = m.encoder.factor_logits(z[:, :2])[0]
        # in eval mode each factor is the codeword of its most likely value: exact, whatever the certainty
        assert torch.equal(f[:, :, 0], m._codebook(0)[logits.argmax(-1)])
        # in training, the softmax mixture of the codewords (differentiable)
        m.train()
        assert torch.allclose(m.encoder.factors(z[:, :2])[:, :, 0], torch.softmax(logits, -1) @ m._codebook(0),
                              atol=1e-5)


def test_a_tiny_dense_model_learns_where_and_what_the_objects_are():
    torch.manual_seed(0)
    m = tiny()
    images, labels = _batch(8, seed=1)
    losses, cos = fit_steps(m, images, labels, 80)
    assert losses[-1] < 0.5 * losses[0] and float(cos.mean()) > 0.3
    # the most present locations are the objects' centres
    present = (labels >= 0).all(-1)
    with torch.no_grad():
        _, (_, p) = m.encode(images)
    centres = m.encoder.slots_of(labels.clamp_min(0))
    for b in range(8):
        n = int(present[b].sum())
        assert set(p[b].topk(n).indices.tolist()) == set(centres[b][present[b]].tolist())


def test_a_dense_model_saves_and_loads_with_the_same_outputs(tmp_path):
    from vsa_vision.checkpoint import export_model, load_model

    m = tiny().eval()
    path = str(tmp_path / "dense.safetensors")
    export_model(m, path)
    back = load_model(path)
    images, _ = _batch(2)
    with torch.no_grad():
        assert torch.allclose(m(images), back(images), atol=1e-6)
    assert back.hparams.slots == "dense"


def test_any_width_of_location_features_builds():
    m = tiny(slot_hidden=20).eval()  # not a multiple of GroupNorm's 8 groups
    images, _ = _batch(1)
    with torch.no_grad():
        assert m(images).shape == (1, 256)


def test_a_dense_encoder_needs_drawn_positions_and_a_known_slot_kind():
    with pytest.raises(ValueError, match="slots"):
        tiny(slots="attention")
    with pytest.raises(ValueError, match="x / y"):  # refused with the schema: no room for two objects
        MultiVSAModel(schema={"name": "nopos", "image_size": 64, "max_objects": 2, "attributes": [
            {"name": "shape", "role": "shape", "values": ["square", "circle"]},
            {"name": "colour", "role": "colour", "values": ["red", "blue"]}]}, slots="dense", dim=64)


def _drawn(rows):
    return torch.from_numpy(Renderer("clutter").render_objects(rows)).permute(2, 0, 1)[None]


def test_a_quarter_turn_of_a_scene_is_the_scene_drawn_turned():
    from vsa_vision.multi import turned_scenes

    # (shape, colour, size, rotation, fill, x, y): a square and a pentagon turned by 0.25 of its period;
    # a quarter turn is a whole period of the square and 1.25 periods of the pentagon (one step back)
    rows = torch.tensor([[0, 0, 2, 0, 0, 4, 6], [2, 5, 1, 1, 1, 15, 20], [-1] * 7])
    for k in (1, 2, 3):
        img, lab = turned_scenes(_drawn(rows.tolist()), rows[None], torch.tensor([k]), 5, 6, 24)
        expect = rows.clone()
        x, y = rows[:2, 5], rows[:2, 6]
        for _ in range(k):
            x, y = y, 23 - x
        expect[:2, 5], expect[:2, 6] = x, y
        assert torch.equal(lab[0], expect)  # positions moved, the absent object left absent
        def off(labels, img=img):  # share of pixels far from the drawing of ``labels`` (PIL fills an edge row apart)
            return float(((img[0].int() - _drawn(labels.tolist())[0].int()).abs().amax(0) > 48).float().mean())

        turns = []
        for r in range(4):
            expect[1, 3] = r
            turns.append(off(expect))
        assert min(turns) < 0.006 and turns.index(min(turns)) == (1 - k) % 4, (k, turns)  # the pentagon's turn
        expect[1, 3] = (1 - k) % 4
        shifted = expect.clone()
        shifted[0, 5] += 1
        assert off(shifted) > 2 * off(expect)
    untouched, same = turned_scenes(_drawn(rows.tolist()), rows[None], torch.tensor([0]), 5, 6, 24)
    assert torch.equal(untouched, _drawn(rows.tolist())) and torch.equal(same[0], rows)


def test_a_turned_scene_trains_everything_but_its_rotation():
    torch.manual_seed(0)
    m = tiny(scene_turns=0.5)
    images, labels = _batch(4, seed=2)
    q, factors = m.encode(images)
    turned = torch.tensor([True, True, False, False])
    other = labels.clone()
    present = (labels >= 0).all(-1)
    other[..., 3] = torch.where(present, (labels[..., 3] + 1) % 4, -1)  # every rotation label changed
    base, cos = m.loss(q, labels, factors, turned=turned)
    assert cos.shape == (2,)  # the cosine of the scenes as drawn only
    moved = m.loss(q, torch.cat([other[:2], labels[2:]]), factors, turned=turned)[0]
    assert torch.allclose(base, moved)  # the turned scenes' rotations are not in the loss
    assert not torch.allclose(base, m.loss(q, other, factors, turned=turned)[0])  # the others' are
    assert not torch.allclose(base, m.loss(q, torch.cat([other[:2], labels[2:]]), factors)[0])
    # a training step turns about that share of the scenes and learns from them
    losses, _ = fit_steps(m, images, labels, 2)
    assert all(np.isfinite(losses))
    assert torch.isfinite(m.training_step((images, labels), 0))


def test_scene_turns_are_refused_where_a_turn_cannot_keep_the_labels():
    with pytest.raises(ValueError, match="scene_turns"):
        tiny(scene_turns=1.5)
    with pytest.raises(ValueError, match="rotation"):  # grid slots train the rotation in the bundle
        tiny(scene_turns=0.5, slots="grid")
    with pytest.raises(ValueError, match="as many positions"):
        MultiVSAModel(schema={"name": "wide", "image_size": 64, "max_objects": 2, "attributes": [
            {"name": "shape", "role": "shape", "values": ["square", "circle"]},
            {"name": "x", "role": "x", "values": ["0", "1", "2", "3"]},
            {"name": "y", "role": "y", "values": ["0", "1", "2"]}]}, dim=64, scene_turns=0.5)
