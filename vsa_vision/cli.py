"""The ``vsa-vision`` command line.

    vsa-vision demo                         recognise and edit random scenes with the shipped model
    vsa-vision recognize PATH...            what is in each image (table or --json)
    vsa-vision edit IMAGE --set colour=red --out edited.png
    vsa-vision decompose-demo               decompose random problems with every method
    vsa-vision bench accuracy --sweep size  accuracy against codebook size, all methods, same problems
    vsa-vision data generate --out DIR      render a scene dataset to disk (resumable)
"""

from __future__ import annotations

import argparse
import os
import sys
import time

DEFAULT_METHODS = [
    "brute_force",
    "resonator:update=sync",
    "resonator",
    "attention_resonator",
    "stochastic_resonator",
    "diffusion",
    "diffusion:space='latent'",
]


def _int_list(text: str) -> list[int]:
    try:
        out = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not out or any(v < 1 for v in out):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return out


def _int_at_least(minimum: int, what: str):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {v}")
        return v

    return parse


_positive = _int_at_least(1, "positive")
_nonneg = _int_at_least(0, "non-negative")


def _float_list(text: str) -> list[float]:
    try:
        out = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not out:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
    return out


def _nonneg_list(text: str) -> list[int]:
    out = [_nonneg(v.strip()) for v in text.split(",") if v.strip()]
    if not out:
        raise argparse.ArgumentTypeError(f"expected comma-separated non-negative integers, got {text!r}")
    return out


