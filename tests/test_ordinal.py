"""Ordinal attributes in training: soft targets (vsa_vision.losses) and the position head (ordinal_head="position")."""

import pytest
import torch
import torch.nn.functional as F

from vsa_vision.losses import factor_loss, ordinal_targets
from vsa_vision.model import VSAModel
from vsa_vision.vsa import Codebooks


def test_ordinal_targets_peak_at_the_label_and_fall_with_distance():
    t = ordinal_targets(torch.tensor([0, 2, 3]), 4, sigma=1.0)
    assert torch.allclose(t.sum(-1), torch.ones(3))
    assert t.argmax(-1).tolist() == [0, 2, 3]
    assert t[1, 1] == pytest.approx(float(t[1, 3]))  # symmetric around the label
    assert t[1, 1] > t[1, 0] and t[0, 1] > t[0, 2] > t[0, 3]
    sharp = ordinal_targets(torch.tensor([1]), 4, sigma=0.1)
    assert float(sharp[0, 1]) > 0.999  # a narrow width is the hard label
    with pytest.raises(ValueError, match="sigma"):
        ordinal_targets(torch.tensor([1]), 4, sigma=0.0)


def _codebook_problem(sigma):
    C = Codebooks.random({"v": 5}, dim=4096, seed=0).tensors[0]
    label = torch.tensor([[2]])
    near, far = C[1][None, None], C[4][None, None]  # a neighbour of the true value, and a value two steps off
    return [float(factor_loss(f, label, [C], temperature=16.0, sigmas=[sigma])) for f in (near, far)]


def test_soft_targets_make_a_near_miss_cheaper_than_a_far_one():
    near, far = _codebook_problem(sigma=1.0)
    assert near < far - 1.0
    near_hard, far_hard = _codebook_problem(sigma=0.0)  # hard labels: every wrong value costs the same
    assert near_hard == pytest.approx(far_hard, rel=0.05)


def test_hard_labels_are_the_plain_cross_entropy():
    C = Codebooks.random({"v": 3}, dim=128, seed=1).tensors[0]
    f, y = torch.randn(4, 1, 128), torch.tensor([[0], [1], [2], [1]])
    logits = 16.0 * F.normalize(f[:, 0], dim=-1) @ C.T / 128 ** 0.5
    assert float(factor_loss(f, y, [C], 16.0)) == pytest.approx(float(F.cross_entropy(logits, y[:, 0])), rel=1e-5)


def test_the_model_smooths_only_its_ordinal_attributes():
    schema = {"name": "tiny", "image_size": 32, "attributes": [
        {"name": "kind", "values": ["a", "b", "c", "d"]},
        {"name": "level", "values": ["l0", "l1", "l2", "l3"], "ordinal": True}]}
    model = VSAModel(schema=schema, dim=128, width=8, features=32, ordinal_smoothing=1.0)
    C = [model._codebook(k) for k in range(2)]
    y = torch.tensor([[1, 1]])
    exact = torch.stack([C[0][1], C[1][1]])[None]
    for k, wrong in ((0, 2), (1, 2)):  # one step off on the nominal and on the ordinal attribute
        f = exact.clone()
        f[0, k] = C[k][wrong]
        cost = float(model._factor_loss(f, y, contrastive=True)) - float(model._factor_loss(exact, y, contrastive=True))
        if k == 0:
            nominal = cost
        else:
            ordinal = cost
    assert ordinal < nominal / 2  # a neighbouring level is a near miss; another kind is simply wrong
    assert float(model._factor_loss(exact, y, contrastive=True, smooth=False)) < float(
        model._factor_loss(exact, y, contrastive=True))  # the hard labels reward the exact answer fully
    with pytest.raises(ValueError, match="ordinal_smoothing"):
        VSAModel(schema=schema, dim=128, width=8, features=32, ordinal_smoothing=-1.0)


# -- the position head ---------------------------------------------------------------------------------


def test_a_position_reads_the_codewords_interpolated_there():
    from vsa_vision.encoder import FactorisedHead

    C = Codebooks.random({"v": 4}, dim=64, seed=2).tensors[0]
    head = FactorisedHead(8, 64, 2, levels=[None, C])
    assert head.ordinal == [1]
    h = torch.zeros(3, 8)
    with torch.no_grad():
        head.position.weight.zero_()
        for r, want in ((2.0, C[2]), (1.5, (C[1] + C[2]) / 2), (3.0, C[3])):
            head.position.bias.fill_(float(torch.logit(torch.tensor(r / 3.0))))  # span 3 steps
            f = head.factors(h)
            assert torch.allclose(head.positions(h), torch.full((3, 1), r), atol=1e-5)
            assert torch.allclose(f[:, 1], want.expand(3, -1), atol=1e-5)
        assert torch.equal(f[:, 0], torch.tanh(head.proj(h)).view(3, 2, 64)[:, 0])  # the nominal factor as before
    with pytest.raises(ValueError, match="levels"):
        FactorisedHead(8, 64, 2, levels=[C])


def test_the_position_head_learns_and_travels_with_the_checkpoint(tmp_path):
    from vsa_vision.checkpoint import export_model, load_model

    schema = {"name": "tiny", "image_size": 32, "attributes": [
        {"name": "kind", "values": ["a", "b", "c"]},
        {"name": "level", "values": ["l0", "l1", "l2", "l3"], "ordinal": True}]}
    torch.manual_seed(0)
    model = VSAModel(schema=schema, dim=256, width=8, features=32, ordinal_head="position", lr=3e-3)
    assert model.encoder.head.ordinal == [1]
    labels = torch.tensor([[i % 3, i % 4] for i in range(8)])
    images = 0.1 * torch.rand(8, 3, 32, 32)
    for i, level in enumerate(labels[:, 1].tolist()):  # a patch further right: a higher level
        images[i, :, 12:20, 2 + 6 * level:10 + 6 * level] = 1.0
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    errors = []
    for _ in range(60):
        q, factors, positions = model.encode(images, positions=True)
        loss, _ = model.loss(q, labels, factors, positions)
        errors.append(float((positions[:, 0] - labels[:, 1]).abs().mean()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert errors[-1] < errors[0] / 3  # the positions move to their labels
    model.eval()
    loaded = load_model(export_model(model, tmp_path / "m.safetensors"))
    assert loaded.hparams.ordinal_head == "position"
    assert torch.equal(loaded(images), model(images))
    with pytest.raises(ValueError, match="ordinal_head"):
        VSAModel(schema=schema, dim=256, width=8, features=32, ordinal_head="regression")
