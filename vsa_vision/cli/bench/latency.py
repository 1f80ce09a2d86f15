"""``vsa-vision bench latency``: one image at a time, every head, on the shipped models (or checkpoints)."""

from __future__ import annotations

import argparse
import os

from ..common import add_methods, add_out, add_seed, add_threads, apply_threads, positive
from ..outputs import check_folder, write_rows

#: the heads timed by default: the pipeline's own (auto) and the two it chooses between
LATENCY_METHODS = ("auto", "diffusion", "brute_force")


def register(sub) -> None:
    b = sub.add_parser("latency", help="batch-1 decode, recognise and edit latency (p50 / p99) of every head")
    b.add_argument("--models", nargs="+", default=["default", "multi"],
                   help="shipped model names or checkpoint paths (default: default multi; the clutter model's "
                        "exhaustive search wants brute_force:cache_bytes=1073741824, its table being 377 MB)")
    add_methods(b, help="heads to time (default: auto, the pipeline's head; diffusion; brute_force)")
    b.add_argument("--images", type=positive, default=64, help="images per split (default 64)")
    b.add_argument("--batch", type=positive, default=64, help="the batch of the batched decode (default 64)")
    b.add_argument("--edits", type=positive, default=16, help="images recognised and edited one at a time (16)")
    add_seed(b)
    add_threads(b)
    add_out(b)
    b.set_defaults(func=run, methods=list(LATENCY_METHODS))


def run(args: argparse.Namespace) -> int:
    from ...bench.latency import FIELDS, latency_rows, latency_table
    from ...checkpoint import shipped_checkpoints
    from ...pipeline import Pipeline

    shipped = shipped_checkpoints()
    for model in args.models:
        if model not in shipped and not os.path.isfile(model):
            raise ValueError(f"--models: {model!r} is neither a shipped model ({', '.join(sorted(shipped))}) nor a "
                             "checkpoint file")
    check_folder(args.out, "--out")
    apply_threads(args)
    methods = args.methods or list(LATENCY_METHODS)
    rows = []
    for model in args.models:
        pipe = Pipeline.from_checkpoint(model)
        rows += latency_rows(pipe, model, methods, images=args.images, seed=args.seed, batch=args.batch,
                             edits=args.edits)
    print()
    print(latency_table(rows))
    write_rows(args.out, "latency.csv", rows, FIELDS)
    return 0
