"""``vsa-vision bench own``: a model trained on a user's dataset, measured on that dataset."""

from __future__ import annotations

import argparse
import json
import os

from ..common import add_device, add_seed, add_threads, apply_threads, check_device, nonneg, positive
from ..outputs import check_folder
from ..vision import add_checkpoint, add_head, load_pipeline


def register(sub) -> None:
    b = sub.add_parser("own", help="a model trained on your own dataset: accuracy per attribute on its test and "
                                   "heldout splits, known rates, edits drawn and recognised again")
    add_checkpoint(b)
    add_head(b)
    b.add_argument("--data", required=True, metavar="DATASET", help="the dataset (from 'vsa-vision data import')")
    b.add_argument("--edits", type=nonneg, default=200, help="edits of one attribute to draw and recognise (200)")
    add_seed(b)
    b.add_argument("--batch-size", dest="batch_size", type=positive, default=256)
    b.add_argument("--out", default="bench-results", help="folder for own.json (default bench-results)")
    add_device(b)
    add_threads(b)
    b.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...bench.own import own_benchmark, own_table
    from ...io import atomic_write

    check_device(args)
    if not os.path.isdir(args.data):
        raise FileNotFoundError(f"--data: no such dataset folder {args.data!r}")
    check_folder(args.out, "--out")
    apply_threads(args)
    pipe = load_pipeline(args)
    report = own_benchmark(pipe, args.data, edits=args.edits, seed=args.seed, method=args.method,
                           batch_size=args.batch_size)
    print(own_table(report))
    path = os.path.join(args.out, "own.json")
    atomic_write(path, lambda f: f.write(json.dumps(report, indent=2) + "\n"))
    print(f"wrote {path}")
    return 0
