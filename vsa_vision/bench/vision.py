"""Recognition and editing with a trained model: every head on the same encoder outputs.

- recognition: all-attributes accuracy of each head on rendered test / held-out images, beside
  brute force on the same vectors (the gap to brute force is the head's error, the gap from brute
  force to 100% the encoder's);
- editing: for each image, random swaps of one (or two) attributes to a different value, done in
  vector space from what the head decoded (``q * c_old * c_new``); an edit counts when the edited
  vector decodes to exactly the intended attributes (the truth with the change applied);
- throughput of ``recognize`` (images per second at a batch size), encoder alone and with each head.

A model of several objects a scene (``schema.max_objects > 1``) is measured on scenes of 1 to
``max_objects`` objects: a scene is recognised when its set of objects is exactly right (every object,
and so the count; ``count``: the share with the right number of objects); an edit changes one (or two)
attributes other than the position of one object of the scene, in vector space, from the object the
head decoded (:func:`~vsa_vision.edit_objects.edit_objects`), and counts when the edited vector decodes
to exactly the intended set of objects. A one-object model's ``count`` is 1.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..edit import swap_indices
from ..scenes import Renderer, sample_indices
from .stats import wilson_interval

FIELDS = ["method", "split", "images", "recognition", "recognition_lo", "recognition_hi", "edit1", "edit1_lo",
          "edit1_hi", "edit2", "edit2_lo", "edit2_hi", "decode_ms_per_image", "images_per_s", "mean_cos", "count"]


def set_fields(max_objects: int) -> list[str]:
    """The columns only a model of several objects has: detection AP, scenes right by number of objects."""
    return ["ap_inf", "ap_4px", "ap_2px", *(f"objects_{m}" for m in range(1, max_objects + 1))]


def _random_changes(truth: torch.Tensor, sizes: Sequence[int], swaps: int, rng: np.random.Generator) -> torch.Tensor:
    """Intended indices: ``swaps`` distinct attributes per row set to a different value than the truth."""
    B, K = truth.shape
    sizes_np = np.asarray(sizes)
    out = truth.clone().numpy()
    changeable = np.flatnonzero(sizes_np > 1)
    order = np.argsort(rng.random((B, len(changeable))), axis=1)  # distinct attributes per row
    for r in range(swaps):  # a loop over the number of swaps (1 or 2), vectorised over images
        k = changeable[order[:, r]]
        offset = 1 + (rng.random(B) * (sizes_np[k] - 1)).astype(np.int64)
        out[np.arange(B), k] = (out[np.arange(B), k] + offset) % sizes_np[k]
    return torch.from_numpy(out)


def vision_benchmark(pipe, methods: Sequence[str], images: int = 1000, seed: int = 0,
                     splits: Sequence[str] = ("test", "heldout"), batch_size: int = 256,
                     log=print) -> list[dict[str, Any]]:
    """Rows of recognition / edit accuracy and cost, one per (method, split)."""
    schema = pipe.schema
    renderer = Renderer(schema)
    cb = pipe.codebooks
    rows = []
    for split in splits:
        if split == "heldout" and not schema.holdout:
            continue
        if schema.max_objects > 1:
            rows += _set_rows(pipe, renderer, methods, images, seed, split, batch_size, log)
            continue
        truth = torch.from_numpy(sample_indices(schema, images, seed=seed, split=split))
        q, enc_s = _encoded(pipe, renderer, truth, batch_size)
        truth = truth.to(q.device)
        cos = float(torch.nn.functional.cosine_similarity(q, cb.bind_indices(truth).to(q.dtype), dim=-1).mean())
        rng = np.random.default_rng([seed, 1])
        intended = {s: _random_changes(truth.cpu(), schema.sizes, s, rng).to(q.device) for s in (1, 2)}
        log(f"{split}: {images} images, encoder {images / enc_s:.0f} images/s, mean cos to target {cos:.3f}")
        for method in methods:
            row = _method_row(pipe, cb, method, split, q, truth, intended, enc_s, cos, batch_size)
            rows.append(row)
            log(f"  {method:28s} recognition {100 * row['recognition']:6.2f}%  edit x1 {100 * row['edit1']:6.2f}%  "
                f"edit x2 {100 * row['edit2']:6.2f}%  decode {row['decode_ms_per_image']:.2f} ms/image  "
                f"recognize {row['images_per_s']:.0f} images/s")
    return rows


def _encoded(pipe, renderer, truth: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, float]:
    """The scenes ``truth`` (``[N, K]``, or ``[N, M, K]`` object slots) rendered and encoded: (vectors, seconds
    the encoder took)."""
    x = rendered(renderer, truth)
    t0 = time.perf_counter()
    q = pipe.encode(x, batch_size=batch_size)
    return q, time.perf_counter() - t0


def rendered(renderer, truth: torch.Tensor) -> torch.Tensor:
    """The scenes ``truth`` (``[N, K]``, or ``[N, M, K]`` object slots) drawn: ``uint8 [N, 3, S, S]``."""
    return torch.from_numpy(renderer.render_batch(truth.numpy())).permute(0, 3, 1, 2).contiguous()


def _decode_indices(pipe, vectors: torch.Tensor, method: str, batch_size: int) -> torch.Tensor:
    """The value indices ``[N, K]`` that head ``method`` decodes from ``vectors``, in batches."""
    return torch.cat([pipe.decode(vectors[i:i + batch_size], method).indices
                      for i in range(0, len(vectors), batch_size)])


def _method_row(pipe, cb, method: str, split: str, q: torch.Tensor, truth: torch.Tensor,
                intended: dict[int, torch.Tensor], enc_s: float, cos: float, batch_size: int) -> dict[str, Any]:
    """One row of :func:`vision_benchmark`: head ``method`` decodes the encoder's vectors ``q`` (recognition),
    then the vectors with the ``intended`` 1 and 2 swaps applied to what it decoded (edits)."""
    images = len(truth)
    t0 = time.perf_counter()
    res = _decode_indices(pipe, q, method, batch_size)
    dec_s = time.perf_counter() - t0
    rec = int((res == truth).all(-1).sum())
    row = {"method": method, "split": split, "images": images, "recognition": rec / images,
           "decode_ms_per_image": 1e3 * dec_s / images, "images_per_s": images / (enc_s + dec_s),
           "mean_cos": cos, "count": 1.0}
    row["recognition_lo"], row["recognition_hi"] = wilson_interval(rec, images)
    for s in (1, 2):
        edited = swap_indices(q, cb, res, torch.where(intended[s] != truth, intended[s], res))
        ok = int((_decode_indices(pipe, edited, method, batch_size) == intended[s]).all(-1).sum())
        row[f"edit{s}"] = ok / images
        row[f"edit{s}_lo"], row[f"edit{s}_hi"] = wilson_interval(ok, images)
    if split == "heldout":
        row["by_pair"] = heldout_breakdown(pipe.schema, truth.cpu(), res.cpu())
    return row


# -- several objects a scene --------------------------------------------------------------------


def _set_rows(pipe, renderer, methods: Sequence[str], images: int, seed: int, split: str, batch_size: int,
              log) -> list[dict[str, Any]]:
    """The rows of :func:`vision_benchmark` for a model of several objects, one per method, on ``split``."""
    from ..decompose import bundle_objects
    from ..scenes.objects import sample_object_sets

    schema, cb = pipe.schema, pipe.codebooks
    truth = torch.from_numpy(sample_object_sets(schema, images, seed=seed, split=split))  # [N, M, K], absent -1
    q, enc_s = _encoded(pipe, renderer, truth, batch_size)
    objects = [t[(t >= 0).all(-1)] for t in truth]
    target = bundle_objects(cb, [o.to(cb.device) for o in objects]).to(q.device, q.dtype)
    cos = float(torch.nn.functional.cosine_similarity(q, target, dim=-1).mean())
    rng = np.random.default_rng([seed, 1])
    plans = {s: _object_changes(schema, objects, s, rng) for s in (1, 2)}
    log(f"{split}: {images} scenes of 1 to {schema.max_objects} objects, encoder {images / enc_s:.0f} images/s, "
        f"mean cos to target {cos:.3f}")
    rows = []
    for method in methods:
        row = _set_row(pipe, method, split, q, truth, objects, plans, enc_s, cos, batch_size)
        rows.append(row)
        log(f"  {method:28s} recognition {100 * row['recognition']:6.2f}%  count {100 * row['count']:6.2f}%  "
            f"edit x1 {100 * row['edit1']:6.2f}%  edit x2 {100 * row['edit2']:6.2f}%  "
            f"decode {row['decode_ms_per_image']:.2f} ms/image  recognize {row['images_per_s']:.0f} images/s")
    return rows


def _object_changes(schema, objects: Sequence[torch.Tensor], swaps: int,
                    rng: np.random.Generator) -> list[tuple[int, dict[int, int]]]:
    """Per scene, (the object to edit, ``{attribute: new value index}``): ``swaps`` distinct attributes
    other than the position (so the objects keep distinct places), each set to another value."""
    sizes = np.asarray(schema.sizes)
    position = {schema.by_role("x"), schema.by_role("y")}
    changeable = [k for k in range(len(sizes)) if sizes[k] > 1 and k not in position]
    if len(changeable) < swaps:
        raise ValueError(f"bench vision: schema {schema.name!r} has {len(changeable)} attributes besides the position "
                         f"with more than one value; an edit of {swaps} needs {swaps}")
    plans = []
    for objs in objects:
        j = int(rng.integers(len(objs)))
        ks = rng.choice(changeable, size=swaps, replace=False)
        plans.append((j, {int(k): int((int(objs[j, k]) + 1 + rng.integers(sizes[k] - 1)) % sizes[k]) for k in ks}))
    return plans


def set_scores(res, truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per scene ``[B]`` bool: (its set of objects is exactly right, its count is right), of a
    :class:`~vsa_vision.decompose.SetDecomposition` against object slots ``[B, M, K]`` (absent -1)."""
    return res.hits([t[(t >= 0).all(-1)] for t in truth.cpu()])


