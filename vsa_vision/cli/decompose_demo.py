"""``vsa-vision decompose-demo``: decompose random problems with every method and time them."""

from __future__ import annotations

import argparse
import time

from .common import add_methods, add_seed, add_threads, apply_threads, nonneg, positive

#: the demo skips exhaustive search above this many combinations
MAX_EXHAUSTIVE = 2_000_000


def register(sub) -> None:
    d = sub.add_parser("decompose-demo", help="decompose random problems with every method and time them")
    d.add_argument("--n", type=positive, default=40, help="values per factor (default 40)")
    d.add_argument("--k", type=positive, default=3, help="number of factors (default 3)")
    d.add_argument("--dim", type=positive, default=1000, help="dimension D (default 1000)")
    d.add_argument("--problems", type=positive, default=200, help="number of problems (default 200)")
    d.add_argument("--iterations", type=positive, default=100, help="iteration budget (default 100)")
    add_seed(d)
    d.add_argument("--show", type=nonneg, default=2, help="answers to print per method")
    add_threads(d)
    add_methods(d, help="comma-separated method specs, or ';'-separated when specs carry options")
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..bench.problems import make_problems
    from ..decompose import build_method, capabilities

    apply_threads(args)
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
        if capabilities(spec).exhaustive and cb.search_space > MAX_EXHAUSTIVE:
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
