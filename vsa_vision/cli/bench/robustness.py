"""``vsa-vision bench robustness``: accuracy by corruption and severity for every head (ImageNet-C style)."""

from __future__ import annotations

import argparse

from ..common import add_device, add_methods, add_out, add_seed, add_threads, apply_threads, int_list, positive
from ..outputs import check_folder, write_rows
from ..vision import add_checkpoint, load_pipeline


def register(sub) -> None:
    br = sub.add_parser("robustness", help="accuracy by corruption and severity (noise, blur, JPEG, light, shifts) "
                                           "for every head on one trained encoder")
    add_checkpoint(br)
    br.add_argument("--images", type=positive, default=500, help="test scenes per condition (default 500)")
    br.add_argument("--corruptions", default=None, metavar="A,B,...",
                    help="comma-separated corruptions (default: all of vsa_vision.scenes.degrade.CORRUPTIONS)")
    br.add_argument("--severities", type=int_list, default=[1, 2, 3, 4, 5], metavar="S,T,...",
                    help="comma-separated severities, 1 to 5 (default: all)")
    add_seed(br)
    add_methods(br)
    br.add_argument("--batch-size", dest="batch_size", type=positive, default=256)
    add_device(br)
    add_threads(br)
    add_out(br)
    br.set_defaults(func=run, method=None)


def run(args: argparse.Namespace) -> int:
    from ...bench.robustness import FIELDS, robustness_benchmark, robustness_table
    from ...scenes.degrade import CORRUPTIONS

    check_folder(args.out, "--out")
    kinds = CORRUPTIONS if args.corruptions is None else [c.strip() for c in args.corruptions.split(",") if c.strip()]
    unknown = [c for c in kinds if c not in CORRUPTIONS]
    if unknown or not kinds:
        raise ValueError(f"--corruptions: unknown corruption {unknown[0] if unknown else args.corruptions!r}; "
                         f"expected some of {', '.join(CORRUPTIONS)}")
    if any(s > 5 for s in args.severities):
        raise ValueError(f"--severities: expected levels 1 to 5, got {args.severities}")
    apply_threads(args)
    pipe = load_pipeline(args)
    rows = robustness_benchmark(pipe, args.methods, images=args.images, seed=args.seed, corruptions=kinds,
                                severities=args.severities, batch_size=args.batch_size)
    print()
    print(robustness_table(rows))
    write_rows(args.out, "robustness.csv", rows, FIELDS)
    return 0
