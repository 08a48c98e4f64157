"""The pip-installable wheel: one wheel with the kernel package, the
prebuilt labextension and the native library; installed into a fresh
virtual environment, JupyterLab lists the extension as enabled and OK.

Slow (builds a wheel and a venv with JupyterLab): run by `npm test` under the
project venv only (marker `wheel`), since it exercises packaging, not the
interpreter.
"""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.wheel

JUPYTERLAB_PIN = "jupyterlab==4.6.6"


def _run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def wheel(repo_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: the build tools are pinned in the project venv.
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)], cwd=repo_root)
    (built,) = out.glob("cyscope-*.whl")
    return built


def test_the_wheel_carries_all_three_layers(wheel):
    assert wheel.name.endswith("-py3-none-linux_x86_64.whl"), wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    assert "cyscope/__init__.py" in names
    assert "cyscope/_native/libcyscope.so" in names
    assert "cyscope/protocol.schema.json" in names
    prefix = "cyscope-0.1.0.data/data/share/jupyter/labextensions/jupyterlab-cyscope/"
    assert prefix + "package.json" in names
    assert prefix + "install.json" in names
    assert prefix + "static/style.js" in names
    assert any(n.startswith(prefix + "schemas/jupyterlab-cyscope/plugin.json") for n in names)


def test_installed_in_a_fresh_venv_the_extension_is_enabled_and_ok(wheel, tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    _run([*pip, str(wheel), JUPYTERLAB_PIN])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "PYTHONPATH"))}
    listing = _run([str(venv / "bin" / "jupyter"), "labextension", "list"], env=env)
    text = listing.stdout + listing.stderr
    line = next((ln for ln in text.splitlines() if "jupyterlab-cyscope" in ln), "")
    assert "enabled" in line and "OK" in line, text
    assert "(python, cyscope)" in line, text
    # The kernel package and its native library work from the installed wheel.
    check = _run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import cyscope, cyscope.native as n; s = n.status(); print(s.loaded, s.path)",
        ],
        cwd=tmp_path,
        env=env,
    )
    loaded, path = check.stdout.split()
    assert loaded == "True", check.stdout
    assert path.startswith(str(venv)), path