def _decode_sets(pipe, vectors: torch.Tensor, method: str, batch_size: int) -> list[Any]:
    return [pipe.decode(vectors[i:i + batch_size], method) for i in range(0, len(vectors), batch_size)]


def _set_row(pipe, method: str, split: str, q: torch.Tensor, truth: torch.Tensor, objects: Sequence[torch.Tensor],
             plans: dict[int, list[tuple[int, dict[int, int]]]], enc_s: float, cos: float,
             batch_size: int) -> dict[str, Any]:
    """One row of :func:`vision_benchmark` for a model of several objects (see the module notes)."""
    from ..edit_objects import edit_objects

    schema, cb = pipe.schema, pipe.codebooks
    images = len(truth)
    t0 = time.perf_counter()
    parts = _decode_sets(pipe, q, method, batch_size)
    dec_s = time.perf_counter() - t0
    found = [o.cpu() for p in parts for o in p.objects]
    sets, counts = map(torch.cat, zip(*(set_scores(p, truth[i * batch_size:(i + 1) * batch_size])
                                        for i, p in enumerate(parts))))
    rec = int(sets.sum())
    row = {"method": method, "split": split, "images": images, "recognition": rec / images,
           "count": float(counts.float().mean()), "decode_ms_per_image": 1e3 * dec_s / images,
           "images_per_s": images / (enc_s + dec_s), "mean_cos": cos}
    row["recognition_lo"], row["recognition_hi"] = wilson_interval(rec, images)
    row.update(_detection_columns(schema, parts, truth, sets))
    if split == "heldout" and schema.holdout:
        row["by_pair"], row["misread"] = heldout_objects(schema, truth, found)
    for s, plan in plans.items():
        edited, intended, done = [], [], []
        for i, (j, change) in enumerate(plan):
            want = objects[i].clone()
            for k, v in change.items():
                want[j, k] = v
            intended.append(want)
            # edit the object the head decoded for truth object j; the edit fails where it found none
            rows = [r for r, o in enumerate(found[i].tolist()) if o == objects[i][j].tolist()]
            done.append(bool(rows))
            if not rows:
                edited.append(q[i])
                continue
            labels = {cb.names[k]: cb.labels[k][v] for k, v in change.items()}
            try:
                vec, _ = edit_objects(q[i], cb, schema, found[i].to(q.device), rows[:1], labels)
            except ValueError:  # refused for the scene as the head read it (e.g. two objects at one place)
                done[-1] = False
                vec = q[i]
            edited.append(vec)
        after = _decode_sets(pipe, torch.stack(edited), method, batch_size)
        hit = torch.cat([p.hits(intended[i * batch_size:(i + 1) * batch_size])[0] for i, p in enumerate(after)])
        ok = int((hit & torch.tensor(done)).sum())
        row[f"edit{s}"] = ok / images
        row[f"edit{s}_lo"], row[f"edit{s}_hi"] = wilson_interval(ok, images)
    return row


