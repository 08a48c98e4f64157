"""A long session: 25,000 cells in a real IPython shell with cyscope loaded.
Every cell gets its row, the kernel-side state stays bounded, and the
tracker's memory stops growing once the session's stacks are known."""

from __future__ import annotations

import cyscope
from cyscope.extension import current_state
from cyscope.memory import _lib
from cyscope.memory_monitor import MAX_RECORDS

CELLS = 25_000


def test_25000_cells(shell):
    state = current_state(shell)
    assert state.tracker is not None, "the native tracker is not attached: run `npm run build` first"
    sizes = {}
    first = None
    for i in range(CELLS):
        result = shell.run_cell(f"x{i % 10} = [bytearray(100) for _ in range({i % 7})]", store_history=True)
        assert result.success, result.error_in_exec
        first = first or result.execution_count
        if i in (5_000, CELLS - 1):
            sizes[i] = _lib.totals().tracker_bytes
    records = state.monitor.records()
    assert len(records) == MAX_RECORDS
    assert records[-1]["execution_count"] == first + CELLS - 1
    assert all(r["memory"] is not None for r in records)
    assert len(cyscope.history()) == 1000
    # Nothing is kept natively per cell: what grows is a code entry and a
    # stack per sampled allocation on a new line (one sample per 512 KiB
    # allocated; each cell's code is new), never a per-cell table.
    assert sizes[CELLS - 1] - sizes[5_000] < 2 * 1024 * 1024, sizes
