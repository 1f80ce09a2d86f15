"""``vsa-vision bench accuracy``: accuracy sweeps, every method on the same problems (CSV + PNG)."""

from __future__ import annotations

import argparse

from ..common import (
    add_methods,
    add_out,
    add_seed,
    add_threads,
    any_number,
    apply_threads,
    float_list,
    fraction,
    fraction_list,
    int_list,
    nonneg_float,
    nonneg_list,
    positive,
)
from ..outputs import check_folder

SWEEP_CHOICES = ["size", "dim", "restarts", "steps", "noise", "iterations", "all"]

#: the column of each sweep's table
COLUMNS = {"size": "sizes", "dim": "D", "noise": "noise", "iterations": "iterations", "steps": "steps",
           "restarts": "restarts"}

#: the sweeps that read ``--values``
VALUE_SWEEPS = ("dim", "steps", "iterations")


def register(sub) -> None:
    a = sub.add_parser("accuracy", help="accuracy sweeps, every method on the same problems (CSV + PNG)")
    a.add_argument("--sweep", choices=SWEEP_CHOICES,
                   default="size", help="size: n per factor (Fig. 2); dim: D (Fig. 3); restarts: rho x R heat "
                   "map (Fig. 4); steps: diffusion steps per pass (Fig. 5); noise: flips and SNR; iterations: "
                   "the budget; all: every sweep")
    a.add_argument("--n", type=int_list, default=None,
                   help="codebook sizes per factor (size, noise sweeps) or the one n of the other sweeps")
    a.add_argument("--k", type=positive, default=3)
    a.add_argument("--sizes", type=int_list, default=None,
                   help="one shape of unequal factor sizes, e.g. 8,10,4,12,12,2 (size sweep, instead of --n/--k)")
    a.add_argument("--values", type=int_list, default=None,
                   help="the swept values: D (dim), steps per pass (steps), budgets (iterations)")
    a.add_argument("--rho", type=fraction_list, default=None, help="restart levels of the restarts sweep")
    a.add_argument("--restarts", type=nonneg_list, default=None, help="restart counts of the restarts sweep")
    a.add_argument("--flips", type=fraction_list, default=None, help="sign-flip fractions of the noise sweep")
    a.add_argument("--snrs", type=float_list, default=None, help="SNRs in dB of the noise sweep")
    a.add_argument("--dim", type=positive, default=1000)
    a.add_argument("--iterations", type=positive, default=100)
    a.add_argument("--problems", type=positive, default=200)
    add_seed(a)
    a.add_argument("--flip", type=fraction, default=0.0, help="fraction of signs of s flipped (size sweep)")
    a.add_argument("--snr-db", dest="snr_db", type=any_number, default=None,
                   help="additive Gaussian noise SNR (size sweep)")
    a.add_argument("--max-brute-flop", dest="max_brute_flop", type=nonneg_float, default=4e12,
                   help="skip exhaustive search at points costlier than this (default 4e12)")
    add_methods(a, no_peers=True)
    add_threads(a)
    a.add_argument("--quick", action="store_true", help="a small preset of the sweep that runs in seconds")
    add_out(a)
    a.set_defaults(func=run)


def _check_options(args: argparse.Namespace, sweeps: list[str]) -> None:
    """Options that only some sweeps read: refuse them elsewhere rather than ignore them."""
    applies = {"--sizes": (args.sizes, ("size",)), "--flip": (args.flip or None, ("size",)),
               "--snr-db": (args.snr_db, ("size",)), "--values": (args.values, VALUE_SWEEPS),
               "--rho": (args.rho, ("restarts",)), "--restarts": (args.restarts, ("restarts",)),
               "--flips": (args.flips, ("noise",)), "--snrs": (args.snrs, ("noise",))}
    if args.sweep == "all" and args.values:
        raise ValueError("--values means D, steps or budgets depending on the sweep: give it with one --sweep")
    for flag, (value, where) in applies.items():
        if value is not None and not set(sweeps) & set(where):
            raise ValueError(f"{flag} applies to the {' / '.join(where)} sweep(s), not to --sweep {args.sweep}")


def _sweep_methods(sweep: str, methods: list[str], sizes: list[int] | None) -> list[str]:
    """The methods a sweep runs: the restarts sweep varies diffusion's restarts, so it runs the diffusion
    specs; unequal factor sizes leave out the methods that need equal ones."""
    from ...decompose import capabilities, parse_method

    ms = methods
    if sweep == "restarts":
        ms = [m for m in methods if parse_method(m)[0] == "diffusion"] or ["diffusion"]
    if sizes and len(set(sizes)) > 1:
        ms = [m for m in ms if not capabilities(m).equal_sizes]
    return ms


def _print_tables(sweep: str, rows: list[dict]) -> None:
    from ...bench.accuracy import markdown_table

    column = COLUMNS[sweep]
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


def run(args: argparse.Namespace) -> int:
    from ...bench.accuracy import SWEEPS, run_sweep

    apply_threads(args)
    sweeps = list(SWEEPS) if args.sweep == "all" else [args.sweep]
    _check_options(args, sweeps)
    check_folder(args.out, "--out")
    for sweep in sweeps:
        ms = _sweep_methods(sweep, args.methods, args.sizes)
        print(f"== sweep {sweep} ==")
        rows, stem = run_sweep(sweep, ms, args.out, k=args.k, dim=args.dim, iterations=args.iterations,
                               problems=args.problems, seed=args.seed, quick=args.quick, ns=args.n,
                               sizes=args.sizes if sweep == "size" else None,
                               values=args.values if sweep in VALUE_SWEEPS else None,
                               rhos=args.rho, counts=args.restarts, flips=args.flips, snrs=args.snrs,
                               flip=args.flip if sweep == "size" else 0.0,
                               snr_db=args.snr_db if sweep == "size" else None,
                               max_brute_flop=args.max_brute_flop)
        print()
        _print_tables(sweep, rows)
        print(f"\nwrote {stem}.csv and {stem}.png\n")
    return 0
