"""Regions: a cell or a ``track()`` block, measured over the native tracker.

The native library keeps process-wide counters; a region reads them at its
start and end. Nesting works because a region keeps its own running maximum:
whenever an inner region resets the peak, every open region first folds the
peak so far into its maximum (and keeps a copy of the peak snapshot).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import time

from . import _lib, _report
from ._state import TRACKER, Tracker

log = logging.getLogger("cyscope.memory")


class Region:
    def __init__(
        self,
        exact: bool,
        native: bool,
        label: str,
        execution_count: int | None = None,
        cell_id: str | None = None,
        tracker: Tracker = TRACKER,
    ):
        self.tracker = tracker
        self.exact = exact
        self.native = native
        self.label = label
        self.execution_count = execution_count
        self.cell_id = cell_id
        self.attached = False
        self.max_peak = -(1 << 62)
        self.best_snapshot: tuple[list, int] | None = None

    @property
    def epoch_lo(self) -> int:
        """The region's first epoch (read after start: reading allocates)."""
        return self._epoch_lo.value

    def _harvest(self) -> None:
        """Keep the peak snapshot before an inner region resets it."""
        snap, cur = _lib.peak_by_stack()
        if snap and (self.best_snapshot is None or cur > self.best_snapshot[1]):
            self.best_snapshot = (snap, cur)

    def start(self) -> Region:
        lib = _lib.lib()
        tracker = self.tracker
        # A region's figures leave out its own bookkeeping (an enclosing
        # region does see it): everything made here is made, and every
        # temporary released, before the start figures are read, and what
        # the end figures are read into is made now. (Pausing instead would
        # not do: bookkeeping made while paused but freed later would be
        # subtracted without having been added.)
        with tracker.lock:
            self.attached = tracker.attach(self.exact, self.native)
            if not self.attached:
                return self
            prev = ctypes.c_int64()
            for r in tracker.open_regions:
                r._harvest()
            lib.cyscope_mem_reset_peak(ctypes.byref(prev))
            for r in tracker.open_regions:
                r.max_peak = max(r.max_peak, prev.value)
            self.t0 = _lib.MemTotals(size=ctypes.sizeof(_lib.MemTotals))
            self.t1 = _lib.MemTotals(size=ctypes.sizeof(_lib.MemTotals))
            self._t0_ref, self._t1_ref = ctypes.byref(self.t0), ctypes.byref(self.t1)
            self._totals_get = _lib.totals_reader()
            self._next_epoch = _lib.epoch_advancer()
            self._epoch_lo, self._epoch_end = ctypes.c_uint32(), ctypes.c_uint32()
            self._epoch_lo_ref, self._epoch_end_ref = ctypes.byref(self._epoch_lo), ctypes.byref(self._epoch_end)
            del prev
            tracker.open_regions.append(self)
            self.perf0 = time.perf_counter()
            # Last: the region's epochs (its stacks) and figures start here.
            self._next_epoch(self._epoch_lo_ref)
            self._totals_get(self._t0_ref)
        return self

    def finish(self) -> _report.Report:
        if self.attached:
            # First: nothing below is the region's (its figures, and the
            # epochs its stacks are counted in, end here).
            self._totals_get(self._t1_ref)
            self._next_epoch(self._epoch_end_ref)
        lib = _lib.lib()
        tracker = self.tracker
        rep = _report.Report(
            label=self.label,
            execution_count=self.execution_count,
            cell_id=self.cell_id,
            exact=self.exact,
            native=self.native,
        )
        if not self.attached:
            rep.active = False
            return rep
        t1 = self.t1
        hi = self._epoch_end.value - 1
        rep.duration_ms = (time.perf_counter() - self.perf0) * 1000.0
        with tracker.lock:
            try:
                t0 = self.t0
                peak = max(self.max_peak, t1.peak_bytes)
                rep.start_current_bytes = t0.current_bytes
                rep.peak_bytes = max(0, peak - t0.current_bytes)
                rep.net_bytes = t1.current_bytes - t0.current_bytes
                rep.allocated_bytes = t1.allocated_bytes - t0.allocated_bytes
                rep.allocations = t1.allocations - t0.allocations
                rep.freed_bytes = t1.freed_bytes - t0.freed_bytes
                rep.frees = t1.frees - t0.frees
                rep.tracker_bytes = t1.tracker_bytes
                rep.epochs = (self.epoch_lo, hi)
                rep.leaks = _report.stats_live(self.epoch_lo, hi)
                rep.leaked_bytes = round(sum(s.bytes for s in rep.leaks))
                rep.leaks = _report.cap_stacks(rep.leaks)
                # Stacks live at the peak, made in this region. When the region
                # ends at (or above) its last snapshot, the end state is the best
                # picture of the peak.
                self._harvest()
                snap = self.best_snapshot
                if snap is None or t1.current_bytes >= snap[1]:
                    peak_stats = rep.leaks
                else:
                    peak_stats = [s for s in _report._stats(snap[0]) if self.epoch_lo <= s.epoch <= hi]
                rep.peak_stacks = _report.cap_stacks(peak_stats)
                # What the region allocated, by stack: the native change log
                # answers for its epochs only, whatever ran before.
                rep.allocated_stacks = _report.cap_stacks(
                    [
                        _report.StackBytes(s.stack_id, 0, s.bytes, s.count, 0, s.records)
                        for s in _lib.stack_changes(self.epoch_lo, hi)
                        if s.bytes > 0.5
                    ]
                )
            finally:
                # Even when interrupted half-way, the region closes: it leaves
                # the open list and gives back its attach.
                if self in tracker.open_regions:
                    tracker.open_regions.remove(self)
                # The change log is kept from the oldest open region on.
                oldest = min((r.epoch_lo for r in tracker.open_regions), default=hi + 1)
                lib.cyscope_mem_stack_log_trim(oldest)
                # Outer regions see this region's peak through the global
                # peak, which is not reset here.
                tracker.detach(self.exact, self.native)
                self.attached = False
        return rep


class Tracking:
    """Context manager returned by track(); the report fills in on exit."""

    def __init__(self, native: bool, exact: bool, label: str):
        self.native = native
        self.exact = exact
        self.label = label
        self.report: _report.Report | None = None

    def __enter__(self) -> _report.Report:
        self._region = Region(self.exact, self.native, self.label)
        self.report = _report.Report(label=self.label, exact=self.exact, native=self.native)
        self._region.start()
        if not self._region.attached:
            log.warning("cyscope.track: allocation tracker unavailable: %s", TRACKER.unavailable_reason())
        return self.report

    def __exit__(self, exc_type, exc, tb) -> bool:  # no *args: a tuple made here would count
        done = self._region.finish()
        # Fill the object the with-statement handed out.
        self.report.__dict__.update(done.__dict__)
        return False


@contextlib.contextmanager
def untracked():
    """Pause accounting on the calling thread (e.g. while compiling a cell)."""
    lib = _lib.lib()
    paused = lib is not None and lib.cyscope_mem_thread_pause(1) == _lib.OK
    try:
        yield
    finally:
        if paused:
            lib.cyscope_mem_thread_pause(-1)
