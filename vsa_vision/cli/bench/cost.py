"""``vsa-vision bench cost``: cost per iteration relative to the first method, methods timed in turn."""

from __future__ import annotations

import argparse

from ..common import add_device, add_methods, add_seed, add_threads, apply_threads, positive


def register(sub) -> None:
    co = sub.add_parser("cost", help="cost per iteration relative to the first method, methods timed in turn")
    add_methods(co, required=True, help="';'-separated method specs; the first is the reference of the ratios")
    co.add_argument("--n", type=positive, default=50)
    co.add_argument("--k", type=positive, default=3)
    co.add_argument("--dim", type=positive, default=1000)
    co.add_argument("--batch", type=positive, default=500)
    co.add_argument("--iterations", type=positive, default=100)
    co.add_argument("--rounds", type=positive, default=7)
    co.add_argument("--early-stop", dest="early_stop", action="store_true",
                    help="each method's own early stop instead of equal work")
    add_device(co)
    add_seed(co)
    add_threads(co)
    co.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ...bench.problems import make_problems
    from ...bench.speed import cost_rounds

    apply_threads(args)
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
