"""What a checkpoint records of the codebooks its weights were trained with, and the check that
refuses other codebooks (reordered, relabelled or redrawn), so a model never mislabels silently."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import torch

from .codebooks import Codebooks

__all__ = ["codebook_record", "check_codebook_record"]


def codebook_record(codebooks: Codebooks) -> dict[str, Any]:
    """What a checkpoint stores of the codebooks its weights were trained with: the attribute names,
    each attribute's value labels in order, and a SHA-256 of the codewords (float32, in order)."""
    digest = hashlib.sha256()
    for t in codebooks.tensors:
        digest.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return {"names": list(codebooks.names), "labels": [list(v) for v in codebooks.labels],
            "sha256": digest.hexdigest()}


def check_codebook_record(record: Mapping[str, Any], codebooks: Codebooks) -> None:
    """Refuse (``ValueError``) codebooks whose names, labels or codewords differ from ``record``: a
    checkpoint whose schema was reordered or relabelled after training (same sizes and seed, so the
    same codewords under other labels) would otherwise load and mislabel every image."""
    mine = codebook_record(codebooks)
    names, labels = list(record.get("names", [])), [list(v) for v in record.get("labels", [])]
    if names != mine["names"]:
        raise ValueError(f"checkpoint: the names and labels of its schema's attributes ({mine['names']}) differ from "
                         f"those its weights were trained with ({names}); the schema was reordered or edited after "
                         "training, so every image would be mislabelled")
    for name, theirs, ours in zip(names, labels, mine["labels"]):
        if theirs != ours:
            raise ValueError(f"checkpoint: the names and labels of its schema's attribute {name!r} ({ours}) differ "
                             f"from those its weights were trained with ({theirs}); the schema was reordered or "
                             "edited after training, so every image would be mislabelled")
    if record.get("sha256") != mine["sha256"]:
        raise ValueError("checkpoint: its codebooks' contents differ from those its weights were trained with "
                         "(another dim or codebook_seed, or edited codebooks)")
