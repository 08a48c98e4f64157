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

Modules, by role: _api (these functions), _regions (a cell or track()
block over the native counters), _kernel (the per-cell tracker),
_state (the one owner of the process-wide state), _baseline (the heap
before attach), _frames (Python frames in stacks, with py_layouts.json),
_report (what a region measured), _symbols (frames to names and lines;
_elf reads line tables when addr2line is missing), _lib (ctypes bindings).
"""

from __future__ import annotations

from ._api import available, history, live_by_cell, stats, track, unavailable_reason, untracked
from ._kernel import KernelCellTracker, create_cell_tracker
from ._report import Report
from ._symbols import register_cython_source

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
