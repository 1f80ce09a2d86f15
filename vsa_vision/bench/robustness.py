"""Accuracy under the degradations real images carry, every head on the same encoder outputs.

For each corruption of :mod:`vsa_vision.scenes.degrade` and each severity 1..5 (ImageNet-C style)
the same test scenes are degraded, encoded once, and decoded by every head; a row holds the share
of images with every attribute right (for several objects: every object and the count right), the
share the trust rule calls known, the share of the images read right that it calls known (an image
read right should not be abstained on), and the mean calibrated probability where the checkpoint has one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..scenes.dataset import RenderedScenes
from ..scenes.degrade import CORRUPTIONS, corrupt

FIELDS = ["corruption", "severity", "method", "images", "acc_all", "known", "known_right", "mean_probability"]


@torch.inference_mode()
def robustness_benchmark(pipe, methods: Sequence[str], images: int = 500, seed: int = 0,
                         corruptions: Sequence[str] = CORRUPTIONS, severities: Sequence[int] = (1, 2, 3, 4, 5),
                         batch_size: int = 256, log=print) -> list[dict[str, Any]]:
    """Rows of :data:`FIELDS`: clean first (severity 0), then every corruption x severity."""
    from ..trust import assess
    from ..trust_fit import answers_right

    model = pipe.model
    scenes = RenderedScenes(model.schema, images, seed=seed, split="test", cache=True)
    conditions = [("clean", 0)] + [(c, s) for c in corruptions for s in severities]
    rows = []
    for kind, sev in conditions:
        x = scenes._images if kind == "clean" else corrupt(scenes._images, kind, sev, seed=seed + 17 * sev)
        qs = [pipe.encode(x[i:i + batch_size], batch_size=batch_size) for i in range(0, len(x), batch_size)]
        for method in methods:
            hits, known, probs = [], [], []
            for i, q in zip(range(0, len(x), batch_size), qs):
                res = pipe.decode(q, method)
                hits.append(answers_right(res, scenes.indices[i:i + batch_size]))
                judged = assess(model, x[i:i + batch_size], q, res)
                known.append(judged["known"])
                if judged["probability"] is not None:
                    probs.append(judged["probability"])
            hit, kn = torch.cat(hits), torch.cat(known)
            row = {"corruption": kind, "severity": sev, "method": method, "images": len(x),
                   "acc_all": float(hit.float().mean()), "known": float(kn.float().mean()),
                   "known_right": float(kn[hit].float().mean()) if hit.any() else float("nan"),
                   "mean_probability": float(torch.cat(probs).mean()) if probs else float("nan")}
            rows.append(row)
            if log:
                log(f"{kind:>15s} {sev}  {method:>22s}  all right {100 * row['acc_all']:6.2f}%  "
                    f"known {100 * row['known']:6.2f}% (read right: {100 * row['known_right']:6.2f}%)")
    return rows


def robustness_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown: a row per corruption x head, a column per severity (every attribute right, %)."""
    sevs = sorted({r["severity"] for r in rows if r["severity"] > 0})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    clean = {r["method"]: r["acc_all"] for r in rows if r["severity"] == 0}
    lines = ["| corruption | head | clean | " + " | ".join(f"severity {s}" for s in sevs) + " | mean |",
             "| --- | --- | ---: | " + " | ".join("---:" for _ in sevs) + " | ---: |"]
    for kind in dict.fromkeys(r["corruption"] for r in rows if r["severity"] > 0):
        for m in methods:
            vals = {r["severity"]: r["acc_all"] for r in rows if r["corruption"] == kind and r["method"] == m}
            mean = sum(vals.values()) / max(1, len(vals))
            lines.append(f"| {kind} | `{m}` | {100 * clean.get(m, float('nan')):.1f} | "
                         + " | ".join(f"{100 * vals[s]:.1f}" if s in vals else "" for s in sevs)
                         + f" | {100 * mean:.1f} |")
    return "\n".join(lines)
