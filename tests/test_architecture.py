"""The layering of docs/ARCHITECTURE.md, checked on every import of the package, and the size limits
that keep each module readable."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "vsa_vision"

#: top-level module or package of vsa_vision -> its layer, lowest first (docs/ARCHITECTURE.md)
LAYERS = {
    "checks": 0, "io": 0,
    "vsa": 1,
    "decompose": 2,
    "scenes": 3,
    "encoder": 4, "decoders": 4, "model": 4, "multi": 4, "dense": 4, "checkpoint": 4, "training": 4, "trust": 4,
    "trust_fit": 4, "scene_checks": 4,
    "metrics": 4,
    "schedules": 4,
    "pipeline": 5, "edit": 5, "edit_objects": 5,
    "bench": 6, "cli": 6,
}
#: pairs that may not import each other even where the layers would allow it
FORBIDDEN = {("scenes", "decompose"), ("decompose", "scenes"), ("decompose", "model")}


def _imports():
    """(importing top-level part, imported top-level part, file, line) for every import inside the package."""
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).with_suffix("").parts
        if rel == ("__init__",):
            continue  # the package's __init__ re-exports the public API
        here = rel[0]
        pkg = list(rel[:-1]) if rel[-1] != "__init__" else list(rel[:-1])
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                base = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
                target = base + (node.module.split(".") if node.module else [])
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vsa_vision."):
                target = node.module.split(".")[1:]
            elif isinstance(node, ast.Import):
                target = next((a.name.split(".")[1:] for a in node.names if a.name.startswith("vsa_vision.")), None)
                if target is None:
                    continue
            else:
                continue
            if target:
                yield here, target[0], path.name, node.lineno


def test_every_module_belongs_to_a_layer():
    tops = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
            if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())}
    assert tops == set(LAYERS)


def test_imports_go_down_the_layers_only():
    bad = [f"{f}:{line}: {a} imports {b}" for a, b, f, line in _imports()
           if a != b and (b not in LAYERS or LAYERS[b] > LAYERS[a] or (a, b) in FORBIDDEN)]
    assert not bad, "\n".join(bad)


def test_modules_stay_readable():
    long = [f"{p.relative_to(PACKAGE)}: {n} lines" for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 500]
    assert not long, long


def test_no_function_past_the_complexity_limits():
    ruff = pytest.importorskip("ruff")  # noqa: F841  (installed with the dev extra)
    import subprocess
    import sys

    # the limits are in pyproject.toml (C901 15, PLR0915 60, PLR0912 20)
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "C90,PLR0912,PLR0915", str(PACKAGE)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
