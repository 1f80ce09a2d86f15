"""The examples in the package's docstrings (``>>>`` lines under vsa_vision/) run and print what they show."""

import doctest
import importlib
import pathlib
import re

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "vsa_vision"

# Modules whose examples are sketches: they need names the docstring does not define and show no
# output. Their examples are run with these names supplied, and the output is not compared.
SKETCHES = {
    "vsa_vision.pipeline": lambda: {"images": _images()},
}


def _images():
    from vsa_vision.scenes import default_schema, render_scene, sample_scenes

    schema = default_schema()
    return [render_scene(schema, s) for s in sample_scenes(schema, 2, seed=0)]


def _modules_with_examples():
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if re.search(r"^\s*>>> ", path.read_text(encoding="utf-8"), re.M):
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = _modules_with_examples()


def test_the_package_has_examples_to_run():
    # the package, the scenes layer and Codebooks show examples (wherever Codebooks lives)
    assert {"vsa_vision", "vsa_vision.scenes"} <= set(MODULES) and len(MODULES) >= 3, MODULES


@pytest.mark.parametrize("name", [m for m in MODULES if m not in SKETCHES])
def test_docstring_examples_print_what_they_show(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{name}: no example found"
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed (see the output above)"


class _AnyOutput(doctest.OutputChecker):
    def check_output(self, want, got, optionflags):
        return True


@pytest.mark.parametrize("name", [m for m in MODULES if m in SKETCHES])
def test_sketch_examples_run(name):
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(checker=_AnyOutput(), verbose=False)
    tests = doctest.DocTestFinder().find(module, name, globs={**vars(module), **SKETCHES[name]()})
    for t in tests:
        runner.run(t)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0, f"{name}: no example found"
    assert result.failed == 0, f"{name}: an example raised (see the output above)"
