"""The shipped checkpoint: small, loadable without pickle, and it recognises and edits scenes.

Every test takes the ``shipped`` fixture (tests/conftest.py): the pipeline is loaded once, with
``torch.load`` and ``pickle`` disabled."""

import json
import os
import struct

import numpy as np
import torch

from vsa_vision.checkpoint import default_checkpoint, shipped_checkpoints
from vsa_vision.scenes import default_schema, render_scene, sample_indices


def _scenes(n, seed, split):
    schema = default_schema()
    return schema.decode(sample_indices(schema, n, seed=seed, split=split))


def test_shipped_checkpoint_is_small_and_loads(shipped):
    path = default_checkpoint()
    assert path.endswith(os.path.join("vsa_vision", "checkpoints", "default.safetensors"))  # package data
    assert default_checkpoint("default") == path and "default" in shipped_checkpoints()
    assert os.path.getsize(path) < 20 * 2 ** 20
    with open(path, "rb") as f:  # safetensors: an 8-byte length, a JSON header, raw tensors (no pickle)
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    assert "hparams" in header["__metadata__"]
    record = json.loads(header["__metadata__"]["codebooks"])  # the names and labels it was trained with
    assert record["names"] == list(default_schema().names)
    assert record["labels"] == [list(a.values) for a in default_schema().attributes]
    assert [k for k in header if k.startswith("codebook_")] == [f"codebook_{i}" for i in range(6)]
    # the fixture loaded it with torch.load and pickle disabled
    assert shipped.schema.to_dict() == default_schema().to_dict()
    assert shipped.method == "auto" and shipped.model.hparams.method == "diffusion"
    assert shipped.codebooks.names == shipped.schema.names
    assert shipped.codebooks.sizes == tuple(len(a) for a in shipped.schema.attributes)


def test_recognise_then_rerender_reproduces_the_input(shipped):
    scenes = _scenes(24, seed=123, split="test")
    images = [render_scene(shipped.schema, s) for s in scenes]
    recs = shipped.recognize(images)
    assert len(recs) == 24
    right = [i for i, (r, s) in enumerate(zip(recs, scenes, strict=True)) if r.labels == s]
    assert len(right) >= 23, f"only {len(right)}/24 test scenes recognised"
    for i in right:
        assert np.array_equal(np.asarray(shipped.render(recs[i].labels)), np.asarray(images[i]))
        assert set(recs[i].confidence) == set(shipped.schema.names)
        assert min(recs[i].confidence.values()) > 0.5


def test_edits_decode_to_the_intended_scene(shipped):
    scenes = _scenes(12, seed=7, split="test")
    rng = np.random.default_rng(0)
    ok = 0
    for s in scenes:
        attr = shipped.schema.attributes[int(rng.integers(6))]
        new = attr.values[(attr.values.index(s[attr.name]) + 1) % len(attr)]
        out = shipped.edit(render_scene(shipped.schema, s), **{attr.name: new})
        assert out.changes == {attr.name: new}
        if out.labels == {**s, attr.name: new}:
            ok += 1
            assert out.before.labels == s  # the unedited scene was read correctly first
            assert np.array_equal(np.asarray(out.image), np.asarray(render_scene(shipped.schema, out.labels)))
    assert ok >= 11, f"only {ok}/12 edits decode to the intended scene"


def test_swap_then_swap_back_restores_the_encoder_vector(shipped):
    s = _scenes(1, seed=3, split="test")[0]
    q = shipped.encode([render_scene(shipped.schema, s)])[0]
    there = shipped.swap(q, "colour", "red", old_value=s["colour"])
    if s["colour"] != "red":
        assert not torch.equal(there, q)
        assert shipped.decode(there[None]).labels[0] == {**s, "colour": "red"}
    back = shipped.swap(there, "colour", s["colour"], old_value="red")
    assert torch.equal(back, q)
    assert torch.equal(shipped.swap(q, "shape", s["shape"], old_value=s["shape"]), q)


def test_a_shipped_checkpoint_is_named_by_its_file_name():
    import pytest

    from vsa_vision.checkpoint import CheckpointError, load_model, resolve_checkpoint

    assert resolve_checkpoint("default") == resolve_checkpoint(None) == default_checkpoint()
    with pytest.raises(CheckpointError, match=r"no shipped checkpoint named 'no_such_model'.*shipped: \[.*'default'"):
        load_model("no_such_model")
    with pytest.raises(CheckpointError, match="no such file"):
        load_model("no_such_dir/model.safetensors")


def test_the_shipped_diffusion_head_reads_one_image_in_a_few_iterations(shipped):
    """Sixteen chains with windows of 200 and 300 chain-iterations: the answer of the whole budget in
    tens of iterations, test and held-out images alike (two chains took up to 266 and 350)."""
    head = shipped.model.head("diffusion")
    assert (head.config.chains, head.config.patience, head.config.patience_long) == (16, 13, 19)
    for split in ("test", "heldout"):
        images = [render_scene(default_schema(), s) for s in _scenes(48, 23, split)]
        q = shipped.encode(images)
        res = shipped.decode(q, "diffusion")
        whole = shipped.decode(q, "diffusion:chains=16,patience=None,patience_long=None").indices
        assert torch.equal(res.indices, whole), split
        assert int(res.iterations.max()) <= 60, split  # measured: at most 33 (test) and 47 (held-out) of 2,048
