"""Properties of the schema, the renderer and the sampler over schemas and scenes Hypothesis draws.

Fixed budgets and derandomised draws: the same examples on every run, the whole file in seconds."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vsa_vision.scenes import FILLS, SHAPES, Attribute, Renderer, Schema, default_schema, sample_indices

FAST = settings(max_examples=40, deadline=None, derandomize=True)
COLOURS = ("red", "green", "blue", "white", "yellow", "cyan", "magenta", "orange")


def _labels(prefix, n):
    return tuple(f"{prefix}{i}" for i in range(n))


@st.composite
def schemas(draw, holdout=True):
    """Small schemas: some of the roles, each with a few values, an image side, maybe held-out pairs."""
    roles = draw(st.lists(st.sampled_from(("shape", "colour", "size", "x", "y", "fill")), min_size=1, max_size=6,
                          unique=True))
    attrs = []
    for role in roles:
        if role == "shape":
            values = draw(st.lists(st.sampled_from(SHAPES), min_size=1, max_size=5, unique=True))
        elif role == "colour":
            values = draw(st.lists(st.sampled_from(COLOURS), min_size=1, max_size=5, unique=True))
        elif role == "fill":
            values = draw(st.lists(st.sampled_from(FILLS), min_size=1, max_size=2, unique=True))
        else:
            values = _labels(role, draw(st.integers(1, 6 if role == "size" else 12)))
        attrs.append(Attribute(role, tuple(values)))
    hold = []
    if holdout and len(attrs) >= 2:
        for _ in range(draw(st.integers(0, 3))):
            a, b = draw(st.lists(st.sampled_from(attrs), min_size=2, max_size=2, unique_by=lambda a: a.name))
            hold.append({a.name: draw(st.sampled_from(a.values)), b.name: draw(st.sampled_from(b.values))})
    return Schema(tuple(attrs), name="drawn", image_size=draw(st.sampled_from((32, 48, 64))), holdout=tuple(hold))


@st.composite
def schema_and_scene(draw):
    schema = draw(st.one_of(st.just(default_schema()), schemas()))
    scene = {a.name: draw(st.sampled_from(a.values)) for a in schema.attributes}
    return schema, scene


@FAST
@given(schema_and_scene(), st.integers(0, 2 ** 70), st.sampled_from((0.0, 1.0)), st.sampled_from((0.0, 6.0)))
def test_a_valid_scene_renders_to_the_same_uint8_pixels_and_round_trips(pair, seed, jitter, noise):
    schema, scene = pair
    r = Renderer(schema, jitter=jitter, noise=noise)
    a = np.asarray(r.render(scene, seed=seed))
    b = np.asarray(Renderer(schema, jitter=jitter, noise=noise).render(scene, seed=seed))
    assert a.dtype == np.uint8 and a.shape == (schema.image_size, schema.image_size, 3)
    assert a.tobytes() == b.tobytes()
    assert a.max() > 0  # the object is drawn
    idx = schema.encode(scene)
    assert idx.shape == (1, len(schema.attributes)) and idx.dtype == np.int64
    assert schema.decode(idx) == [scene]
    assert np.array_equal(schema.encode(schema.decode(idx)), idx)


def _bad_scene(kind, schema, scene, junk):
    bad = dict(scene)
    if kind == "unknown attribute":
        bad[junk] = "circle"
        return bad, repr(junk)
    if kind == "unknown value":
        name = schema.names[0]
        bad[name] = junk
        return bad, repr(junk)
    if kind == "missing attribute":
        name = schema.names[-1]
        del bad[name]
        return bad, repr(name)
    if kind == "not a mapping":
        return junk, type(junk).__name__
    return [scene, scene], "list of 2 scenes"


@FAST
@given(schema_and_scene(),
       st.sampled_from(("unknown attribute", "unknown value", "missing attribute", "not a mapping", "a list")),
       st.one_of(st.text(min_size=1, max_size=8), st.integers(), st.floats(allow_nan=False), st.none(),
                 st.lists(st.integers(), max_size=2)))
def test_an_invalid_scene_is_refused_naming_the_problem(pair, kind, junk):
    schema, scene = pair
    names = set(schema.names)
    values = set(schema.attributes[0].values)
    if kind == "unknown attribute" and (not isinstance(junk, (str, int)) or junk in names):
        junk = f"no_such_{junk!r}"
    if kind == "unknown value" and str(junk) in values:
        junk = f"no_such_{junk}"
    if kind == "not a mapping" and isinstance(junk, list):
        junk = 3
    bad, named = _bad_scene(kind, schema, scene, junk)
    with pytest.raises((ValueError, TypeError)) as info:
        Renderer(schema).render(bad)
    assert named in str(info.value), (kind, str(info.value))
    if kind != "a list":
        with pytest.raises((ValueError, TypeError)) as info:
            schema.encode(bad if kind != "not a mapping" else [bad])
        assert named in str(info.value)


def _held(schema):
    """Every combination of a small schema with whether it is held out, by brute force."""
    rows = np.array(list(itertools.product(*(range(n) for n in schema.sizes))), dtype=np.int64)
    return rows, schema.is_held_out(rows)


@FAST
@given(schemas(), st.integers(0, 300), st.integers(0, 2 ** 70), st.sampled_from(("train", "val", "test", "heldout")))
def test_sampling_respects_the_split(schema, n, seed, split):
    rows, held = _held(schema)
    if split == "heldout" and not schema.holdout:
        with pytest.raises(ValueError, match="no held-out combinations"):
            sample_indices(schema, n, seed=seed, split=split)
        return
    if split != "heldout" and held.all() and n:
        with pytest.raises(ValueError, match=f"the '{split}' split is empty"):
            sample_indices(schema, n, seed=seed, split=split)
        return
    got = sample_indices(schema, n, seed=seed, split=split)
    assert got.shape == (n, len(schema.attributes)) and got.dtype == np.int64
    assert (got >= 0).all() and (got < np.asarray(schema.sizes)).all()
    flags = schema.is_held_out(got) if n else np.zeros(0, bool)
    assert flags.all() if split == "heldout" else not flags.any()
    assert np.array_equal(sample_indices(schema, n // 2, seed=seed, split=split), got[: n // 2])  # prefix-stable
