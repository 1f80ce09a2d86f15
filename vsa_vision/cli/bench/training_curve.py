"""``vsa-vision bench training-curve``: val accuracy against training minutes from Lightning's metrics.csv."""

from __future__ import annotations

import argparse
import os

from ..common import BENCH_OUT, add_out
from ..outputs import check_file


def register(sub) -> None:
    bc = sub.add_parser("training-curve", help="plot val accuracy against training minutes from metrics.csv")
    bc.add_argument("metrics", nargs="+", help="LABEL=path/to/metrics.csv (or just the path)")
    add_out(bc, default=f"{BENCH_OUT}/training-curve.png", help="the PNG to write")
    bc.add_argument("--title", default="")
    bc.set_defaults(func=run)


def _runs(items: list[str]) -> list[tuple[str, str]]:
    """``LABEL=path`` or a bare path, labelled by its folder's name."""
    runs = []
    for item in items:
        label, eq, path = item.partition("=")
        runs.append((label, path) if eq else (os.path.basename(os.path.dirname(os.path.abspath(item))), item))
    return runs


def run(args: argparse.Namespace) -> int:
    from ...bench.training import plot_curves, read_curve

    if os.path.splitext(args.out)[1].lower() != ".png":
        raise ValueError(f"--out {args.out}: the training curve is written as PNG; name the file .png")
    check_file(args.out, "--out")
    runs = _runs(args.metrics)
    for label, path in runs:
        print(label)
        for p in read_curve(path):
            held = "" if p["heldout"] is None else f"  held-out combinations {100 * p['heldout']:6.2f}%"
            print(f"  epoch {p['epoch']:3.0f}  {p['minutes']:6.2f} min  val all attributes {100 * p['acc_all']:6.2f}%  "
                  f"cos {p['cos']:.3f}{held}")
    plot_curves(runs, args.out, title=args.title)
    print(f"wrote {args.out}")
    return 0
