"""Latency of recognition and editing one image at a time, per head, on a trained model.

For every head on the same rendered images (test and held-out splits): the decode alone at batch 1
(median, 99th percentile and slowest image, in ms) and at ``batch`` images (ms an image), one
image's whole ``recognize`` (encoder, head, the answer's check) and ``edit`` (recognise, swap one
attribute, decode, draw), the share of images read right, and the encoder's own time for one image
(the unit of "no image slower than 10 encoder forwards"). An iterative head is also run without its
patience and give-up rules (``patience=None,patience_long=None,give_up=None``) on the same vectors:
``same_as_full`` is the share of images that get the answer of the whole budget.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..decompose import parse_method
from ..scenes import Renderer, sample_indices
from .vision import rendered

FIELDS = ["model", "method", "split", "images", "right", "same_as_full", "decode_p50_ms", "decode_p99_ms",
          "decode_max_ms", "decode_batch_ms_per_image", "recognize_p50_ms", "recognize_p99_ms", "edit_p50_ms",
          "edit_p99_ms", "encoder_ms", "slowest_in_encoder_forwards"]


def _images(pipe, images: int, seed: int, split: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Rendered images ``uint8 [N, 3, S, S]`` of ``split`` and each image's objects ``[m, K]``."""
    schema = pipe.schema
    if schema.max_objects > 1:
        from ..scenes.objects import sample_object_sets

        truth = torch.from_numpy(sample_object_sets(schema, images, seed=seed, split=split))
        objects = [t[(t >= 0).all(-1)] for t in truth]
    else:
        truth = torch.from_numpy(sample_indices(schema, images, seed=seed, split=split))
        objects = [t[None] for t in truth]
    return rendered(Renderer(schema), truth), objects


