"""Argument checks shared by the whole package: one place for "expected a positive int" and friends.

Each check returns the value (converted where it says so) or raises an error that names the
argument, what was expected and what came. A value of the wrong *type* raises
:class:`ArgumentTypeError`, which is both a ``TypeError`` and a ``ValueError`` (callers and tests
written against either keep working); a value of the right type but out of range raises
``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["ArgumentTypeError", "check_int", "check_float", "check_choice", "check_positive_sizes"]


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (a float where an int is expected, a bool for a count, ...)."""


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as a Python int; bools are refused; numpy integers are accepted."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ArgumentTypeError(f"{name}: expected an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if maximum is None:
            raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
        if minimum is None:
            raise ValueError(f"{name}: expected an int <= {maximum}, got {value}")
        raise ValueError(f"{name}: expected an int in [{minimum}, {maximum}], got {value}")
    return value


def check_float(name: str, value: Any, lo: float | None = None, hi: float | None = None,
                allow_none: bool = False) -> float | None:
    """``value`` as a finite Python float in ``[lo, hi]`` (None passes when ``allow_none``)."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ArgumentTypeError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        raise ValueError(f"{name}: expected a finite number in {rng}, got {value}")
    return value


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)}, got {value!r}")
    return value


def check_positive_sizes(name: str, sizes: Any) -> tuple[int, ...]:
    """A non-empty sequence of ints >= 1 (codebook sizes, batch sizes, ...) as a tuple."""
    try:
        out = tuple(sizes)
    except TypeError:
        raise ArgumentTypeError(f"{name}: expected a sequence of positive ints, got {sizes!r}") from None
    if not out:
        raise ValueError(f"{name}: expected at least one size, got none")
    return tuple(check_int(f"{name}[{i}]", v, 1) for i, v in enumerate(out))
