"""The model for scenes of several objects: slots on the position grid, one bundled output vector,
sets decoded by explaining away, trained by the same Lightning machinery."""

import os

import pytest
import torch

from vsa_vision.encoder import _object_masks_cpu, _object_masks_flood, object_masks
from vsa_vision.multi import MultiVSAModel, set_hits
from vsa_vision.scenes import RenderedScenes

from .conftest import fit_steps


def _batch(n=16, seed=0):
    ds = RenderedScenes("multi", n=n, seed=seed, split="train")
    return torch.stack([ds[i][0] for i in range(n)]), torch.stack([ds[i][1] for i in range(n)])


def tiny(**kw):
    opts = dict(dim=256, width=8, features=32, slot_hidden=32, iterations=30, test_methods=["brute_force"])
    return MultiVSAModel(**{**opts, **kw})


def test_the_fast_masks_equal_the_flood_fill():
    images, _ = _batch(24)
    x = images.float() / 255
    clutter = torch.rand(8, 3, 40, 40) * (torch.rand(8, 1, 40, 40) > 0.5)  # holes of every shape
    for imgs in (x, clutter):
        fg = imgs.amax(1, keepdim=True) > 0.1
        fast, flood = _object_masks_cpu(fg, imgs.dtype), _object_masks_flood(fg, imgs.dtype)
        assert all(torch.equal(a, b) for a, b in zip(fast, flood))
        assert all(torch.equal(a, b) for a, b in zip(object_masks(imgs), flood))


def test_slots_follow_the_grid_and_the_output_is_the_gated_bundle():
    m = tiny()
    images, labels = _batch()
    q, (f, p) = m.encode(images)
    assert q.shape == (16, 256) and f.shape == (16, 16, 6, 256) and p.shape == (16, 16)  # 4 x 4 cells
    assert torch.allclose(q, (torch.sigmoid(p)[..., None] * f.prod(-2)).sum(1), atol=1e-5)
    # each object's slot is its cell; the targets are the bundles of the present objects
    cells = m.encoder.cells(labels.clamp_min(0))
    present = (labels >= 0).all(-1)
    for b in range(16):
        objs = labels[b][present[b]]
        assert sorted(cells[b][present[b]].tolist()) == sorted((objs[:, 4] * 4 + objs[:, 3]).tolist())
    t = m.targets(labels)
    bundle = torch.stack([m.codebooks.bind_indices(labels[b][present[b]]).sum(0) for b in range(16)])
    assert torch.allclose(t, bundle)
    # the exact targets decode to every object (the head reads only the vector)
    sets, counts = set_hits(m.decode(t, "brute_force"), labels)
    assert bool(sets.all()) and bool(counts.all())


def test_a_tiny_model_learns_a_few_scenes():
    torch.manual_seed(0)
    m = tiny(lr=3e-3)
    images, labels = _batch(8, seed=1)
    losses, cos = fit_steps(m, images, labels, 60)
    assert losses[-1] < 0.5 * losses[0] and float(cos.mean()) > 0.3


@pytest.mark.slow
def test_train_py_trains_and_reports_sets_on_the_multi_schema(tmp_path, monkeypatch):
    from vsa_vision.checkpoint import export_model, load_model
    from vsa_vision.training import cli_main

    monkeypatch.chdir(tmp_path)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cli = cli_main(["fit", "--config", os.path.join(root, "configs", "multi.yaml"), "--trainer.fast_dev_run", "2",
                    "--trainer.enable_progress_bar", "false", "--data.train_size", "32", "--data.val_size", "8",
                    "--data.test_size", "8", "--data.heldout_size", "8", "--data.val_heldout_size", "8",
                    "--data.batch_size", "8", "--model.dim", "256", "--model.width", "8", "--model.features", "32",
                    "--model.slot_hidden", "16", "--model.iterations", "5"])
    assert isinstance(cli.model, MultiVSAModel)
    report = cli.model.test_report
    row = report["splits"]["test"]["diffusion"]
    assert set(row) >= {"acc_all", "acc_count", "acc_by_objects", "mean_cos"} and row["images"] == 8
    # exported and loaded back as the model of its schema
    path = export_model(cli.model, str(tmp_path / "multi.safetensors"))
    again = load_model(path)
    assert isinstance(again, MultiVSAModel)
    images, _ = _batch(4)
    assert torch.allclose(again(images), cli.model.cpu().eval()(images), atol=1e-5)
