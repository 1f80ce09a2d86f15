"""The README's Python examples run as written (in order, in one namespace), so the README stays true."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_examples_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 3  # decomposition, diffusion options, vision pipeline
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102  (our own README)
    # the examples' stated results
    assert namespace["res"].indices.tolist() == [[3, 14, 15]]
    assert namespace["res"].labels == [{"shape": "3", "colour": "14", "size": "15"}]
    assert namespace["d"].space == "latent" and namespace["d"].steps == 6
    assert len(namespace["recs"]) == 8 and namespace["out"].labels["colour"] == "red"
