"""Exact per-cell memory, attributed to Python and ``%%cython`` lines.

The native library (libcyscope.so) attaches to the running process by
patching GOT/PLT slots of every loaded object (no LD_PRELOAD); see
docs/memory-api.md for the API, the byte unit and the error bounds.

Public names:
    track(native=False, exact=False)  context manager -> Report
    history()                         one Report per executed cell
    untracked()                       pause accounting on this thread
    live_by_cell()                    bytes alive now, by allocating cell
    create_cell_tracker()             the kernel monitor's CellTracker (or None)
    stats()                           the tracker's own counters and memory
    register_cython_source(pyx, execution_count, cell_id)
"""

from __future__ import annotations

from ._report import Report
from ._symbols import register_cython_source
from ._tracker import (
    KernelCellTracker,
    available,
    create_cell_tracker,
    history,
    live_by_cell,
    stats,
    track,
    unavailable_reason,
    untracked,
)

__all__ = [
    "KernelCellTracker",
    "Report",
    "available",
    "create_cell_tracker",
    "history",
    "live_by_cell",
    "register_cython_source",
    "stats",
    "track",
    "unavailable_reason",
    "untracked",
]
