"""``vsa-vision demo``, ``recognize`` and ``edit``: the trained vision pipeline on images."""

from __future__ import annotations

import argparse
import os
import sys

from .common import add_device, add_out, add_seed, method_spec, nonneg, positive
from .outputs import check_picture, same_path, save_picture

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def add_checkpoint(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default=None, help="model checkpoint (default: the shipped one)")


def add_head(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", type=method_spec, default=None,
                   help="decomposer head (default: auto, the cheaper of exhaustive search and the model's own "
                   "method, diffusion, for the codebooks' shape)")


def load_pipeline(args: argparse.Namespace):
    """The pipeline of ``--checkpoint`` on ``--device`` with the head ``--method``. Whatever a malformed
    checkpoint makes the loader raise becomes a ValueError that names the file."""
    from ..checkpoint import CheckpointError, load_model
    from ..pipeline import Pipeline

    try:
        model = load_model(args.checkpoint, map_location=args.device)
    except CheckpointError:
        raise
    except (AttributeError, TypeError, KeyError, IndexError, ValueError, RuntimeError) as e:
        what = f"checkpoint {args.checkpoint}" if args.checkpoint else "the shipped checkpoint"
        raise ValueError(f"{what}: not a usable vsa_vision model ({type(e).__name__}: {e})") from None
    return Pipeline(model, method=args.method)


def register(sub) -> None:
    v = sub.add_parser("demo", help="render random scenes, recognise and edit them, write a picture")
    add_checkpoint(v)
    add_head(v)
    v.add_argument("--schema", choices=["default", "multi", "clutter"], default=None,
                   help="the shipped model to show when --checkpoint is not given: default (one object), multi "
                        "(scenes of 1 to 3 objects) or clutter (1 to 6 objects anywhere, overlapping)")
    v.add_argument("--count", type=positive, default=4, help="scenes to show (default 4)")
    add_seed(v)
    v.add_argument("--split", choices=["test", "heldout"], default="test",
                   help="draw the scenes from the test split or the held-out combinations (default test)")
    add_out(v, default="demo.png", help="the picture to write, in the format its extension names (default demo.png)")
    add_device(v)
    v.set_defaults(func=cmd_demo)

    r = sub.add_parser("recognize", help="what is in each image: a table, or JSON with --json")
    r.add_argument("paths", nargs="+", help="image files or folders")
    add_checkpoint(r)
    add_head(r)
    r.add_argument("--json", action="store_true", help="print JSON instead of a table")
    r.add_argument("--allow-unknown", dest="allow_unknown", action="store_true",
                   help="exit 0 even when some inputs are no scene of the model's schema (marked unknown); by "
                        "default such inputs make the exit status 1")
    r.add_argument("--batch-size", dest="batch_size", type=positive, default=256)
    add_device(r)
    r.set_defaults(func=cmd_recognize)

    e = sub.add_parser("edit", help="change attributes of an image in vector space and render the result")
    e.add_argument("image", help="the input image")
    e.add_argument("--set", dest="changes", action="append", default=[], metavar="ATTRIBUTE=VALUE",
                   help="a change, e.g. --set colour=red (repeat for several)")
    add_out(e, default=None, required=True,
            help="where to write the rendered edit, in the format its extension names (.png, .jpg, ...)")
    e.add_argument("--grid", nargs="?", const=True, default=None, metavar="PATH",
                   help="also write input | recognised | edit side by side (default path: <out>-grid.png)")
    add_checkpoint(e)
    add_head(e)
    add_device(e)
    e.add_argument("--where", action="append", default=[], metavar="ATTRIBUTE=VALUE",
                   help="scenes of several objects: edit the objects with these values (repeat for several)")
    e.add_argument("--object", type=nonneg, default=None, metavar="I",
                   help="scenes of several objects: edit object I of the recognised list (ordered by position)")
    e.add_argument("--remove", action="store_true", help="scenes of several objects: remove the selected objects")
    e.add_argument("--add", action="append", default=[], metavar="ATTRIBUTE=VALUE",
                   help="scenes of several objects: add an object with these values (every attribute)")
    e.add_argument("--allow-unknown", dest="allow_unknown", action="store_true",
                   help="edit even an input that is no scene of the model's schema (by default such an input is "
                        "refused with exit status 1, as recognize marks it unknown)")
    e.set_defaults(func=cmd_edit)


def _image_files(paths: list[str]) -> list[str]:
    out = []
    for p in paths:
        if os.path.isdir(p):
            out += sorted(os.path.join(p, f) for f in os.listdir(p)
                          if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(p, f)))
        else:
            out.append(p)
    return out