def _choice_list(choices: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        out = [v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in out if v not in choices]
        if not out or bad:
            raise argparse.ArgumentTypeError(f"expected comma-separated values from {list(choices)}, got {text!r}")
        return out

    return parse


def _methods(text: str) -> list[str]:
    from .bench.accuracy import parse_method
    from .decompose import available_decomposers

    out = [m.strip() for m in text.split(";") if m.strip()] if ";" in text or ":" in text else \
        [m.strip() for m in text.split(",") if m.strip()]
    for m in out:
        name, _ = parse_method(m)
        if name not in available_decomposers():
            raise argparse.ArgumentTypeError(f"unknown method {name!r}; available: {available_decomposers()}")
    return out


def cmd_demo(args: argparse.Namespace) -> int:
    import torch

    from .bench.accuracy import build_method
    from .bench.problems import make_problems

    torch.set_num_threads(max(1, args.threads)) if args.threads else None
    sizes = {"shape": args.n, "colour": args.n, "size": args.n}
    if args.k != 3:
        sizes = {f"factor{i}": args.n for i in range(args.k)}
    p = make_problems(sizes, args.dim, args.problems, seed=args.seed)
    cb = p.codebooks
    print(f"vsa_vision demo: {args.problems} random problems, K = {cb.num_factors} factors of "
          f"{args.n} values, D = {cb.dim} (search space {cb.search_space:,}), {args.iterations} iterations\n")
    truth = cb.labels_of(p.indices[:args.show])
    for i, t in enumerate(truth):
        print(f"  problem {i}: truth  " + " ".join(f"{k}={v}" for k, v in t.items()))
    print()
    print(f"{'method':34s} {'all right':>9s} {'factors':>8s} {'iters':>6s} {'time':>9s}   first answers")
    for spec in args.methods:
        if spec.startswith("brute_force") and cb.search_space > 2_000_000:
            print(f"{spec:34s} skipped (search space {cb.search_space:,} too large for the demo)")
            continue
        m = build_method(spec, args.iterations, args.seed)
        t0 = time.perf_counter()
        res = m.decompose(p.s, cb)
        dt = time.perf_counter() - t0
        acc_all, acc_f = res.accuracy(p.indices)
        first = "; ".join(",".join(r.values()) for r in res.labels[:args.show])
        print(f"{spec:34s} {100 * acc_all:8.1f}% {100 * acc_f:7.1f}% {res.iterations.float().mean():6.1f} "
              f"{dt * 1e3:7.1f}ms   {first}")
    return 0


PEER_METHODS = ["torchhd_resonator"]


def default_methods(peers: bool = True) -> list[str]:
    """Every registered method (the built-in defaults first), with the peers only when installed."""
    from .decompose import available_decomposers, torchhd_available

    names = {s.split(":")[0] for s in DEFAULT_METHODS}
    out = list(DEFAULT_METHODS) + [n for n in available_decomposers() if n not in names and n not in PEER_METHODS]
    if peers:
        if torchhd_available():
            out += PEER_METHODS
        else:
            print("torchhd is not installed (pip install 'vsa_vision[peers]'): the torchhd rows are skipped")
    return out


def cmd_bench_accuracy(args: argparse.Namespace) -> int:
    import torch

    from .bench.accuracy import SWEEPS, markdown_table, run_sweep

    if args.threads:
        torch.set_num_threads(args.threads)
    methods = args.methods
    sweeps = list(SWEEPS) if args.sweep == "all" else [args.sweep]
    # options that only some sweeps read: refuse them elsewhere rather than ignore them
    applies = {"--sizes": (args.sizes, ("size",)), "--flip": (args.flip or None, ("size",)),
               "--snr-db": (args.snr_db, ("size",)), "--values": (args.values, ("dim", "steps", "iterations")),
               "--rho": (args.rho, ("restarts",)), "--restarts": (args.restarts, ("restarts",)),
               "--flips": (args.flips, ("noise",)), "--snrs": (args.snrs, ("noise",))}
    if args.sweep == "all" and args.values:
        raise ValueError("--values means D, steps or budgets depending on the sweep: give it with one --sweep")
    for flag, (value, where) in applies.items():
        if value is not None and not set(sweeps) & set(where):
            raise ValueError(f"{flag} applies to the {' / '.join(where)} sweep(s), not to --sweep {args.sweep}")
    for sweep in sweeps:
        ms = methods
        if sweep == "restarts":
            ms = [m for m in methods if m.split(":")[0] == "diffusion"] or ["diffusion"]
        if args.sizes and len(set(args.sizes)) > 1:
            ms = [m for m in ms if m not in PEER_METHODS]  # torchhd stacks the codebooks: equal sizes only
        print(f"== sweep {sweep} ==")
        rows, stem = run_sweep(sweep, ms, args.out, k=args.k, dim=args.dim, iterations=args.iterations,
                               problems=args.problems, seed=args.seed, quick=args.quick, ns=args.n,
                               sizes=args.sizes if sweep == "size" else None,
                               values=args.values if sweep in ("dim", "steps", "iterations") else None,
                               rhos=args.rho, counts=args.restarts, flips=args.flips, snrs=args.snrs,
                               flip=args.flip if sweep == "size" else 0.0,
                               snr_db=args.snr_db if sweep == "size" else None,
                               max_brute_flop=args.max_brute_flop)
        column = {"size": "sizes", "dim": "D", "noise": "noise", "iterations": "iterations", "steps": "steps",
                  "restarts": "restarts"}[sweep]
        print()
        if sweep == "noise":
            for n in dict.fromkeys(r["n"] for r in rows):
                print(f"n = {n}")
                print(markdown_table([r for r in rows if r["n"] == n], column))
        elif sweep == "restarts":
            for rho in dict.fromkeys(r["restart"] for r in rows):
                print(f"restart level rho = {rho}")
                print(markdown_table([r for r in rows if r["restart"] == rho], column))
        else:
            print(markdown_table(rows, column))
        print(f"\nwrote {stem}.csv and {stem}.png\n")
    return 0


def cmd_bench_speed(args: argparse.Namespace) -> int:
    import torch

    from .bench.accuracy import write_csv
    from .bench.speed import FIELDS, crossover, speed_benchmark, speed_table

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: CUDA is not available on this machine")
    methods = args.methods
    if args.quick:
        args.n, args.batches, args.iterations, args.repeats = [8, 16], [1, 64], 20, 1
    ns = args.n or [50]
    print(f"n={ns} K={args.k} D={args.dim} batches={args.batches} iterations={args.iterations} "
          f"dtypes={args.dtypes} device={args.device} threads={torch.get_num_threads()} "
          f"early_stop={args.early_stop}")
    rows = speed_benchmark(methods, ns=ns, k=args.k, dim=args.dim, batches=args.batches,
                           iterations=args.iterations, dtypes=args.dtypes, device=args.device,
                           repeats=args.repeats, early_stop=args.early_stop, seed=args.seed,
                           max_brute_flop=args.max_brute_flop)
    print()
    print(speed_table(rows))
    cross = crossover(rows)
    if len(ns) > 1 and cross:
        print("\ncrossover with exhaustive search (largest n where the method costs more, smallest larger n "
              "where it costs less):")
        for (m, batch, dt), (above, below) in cross.items():
            print(f"  {m:40s} batch {batch:5d} {dt}: more costly up to n = {above}, cheaper from n = {below}")
    os.makedirs(args.out, exist_ok=True)
    tag = f"{args.device.replace(':', '')}-K{args.k}" + ("-early" if args.early_stop else "")
    path = os.path.join(args.out, f"speed-{tag}.csv")
    write_csv(rows, path, FIELDS)
    print(f"\nwrote {path}")
    return 0


def cmd_bench_cost(args: argparse.Namespace) -> int:
    import torch

    from .bench.problems import make_problems
    from .bench.speed import cost_rounds

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: CUDA is not available on this machine")
    p = make_problems(args.n, args.dim, args.batch, seed=args.seed, k=args.k)
    print(f"n={args.n} K={args.k} D={args.dim} batch={args.batch} iterations={args.iterations} "
          f"rounds={args.rounds} device={args.device} threads={torch.get_num_threads()} early_stop={args.early_stop}")
    rows = cost_rounds(args.methods, p, args.iterations, args.rounds, args.device, args.early_stop, args.seed)
    first = rows[0]["method"]
    print(f"\n| method | us / problem-iteration, median [range] | ratio to `{first}`, median [range] |")
    print("| --- | ---: | ---: |")
    for r in rows:
        print(f"| `{r['method']}` | {r['us_per_problem_iteration']:.1f} [{r['us_min']:.1f}, {r['us_max']:.1f}] | "
              f"{r['ratio']:.2f} [{r['ratio_min']:.2f}, {r['ratio_max']:.2f}] |")
    return 0


def cmd_bench_chains(args: argparse.Namespace) -> int:
    import torch

    from .bench.accuracy import chain_independence
    from .bench.problems import make_problems

    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = args.sizes or args.n
    p = make_problems(sizes, args.dim, args.problems, seed=args.seed, k=None if args.sizes else args.k,
                      flip=args.flip)
    rows = chain_independence(args.method, p, args.iterations, args.seeds)
    print(f"{args.method} on {len(p)} problems (sizes {'x'.join(map(str, p.codebooks.sizes))}, D = {args.dim}, "
          f"flip {args.flip:g}, problem seed {args.seed}), {args.iterations} iterations a run\n")
    print("| runs | method seed | this run | best of the runs so far [95% CI] | if failures were independent |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['runs']} | {r['seed']} | {100 * r['acc_run']:.1f} | {100 * r['acc_best_of']:.1f} "
              f"[{100 * r['acc_best_of_lo']:.1f}, {100 * r['acc_best_of_hi']:.1f}] | "
              f"{100 * r['acc_if_independent']:.1f} |")
    return 0


def cmd_bench_vision(args: argparse.Namespace) -> int:
    import torch

    from .bench.accuracy import write_csv
    from .bench.vision import FIELDS, breakdown_table, vision_benchmark, vision_table

    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = _pipeline(args)
    rows = vision_benchmark(pipe, args.methods, images=args.images, seed=args.seed, batch_size=args.batch_size)
    print()
    print(vision_table(rows))
    if breakdown_table(rows):
        print("\nheld-out split by held-out combination (all attributes right):\n")
        print(breakdown_table(rows))
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "vision.csv")
    write_csv(rows, path, FIELDS)
    print(f"\nwrote {path}")
    return 0


