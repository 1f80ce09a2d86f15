"""``vsa-vision bench speed``: time, throughput, FLOP/s, peak memory and the ratio to exhaustive search."""

from __future__ import annotations

import argparse

from ..common import (
    add_device,
    add_methods,
    add_out,
    add_seed,
    add_threads,
    apply_threads,
    choice_list,
    int_list,
    nonneg_float,
    positive,
)
from ..outputs import check_folder, write_rows


def register(sub) -> None:
    sp = sub.add_parser("speed", help="time, throughput, FLOP/s, peak memory and the ratio to exhaustive search")
    sp.add_argument("--n", type=int_list, default=None, help="codebook sizes (default 50); several give the "
                    "crossover n with exhaustive search")
    sp.add_argument("--k", type=positive, default=3)
    sp.add_argument("--dim", type=positive, default=1000)
    sp.add_argument("--batches", type=int_list, default=[1, 16, 256, 4096])
    sp.add_argument("--iterations", type=positive, default=100)
    sp.add_argument("--dtypes", type=choice_list(("fp32", "bf16", "tf32")), default=["fp32"],
                    help="fp32, bf16 (codebooks and targets in bf16), tf32 (CUDA fp32 with TF32 products)")
    add_device(sp)
    sp.add_argument("--repeats", type=positive, default=3)
    sp.add_argument("--early-stop", dest="early_stop", action="store_true",
                    help="each method's own early stop (time to finish the batch) instead of equal work")
    sp.add_argument("--max-brute-flop", dest="max_brute_flop", type=nonneg_float, default=2e12)
    add_seed(sp)
    add_methods(sp, no_peers=True)
    add_threads(sp)
    sp.add_argument("--quick", action="store_true", help="a small preset that runs in seconds")
    add_out(sp)
    sp.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ...bench.speed import FIELDS, crossover, speed_benchmark, speed_table

    check_folder(args.out, "--out")
    apply_threads(args)
    if args.quick:
        args.n, args.batches, args.iterations, args.repeats = [8, 16], [1, 64], 20, 1
    ns = args.n or [50]
    print(f"n={ns} K={args.k} D={args.dim} batches={args.batches} iterations={args.iterations} "
          f"dtypes={args.dtypes} device={args.device} threads={torch.get_num_threads()} "
          f"early_stop={args.early_stop}")
    rows = speed_benchmark(args.methods, ns=ns, k=args.k, dim=args.dim, batches=args.batches,
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
    tag = f"{args.device.replace(':', '')}-K{args.k}" + ("-early" if args.early_stop else "")
    write_rows(args.out, f"speed-{tag}.csv", rows, FIELDS)
    return 0
