"""The ``vsa-vision`` command line.

    vsa-vision demo                         recognise and edit random scenes with the shipped model
    vsa-vision recognize PATH...            what is in each image (table or --json)
    vsa-vision edit IMAGE --set colour=red --out edited.png
    vsa-vision decompose-demo               decompose random problems with every method
    vsa-vision bench accuracy --sweep size  accuracy against codebook size, all methods, same problems
    vsa-vision data generate --out DIR      render a scene dataset to disk (resumable)
"""

# Layout: one module per command group, each with ``register(subparsers)`` that adds its parsers and sets
# ``func`` to its handler; COMMANDS lists them in the order of ``--help``. The benches register the same
# way from ``cli/bench`` (see its BENCHES). The shared options and argument types are in ``cli/common``.

from __future__ import annotations

import argparse
import importlib
import sys

from .common import DEFAULT_METHODS, default_methods
from .tune import PORTFOLIO_NAMES

__all__ = ["main", "build_parser", "default_methods", "DEFAULT_METHODS", "PORTFOLIO_NAMES", "COMMANDS"]

#: the modules of ``vsa_vision.cli`` that register commands, in the order of ``vsa-vision --help``
COMMANDS = ("vision", "decompose_demo", "bench", "data", "tune")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = argparse.ArgumentParser(prog="vsa-vision", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"vsa_vision {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "methods", "unset") is None:
        args.methods = default_methods(peers=not getattr(args, "no_peers", True))
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, ImportError) as e:
        print(f"vsa-vision: error: {e}", file=sys.stderr)
        return 2
