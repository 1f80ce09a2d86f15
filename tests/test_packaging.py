"""A built wheel (a regular install, not an editable one) carries the shipped checkpoint and the
package's data files, and loads the shipped model from anywhere."""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    if shutil.which("git") is None:
        pytest.skip("git is needed to copy the tracked source")
    out = tmp_path_factory.mktemp("wheel")
    src = out / "src"
    # build from a copy of the tracked files: the work tree's build/ and egg-info stay untouched
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for f in filter(None, files):
        if os.path.isfile(os.path.join(ROOT, f)):
            os.makedirs(src / os.path.dirname(f), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, f), src / f)
    env = {**os.environ, "PIP_NO_INDEX": "1"}  # nothing is downloaded
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-q", "-w", str(out / "dist"), str(src)], check=True, env=env, capture_output=True)
    (whl,) = (out / "dist").glob("vsa_vision-*.whl")
    return whl


@pytest.mark.slow
def test_the_wheel_holds_the_checkpoint_and_the_data_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "vsa_vision/checkpoints/default.safetensors" in names
    assert "vsa_vision/scenes/schemas/default.json" in names
    package = os.path.join(ROOT, "vsa_vision")
    for sub in ("defaults", "scenes/schemas"):
        for f in os.listdir(os.path.join(package, sub)):
            if f.endswith(".json"):
                assert f"vsa_vision/{sub}/{f}" in names
    assert not any(n.startswith(("checkpoints/", "tests/")) for n in names)


@pytest.mark.slow
def test_the_unpacked_wheel_loads_the_shipped_model_from_anywhere(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import vsa_vision, sys\n"
            "from vsa_vision import Pipeline\n"
            "from vsa_vision.scenes import default_schema, render_scene\n"
            "assert vsa_vision.__file__.startswith(sys.argv[1]), vsa_vision.__file__\n"
            "scene = dict(shape='star', colour='green', size='huge', x='5', y='6', fill='solid')\n"
            "for pipe in (Pipeline.from_checkpoint(), Pipeline.from_checkpoint('default')):\n"
            "    rec = pipe.recognize([render_scene(default_schema(), scene)], method='brute_force')[0]\n"
            "    assert rec.labels == scene, rec.labels\n"
            "print('ok')\n")
    # the unpacked wheel first on the path, not the source tree (no PYTHONPATH, run from elsewhere)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); " + code,
                          str(site)], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"
