"""Decomposers by name: ``get_decomposer("resonator", iterations=100, seed=0)``.

A new method is one module and one :func:`register` line. Options are checked against the
constructor's signature so that a misspelt option fails with the list of valid ones instead of
being silently ignored.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
from collections.abc import Callable
from typing import Any

from .base import Capabilities, Decomposer

_REGISTRY: dict[str, Callable[..., Decomposer]] = {}


def tuned_options(path: str | os.PathLike) -> dict[str, Any]:
    """The fixed options in a file written by ``vsa-vision tune <method> --out PATH``, to pass on:
    ``get_decomposer("stochastic_resonator", **tuned_options("tuned/stochastic_resonator.json"))``.
    Nothing is applied unless asked: the package's defaults are the constructors'."""
    path = os.fspath(path)
    with open(path) as f:
        report = json.load(f)
    opts = report.get("options") if isinstance(report, dict) else None
    if not isinstance(opts, dict):
        raise ValueError(f"{path}: expected an object with a mapping 'options'")
    return opts


def register(name: str, factory: Callable[..., Decomposer] | None = None):
    """Register ``factory`` (a class or function taking keyword options) under ``name``.
    Usable as a decorator: ``@register("my_method")``."""

    def deco(f):
        if name in _REGISTRY and _REGISTRY[name] is not f:
            raise ValueError(f"register: a decomposer named {name!r} is already registered")
        _REGISTRY[name] = f
        return f

    return deco(factory) if factory is not None else deco


def available_decomposers() -> list[str]:
    """Names accepted by :func:`get_decomposer`."""
    return sorted(_REGISTRY)


def decomposer_options(name: str) -> dict[str, Any]:
    """The options of decomposer ``name`` with their defaults (a config record's fields where the
    decomposer has one, else its constructor's keyword arguments)."""
    factory = _lookup(name)
    config = getattr(factory, "config_class", None)
    if config is not None:
        return config.defaults()
    target = factory.__init__ if inspect.isclass(factory) else factory
    out = {}
    for p in inspect.signature(target).parameters.values():
        if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out[p.name] = p.default
    return out


def _lookup(name: str):
    if not isinstance(name, str):
        raise TypeError(f"name: expected a decomposer name (str), got {type(name).__name__}")
    if name not in _REGISTRY:
        raise ValueError(f"name: unknown decomposer {name!r}; available: {available_decomposers()}")
    return _REGISTRY[name]


def get_decomposer(name: str, **options: Any) -> Decomposer:
    """Build the decomposer registered as ``name`` with keyword ``options``.

    Options not given take the decomposer's own defaults (the same as building its class directly).
    Raises ``ValueError`` for an unknown name and ``TypeError`` for an unknown option, each naming
    what is valid. Every decomposer accepts ``iterations=`` and ``seed=``."""
    factory = _lookup(name)
    valid = decomposer_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(
            f"get_decomposer({name!r}): unknown option(s) {unknown}; valid options are {sorted(valid)}"
        )
    return factory(**options)


def method_spec(name: str, **options: Any) -> str:
    """The spec string of ``name`` with ``options``: ``method_spec("resonator", update="sync")`` ->
    ``"resonator:update='sync'"`` (values as Python literals, read back by :func:`parse_method`)."""
    return name + (":" + ",".join(f"{k}={v!r}" for k, v in options.items()) if options else "")


def with_options(spec: str, **options: Any) -> str:
    """``spec`` with ``options`` added (they override the spec's own)."""
    name, opts = parse_method(spec)
    opts.update(options)
    return method_spec(name, **opts)


def capabilities(spec: str) -> Capabilities:
    """What the decomposer of ``spec`` (a name or a ``name:option=...`` spec) can do; see
    :class:`~vsa_vision.decompose.base.Capabilities`."""
    name, _ = parse_method(spec)
    factory = _lookup(name)
    caps = getattr(factory, "capabilities", None)
    if not isinstance(caps, Capabilities):
        raise TypeError(f"decomposer {name!r} declares no Capabilities (a class attribute 'capabilities')")
    return caps


def parse_method(spec: str) -> tuple[str, dict[str, Any]]:
    """``"name:opt=val,opt=val"`` -> (name, options); values are Python literals or bare strings."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"method: expected a spec 'name[:option=value,...]', got {spec!r}")
    name, _, rest = spec.partition(":")
    opts: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in _top_level_parts(rest))):
        key, eq, val = part.partition("=")
        if not eq:
            raise ValueError(f"method spec {spec!r}: expected option=value, got {part!r}")
        try:
            opts[key.strip()] = ast.literal_eval(val.strip())
        except (ValueError, SyntaxError):
            opts[key.strip()] = val.strip()
    return name.strip(), opts


def _top_level_parts(text: str) -> list[str]:
    """``text`` split on the commas outside quotes and brackets, so that an option's value may itself be
    a spec with options (``auto:method='diffusion:chains=2,restarts=1'``) or a list."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return parts + [text[start:]]


def build_method(spec: str, iterations: int | None = None, seed: int | None = None, **options: Any) -> Decomposer:
    """A decomposer from a spec string (see :func:`parse_method`); ``iterations``, ``seed`` and
    ``options`` apply where the spec does not set them."""
    name, opts = parse_method(spec)
    if iterations is not None:
        opts.setdefault("iterations", iterations)
    if seed is not None:
        opts.setdefault("seed", seed)
    for k, v in options.items():
        opts.setdefault(k, v)
    return get_decomposer(name, **opts)