def _timed(fn, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``fn(*args, **kwargs)`` and the milliseconds it took."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, 1e3 * (time.perf_counter() - t0)


def _sets(result, n: int) -> list[set[tuple[int, ...]]]:
    """Each image's decoded objects as a set of index tuples (one object for a one-object model)."""
    if hasattr(result, "objects"):
        return [{tuple(map(int, o)) for o in objs} for objs in result.objects]
    return [{tuple(map(int, row))} for row in result.indices[:n]]


def _full_budget(method: str, own: dict[str, Any] | None = None) -> str | None:
    """The spec of ``method`` (with ``own``, the model's options for its own method) with its patience and
    give-up rules off, or None for a head without them."""
    name, opts = parse_method(method)
    if name != "diffusion":  # the one head whose patience rule is on by default
        return None
    opts = {**(own or {}), **opts, "patience": None, "patience_long": None, "give_up": None}
    extra = ",".join(f"{k}={v}" for k, v in opts.items())
    return f"{name}:{extra}"


def _edit_change(pipe, rec) -> dict[str, Any]:
    """One change to the image ``rec`` describes: its first attribute with more than one value, set to
    another value (for a model of several objects, of its first object; the position is kept)."""
    schema = pipe.schema
    labels = rec.objects[0] if schema.max_objects > 1 else rec.labels
    position = {schema.by_role("x"), schema.by_role("y")} if schema.max_objects > 1 else set()
    k = next(k for k, a in enumerate(schema.attributes) if len(a.values) > 1 and k not in position)
    attr = schema.attributes[k]
    new = next(v for v in attr.values if v != labels[attr.name])
    return {attr.name: new, **({"object": 0} if schema.max_objects > 1 else {})}


def latency_rows(pipe, model: str, methods: Sequence[str], images: int = 64, seed: int = 0,
                 splits: Sequence[str] = ("test", "heldout"), batch: int = 64, edits: int = 16,
                 log=print) -> list[dict[str, Any]]:
    """One row per (method, split) of ``pipe`` (named ``model`` in the rows)."""
    rows = []
    for split in splits:
        if split == "heldout" and not pipe.schema.holdout:
            continue
        x, objects = _images(pipe, images, seed, split)
        truth = [{tuple(map(int, o)) for o in objs} for objs in objects]
        pipe.encode(x[:1])
        one = float(np.median([_timed(pipe.encode, x[i:i + 1])[1] for i in range(min(images, 16))]))
        q = torch.cat([pipe.encode(x[i:i + batch]) for i in range(0, images, batch)])
        for method in methods:
            row = {"model": model, "method": method, "split": split, "images": images, "encoder_ms": one,
                   **_method_row(pipe, method, x, q, truth, batch, edits)}
            row["slowest_in_encoder_forwards"] = row["decode_max_ms"] / one
            rows.append(row)
            same = row["same_as_full"]
            log(f"  {model} {split:8s} {method:26s} right {100 * row['right']:5.1f}%  decode p50 "
                f"{row['decode_p50_ms']:7.1f}  p99 {row['decode_p99_ms']:7.1f}  max {row['decode_max_ms']:7.1f} ms  "
                f"batch {batch} {row['decode_batch_ms_per_image']:6.2f} ms/image  recognize p50 "
                f"{row['recognize_p50_ms']:6.1f}  edit p50 {row['edit_p50_ms']:6.1f} ms"
                + ("" if same is None else f"  same as full {100 * same:.1f}%"))
    return rows


def _decoded_sets(pipe, q: torch.Tensor, method: str, batch: int) -> tuple[list, float]:
    """Every vector's decoded objects, ``batch`` at a time, and the milliseconds the decoding took."""
    out, total = [], 0.0
    for i in range(0, len(q), batch):
        res, ms = _timed(pipe.decode, q[i:i + batch], method)
        out += _sets(res, len(q[i:i + batch]))
        total += ms
    return out, total


def _method_row(pipe, method: str, x: torch.Tensor, q: torch.Tensor, truth: list, batch: int,
                edits: int) -> dict[str, Any]:
    pipe.decode(q[:1], method)  # builds the head and any table it keeps, and compiles a compiled one
    pipe.decode(q[:batch], method)  # at the batch's shapes too
    singles = [_timed(pipe.decode, q[i:i + 1], method)[1] for i in range(len(q))]
    results, batch_ms = _decoded_sets(pipe, q, method, batch)
    full = _full_budget(method, pipe.model.own_options(method))
    same = None
    if full is not None:
        same = float(np.mean([a == b for a, b in zip(results, _decoded_sets(pipe, q, full, batch)[0])]))
    recs = [_timed(pipe.recognize, x[i:i + 1], method=method) for i in range(min(len(q), edits))]
    # an edit of a scene of several objects selects one: images in which the head found none are not edited
    eds = [_timed(pipe.edit, x[i:i + 1], method=method, **_edit_change(pipe, r[0][0]))[1] for i, r in enumerate(recs)
           if pipe.schema.max_objects == 1 or r[0][0].objects]
    rec_ms = [ms for _, ms in recs]
    return {"right": float(np.mean([r == t for r, t in zip(results, truth)])), "same_as_full": same,
            "decode_p50_ms": float(np.median(singles)), "decode_p99_ms": float(np.percentile(singles, 99)),
            "decode_max_ms": float(max(singles)), "decode_batch_ms_per_image": batch_ms / len(q),
            "recognize_p50_ms": float(np.median(rec_ms)), "recognize_p99_ms": float(np.percentile(rec_ms, 99)),
            "edit_p50_ms": float(np.median(eds)) if eds else float("nan"),
            "edit_p99_ms": float(np.percentile(eds, 99)) if eds else float("nan")}


def latency_table(rows: list[dict[str, Any]]) -> str:
    """The rows as Markdown."""
    lines = ["| model | split | head | right | decode p50 / p99 / max (ms) | batch ms / image | recognize p50 / p99 "
             "| edit p50 / p99 | slowest in encoder forwards | same as full budget |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        same = "" if r["same_as_full"] is None else f"{100 * r['same_as_full']:.1f}%"
        lines.append(f"| {r['model']} | {r['split']} | {r['method']} | {100 * r['right']:.1f}% | "
                     f"{r['decode_p50_ms']:.1f} / {r['decode_p99_ms']:.1f} / {r['decode_max_ms']:.1f} | "
                     f"{r['decode_batch_ms_per_image']:.2f} | {r['recognize_p50_ms']:.1f} / "
                     f"{r['recognize_p99_ms']:.1f} | {r['edit_p50_ms']:.1f} / {r['edit_p99_ms']:.1f} | "
                     f"{r['slowest_in_encoder_forwards']:.1f} | {same} |")
    return "\n".join(lines)
