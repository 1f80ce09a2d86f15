"""``vsa-vision tune``: search a decomposer's options and write them to a file the user names."""

from __future__ import annotations

import argparse
import os

from .common import add_out, add_seed, add_threads, apply_threads, positive, seed
from .outputs import check_file

#: the names of ``vsa_vision.bench.tune.PORTFOLIOS`` (spelt out: the parser must not import torch)
PORTFOLIO_NAMES = ["mixed", "light", "small", "low", "mid", "high", "capacity", "vast", "wide", "vision7",
                   "vision7_large"]


def register(sub) -> None:
    t = sub.add_parser("tune", help="search a decomposer's options and write them to a file")
    t.add_argument("method", help="diffusion, stochastic_resonator or attention_resonator")
    t.add_argument("--n", type=positive, default=None, help="values per factor of the tuning problems (80)")
    t.add_argument("--k", type=positive, default=None, help="factors (3)")
    t.add_argument("--dim", type=positive, default=None, help="dimension (1000)")
    t.add_argument("--iterations", type=positive, default=None, help="iteration budget (100)")
    t.add_argument("--trials", type=positive, default=200)
    t.add_argument("--problems", type=positive, default=None, help="tuning problems per trial (300)")
    t.add_argument("--portfolio", nargs="?", const="mixed", default=None, choices=PORTFOLIO_NAMES,
                   help="score each setting by its mean accuracy over several problem shapes "
                        "(vsa_vision.bench.tune.PORTFOLIOS) instead of one; the others (light, small, ..., vast, "
                        "vision7_large) tune that anchor of the diffusion decomposer's adaptive defaults")
    t.add_argument("--eval-problems", dest="eval_problems", type=positive, default=500)
    add_seed(t, help="seed of the search and of the tuning problems")
    t.add_argument("--eval-seed", dest="eval_seed", type=seed, default=None,
                   help="seed of the evaluation problems (default: seed + 10000)")
    add_out(t, default=None, help="the file to write (default tuned/<method>.json; an anchor is merged into it); "
                                  "the full report goes beside it")
    t.add_argument("--into-package", dest="into_package", action="store_true",
                   help="write an anchor into the installed package's anchors file, changing every later run")
    t.add_argument("--dry-run", action="store_true", help="search and evaluate, write nothing")
    add_threads(t)
    t.set_defaults(func=cmd_tune)


def _output(args: argparse.Namespace, anchor: bool) -> str:
    """Where the result goes: the user's file, or the package's anchors file only when asked."""
    from ..decompose.diffusion.defaults import PACKAGE_ANCHORS

    if args.into_package:
        if not anchor:
            raise ValueError("tune --into-package: only the diffusion anchors (--portfolio <anchor>) "
                             "live in the package; fixed options go to --out")
        if args.out is not None:
            raise ValueError("tune: give --out or --into-package, not both")
        return PACKAGE_ANCHORS
    return os.path.join("tuned", f"{args.method}.json") if args.out is None else args.out


def cmd_tune(args: argparse.Namespace) -> int:
    from ..bench.tune import PORTFOLIOS, tune, tune_anchor, write_defaults
    from ..decompose.diffusion.defaults import ANCHORS_ENV

    apply_threads(args)
    shape = {"n": args.n, "k": args.k, "dim": args.dim, "iterations": args.iterations, "problems": args.problems}
    folio = PORTFOLIOS[args.portfolio] if args.portfolio else None
    anchor = bool(folio and "reference" in folio)
    if anchor and args.method != "diffusion":
        raise ValueError(f"tune --portfolio {args.portfolio}: anchors exist only for the diffusion decomposer")
    path = _output(args, anchor)
    check_file(path, "--out")  # even on a dry run: the run it rehearses would write there
    if folio:
        given = sorted(f"--{k}" for k, v in shape.items() if v is not None)
        if given:
            raise ValueError(f"tune --portfolio: the portfolio's shapes fix their own problems; drop {given}")
    common = {"trials": args.trials, "eval_problems": args.eval_problems, "seed": args.seed,
              "eval_seed": args.eval_seed}
    if anchor:
        report = tune_anchor(args.portfolio, **common)
    elif folio:
        report = tune(args.method, portfolio=folio["shapes"], **common)
    else:
        defaults = {"n": 80, "k": 3, "dim": 1000, "iterations": 100, "problems": 300}
        report = tune(args.method, **{k: defaults[k] if v is None else v for k, v in shape.items()}, **common)
    if args.dry_run:
        print("--dry-run: nothing written")
        return 0
    write_defaults(report, path)
    print(f"wrote {path}")
    if anchor and not args.into_package:
        print(f"to use these anchors: export {ANCHORS_ENV}={os.path.abspath(path)}")
    elif not anchor:
        print(f"to use these options: get_decomposer({args.method!r}, **tuned_options({path!r})) "
              "(vsa_vision.decompose.registry.tuned_options)")
    return 0