def cmd_bench_data(args: argparse.Namespace) -> int:
    from .bench.data import data_benchmark

    data_benchmark(images=args.images, workers=args.workers, batch_size=args.batch_size, schema=args.schema)
    return 0


def cmd_bench_curve(args: argparse.Namespace) -> int:
    from .bench.training import plot_curves, read_curve

    runs = []
    for item in args.metrics:
        label, eq, path = item.partition("=")
        runs.append((label, path) if eq else (os.path.basename(os.path.dirname(os.path.abspath(item))), item))
    for label, path in runs:
        print(label)
        for p in read_curve(path):
            held = "" if p["heldout"] is None else f"  held-out combinations {100 * p['heldout']:6.2f}%"
            print(f"  epoch {p['epoch']:3.0f}  {p['minutes']:6.2f} min  val all attributes {100 * p['acc_all']:6.2f}%  "
                  f"cos {p['cos']:.3f}{held}")
    plot_curves(runs, args.out, title=args.title)
    print(f"wrote {args.out}")
    return 0


#: the names of ``vsa_vision.bench.tune.PORTFOLIOS`` (spelt out: the parser must not import torch)
PORTFOLIO_NAMES = ["mixed", "light", "small", "low", "mid", "high"]


def cmd_tune(args: argparse.Namespace) -> int:
    import torch

    from .bench.tune import PORTFOLIOS, tune, write_defaults
    from .decompose.diffusion import _ANCHOR_MISSING, _FALLBACK_ANCHORS, ADAPTIVE_OPTIONS, problem_load
    from .decompose.registry import tuned_anchors

    if args.threads:
        torch.set_num_threads(args.threads)
    shape = {"n": args.n, "k": args.k, "dim": args.dim, "iterations": args.iterations, "problems": args.problems}
    if args.portfolio:
        given = sorted(f"--{k}" for k, v in shape.items() if v is not None)
        if given:
            raise ValueError(f"tune --portfolio: the portfolio's shapes fix their own problems; drop {given}")
        shape = {}
    else:
        defaults = {"n": 80, "k": 3, "dim": 1000, "iterations": 100, "problems": 300}
        shape = {k: defaults[k] if v is None else v for k, v in shape.items()}
    folio = PORTFOLIOS[args.portfolio] if args.portfolio else None
    anchor = bool(folio and "reference" in folio)
    load = others = None
    if anchor:
        if args.method != "diffusion":
            raise ValueError(f"tune --portfolio {args.portfolio}: anchors exist only for the diffusion decomposer")
        load = problem_load(folio["reference"]["sizes"], folio["reference"]["dim"])
        # the other anchors' settings (and the built-in fallback) are tried right after the current ones
        others = [{**_ANCHOR_MISSING, **a["options"]} for a in tuned_anchors("diffusion") + _FALLBACK_ANCHORS
                  if abs(a["load"] - load) > 1e-6 or a.get("factors") not in (None, len(folio["reference"]["sizes"]))]
    report = tune(args.method, trials=args.trials, eval_problems=args.eval_problems, seed=args.seed,
                  eval_seed=args.eval_seed, portfolio=folio["shapes"] if folio else None,
                  only=list(ADAPTIVE_OPTIONS) if anchor else None, starts=others, **shape)
    if anchor:
        report["anchor"] = args.portfolio
        report["load"] = round(load, 4)
        report["factors"] = len(folio["reference"]["sizes"])
    if args.dry_run:
        print("--dry-run: defaults not written")
    else:
        path = write_defaults(report, args.out)
        print(f"wrote {path}")
    return 0


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


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
    from PIL import Image, UnidentifiedImageError

    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None


