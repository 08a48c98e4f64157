"""Python frames in stacks on every supported interpreter (3.11 to 3.13):
the offsets come from the interpreter (its headers, its _Py_DebugOffsets),
and a version cyscope does not know says so instead of dropping frames."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cyscope import memory
from cyscope.memory import _frames
from cyscope.memory._state import TRACKER

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _tracker_required():
    assert memory.available(), memory.unavailable_reason()


def _generator():
    spec = importlib.util.spec_from_file_location("gen_py_layouts", ROOT / "native/tools/gen_py_layouts.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_committed_layout_is_this_interpreters_headers():
    # The table is generated from headers; checked here against the headers
    # of the interpreter the tests run on (every one of the test matrix).
    measured = _generator().layout_of(sys.executable)
    minor, version = measured.pop("minor"), measured.pop("python")
    entry = _frames.header_table().get(minor)
    assert entry is not None, f"py_layouts.json has no {minor}: run native/tools/gen_py_layouts.py"
    assert entry["offsets"] == measured, f"py_layouts.json is stale for {version}: run native/tools/gen_py_layouts.py"


@pytest.mark.skipif(sys.version_info < (3, 13), reason="_Py_DebugOffsets exist from 3.13 on")
def test_debug_offsets_agree_with_the_headers():
    d = _frames.debug_offsets()
    assert d is not None and d["version"] >> 16 == sys.hexversion >> 16
    entry = _frames.header_table()["{}.{}".format(*sys.version_info[:2])]["offsets"]
    from_runtime = _frames._from_debug_offsets(d, entry)
    assert from_runtime == entry


def test_python_frames_are_read_on_this_interpreter():
    def grow():
        return bytearray(600_000)  # GROW-LINE

    with memory.track() as report:
        kept = grow()
    assert TRACKER.python_frames.ok, TRACKER.python_frames.reason
    top = report.leaks_by_line()[0]
    assert (top["name"], top["kind"], top["bytes"]) == ("grow", "python", 600_000 + 1), top
    src = Path(__file__).read_text().splitlines()
    assert "GROW-LINE" in src[top["line"] - 1]
    del kept


def test_an_unknown_version_says_so():
    code = textwrap.dedent(
        """
        from cyscope.memory import _frames
        _frames.layout_for_this_python = lambda: (None, "", "Python 3.99 is not a version cyscope reads frames of")
        import cyscope.memory as m
        from cyscope.memory._state import TRACKER
        with m.track() as r:
            keep = bytearray(600_000)
        print(repr(r.leaks_by_line()[0]["name"]))
        for notice in TRACKER.notices():
            print(notice["id"], "|", notice["message"])
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python-shim"))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # Totals and native frames still work; the stack has no Python frame...
    assert "grow" not in proc.stdout
    # ...and the reason is a notice for the panel, and in the log.
    assert "python-frames | Python frames are not shown: Python 3.99 is not a version" in proc.stdout, proc.stdout
    assert "Python 3.99 is not a version" in proc.stderr