AP_THRESHOLDS = (float("inf"), 4.0, 2.0)


def _detection_columns(schema, parts: Sequence[Any], truth: torch.Tensor, sets: torch.Tensor) -> dict[str, float]:
    """Average precision of detection at :data:`AP_THRESHOLDS` (:func:`~vsa_vision.metrics.detection_ap`:
    every attribute but the position right, the centre within the threshold in pixels, ranked by
    confidence) and the share of scenes exactly right per number of objects."""
    from types import SimpleNamespace

    from ..metrics import detection_ap

    merged = SimpleNamespace(objects=[o for p in parts for o in p.objects],
                             confidence=[c for p in parts for c in p.confidence])
    out = {f"ap_{k}": v for k, v in detection_ap(schema, merged, truth, AP_THRESHOLDS).items()}
    n = (truth >= 0).all(-1).sum(1)
    for m in range(1, schema.max_objects + 1):
        out[f"objects_{m}"] = float(sets[n == m].float().mean()) if bool((n == m).any()) else float("nan")
    return out


def detection_table(rows: Sequence[dict[str, Any]]) -> str:
    """Scenes of several objects: count, detection AP and exact scenes by number of objects, per head."""
    rows = [r for r in rows if "ap_inf" in r]
    if not rows:
        return ""
    aps = [k for k in rows[0] if k.startswith("ap_")]
    counts = sorted((k for k in rows[0] if k.startswith("objects_")), key=lambda k: int(k.split("_")[1]))
    lines = ["| split | head | count right | " + " | ".join(f"AP {k[3:]}" for k in aps) + " | "
             + " | ".join(f"{k.split('_')[1]} obj." for k in counts) + " |",
             "| --- | --- |" + " ---: |" * (1 + len(aps) + len(counts))]
    for r in rows:
        lines.append(f"| {r['split']} | {r['method']} | {100 * r['count']:.1f}% | "
                     + " | ".join(f"{100 * r[k]:.1f}" for k in aps) + " | "
                     + " | ".join(f"{100 * r[k]:.1f}%" for k in counts) + " |")
    return "\n".join(lines)


