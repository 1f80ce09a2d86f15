"""``vsa-vision data generate``: render a synthetic scene dataset to disk (one object a scene, or
several for a schema such as ``multi``: labels.csv then holds a row per object).
``vsa-vision data import``: the same format from the user's own labelled images."""

from __future__ import annotations

import argparse
import os

from .common import add_out, add_seed, nonneg, nonneg_float, number_in, positive
from .outputs import check_folder


def register(sub) -> None:
    dp = sub.add_parser("data", help="datasets: render synthetic scenes, or import your own labelled images")
    dsub = dp.add_subparsers(dest="data", required=True)
    g = dsub.add_parser("generate", help="render a dataset to disk in shards (resumable)")
    g.add_argument("--schema", default="default",
                   help="a built-in schema name (default; multi: scenes of 1 to 3 objects; clutter: 1 to 6 objects "
                        "anywhere, turned, overlapping) or a JSON schema file")
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

    i = dsub.add_parser("import", help="a dataset from your own labelled images: an image folder with metadata.csv "
                                       "(or .jsonl), or arrays (.npz, HDF5) of images and factor classes")
    i.add_argument("source", help="a folder holding metadata.csv / metadata.jsonl (file_name, one column per "
                                  "attribute, optional split) and the images; or an .npz / .h5 file of images and "
                                  "integer factor classes (dSprites, 3dshapes layouts)")
    add_out(i, default=None, help="the dataset folder to write (required)")
    add_seed(i, help="seed of the val / test draw when there is no split column (0)")
    i.add_argument("--size", type=positive, default=64, help="image side in pixels the images are prepared to (64)")
    i.add_argument("--name", default=None, help="the schema's name (default: the source's name)")
    i.add_argument("--val", type=number_in(0.0, 0.49, "val share"), default=0.05,
                   help="share of the rows drawn for val without a split column (0.05)")
    i.add_argument("--test", type=number_in(0.0, 0.49, "test share"), default=0.05,
                   help="share of the rows drawn for test without a split column (0.05)")
    i.add_argument("--holdout", action="append", default=[], metavar="ATTR=VALUE,...",
                   help="a combination never seen in training: its rows go to the heldout split (repeatable)")
    i.add_argument("--ordinal", default=None, metavar="A,B",
                   help="the attributes whose values are ordered steps (default: those whose values are numbers, "
                        "or one prefix and a number)")
    i.add_argument("--nominal", default=None, metavar="A,B",
                   help="attributes that are not ordinal, whatever their values")
    i.add_argument("--ignore", default=None, metavar="A,B", help="columns of metadata.csv that are not attributes")
    i.add_argument("--names", default=None, metavar="A,B",
                   help="arrays: one name per factor column (default: the dSprites / 3dshapes names, else factor0..)")
    i.add_argument("--images-key", dest="images_key", default=None, help="arrays: the key of the images")
    i.add_argument("--labels-key", dest="labels_key", default=None, help="arrays: the key of the factor classes")
    i.add_argument("--max-items", dest="max_items", type=positive, default=None,
                   help="arrays: import this many rows, drawn with the seed")
    i.add_argument("--shard-size", dest="shard_size", type=positive, default=5000)
    i.add_argument("--overwrite", action="store_true", help="replace a different dataset in --out")
    i.add_argument("--no-progress", dest="no_progress", action="store_true")
    i.set_defaults(func=run_import)


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


def _names(text: str | None, what: str) -> list[str] | None:
    if text is None:
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ValueError(f"{what}: expected names separated by commas, got {text!r}")
    return names


def _rules(items: list[str]) -> list[dict[str, str]]:
    rules = []
    for item in items:
        rule = {}
        for part in item.split(","):
            key, eq, value = part.partition("=")
            if not eq or not key.strip() or not value.strip():
                raise ValueError(f"--holdout: expected ATTR=VALUE[,ATTR=VALUE...], got {item!r}")
            rule[key.strip()] = value.strip()
        rules.append(rule)
    return rules


def run_import(args: argparse.Namespace) -> int:
    from ..scenes.importing import import_arrays, import_image_folder

    if args.out is None:
        raise ValueError("--out: required (the dataset folder to write)")
    if args.name is not None and not args.name.strip():
        raise ValueError("--name: empty")
    check_folder(args.out, "--out")
    src = args.source
    common = dict(seed=args.seed, size=args.size, name=args.name, ordinal=_names(args.ordinal, "--ordinal"),
                  nominal=_names(args.nominal, "--nominal") or [], holdout=_rules(args.holdout), val=args.val,
                  test=args.test, shard_size=args.shard_size, overwrite=args.overwrite,
                  progress=not args.no_progress)
    if os.path.isdir(src):
        for flag in ("names", "images_key", "labels_key", "max_items"):
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag.replace('_', '-')}: for arrays (.npz, .h5), not an image folder")
        import_image_folder(src, args.out, ignore=_names(args.ignore, "--ignore") or [], **common)
    elif os.path.isfile(src) and src.endswith((".npz", ".h5", ".hdf5")):
        if args.ignore is not None:
            raise ValueError("--ignore: for an image folder's metadata.csv; arrays take --names")
        import_arrays(src, args.out, names=_names(args.names, "--names"), images_key=args.images_key,
                      labels_key=args.labels_key, max_items=args.max_items, **common)
    elif os.path.exists(src):
        raise ValueError(f"{src}: expected a folder with metadata.csv / metadata.jsonl, or an .npz / .h5 file")
    else:
        raise FileNotFoundError(f"{src}: no such folder or file")
    print(f"train on it: python train.py fit --config configs/own.yaml --data.data_dir {args.out}")
    return 0
