"""``vsa-vision bench data``: rendering and data loading rates."""

from __future__ import annotations

import argparse

from ..common import nonneg, positive


def register(sub) -> None:
    bd = sub.add_parser("data", help="rendering and data loading rates")
    bd.add_argument("--images", type=positive, default=20000)
    bd.add_argument("--workers", type=nonneg, default=2)
    bd.add_argument("--batch-size", dest="batch_size", type=positive, default=128)
    bd.add_argument("--schema", default="default")
    bd.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...bench.data import data_benchmark

    data_benchmark(images=args.images, workers=args.workers, batch_size=args.batch_size, schema=args.schema)
    return 0