def _pipeline(args: argparse.Namespace):
    from .pipeline import Pipeline

    return Pipeline.from_checkpoint(args.checkpoint, device=args.device, method=args.method)


def cmd_recognize(args: argparse.Namespace) -> int:
    import json

    files = _image_files(args.paths)
    if not files:
        raise ValueError(f"no image files found in {args.paths}")
    pipe = _pipeline(args)
    images, good, bad = [], [], []
    for f in files:
        try:
            images.append(_open_image(f))
            good.append(f)
        except (ValueError, FileNotFoundError) as e:
            bad.append((f, str(e)))
            print(f"vsa-vision: skipped {e}", file=sys.stderr)
    recs = pipe.recognize(images, batch_size=args.batch_size) if images else []
    names = list(pipe.schema.names)
    if args.json:
        out = {"method": pipe.method, "images": [
            {"path": f, "labels": r.labels, "confidence": r.confidence, "similarity": r.similarity}
            for f, r in zip(good, recs)], "errors": [{"path": f, "error": msg} for f, msg in bad]}
        print(json.dumps(out, indent=2))
    else:
        width = max([len("image")] + [len(f) for f in good])
        print(f"{'image':{width}s}  " + "  ".join(f"{n:>8s}" for n in names) + "  similarity")
        for f, r in zip(good, recs):
            print(f"{f:{width}s}  " + "  ".join(f"{r.labels[n]:>8s}" for n in names) + f"  {r.similarity:10.3f}")
    return 1 if bad else 0


