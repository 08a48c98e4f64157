"""The public functions of cyscope.memory (see docs/memory-api.md)."""

from __future__ import annotations

import bisect

from . import _lib, _report
from ._regions import Tracking, untracked
from ._state import TRACKER

__all__ = ["available", "history", "live_by_cell", "stats", "track", "unavailable_reason", "untracked"]


def available() -> bool:
    return TRACKER.available()


def unavailable_reason() -> str | None:
    return TRACKER.unavailable_reason()


def track(native: bool = False, exact: bool = False, label: str = "track") -> Tracking:
    """Track allocations of the whole process while the block runs.

    ``with cyscope.track() as report: ...`` then read ``report.peak_bytes``,
    ``report.flamegraph()`` etc. ``exact=True`` records the stack of every
    allocation, ``native=True`` adds native frames. Blocks nest.
    """
    return Tracking(native=native, exact=exact, label=label)


def history() -> list[_report.Report]:
    """One report per executed cell (while the kernel tracker runs), oldest first."""
    with TRACKER.lock:
        return list(TRACKER.history)


def live_by_cell() -> dict:
    """Bytes allocated by each cell that are still alive now (estimates).

    Keys are execution counts; None collects allocations made outside cells.
    """
    if not TRACKER.available():
        return {}
    with untracked(), TRACKER.lock:
        stats = _report.stats_live(0, 0xFFFFFFFF)
        ranges = list(TRACKER.cell_ranges) + [
            (r.epoch_lo, 0xFFFFFFFF, r.execution_count, r.cell_id)
            for r in TRACKER.open_regions
            if r.execution_count is not None and r.attached
        ]
    ranges.sort()
    out: dict = {}
    starts = [r[0] for r in ranges]
    for s in stats:
        k = bisect.bisect_right(starts, s.epoch) - 1
        cell = None
        if k >= 0 and ranges[k][0] <= s.epoch <= ranges[k][1]:
            cell = ranges[k][2]
        out[cell] = out.get(cell, 0.0) + s.bytes
    return {k: round(v) for k, v in out.items()}


def stats() -> dict:
    """The tracker's own state: counters since the first attach and its memory."""
    if not TRACKER.available():
        return {"available": False, "reason": unavailable_reason()}
    t = _lib.totals()
    return {
        "available": True,
        "attached": bool(t.attached),
        "allocated_bytes": int(t.allocated_bytes),
        "allocations": int(t.allocations),
        "freed_bytes": int(t.freed_bytes),
        "frees": int(t.frees),
        "change_since_attach_bytes": int(t.current_bytes),
        "live_records": int(t.live_records),
        "stacks": int(t.stacks),
        "tracker_bytes": int(t.tracker_bytes),
        "patched_slots": int(t.patched_slots),
    }
