"""Edits of one attribute of one object in scenes of several objects, with a trained multi model.

For each test scene: a random object (by position), a random attribute and a random other value;
``pipe.edit(image, object=j, attribute=value)`` swaps that object's bound vector in the encoder's
vector and decodes the result. An edit counts when the decoded set equals the intended one; an edit
that would put two objects on one place is refused by design and counted apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..scenes.dataset import RenderedScenes


def _as_set(objects: list[dict[str, str]]) -> list[tuple[tuple[str, str], ...]]:
    """Objects as a sorted list of their (attribute, value) items: equal for the same objects in any order."""
    return sorted(tuple(sorted(o.items())) for o in objects)


def object_edit_benchmark(pipe, scenes: int = 200, seed: int = 11, method: str | None = None) -> dict[str, Any]:
    """``{"edits", "right", "refused", "accuracy"}`` over ``scenes`` test scenes of ``pipe``'s schema."""
    schema = pipe.schema
    data = RenderedScenes(schema, scenes, seed=seed, split="test", cache=True)
    rng = np.random.default_rng(seed)
    right = refused = edits = 0
    for i in range(scenes):
        truth = [schema.decode(r[None])[0] for r in data.indices[i] if bool((r >= 0).all())]  # by position
        j = int(rng.integers(len(truth)))
        k = int(rng.integers(len(schema.names)))
        name = schema.names[k]
        values = [v for v in schema.attributes[k].values if v != truth[j][name]]
        new = values[int(rng.integers(len(values)))]
        intended = [dict(o) for o in truth]
        intended[j][name] = new
        try:
            out = pipe.edit(data._images[i], method=method, object=j, **{name: new})
        except ValueError:  # two objects on one place: refused by design
            refused += 1
            continue
        edits += 1
        right += _as_set(out.objects) == _as_set(intended)
    return {"edits": edits, "right": right, "refused": refused, "accuracy": right / max(1, edits)}
