"""A user's labels file: ``metadata.csv`` or ``metadata.jsonl`` beside their images.

The convention of image-folder datasets (Hugging Face ``imagefolder``): one row per image, a
``file_name`` column holding the image's path relative to the folder, one column per attribute
holding the value label as text, and optionally a ``split`` column (``train``, ``val``, ``test`` or
``heldout``)::

    file_name,split,shape,hue,scale,x,y,angle
    train/000000.png,train,star_4,h3,s1,x5,y0,a15

``metadata.jsonl`` holds one JSON object a line with the same keys. Every error names the file and
the line.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["METADATA_FILES", "find_labels_file", "read_label_rows"]

METADATA_FILES = ("metadata.csv", "metadata.jsonl")


def find_labels_file(folder: str | os.PathLike) -> str:
    """The labels file of an image folder: ``metadata.csv`` or ``metadata.jsonl`` in it (exactly one)."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: no such folder")
    found = [os.path.join(folder, f) for f in METADATA_FILES if os.path.isfile(os.path.join(folder, f))]
    if not found:
        raise FileNotFoundError(f"{folder}: no metadata.csv or metadata.jsonl (a file_name column and one column "
                                "per attribute, one row per image)")
    if len(found) > 1:
        raise ValueError(f"{folder}: both metadata.csv and metadata.jsonl; keep one")
    return found[0]


def _cell(path: str, line: int, key: str, value: Any) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        raise ValueError(f"{path}:{line}: column {key!r} holds {value!r}; expected a label (text or a number)")
    text = str(value).strip()
    if not text:
        raise ValueError(f"{path}:{line}: column {key!r} is empty")
    return text


def _csv_rows(path: str) -> list[dict[str, str]]:
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        r = csv.reader(f)
        header = next(r, None)
        if not header:
            raise ValueError(f"{path}: empty file (expected a header row with file_name and the attribute columns)")
        header = [h.strip() for h in header]
        for line, row in enumerate(r, start=2):
            if not row or all(not c.strip() for c in row):
                continue  # a blank line
            if len(row) != len(header):
                raise ValueError(f"{path}:{line}: {len(row)} fields, the header has {len(header)} ({header})")
            rows.append({h: _cell(path, line, h, c) for h, c in zip(header, row)})
    return _checked(path, header, rows, first_line=2)


def _jsonl_rows(path: str) -> list[dict[str, str]]:
    rows, header = [], None
    with open(path, encoding="utf-8-sig") as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{line}: not a JSON object ({e.msg})") from None
            if not isinstance(obj, Mapping):
                raise ValueError(f"{path}:{line}: expected a JSON object, got {type(obj).__name__}")
            keys = [str(k) for k in obj]
            if header is None:
                header = keys
            elif set(keys) != set(header):
                raise ValueError(f"{path}:{line}: keys {sorted(keys)} differ from the first row's {sorted(header)}")
            rows.append({str(k): _cell(path, line, str(k), v) for k, v in obj.items()})
    if header is None:
        raise ValueError(f"{path}: no rows")
    return _checked(path, header, rows, first_line=1)


def _checked(path: str, header: list[str], rows: list[dict[str, str]], first_line: int) -> list[dict[str, str]]:
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise ValueError(f"{path}: column(s) {dup} appear twice")
    if "file_name" not in header:
        raise ValueError(f"{path}: no file_name column (columns: {header})")
    if len(header) < 2 + ("split" in header):
        raise ValueError(f"{path}: no attribute columns beside file_name{' and split' if 'split' in header else ''}")
    if not rows:
        raise ValueError(f"{path}: no rows")
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        name = row["file_name"]
        if name in seen:
            raise ValueError(f"{path}: file_name {name!r} is listed twice (rows {seen[name] + 1} and {i + 1})")
        seen[name] = i
    return rows


def read_label_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a labels file (or of the labels file in a folder) as ``{column: text}``, in order;
    refuses a file without ``file_name`` or attribute columns, a row of another length, an empty
    cell, and a file name listed twice, each with the file and line."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = find_labels_file(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    if path.endswith(".jsonl"):
        return _jsonl_rows(path)
    return _csv_rows(path)
