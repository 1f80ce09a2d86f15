"""``vsa-vision bench sets``: scenes of several objects, every method on the same scene vectors."""

from __future__ import annotations

import argparse
import os

from ..common import (
    add_out,
    add_seed,
    add_threads,
    any_number,
    apply_threads,
    int_list,
    method_list,
    number_in,
    positive,
)
from ..outputs import check_folder

#: the methods when --methods is not given (torchhd's peer needs equal factor sizes, the vision shape has none)
SET_METHODS = ["brute_force", "diffusion", "stochastic_resonator", "resonator", "attention_resonator"]


def register(sub) -> None:
    s = sub.add_parser("sets", help="scenes of several objects: set and count accuracy by number of objects")
    s.add_argument("--objects", type=int_list, default=[1, 2, 3, 4], help="numbers of objects (default 1,2,3,4)")
    s.add_argument("--sizes", type=int_list, default=[10, 10, 4, 12, 12, 2],
                   help="factor sizes of one object (default the vision shape 10,10,4,12,12,2)")
    s.add_argument("--dim", type=positive, default=1024)
    s.add_argument("--scenes", type=positive, default=200, help="scenes per number of objects (default 200)")
    s.add_argument("--iterations", type=_budget, default=300,
                   help="iteration budget of every iterative method (300), or 'default': each method's own")
    s.add_argument("--count-known", dest="count_known", action="store_true",
                   help="give the decoder the number of objects instead of estimating it")
    s.add_argument("--snr-db", dest="snr_db", type=any_number, default=None,
                   help="additive Gaussian noise, relative to the power of one object")
    s.add_argument("--cosine", type=number_in(0.0, 1.0, "cosine"), default=None,
                   help="unit-norm scene vectors at this cosine to the exact bundle, decoded with scale='auto'")
    s.add_argument("--joint", action="store_true", help="also run every diffusion method with the joint strategy")
    # its own default, not None: the command line fills a None --methods with every registered method
    s.add_argument("--methods", type=method_list, default=list(SET_METHODS),
                   help=f"method specs (default {';'.join(SET_METHODS)})")
    add_seed(s, default=1, help="scene seed (scenes of m objects use seed + m)")
    add_threads(s)
    add_out(s)
    s.set_defaults(func=run)


def _budget(text: str) -> int | None:
    return None if text == "default" else positive(text)


def run(args: argparse.Namespace) -> int:
    from ...bench.accuracy import write_csv
    from ...bench.sets import FIELDS, plot_sets, set_benchmark, sets_table
    from ...decompose import parse_method

    check_folder(args.out, "--out")
    apply_threads(args)
    distinct = (3, 4) if len(args.sizes) >= 5 else ()
    if distinct and max(args.objects) > args.sizes[3] * args.sizes[4]:
        raise ValueError(f"--objects: at most {args.sizes[3] * args.sizes[4]} objects fit the positions")
    methods = list(args.methods or SET_METHODS)
    if args.joint:
        methods += [f"{m}@joint" for m in methods if parse_method(m)[0] == "diffusion"]
    print(f"objects {args.objects}, sizes {'x'.join(map(str, args.sizes))}, D = {args.dim}, {args.scenes} scenes "
          f"each, {args.iterations or 'default'} iterations, count {'known' if args.count_known else 'estimated'}, "
          f"noise {'none' if args.snr_db is None else f'{args.snr_db:g} dB'}"
          + ("" if args.cosine is None else f", unit norm at cosine {args.cosine:g}"))
    rows = set_benchmark(methods, objects=args.objects, sizes=args.sizes, dim=args.dim, scenes=args.scenes,
                         iterations=args.iterations, seed=args.seed, count_known=args.count_known,
                         snr_db=args.snr_db, distinct=distinct, cosine=args.cosine)
    print()
    print(sets_table(rows))
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, "sets" + ("-known" if args.count_known else "")
                        + ("" if args.snr_db is None else f"-snr{args.snr_db:g}")
                        + ("" if args.cosine is None else f"-cos{args.cosine:g}"))
    write_csv(rows, stem + ".csv", FIELDS)
    plot_sets(rows, stem + ".png", f"sets of objects, D = {args.dim}, count "
              f"{'known' if args.count_known else 'estimated'}")
    print(f"\nwrote {stem}.csv and {stem}.png")
    return 0
