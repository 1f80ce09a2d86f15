"""``vsa-vision tune``: search a decomposer's options and write its defaults file."""

from __future__ import annotations

import argparse

from .common import add_out, add_seed, add_threads, apply_threads, positive

#: the names of ``vsa_vision.bench.tune.PORTFOLIOS`` (spelt out: the parser must not import torch)
PORTFOLIO_NAMES = ["mixed", "light", "small", "low", "mid", "high"]


def register(sub) -> None:
    t = sub.add_parser("tune", help="search a decomposer's options and write its defaults file")
    t.add_argument("method", help="diffusion, stochastic_resonator or attention_resonator")
    t.add_argument("--n", type=positive, default=None, help="values per factor of the tuning problems (80)")
    t.add_argument("--k", type=positive, default=None, help="factors (3)")
    t.add_argument("--dim", type=positive, default=None, help="dimension (1000)")
    t.add_argument("--iterations", type=positive, default=None, help="iteration budget (100)")
    t.add_argument("--trials", type=positive, default=200)
    t.add_argument("--problems", type=positive, default=None, help="tuning problems per trial (300)")
    t.add_argument("--portfolio", nargs="?", const="mixed", default=None, choices=PORTFOLIO_NAMES,
                   help="score each setting by its mean accuracy over several problem shapes "
                        "(vsa_vision.bench.tune.PORTFOLIOS) instead of one; light / small / low / mid / high tune "
                        "the diffusion decomposer's adaptive-default anchors and write them to its 'auto' section")
    t.add_argument("--eval-problems", dest="eval_problems", type=positive, default=500)
    add_seed(t, help="seed of the search and of the tuning problems")
    t.add_argument("--eval-seed", dest="eval_seed", type=int, default=None,
                   help="seed of the evaluation problems (default: seed + 10000)")
    add_out(t, default=None, help="defaults file (default: the package's defaults/<method>.json)")
    t.add_argument("--dry-run", action="store_true", help="search and evaluate, write nothing")
    add_threads(t)
    t.set_defaults(func=cmd_tune)


def cmd_tune(args: argparse.Namespace) -> int:
    from ..bench.tune import PORTFOLIOS, tune, write_defaults
    from ..decompose.diffusion import _ANCHOR_MISSING, _FALLBACK_ANCHORS, ADAPTIVE_OPTIONS, problem_load
    from ..decompose.registry import tuned_anchors

    apply_threads(args)
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
