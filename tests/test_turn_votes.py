"""Turn votes: the dense encoder reads the image and its quarter turns, and the views vote on the
attributes a turn keeps (every one but the position and the rotation)."""

import pytest
import torch
import torch.nn.functional as F

from vsa_vision.checkpoint import export_model, load_model
from vsa_vision.encoder import to_float_images
from vsa_vision.multi import MultiVSAModel, rotation_turns
from vsa_vision.scenes import load_schema

from .test_dense import _batch, _drawn, tiny

S = 16  # the clutter canvas: 128 pixels, cells of 8
ROTATION, SHAPE, TABLE = rotation_turns(load_schema("clutter"))


def _cell_features(enc, coords: bool):
    """A stand-in trunk: each cell's mean colour through a fixed projection, and (``coords``) the cell's
    own coordinates, which do not turn with the image. Without them it is exactly equivariant."""
    g = torch.Generator().manual_seed(3)
    W = torch.randn(5 if coords else 3, enc.logits.in_features, generator=g)
    w_p = torch.randn(enc.logits.in_features, generator=g)

    def features(x):
        cells = F.avg_pool2d(x.float(), 8)                                   # [B, 3, 16, 16]
        if coords:
            cells = torch.cat([cells, enc.coords.expand(len(x), -1, -1, -1)], 1)
        z = cells.flatten(2).transpose(1, 2) @ W                               # [B, L, hidden]
        # a presence that differs at every location (the drawn view's only), so that no two tie
        return z, z @ w_p + 0.01 * torch.arange(z.shape[1], dtype=z.dtype)
    return features


def _model(views=4, coords=False):
    torch.manual_seed(0)
    m = tiny(turn_votes=views).eval()
    m.encoder.features = _cell_features(m.encoder, coords)
    return m


def test_the_views_vote_on_every_attribute_but_the_position_and_on_the_rotation_through_the_shape():
    m = tiny()
    names = m.schema.names
    assert [names[k] for k in m.encoder.turn_kept] == ["shape", "colour", "size", "fill"]
    assert m.encoder.turn_rotation == (names.index("rotation"), names.index("shape"))
    assert m.encoder.turn_votes == 1 and m.hparams.turn_votes == 1


def test_the_rotation_table_names_the_value_each_turned_drawing_shows():
    schema = load_schema("clutter")
    assert (ROTATION, SHAPE) == (3, 0) and TABLE.shape == (6, 4, 4)
    for s in range(6):  # (shape, colour, size, rotation, fill, x, y), in the middle of the canvas
        for j in range(4):
            drawn = _drawn([[s, 2, 3, j, 0, 11, 11], [-1] * 7])[0].int()
            turned = [torch.rot90(drawn, t, dims=(-2, -1)) for t in range(4)]
            for t in range(4):
                x, y = 11, 11
                for _ in range(t):
                    x, y = y, 23 - x
                far = [float(((turned[t] - _drawn([[s, 2, 3, r, 0, x, y], [-1] * 7])[0].int()).abs().amax(0) > 48)
                             .float().mean()) for r in range(4)]
                shows = int(TABLE[s, t, j])
                # the closest drawing (PIL fills an edge row apart, so turned drawings differ by a few pixels)
                assert far[shows] == min(far) and far[shows] < 0.006, (schema.attributes[0].values[s], j, t, far)
    square = schema.attributes[0].values.index("square")
    assert TABLE[square].tolist() == [[0, 1, 2, 3]] * 4  # a quarter turn is a whole period of the square


def test_with_a_trunk_that_turns_with_the_image_every_view_agrees_with_the_image_as_drawn():
    images, _ = _batch(6)
    m = _model(1)
    m.encoder.turn_rotation = None  # the stand-in's rotation reads do not turn with the image
    with torch.no_grad():
        q1 = m.encode(images)[0]
        m.set_turn_votes(4)
        q4 = m.encode(images)[0]
    # each view's map is turned back onto the drawn image's locations: a wrong direction would mix cells
    assert torch.allclose(q1, q4, atol=1e-4)


def _quarter_turns(i, j, t):
    """Where a location (row i, column j) of an S x S map lies after t counter-clockwise quarter turns."""
    for _ in range(t):
        i, j = S - 1 - j, i
    return i, j


