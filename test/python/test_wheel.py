"""The pip-installable wheel: one wheel with the kernel package, the
prebuilt labextension and the native library; its metadata as a package
index shows it; installed with nothing but JupyterLab into a fresh virtual
environment, JupyterLab lists the extension as enabled and OK and a kernel
builds and runs a `%%cython` cell.

Slow (builds a wheel and a venv with JupyterLab): run by `npm test` under the
project venv only (marker `wheel`), since it exercises packaging, not the
interpreter.
"""

import email
import json
import os
import re
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


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


def test_the_wheel_declares_what_it_needs(wheel):
    meta = _metadata(wheel)
    # Python frames in the tracker need 3.11's frame layout.
    assert meta["Requires-Python"] == ">=3.11"
    from packaging.requirements import Requirement

    requires = {r.name.lower(): r for r in map(Requirement, meta.get_all("Requires-Dist"))}
    assert set(requires) == {"ipython", "cython", "setuptools"}
    assert requires["ipython"].specifier.contains("8.5.0") and not requires["ipython"].specifier.contains("8.4")
    assert requires["cython"].specifier.contains("0.29.32")
    # setuptools only where distutils is gone.
    marker = requires["setuptools"].marker
    assert marker.evaluate({"python_version": "3.12"}) and not marker.evaluate({"python_version": "3.11"})


def test_its_long_description_renders_on_a_package_index(wheel):
    import readme_renderer.markdown

    meta = _metadata(wheel)
    assert meta["Description-Content-Type"] == "text/markdown"
    text = meta.get_payload()
    assert text.startswith("# cyscope")
    # An index cannot resolve paths inside the repository: no images, and no
    # links but absolute ones.
    assert "![" not in text and "<img" not in text
    relative = [m for m in re.findall(r"\]\(([^)]+)\)", text) if not m.startswith(("https://", "http://"))]
    assert relative == []
    html = readme_renderer.markdown.render(text)
    assert html is not None and html.count("<h2") == 3 and "<pre" in html


CYTHON_NOTEBOOK = {
    "cells": [
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": source}
        for source in (
            "%load_ext cyscope",
            "%%cython\ndef twice(int n):\n    return 2 * n",
            "print(twice(21), type(get_ipython().magics_manager.magics['cell']['cython'].__self__).__module__)",
        )
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


def test_with_only_jupyterlab_beside_it_a_kernel_runs_a_cython_cell(wheel, tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    # The wheel and JupyterLab, nothing else: IPython and Cython must come
    # from the wheel's own dependencies.
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel), JUPYTERLAB_PIN])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "PYTHONPATH", "IPYTHON"))}
    env["CYSCOPE_CACHE_DIR"] = str(tmp_path / "cache")
    notebook = tmp_path / "cython.ipynb"
    notebook.write_text(json.dumps(CYTHON_NOTEBOOK))
    _run(
        [
            str(venv / "bin" / "jupyter"),
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "--ExecutePreprocessor.timeout=300",
            "--output",
            "executed.ipynb",
            str(notebook),
        ],
        cwd=tmp_path,
        env=env,
    )
    executed = json.loads((tmp_path / "executed.ipynb").read_text())
    (output,) = executed["cells"][2]["outputs"]
    text = output["text"]
    assert "".join(text if isinstance(text, list) else [text]).split() == ["42", "cyscope.cython.magic"]
