"""The kernel's per-cell tracker: the memory monitor's CellTracker, one
region per executed cell."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import threading

from . import _baseline, _lib
from ._regions import Region, untracked
from ._state import TRACKER, Tracker

log = logging.getLogger("cyscope.memory")


# Where the kernel's own threads come from: their work (sending messages,
# saving history, sampling) is not a cell's.
_MACHINERY = frozenset({"ipykernel", "IPython", "jupyter_client", "zmq", "tornado", "debugpy", "cyscope"})


def machinery_threads() -> list[int]:
    """Kernel thread ids of the kernel's own threads: ipykernel's message
    threads (IOPub, shell channel, control, heartbeat, output capture),
    IPython's history saver, cyscope's sampler. A thread that runs user
    code (the main thread, one a cell started, an ipykernel subshell) is
    not one of them."""
    out = []
    for t in threading.enumerate():
        if t is threading.main_thread() or not t.native_id or "subshell" in t.name.lower():
            continue
        target = getattr(t, "_target", None)
        origin = getattr(target, "__module__", None) or type(t).__module__ or ""
        if origin.split(".")[0] in _MACHINERY:
            out.append(t.native_id)
    return sorted(out)


class KernelCellTracker:
    """Implements cyscope.memory_monitor.CellTracker over the native tracker."""

    def __init__(self, exact: bool = False, native: bool = False, tracker: Tracker = TRACKER):
        self.tracker = tracker
        self.exact = exact
        self.native = native
        self._cell: Region | None = None
        self._closed = False
        self._excluded: list[int] = []
        with untracked():
            self._baseline = _baseline.heap_in_use()
        with tracker.lock:
            ok = tracker.attach(exact, native)
            self._current0 = _lib.totals().current_bytes if ok else 0
        if not ok:
            raise RuntimeError(f"allocation tracker unavailable: {tracker.unavailable_reason()}")
        atexit.register(self.close)

    def cell_started(self, execution_count: int, cell_id: str | None) -> None:
        if self._closed:
            return
        if self._cell is not None:  # a cell that never finished (interrupt lost the event)
            self.cell_finished()
        self._exclude_machinery()
        self._cell = Region(
            self.exact, self.native, f"cell [{execution_count}]", execution_count, cell_id, tracker=self.tracker
        )
        self._cell.start()

    def _exclude_machinery(self) -> None:
        """Leave the kernel's own threads out of cell figures: what they
        allocate and free (messages of earlier cells, history writes) is not
        the cell's. They still count in the process's current figure."""
        tids = machinery_threads()
        if tids != self._excluded and len(tids) <= 64:
            array = (ctypes.c_int64 * len(tids))(*tids)
            if _lib.lib().cyscope_mem_exclude_threads(array, len(tids)) == _lib.OK:
                self._excluded = tids

    def cell_finished(self) -> dict | None:
        region, self._cell = self._cell, None
        if region is None or not region.attached:
            return None
        rep = region.finish()
        self.tracker.note_cell(rep)
        return rep.to_cell_memory()

    def snapshot(self) -> dict | None:
        if self._closed or _lib.lib() is None:
            return None
        t = _lib.totals()
        if not t.attached:
            return None
        base = self._baseline - self._current0
        figures = {
            "current_bytes": max(0, base + t.current_bytes),
            "peak_bytes": max(0, base + t.peak_bytes),
            "allocated_bytes": int(t.allocated_bytes),
            "allocations": int(t.allocations),
            "tracker_bytes": int(t.tracker_bytes),
        }
        notices = self.tracker.notices()
        if notices:
            figures["notices"] = notices
        return figures

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._cell is not None:
            with contextlib.suppress(Exception):
                self._cell.finish()
            self._cell = None
        with self.tracker.lock:
            if self._excluded:
                _lib.lib().cyscope_mem_exclude_threads(None, 0)
            self.tracker.detach(self.exact, self.native)


def create_cell_tracker(exact: bool = False, native: bool = False) -> KernelCellTracker | None:
    """The kernel's CellTracker, or None (reason logged) without the native library."""
    if not TRACKER.available():
        log.warning("cyscope: per-cell memory tracking off: %s", TRACKER.unavailable_reason())
        return None
    try:
        return KernelCellTracker(exact=exact, native=native)
    except RuntimeError as exc:
        log.warning("cyscope: per-cell memory tracking off: %s", exc)
        return None