def heldout_breakdown(schema, truth: torch.Tensor, decoded: torch.Tensor) -> dict[str, tuple[int, float]]:
    """All-attributes accuracy per held-out combination of the schema: ``{"shape=star,colour=red":
    (images, accuracy)}`` (an image matching two combinations counts in both)."""
    ok = (decoded == truth).all(-1).numpy()
    return {key: (int(mask.sum()), float(ok[mask].mean()) if mask.any() else float("nan"))
            for key, mask in schema.held_out_masks(truth.numpy()).items()}


def heldout_objects(schema, truth: torch.Tensor, found: Sequence[torch.Tensor]
                    ) -> tuple[dict[str, tuple[int, float]], dict[str, dict[str, float]]]:
    """Scenes of several objects, per held-out combination: (objects of that combination in the scenes,
    the share of them found exactly), and of those missed, the share whose object decoded at the same
    place differs in each attribute (an object missed with nothing at its place counts under ``place``)."""
    pos = [k for k in (schema.by_role("x"), schema.by_role("y")) if k is not None]
    objs = [(i, o) for i, t in enumerate(truth.cpu()) for o in t[(t >= 0).all(-1)]]
    rows = np.stack([o.numpy() for _, o in objs]) if objs else np.zeros((0, len(schema.sizes)), dtype=np.int64)
    hit = np.array([bool((found[i] == o).all(-1).any()) if len(found[i]) else False for i, o in objs])
    counts, misread = {}, {}
    for key, mask in schema.held_out_masks(rows).items():
        n = int(mask.sum())
        counts[key] = (n, float(hit[mask].mean()) if n else float("nan"))
        tally = dict.fromkeys([*schema.names, "place"], 0)
        missed = np.flatnonzero(mask & ~hit)
        for j in missed:
            i, o = objs[j]
            same = [f for f in found[i] if pos and all(int(f[k]) == int(o[k]) for k in pos)]
            if not same:
                tally["place"] += 1
                continue
            for k, name in enumerate(schema.names):
                tally[name] += int(same[0][k] != o[k])
        misread[key] = {a: c / len(missed) for a, c in tally.items() if c} if len(missed) else {}
    return counts, misread


def breakdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """Held-out split: one row per held-out combination, one column per head."""
    rows = [r for r in rows if r.get("by_pair")]
    if not rows:
        return ""
    pairs = list(rows[0]["by_pair"])
    sets = "misread" in rows[0]  # scenes of several objects: counted in objects, with what was misread
    lines = ["| held-out combination | " + ("objects" if sets else "images") + " | "
             + " | ".join(r["method"] for r in rows) + (" | misread (first head) |" if sets else " |"),
             "| --- | ---: |" + " ---: |" * len(rows) + (" --- |" if sets else "")]
    for p in pairs:
        n = rows[0]["by_pair"][p][0]
        why = ", ".join(f"{a} {100 * v:.0f}%" for a, v in rows[0]["misread"][p].items()) if sets else None
        lines.append(f"| {p} | {n} | " + " | ".join(f"{100 * r['by_pair'][p][1]:.1f}%" for r in rows) + " |"
                     + (f" {why or '-'} |" if sets else ""))
    return "\n".join(lines)


def vision_table(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| split | head | images | recognition (all attributes) | edit, 1 swap | edit, 2 swaps | "
             "decode ms/image | recognize images/s |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['split']} | {r['method']} | {r['images']} | {100 * r['recognition']:.2f}% "
                     f"[{100 * r['recognition_lo']:.1f}, {100 * r['recognition_hi']:.1f}] | "
                     f"{100 * r['edit1']:.2f}% | {100 * r['edit2']:.2f}% | {r['decode_ms_per_image']:.2f} | "
                     f"{r['images_per_s']:.0f} |")
    return "\n".join(lines)
