"""The test report's formatting, and its per-attribute metrics with scikit-learn: confusion matrices
and classification reports (precision, recall, F1 per value) of one head against the truth."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch import Tensor

__all__ = ["attribute_metrics", "format_attribute_metrics", "format_report", "report_json"]


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
