"""``vsa-vision data generate``: render a synthetic scene dataset to disk (one object a scene, or
several for a schema such as ``multi``: labels.csv then holds a row per object)."""

from __future__ import annotations

import argparse
import os

from .common import add_out, add_seed, nonneg, nonneg_float, number_in, positive
from .outputs import check_folder


def register(sub) -> None:
    dp = sub.add_parser("data", help="synthetic scene datasets")
    dsub = dp.add_subparsers(dest="data", required=True)
    g = dsub.add_parser("generate", help="render a dataset to disk in shards (resumable)")
    g.add_argument("--schema", default="default",
                   help="a built-in schema name (default; multi: scenes of 1 to 3 objects) or a JSON schema file")
    g.add_argument("--n", type=positive, default=50000, help="training images, one scene each (default 50000)")
    g.add_argument("--val", type=nonneg, default=None, help="validation images (default max(1000, n/10))")
    g.add_argument("--test", type=nonneg, default=None, help="test images (default max(1000, n/10))")
    g.add_argument("--heldout", type=nonneg, default=None,
                   help="images of the held-out combinations (default max(1000, n/10); 0 if the schema has none)")
    add_seed(g)
    g.add_argument("--shard-size", dest="shard_size", type=positive, default=5000)
    g.add_argument("--size", type=positive, default=None, help="image side in pixels (default: the schema's)")
    g.add_argument("--jitter", type=nonneg_float, default=0.0, help="position jitter, output pixels")
    g.add_argument("--noise", type=number_in(0.0, 255.0, "pixel noise std"), default=0.0,
                   help="Gaussian pixel noise std (0..255)")
    add_out(g, default=None, help="output folder (default datasets/shapes-<schema name>)")
    g.add_argument("--overwrite", action="store_true", help="replace a different dataset in --out")
    g.add_argument("--preview", action="store_true", help="also write a contact sheet preview.png")
    g.add_argument("--no-progress", dest="no_progress", action="store_true")
    g.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..scenes import generate_dataset, load_schema

    if args.out is not None:
        check_folder(args.out, "--out")  # before reading the schema: nothing is done for an unwritable --out
    schema = load_schema(args.schema)
    out = os.path.join("datasets", f"shapes-{schema.name}") if args.out is None else args.out
    check_folder(out, "--out")
    generate_dataset(out, schema=schema, n=args.n, val=args.val, test=args.test, heldout=args.heldout,
                     seed=args.seed, shard_size=args.shard_size, size=args.size, jitter=args.jitter,
                     noise=args.noise, overwrite=args.overwrite, preview=args.preview,
                     progress=not args.no_progress)
    if args.preview:
        print(f"preview: {os.path.join(out, 'preview.png')}")
    return 0