def _open_image(path: str):
    """The image to edit, by the input policy of :func:`vsa_vision.scenes.images.open_image` (a regular
    file, at most ``MAX_PIXELS``, no decompression bomb): a ValueError naming the path otherwise."""
    from ..scenes.images import open_image

    if os.path.isdir(path):
        raise ValueError(f"{path}: is a folder, not an image")
    return open_image(path)


def _missing(path: str) -> bool:
    """Whether nothing is at ``path`` (a symbolic link loop is something: it is skipped, saying so)."""
    import errno

    try:
        os.stat(path)
    except OSError as e:
        return e.errno != errno.ELOOP
    return False


def cmd_recognize(args: argparse.Namespace) -> int:
    missing = [p for p in args.paths if _missing(p)]
    if missing:  # a typo in a path: nothing is done (an unreadable file is skipped, exit 1)
        raise ValueError(f"{missing[0]!r}: no such file or folder")
    files = _image_files(args.paths)
    if not files:
        raise ValueError(f"no image files found in {' '.join(args.paths)}")
    pipe = load_pipeline(args)
    names = list(pipe.schema.names)
    # each file is opened and shrunk just before its batch: memory holds one batch of small images
    results, errors = pipe.recognize_files(files, batch_size=args.batch_size)
    for _, msg in errors:
        print(f"vsa-vision: skipped {msg}", file=sys.stderr)
    if pipe.schema.max_objects > 1:
        _print_objects(pipe, results, errors, args.json)
    elif args.json:
        out = {"method": pipe.method, "images": [
            {"path": f, "known": r.known, "labels": r.labels, "probability": r.probability,
             "attribute_probability": r.attribute_probability, "confidence": r.confidence,
             "similarity": r.similarity} for f, r in results],
            "errors": [{"path": f, "error": msg} for f, msg in errors]}
        print(_json_text(out))
    else:
        width = max([len("image")] + [len(f) for f, _ in results])
        print(f"{'image':{width}s}  known  " + "  ".join(f"{n:>8s}" for n in names) + "  probability  similarity")
        for f, r in results:
            print(f"{f:{width}s}  {_known_text(r)}  " + "  ".join(f"{r.labels[n]:>8s}" for n in names)
                  + f"  {_probability_text(r):>11s}  {r.similarity:10.3f}")
    unknown = [f for f, r in results if not r.known]
    if unknown:
        print(f"vsa-vision: {len(unknown)} of {len(results)} inputs are no scene this model knows (marked "
              f"unknown{'' if args.allow_unknown else '; --allow-unknown to exit 0 anyway'})", file=sys.stderr)
    return 1 if errors or (unknown and not args.allow_unknown) else 0


def _json_text(value) -> str:
    """``value`` as strict JSON: a number that is not finite (NaN, infinity) is written as null, never as
    the bare ``NaN`` / ``Infinity`` no JSON reader takes."""
    import json
    import math

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), indent=2, allow_nan=False)


def _known_text(r) -> str:
    return "  yes" if r.known else "   NO"


def _probability_text(r) -> str:
    return "-" if r.probability is None else f"{r.probability:.3f}"


def _print_objects(pipe, results, errors, as_json: bool) -> None:
    """``recognize`` for a model of several objects: each image's objects, ordered by position."""
    if as_json:
        print(_json_text({"method": pipe.method, "images": [
            {"path": f, "known": r.known, "objects": r.objects, "probability": r.probability,
             "object_probability": r.object_probability, "object_confidence": r.object_confidence,
             "similarity": r.similarity}
            for f, r in results], "errors": [{"path": f, "error": msg} for f, msg in errors]}))
        return
    width = max([len("image")] + [len(f) for f, _ in results])
    print(f"{'image':{width}s}  known  probability  objects ({' '.join(pipe.schema.names)}), ordered by position")
    for f, r in results:
        print(f"{f:{width}s}  {_known_text(r)}  {_probability_text(r):>11s}  {_objects_text(r.objects)}")


def _parse_pairs(items: list[str], flag: str, verb: str = "given") -> dict[str, str]:
    """``ATTRIBUTE=VALUE`` items of ``flag``, each attribute once."""
    out: dict[str, str] = {}
    for item in items:
        k, eq, v = (s.strip() for s in item.partition("="))
        if not eq or not k or not v:
            raise ValueError(f"{flag}: expected ATTRIBUTE=VALUE, got {item!r}")
        if k in out:
            raise ValueError(f"{flag}: {k} is {verb} twice ({k}={out[k]} and {k}={v}); give each attribute once")
        out[k] = v
    return out


