"""Editing in vector space: swap one or more factors of a bound vector, then decompose and render.

Binding is its own inverse for bipolar codewords (``c * c = 1``), so replacing factor k's value
``old`` by ``new`` in a bound vector is one elementwise product: ``s' = s * c_old * c_new``. The
rest of ``s``, encoder noise included, is carried over unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from .vsa import Codebooks


def parse_changes(codebooks: Codebooks, changes: Mapping[str, Any]) -> dict[int, int]:
    """``{factor name: value label}`` -> ``{factor index: value index}``; unknown names or values raise a
    ``ValueError`` that lists the valid ones."""
    if not isinstance(changes, Mapping) or not changes:
        raise ValueError(f"changes: expected a non-empty mapping attribute -> value, got {changes!r}")
    out = {}
    for name, value in changes.items():
        if name not in codebooks.names:
            raise ValueError(f"unknown attribute {name!r}; attributes: {list(codebooks.names)}")
        k = codebooks.names.index(name)
        labels = codebooks.labels[k]
        if str(value) not in labels:
            raise ValueError(f"unknown value {value!r} for attribute {name!r}; valid values: {list(labels)}")
        out[k] = labels.index(str(value))
    return out


def _current_indices(codebooks: Codebooks, current: Any, batch: int, device: torch.device) -> Tensor:
    if isinstance(current, Mapping) or (isinstance(current, Sequence) and current
                                        and isinstance(current[0], Mapping)):
        idx = codebooks.indices_of(current)
    elif isinstance(current, Tensor):
        idx = codebooks.check_indices(current, "current")
    else:
        raise TypeError(f"current: expected value indices [K] / [B, K] or labels {{attribute: value}}, "
                        f"got {type(current).__name__}")
    idx = idx.to(device)
    if idx.ndim == 1:
        idx = idx.expand(batch, -1)
    if idx.shape[0] != batch:
        raise ValueError(f"current: {idx.shape[0]} rows for {batch} vectors")
    return idx


def swap(vector: Tensor, codebooks: Codebooks, changes: Mapping[str, Any], current: Any) -> Tensor:
    """``vector * c_old * c_new`` for every changed factor; ``vector`` is ``[D]`` or ``[B, D]``.

    ``changes``: ``{attribute: new value label}``; ``current``: the values the vector holds now (value
    indices ``[K]`` / ``[B, K]``, or labels ``{attribute: value}`` / a list of them). Swapping a factor to
    its current value is the identity, and swapping back restores the vector exactly."""
    if not isinstance(vector, Tensor) or vector.ndim not in (1, 2) or vector.shape[-1] != codebooks.dim:
        raise ValueError(f"vector: expected a tensor [D] or [B, D] with D = {codebooks.dim}, got "
                         f"{tuple(vector.shape) if isinstance(vector, Tensor) else type(vector).__name__}")
    single = vector.ndim == 1
    s = vector[None] if single else vector
    new = parse_changes(codebooks, changes)
    cur = _current_indices(codebooks, current, s.shape[0], s.device)
    out = s.clone()
    for k, v in new.items():  # a loop over the changed factors
        C = codebooks.tensors[k].to(device=s.device, dtype=s.dtype)
        out = out * C[cur[:, k]] * C[v]
    return out[0] if single else out


def swap_indices(vector: Tensor, codebooks: Codebooks, current: Tensor, new: Tensor) -> Tensor:
    """Per-row swaps: ``vector * bind(current) * bind(new)`` for value indices ``[B, K]``; factors where
    ``current == new`` cancel, so each row changes exactly the factors whose indices differ."""
    cur = codebooks.check_indices(current, "current").to(vector.device)
    nxt = codebooks.check_indices(new, "new").to(vector.device)
    return vector * codebooks.bind_indices(cur).to(vector.dtype) * codebooks.bind_indices(nxt).to(vector.dtype)


def apply_changes(indices: Tensor, codebooks: Codebooks, changes: Mapping[str, Any]) -> Tensor:
    """Value indices with the changes applied (what an edit intends)."""
    out = codebooks.check_indices(indices).clone()
    for k, v in parse_changes(codebooks, changes).items():
        out[..., k] = v
    return out


def labelled_grid(rows: Sequence[Sequence[tuple[Any, str]]], scale: int = 3, pad: int = 6):
    """A PIL image of panels ``(image, caption)`` laid out in rows, each image enlarged ``scale``x
    (nearest neighbour) with its caption (lines split on ``\\n``) underneath."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    cells = [[(im.convert("RGB").resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST), cap)
              for im, cap in row] for row in rows]
    if not cells or not cells[0]:
        raise ValueError("labelled_grid: no panels")
    line_h = 12
    max_lines = max(len(cap.split("\n")) for row in cells for _, cap in row)
    cw = max(im.width for row in cells for im, _ in row)
    ch = max(im.height for row in cells for im, _ in row)
    cw = max(cw, max(int(font.getlength(line)) + 4 for row in cells for _, cap in row for line in cap.split("\n")))
    cols = max(len(row) for row in cells)
    W = cols * (cw + pad) + pad
    H = len(cells) * (ch + max_lines * line_h + 2 * pad) + pad
    sheet = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(cells):
        y0 = pad + r * (ch + max_lines * line_h + 2 * pad)
        for c, (im, cap) in enumerate(row):
            x0 = pad + c * (cw + pad)
            sheet.paste(im, (x0 + (cw - im.width) // 2, y0))
            for i, line in enumerate(cap.split("\n")):
                draw.text((x0 + 2, y0 + ch + 3 + i * line_h), line, fill=(0, 0, 0), font=font)
    return sheet


def describe(labels: Mapping[str, str], names: Sequence[str] | None = None, per_line: int = 3) -> str:
    """``shape=star colour=red ...`` in lines of ``per_line`` attributes (for captions)."""
    items = [f"{k}={labels[k]}" for k in (names or list(labels))]
    return "\n".join(" ".join(items[i:i + per_line]) for i in range(0, len(items), per_line))
