"""A missing build tool gets one clear message naming it and how to install
it, not a traceback: setuptools (Python 3.12+ has no distutils) and the C
compiler. (The %%cython build itself is tested in test_cython_*.py.)"""

from __future__ import annotations

import sys

import pytest

CELL = "%%cython\ndef f_{tag}(int n):\n    return n + {n}\n"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CYSCOPE_CACHE_DIR", str(tmp_path / "cache"))


def _shown(shell, result) -> str:
    """What IPython shows for the cell's error: its _render_traceback_ lines."""
    exc = result.error_in_exec
    assert exc is not None
    render = getattr(exc, "_render_traceback_", None)
    assert render is not None, f"{type(exc).__name__} would show a full traceback: {exc!r}"
    return "\n".join(render())


def test_without_setuptools_the_message_says_how_to_install_it(shell, cache, monkeypatch):
    # As on Python 3.12+ without setuptools: neither distutils nor setuptools imports.
    for name in [m for m in list(sys.modules) if m.split(".")[0] in ("distutils", "setuptools")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "distutils", None)
    monkeypatch.setitem(sys.modules, "setuptools", None)
    result = shell.run_cell(CELL.format(tag="nosetuptools", n=1))
    assert not result.success
    shown = _shown(shell, result)
    assert shown.count("\n") == 0, shown
    assert "setuptools is not installed" in shown and "-m pip install setuptools" in shown, shown


@pytest.mark.parametrize("cplus", [False, True])
def test_without_a_compiler_the_message_names_it(shell, cache, monkeypatch, cplus):
    monkeypatch.setenv("CXX" if cplus else "CC", "cyscope-no-such-compiler")
    cell = CELL.format(tag=f"nocc{int(cplus)}", n=2)
    if cplus:
        cell = cell.replace("%%cython\n", "%%cython --cplus\n")
    result = shell.run_cell(cell)
    assert not result.success
    shown = _shown(shell, result)
    assert "compiler 'cyscope-no-such-compiler' is not installed" in shown, shown
    assert ("apt-get install g++" if cplus else "apt-get install gcc") in shown, shown
