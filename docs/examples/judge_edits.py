"""Judge edits of a model trained on the sprites of make_sprites.py without the model's own encoder.

Each edit (a test image, one attribute set to another value, drawn by whatever draws the model's
edits) is compared by pixels with make_sprites.render's drawings of the intended labels and of every
labelling one attribute away from them, four draws each (their jitter included), after a 5-tap
blur; the edit counts as right when the intended labels' drawings are, on average, the nearest. The
same judge applied to the renderer's own fresh drawings of the intended labels gives its ceiling
(the jitter inside a bucket sometimes lands nearer a neighbour).

    python docs/examples/judge_edits.py CHECKPOINT DATASET [EDITS] [--renderer]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_sprites  # noqa: E402  (the sibling script: the sprites' own renderer)


def _blurred(images: torch.Tensor) -> torch.Tensor:
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    k = (k[:, None] * k[None]) / 256
    return F.conv2d(images, k.expand(3, 1, 5, 5), padding=2, groups=3)


def _tensor(image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)


def judge(checkpoint: str, dataset: str, edits: int = 300, seed: int = 0, renderer: bool = False) -> dict:
    """``{"right": fraction, "by_attribute": {edited attribute: fraction}}`` over ``edits`` edits."""
    from vsa_vision import Pipeline
    from vsa_vision.scenes import SceneShards

    pipe = Pipeline.from_checkpoint(checkpoint)
    schema = pipe.schema
    test = SceneShards(dataset, "test", schema=schema)
    rng = np.random.default_rng(seed)
    tally = {a: [0, 0] for a in schema.names}
    for j, i in enumerate(rng.choice(len(test), size=min(edits, len(test)), replace=False)):
        image, labels = test[int(i)]
        truth = schema.decode(labels.numpy())[0]
        k = int(rng.integers(len(schema.names)))
        name = schema.names[k]
        new = str(rng.choice([v for v in schema.attributes[k].values if v != truth[name]]))
        want = {**truth, name: new}
        drawn = make_sprites.render(want, seed=10_000 + j) if renderer else pipe.edit(image, **{name: new}).image
        candidates = [want] + [{**want, a: v} for a in schema.names
                               for v in schema.attributes[schema.names.index(a)].values if v != want[a]]
        drawings = torch.stack([_tensor(make_sprites.render(c, seed=r)) for c in candidates for r in range(4)])
        distance = (_blurred(drawings) - _blurred(_tensor(drawn)[None])).abs().flatten(1).mean(1)
        ok = int(distance.view(len(candidates), 4).mean(1).argmin()) == 0
        tally[name][0] += ok
        tally[name][1] += 1
    done = sum(t for _, t in tally.values())
    return {"right": sum(r for r, _ in tally.values()) / max(1, done),
            "by_attribute": {a: r / t for a, (r, t) in tally.items() if t}}


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--renderer"]
    if len(args) < 2:
        sys.exit(__doc__)
    report = judge(args[0], args[1], int(args[2]) if len(args) > 2 else 300, renderer="--renderer" in sys.argv)
    print(f"nearest drawing of the intended labels: {report['right']:.1%}",
          {a: round(v, 2) for a, v in report["by_attribute"].items()})