def _parse_sets(items: list[str]) -> dict[str, str]:
    out = _parse_pairs(items, "--set", verb="set")
    if not out:
        raise ValueError("edit: give at least one --set ATTRIBUTE=VALUE")
    return out


def _edit_outputs(args: argparse.Namespace) -> tuple[str, str | None]:
    """``--out`` and the grid's path, checked: writable, formats Pillow writes, none the input, not the same."""
    grid = None
    if args.grid is not None:
        grid = args.grid if isinstance(args.grid, str) else os.path.splitext(args.out)[0] + "-grid.png"
    targets = [("--out", args.out)] + ([("--grid", grid)] if grid is not None else [])
    for flag, target in targets:
        if same_path(target, args.image):
            raise ValueError(f"{flag} {target}: refusing to overwrite the input image; choose another path")
        check_picture(target, flag)
    if grid is not None and same_path(grid, args.out):
        raise ValueError(f"--grid {grid}: the same file as --out {args.out}; the grid would overwrite the edit")
    return args.out, grid


def _objects_text(objects: list[dict[str, str]]) -> str:
    return "; ".join(" ".join(o.values()) for o in objects) or "(nothing)"


def _refuse_unknown(args: argparse.Namespace, res) -> bool:
    """Whether to refuse the edit ``res``: its input is no scene the model knows (as ``recognize`` says
    of it) and ``--allow-unknown`` was not given; says so on stderr."""
    if res.before.known or args.allow_unknown:
        return False
    chance = "" if res.before.probability is None else f", probability {res.before.probability:.3f}"
    print(f"vsa-vision: {args.image} is no scene this model knows (recognised as "
          f"{_objects_text(res.before.objects)}{chance}); nothing written. --allow-unknown to edit it anyway",
          file=sys.stderr)
    return True


def _cmd_edit_objects(args: argparse.Namespace, pipe, image, out: str, grid: str | None) -> int:
    """``edit`` on a scene of several objects: select (--where / --object), change (--set), --remove, --add."""
    from ..edit import labelled_grid

    changes = _parse_pairs(args.changes, "--set") if args.changes else {}
    where = _parse_pairs(args.where, "--where") if args.where else None
    add = _parse_pairs(args.add, "--add") if args.add else None
    res = pipe.edit(image, where=where, object=args.object, remove=args.remove, add=add, **changes)
    if _refuse_unknown(args, res):
        return 1
    save_picture(res.image, out, "--out")
    print("recognised: " + _objects_text(res.before.objects))
    print("edited:     " + _objects_text(res.objects))
    print(f"wrote {out}")
    if grid:
        sheet = labelled_grid([[(image, "input"), (pipe.render(res.before.objects), "recognised"),
                                (res.image, "edit")]])
        save_picture(sheet, grid, "--grid")
        print(f"wrote {grid}")
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    from ..edit import describe, labelled_grid

    out, grid = _edit_outputs(args)
    image = _open_image(args.image)
    if args.where or args.object is not None or args.remove or args.add:
        pipe = load_pipeline(args)
        if pipe.schema.max_objects == 1:
            raise ValueError("edit: --where, --object, --remove and --add select objects of a scene of several; "
                             f"this model's schema {pipe.schema.name!r} holds one object an image")
        return _cmd_edit_objects(args, pipe, image, out, grid)
    changes = _parse_sets(args.changes)
    pipe = load_pipeline(args)
    if pipe.schema.max_objects > 1:
        raise ValueError("edit: a scene of several objects: select what to change with --where "
                         "ATTRIBUTE=VALUE or --object I (or --add / --remove)")
    res = pipe.edit(image, **changes)
    if _refuse_unknown(args, res):
        return 1
    save_picture(res.image, out, "--out")
    names = list(pipe.schema.names)
    print("recognised: " + " ".join(f"{k}={res.before.labels[k]}" for k in names))
    print("changes:    " + " ".join(f"{k}={v}" for k, v in changes.items()))
    print("edited:     " + " ".join(f"{k}={res.labels[k]}" for k in names)
          + f"   (similarity {min(res.confidence.values()):.3f})")
    print(f"wrote {out}")
    if grid:
        sheet = labelled_grid([[(image, "input"), (pipe.render(res.before.labels),
                                                   "recognised\n" + describe(res.before.labels, names)),
                                (res.image, "edit: " + " ".join(f"{k}={v}" for k, v in changes.items()) + "\n"
                                 + describe(res.labels, names))]])
        save_picture(sheet, grid, "--grid")
        print(f"wrote {grid}")
    return 0


