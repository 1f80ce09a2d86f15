"""What the commands share: argument types, the shared options (each defined once here: ``--threads``,
``--device``, ``--seed``, ``--out``, ``--methods``) and what applies them when a command runs.

Nothing here imports torch at import time: building the parser stays fast.
"""

from __future__ import annotations

import argparse
import os

#: the methods every decomposer comparison runs when ``--methods`` is not given (then the other registered ones)
DEFAULT_METHODS = [
    "brute_force",
    "resonator:update=sync",
    "resonator",
    "attention_resonator",
    "stochastic_resonator",
    "diffusion",
    "diffusion:space='latent'",
]

#: where the benches write their CSVs and figures by default
BENCH_OUT = "bench-results"


# ---------------------------------------------------------------------------------------------
# argument types
# ---------------------------------------------------------------------------------------------


#: the largest count an option takes (sizes, dimensions, budgets, images): beyond it nothing fits in memory
MAX_COUNT = 2**31 - 1
#: seeds are 0 <= seed < SEED_LIMIT: torch and numpy take up to 2**63 - 1, and the benches add offsets to a seed
SEED_LIMIT = 2**62


def _count(text: str, minimum: int, what: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}") from None
    if v < minimum:
        raise argparse.ArgumentTypeError(f"expected a {what} integer, got {v}")
    if v > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{v} is too large (at most {MAX_COUNT})")
    return v


def int_list(text: str) -> list[int]:
    out = [v.strip() for v in text.split(",") if v.strip()]
    if not out:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return [_count(v, 1, "positive") for v in out]


def int_at_least(minimum: int, what: str):
    def parse(text: str) -> int:
        return _count(text, minimum, what)

    return parse


positive = int_at_least(1, "positive")
nonneg = int_at_least(0, "non-negative")


def seed(text: str) -> int:
    """A seed: an integer 0 <= seed < 2**62."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= v < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"a seed is an integer from 0 to 2**62 - 1, got {v}")
    return v


def seed_list(text: str) -> list[int]:
    out = [seed(v.strip()) for v in text.split(",") if v.strip()]
    if not out:
        raise argparse.ArgumentTypeError(f"expected comma-separated seeds, got {text!r}")
    return out


def _number(text: str) -> float:
    import math

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


def number_in(low: float | None = None, high: float | None = None, what: str = "number"):
    """A finite float within ``[low, high]`` (either end open when None)."""
    def parse(text: str) -> float:
        v = _number(text)
        if (low is not None and v < low) or (high is not None and v > high):
            span = f"from {low:g} to {high:g}" if low is not None and high is not None else \
                f"at least {low:g}" if low is not None else f"at most {high:g}"
            raise argparse.ArgumentTypeError(f"expected a {what} {span}, got {text!r}")
        return v

    return parse


def number_list(low: float | None = None, high: float | None = None, what: str = "number"):
    one = number_in(low, high, what)

    def parse(text: str) -> list[float]:
        out = [one(v.strip()) for v in text.split(",") if v.strip()]
        if not out:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
        return out

    return parse


float_list = number_list()
fraction = number_in(0.0, 1.0, "fraction")
nonneg_float = number_in(0.0, None, "number")
fraction_list = number_list(0.0, 1.0, "fraction")
any_number = number_in()


def nonneg_list(text: str) -> list[int]:
    out = [nonneg(v.strip()) for v in text.split(",") if v.strip()]
    if not out:
        raise argparse.ArgumentTypeError(f"expected comma-separated non-negative integers, got {text!r}")
    return out


def choice_list(choices: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        out = [v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in out if v not in choices]
        if not out or bad:
            raise argparse.ArgumentTypeError(f"expected comma-separated values from {list(choices)}, got {text!r}")
        return out

    return parse


def method_list(text: str) -> list[str]:
    """Method specs, comma-separated, or ';'-separated when the specs carry options."""

    out = [m.strip() for m in text.split(";") if m.strip()] if ";" in text or ":" in text else \
        [m.strip() for m in text.split(",") if m.strip()]
    if not out:
        raise argparse.ArgumentTypeError(f"expected method specs, e.g. resonator;diffusion, got {text!r}")
    for m in out:
        method_spec(m)
    return out


def method_spec(text: str) -> str:
    """One method spec ``name:option=value,...`` whose name is a registered decomposer."""
    from ..decompose import available_decomposers, parse_method

    try:
        name, _ = parse_method(text)
    except (ValueError, TypeError) as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if name not in available_decomposers():
        raise argparse.ArgumentTypeError(f"unknown method {name!r}; available: {available_decomposers()}")
    return text


# ---------------------------------------------------------------------------------------------
# the shared options: a command states its own default and help where they differ
# ---------------------------------------------------------------------------------------------


#: the most torch CPU threads ``--threads`` takes: 4 per core, at least 256 (thousands of threads crash the
#: OpenMP runtime without a message)
MAX_THREADS = max(256, 4 * (os.cpu_count() or 1))


def threads(text: str) -> int:
    """A number of torch CPU threads: 0 (torch's default) to :data:`MAX_THREADS`."""
    v = _count(text, 0, "non-negative")
    if v > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_THREADS} threads (4 per CPU core, at least 256), "
                                         f"got {v}")
    return v