def test_the_kept_attributes_are_read_from_the_mean_log_probability_of_the_views():
    m = _model(4, coords=True)  # the coordinates do not turn: the views disagree
    enc = m.encoder
    raw, _ = _batch(3, seed=4)
    images = to_float_images(raw)
    with torch.no_grad():
        q = m.encode(raw)[0]
        z0, p0 = enc.features(images)
        views = [enc.features(torch.rot90(images, t, dims=(-2, -1)))[0] for t in range(4)]
        expected = torch.zeros_like(q)
        for b in range(len(images)):
            for loc in p0[b].topk(enc.readout).indices.tolist():
                i, j = divmod(loc, S)
                per_view = []
                for t in range(4):
                    ti, tj = _quarter_turns(i, j, t)
                    per_view.append(enc.factor_logits(views[t][b, ti * S + tj]))
                bound = torch.ones(q.shape[-1])
                reads = {}
                for k in range(len(enc._codebooks)):
                    if k in enc.turn_kept:
                        reads[k] = torch.stack([torch.log_softmax(v[k], -1) for v in per_view]).mean(0).argmax()
                    elif k == ROTATION:  # each view's log-probability of the value it shows for each value
                        shown = TABLE[reads[SHAPE]]                                    # [4, n_rotation]
                        reads[k] = torch.stack([torch.log_softmax(v[k], -1)[shown[t]]
                                                for t, v in enumerate(per_view)]).mean(0).argmax()
                    else:  # position: the image as drawn
                        reads[k] = per_view[0][k].argmax()
                for k, name in enumerate(enc._codebooks):
                    bound = bound * getattr(enc, name)[reads[k]]
                expected[b] += torch.sigmoid(p0[b, loc]) * bound
    assert torch.allclose(q, expected, atol=1e-5)
    m.set_turn_votes(1)
    with torch.no_grad():
        assert not torch.allclose(m.encode(raw)[0], q, atol=1e-3)  # the votes changed reads


def test_training_reads_the_image_as_drawn_only():
    m = _model(4)
    seen = []
    inner = m.encoder.features
    m.encoder.features = lambda x: (seen.append(len(x)), inner(x))[1]
    images, _ = _batch(2)
    m.train()
    m.encode(images)
    m.eval()
    with torch.no_grad():
        m.encode(images)
    assert seen == [2, 8]


def test_turn_votes_are_kept_by_an_exported_model(tmp_path):
    m = tiny().eval()
    m.set_turn_votes(4)
    path = str(tmp_path / "voted.safetensors")
    export_model(m, path)
    back = load_model(path)
    assert back.encoder.turn_votes == 4 and back.hparams.turn_votes == 4
    images, _ = _batch(2)
    with torch.no_grad():
        assert torch.allclose(m(images), back(images), atol=1e-6)


def test_turn_votes_are_refused_where_the_views_cannot_vote():
    with pytest.raises(ValueError, match=r"turn_votes: expected an int in \[1, 4\]"):
        tiny(turn_votes=5)
    with pytest.raises(ValueError, match="turn_votes: expected an int"):
        tiny(turn_votes=0)
    with pytest.raises(ValueError, match="codebook head"):
        tiny(factor_head="tanh", turn_votes=2)
    with pytest.raises(ValueError, match="slots='dense'"):
        tiny(slots="grid", turn_votes=4)
    with pytest.raises(ValueError, match="multiple of 8"):
        MultiVSAModel(schema={"name": "odd", "image_size": 100, "max_objects": 2, "attributes": [
            {"name": "shape", "role": "shape", "values": ["square", "circle"]},
            {"name": "x", "role": "x", "values": ["0", "1", "2", "3"]},
            {"name": "y", "role": "y", "values": ["0", "1", "2", "3"]}]}, dim=64, slots="dense", turn_votes=4)
    m = tiny()
    with pytest.raises(ValueError, match="turn_votes"):
        m.set_turn_votes(7)
    assert m.encoder.turn_votes == 1 and m.hparams.turn_votes == 1  # unchanged by the refusal


def test_a_view_whose_turn_shows_no_value_does_not_vote_on_the_rotation():
    enc = tiny().encoder
    table = torch.arange(4).repeat(6, 4, 1)
    table[1, 1] = torch.tensor([1, 2, 3, 0])
    table[1, 2] = -1  # say the half turn of shape 1 showed no value
    enc.set_turn_rotation(3, 0, table)
    views = torch.randn(4, 1, 2, 4)
    got = enc._voted_rotation(views, torch.tensor([[1, 0]]))
    lp = torch.log_softmax(views, -1)
    shape1 = (lp[0, 0, 0] + lp[1, 0, 0][[1, 2, 3, 0]] + lp[3, 0, 0]) / 3
    shape0 = lp[:, 0, 1].mean(0)
    assert torch.allclose(got[0, 0], shape1) and torch.allclose(got[0, 1], shape0)
    with pytest.raises(ValueError, match="turn rotation table"):
        enc.set_turn_rotation(3, 0, table[:, :3])
    with pytest.raises(ValueError, match="not attributes of 7"):
        enc.set_turn_rotation(9, 0, table)
    with pytest.raises(ValueError, match="turn rotation table"):
        enc.set_turn_rotation(3, 0, torch.full((6, 4, 4), 1))  # the drawn view must show each value as itself