def _parse_sets(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        k, eq, v = item.partition("=")
        if not eq or not k.strip() or not v.strip():
            raise ValueError(f"--set: expected ATTRIBUTE=VALUE, got {item!r}")
        out[k.strip()] = v.strip()
    if not out:
        raise ValueError("edit: give at least one --set ATTRIBUTE=VALUE")
    return out


def _same_file(a: str, b: str) -> bool:
    return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)


def cmd_edit(args: argparse.Namespace) -> int:
    from .edit import describe, labelled_grid
    from .io import atomic_path

    changes = _parse_sets(args.changes)
    grid = None
    if args.grid is not None:
        grid = args.grid if isinstance(args.grid, str) else os.path.splitext(args.out)[0] + "-grid.png"
    for target in [args.out] + ([grid] if grid else []):
        if _same_file(target, args.image) or os.path.abspath(target) == os.path.abspath(args.image):
            raise ValueError(f"{target}: refusing to overwrite the input image; choose another --out / --grid")
    image = _open_image(args.image)
    pipe = _pipeline(args)
    res = pipe.edit(image, **changes)
    with atomic_path(args.out, suffix=".png") as tmp:
        res.image.save(tmp, format="PNG")
    names = list(pipe.schema.names)
    print("recognised: " + " ".join(f"{k}={res.before.labels[k]}" for k in names))
    print("changes:    " + " ".join(f"{k}={v}" for k, v in changes.items()))
    print("edited:     " + " ".join(f"{k}={res.labels[k]}" for k in names)
          + f"   (similarity {min(res.confidence.values()):.3f})")
    print(f"wrote {args.out}")
    if grid:
        sheet = labelled_grid([[(image, "input"), (pipe.render(res.before.labels),
                                                   "recognised\n" + describe(res.before.labels, names)),
                                (res.image, "edit: " + " ".join(f"{k}={v}" for k, v in changes.items()) + "\n"
                                 + describe(res.labels, names))]])
        with atomic_path(grid, suffix=".png") as tmp:
            sheet.save(tmp, format="PNG")
        print(f"wrote {grid}")
    return 0


def cmd_vision_demo(args: argparse.Namespace) -> int:
    import numpy as np

    from .edit import describe, labelled_grid
    from .io import atomic_path
    from .scenes import render_scene, sample_indices

    pipe = _pipeline(args)
    schema = pipe.schema
    split = args.split if args.split != "heldout" or schema.holdout else "test"
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
    with atomic_path(args.out, suffix=".png") as tmp:
        labelled_grid(rows).save(tmp, format="PNG")
    print(f"{right}/{len(scenes)} recognised right; wrote {args.out}")
    return 0


def cmd_data_generate(args: argparse.Namespace) -> int:
    from .scenes import generate_dataset, load_schema

    schema = load_schema(args.schema)
    out = args.out or os.path.join("datasets", f"shapes-{schema.name}")
    generate_dataset(out, schema=schema, n=args.n, val=args.val, test=args.test, heldout=args.heldout,
                     seed=args.seed, shard_size=args.shard_size, size=args.size, jitter=args.jitter,
                     noise=args.noise, overwrite=args.overwrite, preview=args.preview,
                     progress=not args.no_progress)
    if args.preview:
        print(f"preview: {os.path.join(out, 'preview.png')}")
    return 0