def add_threads(p: argparse.ArgumentParser, help: str | None = None) -> None:
    p.add_argument("--threads", type=threads, default=0,
                   help=help or f"torch CPU threads (0: torch's default; at most {MAX_THREADS})")


def add_device(p: argparse.ArgumentParser) -> None:
    """``--device``: checked by :func:`check_device` before any command that has it runs."""
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default cpu)")


def add_seed(p: argparse.ArgumentParser, default: int = 0, help: str | None = None) -> None:
    p.add_argument("--seed", type=seed, default=default, help=help or "an integer from 0 to 2**62 - 1")


def add_out(p: argparse.ArgumentParser, default: str | None = BENCH_OUT, help: str | None = None,
            required: bool = False) -> None:
    p.add_argument("--out", default=default, required=required, help=help)


def add_methods(p: argparse.ArgumentParser, help: str | None = None, required: bool = False,
                no_peers: bool = False) -> None:
    """``--methods`` (``None`` when not given: :func:`vsa_vision.cli.main` fills in :func:`default_methods`),
    and with ``no_peers`` the ``--no-peers`` switch that leaves the peers out of those defaults."""
    p.add_argument("--methods", type=method_list, default=None, required=required, help=help)
    if no_peers:
        p.add_argument("--no-peers", dest="no_peers", action="store_true", help="leave out the torchhd peer")


# ---------------------------------------------------------------------------------------------
# applying them
# ---------------------------------------------------------------------------------------------


def apply_threads(args: argparse.Namespace) -> None:
    """``--threads N``: torch's CPU threads (0: torch's default); more than :data:`MAX_THREADS` is a ValueError."""
    if args.threads:
        if args.threads > MAX_THREADS:
            raise ValueError(f"--threads {args.threads}: expected at most {MAX_THREADS} threads (4 per CPU core, at "
                             "least 256)")
        import torch

        torch.set_num_threads(max(1, args.threads))


def check_device(args: argparse.Namespace) -> None:
    """Refuse a ``--device`` torch does not know, or one this machine does not have (a ValueError)."""
    import torch

    name = args.device
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"--device {name!r}: not a device (cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"--device {name}: MPS is not available on this machine")
    elif dev.type != "cpu":
        raise ValueError(f"--device {name}: only cpu, cuda and mps devices are supported")


def default_methods(peers: bool = True) -> list[str]:
    """Every registered method (the built-in defaults first), with the peers only when installed."""
    from ..decompose import available_decomposers, capabilities, parse_method, torchhd_available

    names = {parse_method(s)[0] for s in DEFAULT_METHODS}
    others = [n for n in available_decomposers() if n not in names]
    out = list(DEFAULT_METHODS) + [n for n in others if not capabilities(n).peer]
    if peers:
        if torchhd_available():
            out += [n for n in others if capabilities(n).peer]
        else:
            print("torchhd is not installed (pip install 'vsa_vision[peers]'): the torchhd rows are skipped")
    return out