def _demo_objects(args: argparse.Namespace, pipe, split: str) -> int:
    """``demo`` with a model of several objects: recognise each scene and change one attribute of one
    of its objects in vector space."""
    import numpy as np

    from ..edit import labelled_grid
    from ..scenes import render_scene, sample_scenes

    schema = pipe.schema
    scenes = sample_scenes(schema, args.count, seed=args.seed, split=split)
    images = [render_scene(schema, s) for s in scenes]
    rng = np.random.default_rng(args.seed)
    key = lambda objs: sorted(tuple(sorted(o.items())) for o in objs)  # noqa: E731
    rows, right = [], 0
    print(f"vsa-vision demo: {args.count} scenes of the {split} split, head {pipe.method}\n")
    for img, truth, rec in zip(images, scenes, pipe.recognize(images)):
        ok = key(rec.objects) == key(truth)
        right += ok
        print("truth      " + _objects_text(truth))
        print("recognised " + _objects_text(rec.objects) + ("   right" if ok else "   WRONG"))
        row = [(img, "input"), (pipe.render(rec.objects), "recognised")]
        if rec.objects:
            i = int(rng.integers(len(rec.objects)))
            attr = schema.attribute(str(rng.choice(["shape", "colour", "size", "fill"])))
            old = rec.objects[i][attr.name]
            new = attr.values[(attr.values.index(old) + 1 + int(rng.integers(len(attr) - 1))) % len(attr)]
            res = pipe.edit(img, object=i, **{attr.name: new})
            intended = [dict(o, **{attr.name: new}) if j == i else o for j, o in enumerate(rec.objects)]
            print(f"edit object {i} {attr.name}={new}: " + _objects_text(res.objects)
                  + ("   as intended" if key(res.objects) == key(intended) else "   NOT as intended"))
            row.append((res.image, f"edit object {i}: {attr.name}={new}"))
        print()
        rows.append(row)
    save_picture(labelled_grid(rows), args.out)
    print(f"{right}/{len(scenes)} recognised right; wrote {args.out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import numpy as np

    from ..edit import describe, labelled_grid
    from ..scenes import render_scene, sample_indices

    check_picture(args.out, "--out")
    if args.schema is not None and args.checkpoint is None:
        args.checkpoint = args.schema  # the shipped checkpoint of that name
    pipe = load_pipeline(args)
    schema = pipe.schema
    if args.schema is not None and schema.name != args.schema:
        raise ValueError(f"--schema {args.schema}: the checkpoint's schema is {schema.name!r}")
    split = args.split if args.split != "heldout" or schema.holdout else "test"
    if schema.max_objects > 1:
        return _demo_objects(args, pipe, split)
    idx = sample_indices(schema, args.count, seed=args.seed, split=split)
    scenes = schema.decode(idx)
    images = [render_scene(schema, s) for s in scenes]
    recs = pipe.recognize(images)
    rng = np.random.default_rng(args.seed)
    rows, names = [], list(schema.names)
    right = 0
    print(f"vsa-vision demo: {args.count} scenes of the {split} split, head {pipe.method}\n")
    for img, truth, rec in zip(images, scenes, recs):
        k = int(rng.integers(len(names)))
        attr = schema.attributes[k]
        new = attr.values[(attr.values.index(truth[attr.name]) + 1 + int(rng.integers(len(attr) - 1)))
                          % len(attr)] if len(attr) > 1 else truth[attr.name]
        res = pipe.edit(img, **{attr.name: new})
        intended = {**truth, attr.name: new}
        ok = res.labels == intended
        right += rec.labels == truth
        print("truth      " + " ".join(f"{n}={truth[n]}" for n in names))
        print("recognised " + " ".join(f"{n}={rec.labels[n]}" for n in names)
              + ("   right" if rec.labels == truth else "   WRONG"))
        print(f"edit {attr.name}={new}: " + " ".join(f"{n}={res.labels[n]}" for n in names)
              + ("   as intended" if ok else "   NOT as intended") + "\n")
        rows.append([(img, "input\n" + describe(truth, names)),
                     (pipe.render(rec.labels), "recognised\n" + describe(rec.labels, names)),
                     (res.image, f"edit {attr.name}={new}\n" + describe(res.labels, names))])
    save_picture(labelled_grid(rows), args.out)
    print(f"{right}/{len(scenes)} recognised right; wrote {args.out}")
    return 0
