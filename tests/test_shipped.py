"""The shipped checkpoint: small, loadable without pickle, and it recognises and edits scenes."""

import os

import numpy as np
import torch

from vsa_vision import Pipeline
from vsa_vision.checkpoint import default_checkpoint
from vsa_vision.scenes import default_schema, render_scene, sample_indices


def _scenes(n, seed, split):
    schema = default_schema()
    return schema.decode(sample_indices(schema, n, seed=seed, split=split))


def test_shipped_checkpoint_is_small_and_loads():
    path = default_checkpoint()
    assert path.endswith("checkpoints/default.safetensors")
    assert os.path.getsize(path) < 20 * 2 ** 20
    pipe = Pipeline.from_checkpoint()
    assert pipe.schema.to_dict() == default_schema().to_dict()
    assert pipe.method == "diffusion"


def test_recognise_then_rerender_reproduces_the_input():
    pipe = Pipeline.from_checkpoint()
    scenes = _scenes(24, seed=123, split="test")
    images = [render_scene(pipe.schema, s) for s in scenes]
    recs = pipe.recognize(images)
    right = [i for i, (r, s) in enumerate(zip(recs, scenes)) if r.labels == s]
    assert len(right) >= 23, f"only {len(right)}/24 test scenes recognised"
    for i in right:
        assert np.array_equal(np.asarray(pipe.render(recs[i].labels)), np.asarray(images[i]))
        assert min(recs[i].confidence.values()) > 0.5


def test_edits_decode_to_the_intended_scene():
    pipe = Pipeline.from_checkpoint()
    scenes = _scenes(12, seed=7, split="test")
    rng = np.random.default_rng(0)
    ok = 0
    for s in scenes:
        attr = pipe.schema.attributes[int(rng.integers(6))]
        new = attr.values[(attr.values.index(s[attr.name]) + 1) % len(attr)]
        out = pipe.edit(render_scene(pipe.schema, s), **{attr.name: new})
        ok += out.labels == {**s, attr.name: new}
        if out.labels == {**s, attr.name: new}:
            assert np.array_equal(np.asarray(out.image), np.asarray(render_scene(pipe.schema, out.labels)))
    assert ok >= 11


def test_swap_then_swap_back_restores_the_encoder_vector():
    pipe = Pipeline.from_checkpoint()
    s = _scenes(1, seed=3, split="test")[0]
    q = pipe.encode([render_scene(pipe.schema, s)])[0]
    there = pipe.swap(q, "colour", "red", old_value=s["colour"])
    back = pipe.swap(there, "colour", s["colour"], old_value="red")
    assert torch.equal(back, q)
    assert torch.equal(pipe.swap(q, "shape", s["shape"], old_value=s["shape"]), q)
