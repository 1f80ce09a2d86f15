"""``vsa-vision bench chains``: are the failures of separate runs of a stochastic method independent?"""

from __future__ import annotations

import argparse

from ..common import add_seed, add_threads, apply_threads, fraction, int_list, positive, seed_list


def register(sub) -> None:
    ch = sub.add_parser("chains", help="are the failures of separate runs of a stochastic method independent?")
    ch.add_argument("--method", default="diffusion:chains=1")
    ch.add_argument("--seeds", type=seed_list, default=[0, 1, 2, 3], help="method seeds, one run each")
    ch.add_argument("--n", type=positive, default=80)
    ch.add_argument("--k", type=positive, default=3)
    ch.add_argument("--sizes", type=int_list, default=None, help="unequal factor sizes instead of --n/--k")
    ch.add_argument("--dim", type=positive, default=1000)
    ch.add_argument("--flip", type=fraction, default=0.0, help="fraction of signs of s flipped")
    ch.add_argument("--iterations", type=positive, default=100)
    ch.add_argument("--problems", type=positive, default=500)
    add_seed(ch, default=1, help="problem seed")
    add_threads(ch)
    ch.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...bench.accuracy import chain_independence
    from ...bench.problems import make_problems

    apply_threads(args)
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
