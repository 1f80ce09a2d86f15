"""A model trained on a user's own dataset, measured on that dataset: accuracy per attribute and all
right on its test and heldout splits (with the off-by-one rate and the mean absolute error of ordinal
attributes), how often clean images are called known, and edits of one attribute drawn by whatever
draws the model's edits (its learned decoder, or the user's renderer) and recognised again.

An edit of image ``i``: a random attribute and a random other value; it is *as intended* when the
edited picture, recognised again, reads as the image's true labels with that one value changed.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ..metrics import attribute_metrics
from ..scenes.dataset import SceneShards, dataset_counts
from ..trust_fit import dataset_images

__all__ = ["own_benchmark", "own_table"]


def _split_rows(pipe, data_dir: str, split: str, method: str | None, batch_size: int) -> dict[str, Any]:
    images, truth = dataset_images(data_dir, split, pipe.schema)
    t0 = time.perf_counter()
    recs = pipe.recognize(images, method=method, batch_size=batch_size)
    seconds = time.perf_counter() - t0
    decoded = torch.tensor([r.indices for r in recs])
    right = (decoded == truth).all(1).numpy()
    metrics = attribute_metrics(decoded, truth, pipe.schema.factors(), pipe.schema.ordinal)
    known = np.array([r.known for r in recs])
    return {"split": split, "images": len(truth), "all_right": float(right.mean()),
            "attributes": {n: {k: m[k] for k in ("accuracy", "off_by_one", "mae") if k in m}
                           for n, m in metrics.items()},
            "known": float(known.mean()), "known_when_right": float(known[right].mean()) if right.any() else 0.0,
            "ms_per_image": 1e3 * seconds / len(truth)}


def _edits(pipe, data_dir: str, n: int, seed: int, method: str | None) -> dict[str, Any]:
    ds = SceneShards(data_dir, "test", schema=pipe.schema)
    rng = np.random.default_rng(seed)
    schema = pipe.schema
    rows = rng.choice(len(ds), size=min(n, len(ds)), replace=False)
    right, by_attr, drawn_by = 0, {a: [0, 0] for a in schema.names}, set()
    for i in rows:
        image, labels = ds[int(i)]
        truth = schema.decode(labels.numpy())[0]
        k = int(rng.integers(len(schema.names)))
        name = schema.names[k]
        new = str(rng.choice([v for v in schema.attributes[k].values if v != truth[name]]))
        out = pipe.edit(image, method=method, **{name: new})
        drawn_by.add(out.drawn_by)
        again = pipe.recognize(out.image, method=method)[0].labels
        ok = again == {**truth, name: new}
        right += ok
        by_attr[name][0] += ok
        by_attr[name][1] += 1
    return {"edits": len(rows), "as_intended": right / max(1, len(rows)), "drawn_by": sorted(drawn_by),
            "by_attribute": {a: (r / t if t else None) for a, (r, t) in by_attr.items()}}


def own_benchmark(pipe, data_dir: str, edits: int = 200, seed: int = 0, method: str | None = None,
                  batch_size: int = 256) -> dict[str, Any]:
    """``{"splits": [per split], "edits": {...}}`` of ``pipe`` on the dataset in ``data_dir``."""
    counts = dataset_counts(data_dir)
    splits = [_split_rows(pipe, data_dir, s, method, batch_size) for s in ("test", "heldout") if counts[s]]
    out: dict[str, Any] = {"method": method or pipe.method, "splits": splits}
    if edits and counts["test"]:
        out["edits"] = _edits(pipe, data_dir, edits, seed, method)
    return out


def own_table(report: dict[str, Any]) -> str:
    """The report as Markdown: a row per split (all right, each attribute, known), then the edits."""
    names = list(report["splits"][0]["attributes"]) if report["splits"] else []
    lines = ["| split | images | all right | " + " | ".join(names) + " | known | known when right | ms / image |",
             "| --- | ---: | ---: | " + " | ".join("---:" for _ in names) + " | ---: | ---: | ---: |"]
    for r in report["splits"]:
        cells = []
        for n in names:
            a = r["attributes"][n]
            cells.append(f"{100 * a['accuracy']:.1f}" + (f" ({a['mae']:.3f})" if "mae" in a else ""))
        lines.append(f"| {r['split']} | {r['images']} | {100 * r['all_right']:.2f}% | " + " | ".join(cells)
                     + f" | {100 * r['known']:.1f}% | {100 * r['known_when_right']:.1f}% | {r['ms_per_image']:.2f} |")
    e = report.get("edits")
    if e:
        lines += ["", f"edits of one attribute, drawn by {', '.join(e['drawn_by'])} and recognised again: "
                      f"{100 * e['as_intended']:.1f}% as intended ({e['edits']} edits; by attribute: "
                      + ", ".join(f"{a} {100 * v:.0f}%" for a, v in e["by_attribute"].items() if v is not None) + ")"]
    lines.append("")
    lines.append("accuracy per attribute in %, (mean absolute error in steps) for ordinal attributes")
    return "\n".join(lines)
