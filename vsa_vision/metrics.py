"""The test report's formatting, and its per-attribute metrics with scikit-learn: confusion matrices
and classification reports (precision, recall, F1 per value) of one head against the truth."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch import Tensor

__all__ = ["attribute_metrics", "format_attribute_metrics", "format_report", "report_json", "average_precision",
           "detection_ap"]


def attribute_metrics(decoded: Tensor, truth: Tensor, factors: Mapping[str, Sequence[str]],
                      ordinal: Sequence[bool] | None = None) -> dict[str, Any]:
    """Per attribute ``{"confusion": [[...]], "report": classification_report dict, "macro_f1",
    "accuracy"}`` for decoded and true value indices ``[N, K]`` (rows: true value, columns: decoded).
    An ordinal attribute (``ordinal[k]``: its values are ordered steps) also gets ``"off_by_one"``
    (the share of answers exactly one step from the truth), ``"within_one"`` (right or one step off)
    and ``"mae"`` (the mean absolute error in steps)."""
    from sklearn.metrics import classification_report, confusion_matrix

    decoded, truth = np.asarray(decoded.cpu()), np.asarray(truth.cpu())
    ordinal = list(ordinal) if ordinal is not None else [False] * len(factors)
    out = {}
    for k, (name, values) in enumerate(factors.items()):
        labels = list(range(len(values)))
        report = classification_report(truth[:, k], decoded[:, k], labels=labels, target_names=list(values),
                                       output_dict=True, zero_division=0)
        out[name] = {"confusion": confusion_matrix(truth[:, k], decoded[:, k], labels=labels).tolist(),
                     "report": report, "macro_f1": float(report["macro avg"]["f1-score"]),
                     "accuracy": float((truth[:, k] == decoded[:, k]).mean())}
        if ordinal[k]:
            err = np.abs(truth[:, k] - decoded[:, k])
            out[name].update({"off_by_one": float((err == 1).mean()), "within_one": float((err <= 1).mean()),
                              "mae": float(err.mean())})
    return out


def format_attribute_metrics(metrics: Mapping[str, Any], split: str, method: str) -> str:
    """A Markdown table: per attribute, accuracy, macro F1 and the most frequent confusion."""
    lines = [f"per attribute, {split}, `{method}`:", "",
             "| attribute | accuracy | macro F1 | off by one | mean abs. error (steps) | most frequent confusion "
             "(true -> decoded: count) |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]
    for name, m in metrics.items():
        conf = np.array(m["confusion"])
        off = conf - np.diag(np.diag(conf))
        values = [v for v in m["report"] if v not in ("accuracy", "macro avg", "weighted avg")]
        worst = "none"
        if off.sum():
            i, j = np.unravel_index(off.argmax(), off.shape)
            worst = f"{values[i]} -> {values[j]}: {off[i, j]}"
        ordinal = f"{100 * m['off_by_one']:.2f}% | {m['mae']:.4f}" if "mae" in m else "- | -"
        lines.append(f"| {name} | {100 * m['accuracy']:.2f}% | {m['macro_f1']:.4f} | {ordinal} | {worst} |")
    return "\n".join(lines)


def format_report(report: Mapping[str, Any]) -> str:
    """The test report as a Markdown table: one row per split x head."""
    if any("acc_count" in row for methods in report["splits"].values() for row in methods.values()):
        return _format_set_report(report)
    factors = None
    lines = []
    for split, methods in report["splits"].items():
        for method, row in methods.items():
            if factors is None:
                factors = list(row["acc"])
                lines.append("| split | head | images | all attributes | " + " | ".join(factors)
                             + " | mean cos | decode ms/image |")
                lines.append("| --- | --- | ---: | ---: | " + " | ".join("---:" for _ in factors) + " | ---: | ---: |")
            lines.append(f"| {split} | {method} | {row['images']} | {100 * row['acc_all']:.2f}% | "
                         + " | ".join(f"{100 * row['acc'][f]:.2f}" for f in factors)
                         + f" | {row['mean_cos']:.3f} | {row['decode_ms_per_image']:.2f} |")
    for split, methods in report.get("attributes", {}).items():
        for method, metrics in methods.items():
            lines += ["", format_attribute_metrics(metrics, split, method)]
    return "\n".join(lines)


def _format_set_report(report: Mapping[str, Any]) -> str:
    """The test report of a model of several objects: scenes with every object right, by count."""
    counts = sorted({m for methods in report["splits"].values() for row in methods.values()
                     for m in row["acc_by_objects"]}, key=int)
    lines = ["| split | head | images | every object right | count right | "
             + " | ".join(f"{m} object{'s' if m != '1' else ''}" for m in counts) + " | mean cos | decode ms/image |",
             "| --- | --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in counts) + " | ---: | ---: |"]
    for split, methods in report["splits"].items():
        for method, row in methods.items():
            by = [f"{100 * row['acc_by_objects'][m]:.2f}" if m in row["acc_by_objects"] else "" for m in counts]
            lines.append(f"| {split} | {method} | {row['images']} | {100 * row['acc_all']:.2f}% | "
                         f"{100 * row['acc_count']:.2f}% | " + " | ".join(by)
                         + f" | {row['mean_cos']:.3f} | {row['decode_ms_per_image']:.2f} |")
    return "\n".join(lines)


def report_json(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=2) + "\n"


def average_precision(found: Sequence[np.ndarray], confidence: Sequence[np.ndarray], truth: Sequence[np.ndarray],
                      positions_found: Sequence[np.ndarray], positions_true: Sequence[np.ndarray],
                      others: Sequence[int], threshold: float = float("inf")) -> float:
    """Average precision of object detection, as the object-centric literature reports property
    prediction (Locatello et al., 2020): every found object of every scene, ranked by ``confidence``
    across the data, is a hit when a true object of its scene not yet matched has every attribute in
    ``others`` equal and lies within ``threshold`` pixels (Euclidean, between ``positions_*``
    ``[m, 2]``); AP is the area under the precision envelope over recall. Per scene: ``found`` /
    ``truth`` ``[m, K]`` value indices, ``confidence`` ``[m]``."""
    n_true = sum(len(t) for t in truth)
    if n_true == 0:
        return float("nan")
    scored = [(float(c), i, j) for i, conf in enumerate(confidence) for j, c in enumerate(np.asarray(conf))]
    scored.sort(key=lambda t: -t[0])
    taken = [np.zeros(len(t), dtype=bool) for t in truth]
    hits = np.zeros(len(scored), dtype=bool)
    cols = list(others)
    for rank, (_, i, j) in enumerate(scored):
        if not len(truth[i]):
            continue
        same = (np.asarray(truth[i])[:, cols] == np.asarray(found[i])[j, cols]).all(1) & ~taken[i]
        dist = np.linalg.norm(np.asarray(positions_true[i]) - np.asarray(positions_found[i])[j], axis=1)
        ok = np.nonzero(same & (dist <= threshold))[0]
        if len(ok):
            taken[i][ok[np.argmin(dist[ok])]] = True
            hits[rank] = True
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, len(hits) + 1) if len(hits) else np.zeros(0)
    recall = tp / n_true
    # the envelope: at each recall, the best precision at that recall or beyond
    p = np.concatenate([[0.0], precision, [0.0]])
    r = np.concatenate([[0.0], recall, [recall[-1] if len(recall) else 0.0]])
    for k in range(len(p) - 2, -1, -1):
        p[k] = max(p[k], p[k + 1])
    steps = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def detection_ap(schema: Any, res: Any, labels: Tensor, thresholds: Sequence[float] = (float("inf"), 4.0, 2.0, 1.0)
                 ) -> dict[str, float]:
    """AP of a set decomposition (:class:`~vsa_vision.decompose.SetDecomposition`) against object
    slots ``labels`` ``[B, M, K]`` (absent slots -1) at each position ``threshold`` in pixels: the
    attributes other than ``x`` / ``y`` must be equal, the position within the threshold (infinite:
    position ignored), objects ranked by their confidence."""
    lab = np.asarray(labels.cpu())
    truth = [row[(row >= 0).all(-1)] for row in lab]
    found = [np.asarray(o.cpu()) for o in res.objects]
    conf = [np.asarray(c.detach().cpu(), dtype=np.float64) for c in res.confidence]
    pos = {k for k in (schema.by_role("x"), schema.by_role("y")) if k is not None}
    others = [k for k in range(len(schema.sizes)) if k not in pos]
    from .scenes.render import Renderer

    renderer = Renderer(schema, supersample=1)  # where the renderer draws each object's centre
    pf, pt = [renderer.centres(f) for f in found], [renderer.centres(t) for t in truth]
    return {("inf" if t == float("inf") else f"{t:g}px"): average_precision(found, conf, truth, pf, pt, others, t)
            for t in thresholds}
