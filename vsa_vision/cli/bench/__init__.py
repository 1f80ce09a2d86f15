"""``vsa-vision bench ...``: one module here per benchmark, each with ``register(subparsers)`` (its parser,
``func`` set to its handler). Adding a benchmark is a module here plus its name in BENCHES."""

from __future__ import annotations

import importlib

#: the benchmark modules of this package, in the order of ``vsa-vision bench --help``
BENCHES = ("accuracy", "speed", "latency", "cost", "capacity", "versus", "chains", "sets", "vision", "robustness",
           "own", "data", "training_curve")


def register(sub) -> None:
    b = sub.add_parser("bench", help="benchmarks")
    bsub = b.add_subparsers(dest="bench", required=True)
    for name in BENCHES:
        importlib.import_module(f"{__name__}.{name}").register(bsub)
