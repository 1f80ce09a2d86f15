"""What the commands share: argument types, the shared options (each defined once here: ``--threads``,
``--device``, ``--seed``, ``--out``, ``--methods``) and what applies them when a command runs.

Nothing here imports torch at import time: building the parser stays fast.
"""

from __future__ import annotations

import argparse

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


def int_list(text: str) -> list[int]:
    try:
        out = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not out or any(v < 1 for v in out):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return out


def int_at_least(minimum: int, what: str):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {v}")
        return v

    return parse


positive = int_at_least(1, "positive")
nonneg = int_at_least(0, "non-negative")


def float_list(text: str) -> list[float]:
    try:
        out = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not out:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")
    return out


def nonneg_list(text: str) -> list[int]:
    out = [nonneg(v.strip()) for v in text.split(",") if v.strip()]
    if not out:
        raise argparse.ArgumentTypeError(f"expected comma-separated non-negative integers, got {text!r}")
    return out


def nonneg_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
    return v


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
    from ..decompose import available_decomposers, parse_method

    out = [m.strip() for m in text.split(";") if m.strip()] if ";" in text or ":" in text else \
        [m.strip() for m in text.split(",") if m.strip()]
    for m in out:
        name, _ = parse_method(m)
        if name not in available_decomposers():
            raise argparse.ArgumentTypeError(f"unknown method {name!r}; available: {available_decomposers()}")
    return out


# ---------------------------------------------------------------------------------------------
# the shared options: a command states its own default and help where they differ
# ---------------------------------------------------------------------------------------------


def add_threads(p: argparse.ArgumentParser, help: str | None = None) -> None:
    p.add_argument("--threads", type=int, default=0, help=help)


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu")


def add_seed(p: argparse.ArgumentParser, default: int = 0, type=int, help: str | None = None) -> None:
    p.add_argument("--seed", type=type, default=default, help=help)


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
    """``--threads N``: torch's CPU threads (0: torch's default)."""
    if args.threads:
        import torch

        torch.set_num_threads(max(1, args.threads))


def check_device(args: argparse.Namespace) -> None:
    """Refuse ``--device cuda...`` where CUDA is not available (a ValueError: ``main`` reports it)."""
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"--device {args.device}: CUDA is not available on this machine")


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
