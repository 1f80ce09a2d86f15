"""``vsa-vision bench versus``: every method on the published in-memory factorizer's problems (d = 1500,
three factors), the repository's protocol and plain bipolar, beside the published table."""

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
    positive,
)
from ..outputs import check_folder, write_rows

#: spelt out here (the parser must not import torch); a test checks them against vsa_vision.bench.versus
VERSUS_METHODS = ["diffusion", "diffusion:chains=1", "in_memory_factorizer", "in_memory_factorizer:flip_fraction=0.0"]
PROTOCOLS = ("repo", "bipolar")


def register(sub) -> None:
    v = sub.add_parser("versus", help="every method on the published in-memory factorizer's problems (its "
                                      "protocol and plain bipolar): accuracy, iterations, chain-iterations")
    add_methods(v, help=f"method specs (default {';'.join(VERSUS_METHODS)})")
    v.set_defaults(methods=list(VERSUS_METHODS))
    v.add_argument("--sizes", type=int_list, default=[99, 214, 463],
                   help="codebook sizes n of the published table (default 99,214,463)")
    v.add_argument("--dim", type=positive, default=1500, help="dimension (default 1500, the published table's)")
    v.add_argument("--problems", type=positive, default=200, help="problems per size (default 200)")
    v.add_argument("--protocols", type=choice_list(PROTOCOLS), default=list(PROTOCOLS),
                   help="repo: the repository's altered codebooks encode the targets; bipolar: plain bipolar "
                        "(default both)")
    v.add_argument("--iterations", type=positive, default=None,
                   help="budget of every method (default max(3000, 5 x the published mean iterations))")
    add_seed(v)
    add_threads(v)
    add_device(v)
    add_out(v)
    v.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ...bench.versus import VERSUS_FIELDS, versus_factorizer, versus_table

    check_folder(args.out, "--out")
    if min(args.sizes) < 2:
        raise ValueError(f"--sizes: expected codebook sizes of at least 2, got {args.sizes}")
    apply_threads(args)
    rows = versus_factorizer(args.methods, args.sizes, args.dim, args.problems, args.protocols, args.iterations,
                             args.seed, args.device, log=print)
    print()
    print(versus_table(rows))
    write_rows(args.out, "versus.csv", rows, VERSUS_FIELDS)
    return 0
