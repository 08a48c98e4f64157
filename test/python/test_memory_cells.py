"""The memory tracker and %%cython together, in a real IPython shell with
cyscope loaded as the frontend loads it: bytes a compiled cell allocates are
attributed to the line of that cell, and reach the panel's records."""

import cyscope
import pytest
from cyscope.extension import current_state
from memory_helpers import at_least

LEAKY_CELL = """%%cython
from libc.stdlib cimport malloc

cdef void* kept = NULL

def grab():
    global kept
    kept = malloc(1000003)  # line 8 of the cell

def address():
    # Reading `kept` makes the pointer escape: gcc would otherwise drop the
    # store and then the malloc itself.
    return <size_t>kept
"""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CYSCOPE_CACHE_DIR", str(tmp_path / "cache"))


def test_a_kept_block_is_a_leak_on_its_cell_line(shell, cache):
    state = current_state(shell)
    if state.tracker is None:
        pytest.fail("the native tracker is not attached: run `npm run build` first")
    build = shell.run_cell(LEAKY_CELL, store_history=True)
    assert build.success, build.error_in_exec
    call = shell.run_cell("grab()", store_history=True)
    assert call.success
    assert shell.run_cell("address()").result != 0

    (record,) = [r for r in state.monitor.records() if r["execution_count"] == call.execution_count]
    assert record["memory"]["leaked_bytes"] >= 1000003

    # The newest report of that count (other tests drive trackers with their own counts).
    report = [r for r in cyscope.history() if r.execution_count == call.execution_count][-1]
    lines = [
        entry
        for entry in report.leaks_by_line()
        if entry["kind"] == "cython" and entry["line"] == 8 and entry["bytes"] == 1000003
    ]
    assert lines, report.leaks_by_line()
    # The .pyx line belongs to the %%cython cell, not to the cell that called it.
    assert lines[0]["cell"] == build.execution_count


def test_the_compile_itself_is_not_counted(shell, cache):
    state = current_state(shell)
    build = shell.run_cell("%%cython\ndef one():\n    return 1\n", store_history=True)
    assert build.success
    # gcc runs in another process; cythonize runs here but untracked: the
    # cell's own figures stay far below what compiling allocates (tens of MB).
    record = state.monitor.records()[-1]
    assert record["memory"]["allocated_bytes"] < 8 * 1024 * 1024, record["memory"]


def test_history_matches_what_the_panel_is_sent(shell):
    state = current_state(shell)
    shell.run_cell("blocks = [bytearray(100_000) for _ in range(50)]", store_history=True)
    shell.run_cell("del blocks[:25]", store_history=True)
    reports = {r.execution_count: r for r in cyscope.history()}
    records = state.monitor.records()[-2:]
    for record in records:
        report = reports[record["execution_count"]]
        sent = record["memory"]
        assert sent["peak_bytes"] == report.peak_bytes
        assert sent["net_bytes"] == report.net_bytes
        assert sent["allocated_bytes"] == report.allocated_bytes
        assert sent["allocations"] == report.allocations
        assert sent["leaked_bytes"] == report.leaked_bytes
    made, freed = (r["memory"] for r in records)
    assert at_least(made["net_bytes"], 50 * 100_000)
    # The shell's own bookkeeping allocates a little in the same cell.
    assert freed["net_bytes"] <= -24 * 100_000
