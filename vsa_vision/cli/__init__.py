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
import traceback

from .common import DEFAULT_METHODS, check_device, default_methods
from .tune import PORTFOLIO_NAMES

__all__ = ["main", "build_parser", "default_methods", "DEFAULT_METHODS", "PORTFOLIO_NAMES", "COMMANDS",
           "EXIT_OK", "EXIT_SOME_FAILED", "EXIT_USAGE", "EXIT_INTERNAL", "EXIT_INTERRUPTED"]

#: the modules of ``vsa_vision.cli`` that register commands, in the order of ``vsa-vision --help``
COMMANDS = ("vision", "calibrate", "decompose_demo", "bench", "data", "tune")


#: exit codes: everything done; some inputs failed (e.g. unreadable images skipped); a usage or input error
#: (argparse's own errors exit 2 too); an unexpected internal error (a bug: --debug shows the traceback); Ctrl-C
EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

#: errors the user can fix (a bad value, a missing or unwritable file, a missing extra): exit 2. Anything else
#: escaping a command is a bug in vsa_vision: exit 3
INPUT_ERRORS = (ValueError, TypeError, LookupError, OSError, ImportError)


def _leaves(parser: argparse.ArgumentParser):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield parser
    for action in subs:
        for p in dict.fromkeys(action.choices.values()):
            yield from _leaves(p)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = argparse.ArgumentParser(prog="vsa-vision", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"vsa_vision {__version__}")
    debug_help = "show the full traceback of an error instead of one line"
    p.add_argument("--debug", action="store_true", help=debug_help)
    sub = p.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    for leaf in _leaves(p):  # also after the command: vsa-vision demo --debug
        leaf.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    return p


def _one_line(e: BaseException) -> str:
    """An exception's message on one line (its own lines joined), or its type when it has none."""
    text = "; ".join(line.strip() for line in str(e).splitlines() if line.strip())
    if isinstance(e, KeyError) or not text:
        text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text


def _memory_error(e: BaseException) -> bool:
    text = str(e).lower()
    return isinstance(e, MemoryError) or (isinstance(e, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text or "not enough memory" in text))


def _report(e: BaseException, debug: bool) -> int:
    """Print ``e`` as one line (after its traceback with ``--debug``); the exit code it means."""
    if debug:
        traceback.print_exc()
    if isinstance(e, KeyboardInterrupt):
        print("vsa-vision: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if _memory_error(e):
        print(f"vsa-vision: error: not enough memory for these settings ({_one_line(e)}); use smaller ones",
              file=sys.stderr)
        return EXIT_USAGE
    if isinstance(e, INPUT_ERRORS):
        print(f"vsa-vision: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    hint = "" if debug else " (an internal error; --debug shows the traceback)"
    print(f"vsa-vision: error: {type(e).__name__}: {_one_line(e)}{hint}", file=sys.stderr)
    return EXIT_INTERNAL


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (see EXIT_OK ... EXIT_INTERRUPTED)."""
    parser = build_parser()
    args = None
    try:
        args = parser.parse_args(argv)
        if getattr(args, "methods", "unset") is None:
            args.methods = default_methods(peers=not getattr(args, "no_peers", True))
        if hasattr(args, "device"):
            check_device(args)  # before any work: a typo or a missing GPU costs nothing
        return args.func(args)
    except (Exception, KeyboardInterrupt) as e:
        return _report(e, getattr(args, "debug", False))
