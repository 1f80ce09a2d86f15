"""``vsa-vision bench capacity``: the capacity frontier (the largest search space each method solves at
a target accuracy, against D; CSV + PNG) and, with ``--crossover``, the crossover with exhaustive search."""

from __future__ import annotations

import argparse
import os

from ..common import (
    add_device,
    add_methods,
    add_out,
    add_seed,
    add_threads,
    apply_threads,
    int_list,
    method_spec,
    number_in,
    positive,
)
from ..outputs import check_folder, write_rows

#: the methods when --methods is not given: the iterative ones (exhaustive search has no capacity limit)
CAPACITY_METHODS = ["resonator", "attention_resonator", "stochastic_resonator", "in_memory_factorizer", "diffusion"]
#: the schemas of --crossover when --schemas is not given
CROSSOVER_SCHEMAS = [[10, 12, 6, 32, 32, 2], [10, 12, 6, 32, 32, 2, 8], [10, 12, 6, 64, 64, 2, 12]]
#: the defaults of the options only the crossover reads (None in the parser: given or not is known)
CROSSOVER_DEFAULTS = {"schemas": CROSSOVER_SCHEMAS, "crossover_dim": 4096, "crossover_method": "diffusion",
                      "exhaustive_problems": 2}
#: the defaults of the options only the frontier reads
FRONTIER_DEFAULTS = {"dims": [256, 512, 1024, 2048, 4096], "shape": "both", "target": 0.99, "max_space": 1e12}


class _DefaultMethods(list):
    """The frontier's methods when --methods is not given (a None default would be filled with every
    registered method by main()); its type tells the option was not given."""


def schema_list(text: str) -> list[list[int]]:
    """Schemas separated by ';', each comma-separated codebook sizes: ``10,12,6,32,32,2;10,12,6,32,32,2,8``."""
    parts = [p for p in text.split(";") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected ';'-separated lists of codebook sizes, got {text!r}")
    return [int_list(p) for p in parts]


def target_fraction(text: str) -> float:
    v = number_in(0.0, 1.0, "fraction")(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a fraction above 0 and at most 1, got {text!r}")
    return v


def register(sub) -> None:
    c = sub.add_parser("capacity", help="the capacity frontier: the largest search space solved at a target "
                       "accuracy against D (CSV + PNG); --crossover: against exhaustive search")
    add_methods(c, help=f"method specs (default {';'.join(CAPACITY_METHODS)}); exhaustive ones are skipped")
    c.set_defaults(methods=_DefaultMethods(CAPACITY_METHODS))
    c.add_argument("--dims", type=int_list, default=None, help="dimensions D (default 256,512,1024,2048,4096)")
    c.add_argument("--shape", choices=["k3", "vision", "both"], default=None,
                   help="k3: three factors of n (n^3); vision: 10x12x6 x p x p x2x8 (11,520 p^2); both (default)")
    c.add_argument("--iterations", type=positive, default=1000, help="iteration budget (default 1000)")
    c.add_argument("--problems", type=positive, default=100, help="fresh problems per size (default 100)")
    c.add_argument("--target", type=target_fraction, default=None,
                   help="accuracy (all factors right) a size must reach (default 0.99)")
    c.add_argument("--max-space", dest="max_space", type=number_in(1.0, None, "number"), default=None,
                   help="the search stops at this search space (default 1e12): a method reaching it is 'capped'")
    c.add_argument("--frontier", action="store_true", help="with --crossover: run the frontier too")
    c.add_argument("--crossover", action="store_true",
                   help="set one iterative method against exhaustive search on the same problems (instead of the "
                        "frontier, unless --frontier)")
    c.add_argument("--schemas", type=schema_list, default=None,
                   help="crossover schemas, ';'-separated (default 10,12,6,32,32,2;10,12,6,32,32,2,8;"
                        "10,12,6,64,64,2,12)")
    c.add_argument("--crossover-dim", dest="crossover_dim", type=positive, default=None, help="crossover D (4096)")
    c.add_argument("--crossover-method", dest="crossover_method", type=method_spec, default=None,
                   help="the iterative method of the crossover (default diffusion)")
    c.add_argument("--exhaustive-problems", dest="exhaustive_problems", type=positive, default=None,
                   help="problems exhaustive search is timed on (default 2; it is slow on a CPU)")
    add_seed(c)
    add_threads(c)
    add_device(c)
    add_out(c)
    c.set_defaults(func=run)


def _check_options(args: argparse.Namespace) -> tuple[bool, bool]:
    """Which parts run (frontier, crossover); an option of a part that does not run is refused, not
    ignored; the defaults of the others are filled in."""
    from ...decompose import capabilities

    frontier, crossover = args.frontier or not args.crossover, args.crossover
    parts = (("--crossover", crossover, CROSSOVER_DEFAULTS),
             ("the frontier (without --crossover, or with --frontier)", frontier, FRONTIER_DEFAULTS))
    for part, runs, defaults in parts:
        for dest, default in defaults.items():
            if getattr(args, dest) is None:
                setattr(args, dest, default)
            elif not runs:
                raise ValueError(f"--{dest.replace('_', '-')} applies to {part} only")
    if not frontier and not isinstance(args.methods, _DefaultMethods):
        raise ValueError("--methods applies to the frontier (without --crossover, or with --frontier) only; the "
                         "crossover's method is --crossover-method")
    if frontier and all(capabilities(m).exhaustive for m in args.methods):
        raise ValueError("--methods: no iterative method to search (exhaustive search is always right; its limit is "
                         "time: see --crossover)")
    if crossover and capabilities(args.crossover_method).exhaustive:
        raise ValueError(f"--crossover-method: expected an iterative method to set against exhaustive search, "
                         f"got {args.crossover_method!r}")
    return frontier, crossover


def run(args: argparse.Namespace) -> int:
    import torch

    from ...bench.accuracy import write_csv
    from ...bench.capacity import CAPACITY_FIELDS, capacity_frontier, capacity_table, plot_capacity
    from ...bench.crossover import CROSSOVER_FIELDS, crossover_table, exhaustive_crossover

    frontier, crossover = _check_options(args)
    check_folder(args.out, "--out")
    apply_threads(args)
    os.makedirs(args.out, exist_ok=True)
    if frontier:
        print(f"capacity frontier: shape {args.shape}, D {args.dims}, {args.iterations} iterations, {args.problems} "
              f"problems a size, target {args.target:g}, device {args.device}, threads {torch.get_num_threads()}")
        rows = capacity_frontier(args.methods, args.dims, args.shape, args.iterations, args.problems, args.target,
                                 args.seed, args.device, log=print, max_space=args.max_space)
        write_csv(rows, os.path.join(args.out, "capacity.csv"), CAPACITY_FIELDS)
        plot_capacity(rows, os.path.join(args.out, "capacity.png"))
        print()
        print(capacity_table(rows))
        print(f"\nwrote {os.path.join(args.out, 'capacity.csv')} and capacity.png\n")
    if crossover:
        print(f"crossover: {args.crossover_method} against exhaustive search, D {args.crossover_dim}, "
              f"{args.iterations} iterations, {args.problems} problems ({args.exhaustive_problems} timed exhaustively)")
        rows = exhaustive_crossover(args.schemas, args.crossover_dim, args.crossover_method, args.iterations,
                                    args.problems, args.seed, args.device, args.exhaustive_problems, log=print)
        print()
        print(crossover_table(rows))
        write_rows(args.out, "crossover.csv", rows, CROSSOVER_FIELDS)
    return 0
