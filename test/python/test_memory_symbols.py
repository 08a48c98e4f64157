"""Native frames made readable: the line tables read without addr2line,
a missing symboliser reported once (panel and log), C++ names demangled, and
the one parser of Cython's position comments."""

from __future__ import annotations

import logging
import random
import shutil
import subprocess

import pytest
from cyscope import memory
from cyscope.cython import linemap
from cyscope.extension import current_state
from cyscope.memory import _elf, _symbols
from cyscope.memory._state import TRACKER
from memory_helpers import ESCAPE, build_module, line_of, pyx_source

SOURCE = pyx_source(
    ESCAPE
    + """
from libc.stdlib cimport malloc

cdef void* kept = NULL

def grab():  # GRAB-DEF
    global kept
    kept = malloc(1000003)  # GRAB-MALLOC
    cyscope_escape(kept)

def make(int n):  # MAKE-DEF
    cdef list out = []
    cdef int i
    for i in range(n):
        out.append(bytearray(1000))  # MAKE-LINE
    return out
"""
)


@pytest.fixture(scope="module")
def module(tmp_path_factory):
    mod, pyx = build_module(tmp_path_factory.mktemp("symbols"), "cyscope_mem_symbols", SOURCE)
    return mod, pyx


@pytest.fixture
def no_addr2line(monkeypatch):
    """A machine without binutils' addr2line, fresh caches."""
    real_which = shutil.which
    monkeypatch.setattr(_symbols.shutil, "which", lambda name: None if name == "addr2line" else real_which(name))
    monkeypatch.setattr(_symbols, "_missing", None)
    monkeypatch.setattr(_symbols, "_native_cache", {})
    from cyscope.memory import _report

    monkeypatch.setattr(_report, "_resolved", {}, raising=False)
    yield


def test_the_line_table_reader_agrees_with_addr2line(module):
    mod, _pyx = module
    so = mod.__file__
    table = _elf.LineTable(so)
    lo, hi = table.rows[0][0], table.rows[-1][0]
    addresses = sorted(random.Random(7).sample(range(lo, hi), 300))
    out = subprocess.run(
        ["addr2line", "-e", so, *[hex(a) for a in addresses]], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    compared = 0
    for address, theirs in zip(addresses, out):
        path, _, line = theirs.rpartition(":")
        line = line.split()[0]
        if not line.isdigit() or line == "0":
            continue  # no line there for addr2line either
        _func, mine_path, mine_line = table.lookup(address)
        assert (mine_path.rsplit("/", 1)[-1], mine_line) == (path.rsplit("/", 1)[-1], int(line)), hex(address)
        compared += 1
    assert compared > 200


def test_without_addr2line_cython_frames_still_reach_their_lines(module, no_addr2line, caplog):
    mod, _pyx = module
    caplog.set_level(logging.WARNING, logger="cyscope.memory")
    with memory.track() as report:
        mod.grab()
    top = report.leaks_by_line()[0]
    assert (top["kind"], top["name"], top["line"]) == ("cython", "grab", line_of(SOURCE, "GRAB-MALLOC")), top
    # C-API allocations: the call site, or (inlined helper) the function's definition.
    with memory.track(native=True, exact=True) as api:
        keep = mod.make(200)
    lines = set()

    def walk(node):
        if node["kind"] == "cython":
            lines.add(node["line"])
        for child in node["children"]:
            walk(child)

    walk(api.flamegraph("leaks"))
    assert lines and lines <= {line_of(SOURCE, "MAKE-LINE"), line_of(SOURCE, "MAKE-DEF")}, api.to_folded("leaks")
    del keep
    # Reported once: in the log, and as a notice for the panel.
    report.leaks_by_line()
    warnings = [r for r in caplog.records if "addr2line" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    notices = {n["id"]: n["message"] for n in TRACKER.notices()}
    assert "apt-get install binutils" in notices["symboliser"]


def test_the_notice_reaches_the_panels_samples(shell, module, no_addr2line):
    _mod, _pyx = module  # built and imported under its module name
    state = current_state(shell)
    shell.run_cell("import cyscope_mem_symbols as m; m.grab()", store_history=True)
    assert "notices" not in (state.monitor.current_sample()["native"] or {})
    # Symbolising happens when something asks for the stacks.
    shell.run_cell("import cyscope; cyscope.history()[-1].leaks_by_line()", store_history=True)
    native = state.monitor.current_sample()["native"]
    assert [n["id"] for n in native["notices"]] == ["symboliser"], native


def test_cpp_names_are_demangled():
    if shutil.which("c++filt") is None:
        pytest.fail("c++filt (binutils) is missing: scripts/setup.sh installs it")
    assert _symbols.demangle(["_ZNSt6vectorIiSaIiEE9push_backERKi", "plain_c"]) == [
        "std::vector<int, std::allocator<int> >::push_back(int const&)",
        "plain_c",
    ]


def test_one_parser_of_position_comments(module):
    _mod, pyx = module
    c_file = str(pyx)[: -len(".pyx")] + ".c"
    with open(c_file) as fh:
        c_lines = fh.read().splitlines()
    blocks = linemap.all_position_blocks(c_lines)
    cmap = _symbols._c_to_pyx_map(c_file)
    assert cmap.lines == [b[0] for b in blocks if b[2].endswith(".pyx")]
    # position_blocks (the %%cython build's view) is the same parse, filtered.
    ours = linemap.position_blocks(c_lines, pyx.name)
    assert ours == [(c, k, line) for c, k, f, line in blocks if f.endswith(pyx.name)]
    assert any(line == line_of(SOURCE, "GRAB-MALLOC") for _c, _k, line in ours)