def _nonneg_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="vsa-vision", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"vsa_vision {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser("demo", help="render random scenes, recognise and edit them, write a picture")
    v.add_argument("--checkpoint", default=None, help="model checkpoint (default: the shipped one)")
    v.add_argument("--method", default=None, help="decomposer head (default: the model's, diffusion)")
    v.add_argument("--count", type=_positive, default=4, help="scenes to show (default 4)")
    v.add_argument("--seed", type=_nonneg, default=0)
    v.add_argument("--split", choices=["test", "heldout"], default="test",
                   help="draw the scenes from the test split or the held-out combinations (default test)")
    v.add_argument("--out", default="demo.png", help="the picture to write (default demo.png)")
    v.add_argument("--device", default="cpu")
    v.set_defaults(func=cmd_vision_demo)

    r = sub.add_parser("recognize", help="what is in each image: a table, or JSON with --json")
    r.add_argument("paths", nargs="+", help="image files or folders")
    r.add_argument("--checkpoint", default=None, help="model checkpoint (default: the shipped one)")
    r.add_argument("--method", default=None, help="decomposer head (default: the model's, diffusion)")
    r.add_argument("--json", action="store_true", help="print JSON instead of a table")
    r.add_argument("--batch-size", dest="batch_size", type=_positive, default=256)
    r.add_argument("--device", default="cpu")
    r.set_defaults(func=cmd_recognize)

    e = sub.add_parser("edit", help="change attributes of an image in vector space and render the result")
    e.add_argument("image", help="the input image")
    e.add_argument("--set", dest="changes", action="append", default=[], metavar="ATTRIBUTE=VALUE",
                   help="a change, e.g. --set colour=red (repeat for several)")
    e.add_argument("--out", required=True, help="where to write the rendered edit (PNG)")
    e.add_argument("--grid", nargs="?", const=True, default=None, metavar="PATH",
                   help="also write input | recognised | edit side by side (default path: <out>-grid.png)")
    e.add_argument("--checkpoint", default=None, help="model checkpoint (default: the shipped one)")
    e.add_argument("--method", default=None, help="decomposer head (default: the model's, diffusion)")
    e.add_argument("--device", default="cpu")
    e.set_defaults(func=cmd_edit)

    d = sub.add_parser("decompose-demo", help="decompose random problems with every method and time them")
    d.add_argument("--n", type=_positive, default=40, help="values per factor (default 40)")
    d.add_argument("--k", type=_positive, default=3, help="number of factors (default 3)")
    d.add_argument("--dim", type=_positive, default=1000, help="dimension D (default 1000)")
    d.add_argument("--problems", type=_positive, default=200, help="number of problems (default 200)")
    d.add_argument("--iterations", type=_positive, default=100, help="iteration budget (default 100)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--show", type=int, default=2, help="answers to print per method")
    d.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    d.add_argument("--methods", type=_methods, default=None,
                   help="comma-separated method specs, or ';'-separated when specs carry options")
    d.set_defaults(func=cmd_demo)

    b = sub.add_parser("bench", help="benchmarks")
    bsub = b.add_subparsers(dest="bench", required=True)
    a = bsub.add_parser("accuracy", help="accuracy sweeps, every method on the same problems (CSV + PNG)")
    a.add_argument("--sweep", choices=["size", "dim", "restarts", "steps", "noise", "iterations", "all"],
                   default="size", help="size: n per factor (Fig. 2); dim: D (Fig. 3); restarts: rho x R heat "
                   "map (Fig. 4); steps: diffusion steps per pass (Fig. 5); noise: flips and SNR; iterations: "
                   "the budget; all: every sweep")
    a.add_argument("--n", type=_int_list, default=None,
                   help="codebook sizes per factor (size, noise sweeps) or the one n of the other sweeps")
    a.add_argument("--k", type=_positive, default=3)
    a.add_argument("--sizes", type=_int_list, default=None,
                   help="one shape of unequal factor sizes, e.g. 8,10,4,12,12,2 (size sweep, instead of --n/--k)")
    a.add_argument("--values", type=_int_list, default=None,
                   help="the swept values: D (dim), steps per pass (steps), budgets (iterations)")
    a.add_argument("--rho", type=_float_list, default=None, help="restart levels of the restarts sweep")
    a.add_argument("--restarts", type=_nonneg_list, default=None, help="restart counts of the restarts sweep")
    a.add_argument("--flips", type=_float_list, default=None, help="sign-flip fractions of the noise sweep")
    a.add_argument("--snrs", type=_float_list, default=None, help="SNRs in dB of the noise sweep")
    a.add_argument("--dim", type=_positive, default=1000)
    a.add_argument("--iterations", type=_positive, default=100)
    a.add_argument("--problems", type=_positive, default=200)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--flip", type=float, default=0.0, help="fraction of signs of s flipped (size sweep)")
    a.add_argument("--snr-db", dest="snr_db", type=float, default=None, help="additive Gaussian noise SNR (size sweep)")
    a.add_argument("--max-brute-flop", dest="max_brute_flop", type=float, default=4e12,
                   help="skip exhaustive search at points costlier than this (default 4e12)")
    a.add_argument("--methods", type=_methods, default=None)
    a.add_argument("--no-peers", dest="no_peers", action="store_true", help="leave out the torchhd peer")
    a.add_argument("--threads", type=int, default=0)
    a.add_argument("--quick", action="store_true", help="a small preset of the sweep that runs in seconds")
    a.add_argument("--out", default="bench-results")
    a.set_defaults(func=cmd_bench_accuracy)

    sp = bsub.add_parser("speed", help="time, throughput, FLOP/s, peak memory and the ratio to exhaustive search")
    sp.add_argument("--n", type=_int_list, default=None, help="codebook sizes (default 50); several give the "
                    "crossover n with exhaustive search")
    sp.add_argument("--k", type=_positive, default=3)
    sp.add_argument("--dim", type=_positive, default=1000)
    sp.add_argument("--batches", type=_int_list, default=[1, 16, 256, 4096])
    sp.add_argument("--iterations", type=_positive, default=100)
    sp.add_argument("--dtypes", type=_choice_list(("fp32", "bf16", "tf32")), default=["fp32"],
                    help="fp32, bf16 (codebooks and targets in bf16), tf32 (CUDA fp32 with TF32 products)")
    sp.add_argument("--device", default="cpu")
    sp.add_argument("--repeats", type=_positive, default=3)
    sp.add_argument("--early-stop", dest="early_stop", action="store_true",
                    help="each method's own early stop (time to finish the batch) instead of equal work")
    sp.add_argument("--max-brute-flop", dest="max_brute_flop", type=float, default=2e12)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--methods", type=_methods, default=None)
    sp.add_argument("--no-peers", dest="no_peers", action="store_true", help="leave out the torchhd peer")
    sp.add_argument("--threads", type=int, default=0)
    sp.add_argument("--quick", action="store_true", help="a small preset that runs in seconds")
    sp.add_argument("--out", default="bench-results")
    sp.set_defaults(func=cmd_bench_speed)

    co = bsub.add_parser("cost", help="cost per iteration relative to the first method, methods timed in turn")
    co.add_argument("--methods", type=_methods, required=True,
                    help="';'-separated method specs; the first is the reference of the ratios")
    co.add_argument("--n", type=_positive, default=50)
    co.add_argument("--k", type=_positive, default=3)
    co.add_argument("--dim", type=_positive, default=1000)
    co.add_argument("--batch", type=_positive, default=500)
    co.add_argument("--iterations", type=_positive, default=100)
    co.add_argument("--rounds", type=_positive, default=7)
    co.add_argument("--early-stop", dest="early_stop", action="store_true",
                    help="each method's own early stop instead of equal work")
    co.add_argument("--device", default="cpu")
    co.add_argument("--seed", type=int, default=0)
    co.add_argument("--threads", type=int, default=0)
    co.set_defaults(func=cmd_bench_cost)

    ch = bsub.add_parser("chains", help="are the failures of separate runs of a stochastic method independent?")
    ch.add_argument("--method", default="diffusion:chains=1")
    ch.add_argument("--seeds", type=_nonneg_list, default=[0, 1, 2, 3], help="method seeds, one run each")
    ch.add_argument("--n", type=_positive, default=80)
    ch.add_argument("--k", type=_positive, default=3)
    ch.add_argument("--sizes", type=_int_list, default=None, help="unequal factor sizes instead of --n/--k")
    ch.add_argument("--dim", type=_positive, default=1000)
    ch.add_argument("--flip", type=float, default=0.0, help="fraction of signs of s flipped")
    ch.add_argument("--iterations", type=_positive, default=100)
    ch.add_argument("--problems", type=_positive, default=500)
    ch.add_argument("--seed", type=int, default=1, help="problem seed")
    ch.add_argument("--threads", type=int, default=0)
    ch.set_defaults(func=cmd_bench_chains)

    dp = sub.add_parser("data", help="synthetic scene datasets")
    dsub = dp.add_subparsers(dest="data", required=True)
    g = dsub.add_parser("generate", help="render a dataset to disk in shards (resumable)")
    g.add_argument("--schema", default="default", help="a built-in schema name or a JSON schema file")
    g.add_argument("--n", type=_positive, default=50000, help="training images (default 50000)")
    g.add_argument("--val", type=_nonneg, default=None, help="validation images (default max(1000, n/10))")
    g.add_argument("--test", type=_nonneg, default=None, help="test images (default max(1000, n/10))")
    g.add_argument("--heldout", type=_nonneg, default=None,
                   help="images of the held-out combinations (default max(1000, n/10); 0 if the schema has none)")
    g.add_argument("--seed", type=_nonneg, default=0)
    g.add_argument("--shard-size", dest="shard_size", type=_positive, default=5000)
    g.add_argument("--size", type=_positive, default=None, help="image side in pixels (default: the schema's)")
    g.add_argument("--jitter", type=_nonneg_float, default=0.0, help="position jitter, output pixels")
    g.add_argument("--noise", type=_nonneg_float, default=0.0, help="Gaussian pixel noise std (0..255)")
    g.add_argument("--out", default=None, help="output folder (default datasets/shapes-<schema name>)")
    g.add_argument("--overwrite", action="store_true", help="replace a different dataset in --out")
    g.add_argument("--preview", action="store_true", help="also write a contact sheet preview.png")
    g.add_argument("--no-progress", dest="no_progress", action="store_true")
    g.set_defaults(func=cmd_data_generate)

    bv = bsub.add_parser("vision", help="recognition and edit accuracy of every head on one trained encoder")
    bv.add_argument("--checkpoint", default=None, help="model checkpoint (default: the shipped one)")
    bv.add_argument("--images", type=_positive, default=1000, help="images per split (default 1000)")
    bv.add_argument("--seed", type=_nonneg, default=0)
    bv.add_argument("--methods", type=_methods, default=None)
    bv.add_argument("--batch-size", dest="batch_size", type=_positive, default=256)
    bv.add_argument("--device", default="cpu")
    bv.add_argument("--threads", type=int, default=0)
    bv.add_argument("--out", default="bench-results")
    bv.set_defaults(func=cmd_bench_vision, method=None)

    bd = bsub.add_parser("data", help="rendering and data loading rates")
    bd.add_argument("--images", type=_positive, default=20000)
    bd.add_argument("--workers", type=_nonneg, default=2)
    bd.add_argument("--batch-size", dest="batch_size", type=_positive, default=128)
    bd.add_argument("--schema", default="default")
    bd.set_defaults(func=cmd_bench_data)

    bc = bsub.add_parser("training-curve", help="plot val accuracy against training minutes from metrics.csv")
    bc.add_argument("metrics", nargs="+", help="LABEL=path/to/metrics.csv (or just the path)")
    bc.add_argument("--out", default="bench-results/training-curve.png")
    bc.add_argument("--title", default="")
    bc.set_defaults(func=cmd_bench_curve)

    t = sub.add_parser("tune", help="search a decomposer's options and write its defaults file")
    t.add_argument("method", help="diffusion, stochastic_resonator or attention_resonator")
    t.add_argument("--n", type=_positive, default=None, help="values per factor of the tuning problems (80)")
    t.add_argument("--k", type=_positive, default=None, help="factors (3)")
    t.add_argument("--dim", type=_positive, default=None, help="dimension (1000)")
    t.add_argument("--iterations", type=_positive, default=None, help="iteration budget (100)")
    t.add_argument("--trials", type=_positive, default=200)
    t.add_argument("--problems", type=_positive, default=None, help="tuning problems per trial (300)")
    t.add_argument("--portfolio", nargs="?", const="mixed", default=None, choices=PORTFOLIO_NAMES,
                   help="score each setting by its mean accuracy over several problem shapes "
                        "(vsa_vision.bench.tune.PORTFOLIOS) instead of one; light / small / low / mid / high tune "
                        "the diffusion decomposer's adaptive-default anchors and write them to its 'auto' section")
    t.add_argument("--eval-problems", dest="eval_problems", type=_positive, default=500)
    t.add_argument("--seed", type=int, default=0, help="seed of the search and of the tuning problems")
    t.add_argument("--eval-seed", dest="eval_seed", type=int, default=None,
                   help="seed of the evaluation problems (default: seed + 10000)")
    t.add_argument("--out", default=None, help="defaults file (default: the package's defaults/<method>.json)")
    t.add_argument("--dry-run", action="store_true", help="search and evaluate, write nothing")
    t.add_argument("--threads", type=int, default=0)
    t.set_defaults(func=cmd_tune)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "methods", "unset") is None:
        args.methods = default_methods(peers=not getattr(args, "no_peers", True))
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, ImportError) as e:
        print(f"vsa-vision: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
