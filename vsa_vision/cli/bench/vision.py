"""``vsa-vision bench vision``: recognition and edit accuracy of every head on one trained encoder."""

from __future__ import annotations

import argparse

from ..common import add_device, add_methods, add_out, add_seed, add_threads, apply_threads, positive
from ..outputs import check_folder, write_rows
from ..vision import add_checkpoint, load_pipeline


def register(sub) -> None:
    bv = sub.add_parser("vision", help="recognition and edit accuracy of every head on one trained encoder")
    add_checkpoint(bv)
    bv.add_argument("--images", type=positive, default=1000, help="images per split (default 1000)")
    add_seed(bv)
    add_methods(bv)
    bv.add_argument("--splits", choices=["test", "heldout", "both"], default="both",
                    help="the splits to measure (default both: unseen test scenes and held-out combinations)")
    bv.add_argument("--batch-size", dest="batch_size", type=positive, default=256)
    add_device(bv)
    add_threads(bv)
    add_out(bv)
    bv.set_defaults(func=run, method=None)


def run(args: argparse.Namespace) -> int:
    from ...bench.vision import FIELDS, breakdown_table, detection_table, set_fields, vision_benchmark, vision_table

    check_folder(args.out, "--out")
    apply_threads(args)
    pipe = load_pipeline(args)
    splits = ("test", "heldout") if args.splits == "both" else (args.splits,)
    rows = vision_benchmark(pipe, args.methods, images=args.images, seed=args.seed, batch_size=args.batch_size,
                            splits=splits)
    print()
    print(vision_table(rows))
    if detection_table(rows):
        print("\nscenes of several objects: count, detection AP (inf: position ignored; 4px, 2px: centre within) "
              "and scenes exactly right by number of objects:\n")
        print(detection_table(rows))
    if breakdown_table(rows):
        print("\nheld-out split by held-out combination (all attributes right; for scenes of several objects, the "
              "objects of the combination found exactly, and what was misread of the others):\n")
        print(breakdown_table(rows))
    extra = set_fields(pipe.schema.max_objects) if pipe.schema.max_objects > 1 else []
    write_rows(args.out, "vision.csv", rows, FIELDS + extra)
    return 0
