"""Regions (cells and ``track()`` blocks) over the native tracker.

The native library keeps process-wide counters; a region reads them at its
start and end. Nesting works because a region keeps its own running maximum:
whenever an inner region resets the peak, every open region first folds the
peak so far into its maximum (and keeps a copy of the peak snapshot).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import threading
import time
from collections import deque

from . import _lib, _report

log = logging.getLogger("cyscope.memory")

MAX_HISTORY = 1000

_lock = threading.RLock()
_open: list[_Region] = []
_history: deque[_report.Report] = deque(maxlen=MAX_HISTORY)
_attach_modes: list[tuple[bool, bool]] = []  # one entry per attach we hold
# Epoch ranges of finished cells, for "alive now, by allocating cell".
_cell_epochs: deque[tuple[int, int, int | None, str | None]] = deque(maxlen=100_000)
_layout_checked = False
_layout_ok = False
_pid = os.getpid()


def available() -> bool:
    return _lib.lib() is not None


def unavailable_reason() -> str | None:
    return _lib.reason()


def _check_fork() -> None:
    """A forked child starts detached (native atfork): forget parent state."""
    global _pid
    if os.getpid() != _pid:
        _pid = os.getpid()
        _open.clear()
        _attach_modes.clear()


def _apply_mode() -> None:
    exact = any(e for e, _ in _attach_modes) or any(r.exact for r in _open)
    native = any(n for _, n in _attach_modes) or any(r.native for r in _open)
    _lib.lib().cyscope_mem_configure(ctypes.byref(_lib.config_struct(exact, native)))


def _attach(exact: bool, native: bool) -> bool:
    lib = _lib.lib()
    if lib is None:
        return False
    _check_fork()
    _setup_python_frames()
    rc = lib.cyscope_mem_attach(ctypes.byref(_lib.config_struct(exact, native)))
    if rc != _lib.OK:
        log.warning("cyscope: cannot attach the allocation tracker (status %d)", rc)
        return False
    _attach_modes.append((exact, native))
    _apply_mode()
    return True


def _detach(exact: bool, native: bool) -> None:
    lib = _lib.lib()
    _check_fork()
    if lib is None or (exact, native) not in _attach_modes:
        return
    _attach_modes.remove((exact, native))
    lib.cyscope_mem_detach()
    if _attach_modes:
        _apply_mode()


def _layout_probe() -> bytearray:
    # Above the record threshold: always recorded with its stack.
    return bytearray(512 * 1024)


def _setup_python_frames() -> None:
    """Give the hooks this interpreter's frame layout, then check it works."""
    global _layout_checked, _layout_ok
    if _layout_checked:
        return
    _layout_checked = True
    lib = _lib.lib()
    layout = _lib.python_layout()
    if layout is None:
        log.info("cyscope: no frame layout for this Python; stacks will have no Python frames")
        return
    if lib.cyscope_mem_set_python_layout(ctypes.byref(layout)) != _lib.OK:
        log.info("cyscope: Python symbols not found in the process; no Python frames")
        return
    # Verify on a real allocation: the probe's own frame must show up.
    if lib.cyscope_mem_attach(ctypes.byref(_lib.config_struct(False, False))) != _lib.OK:
        return
    epoch = ctypes.c_uint32()
    lib.cyscope_mem_next_epoch(ctypes.byref(epoch))
    keep = _layout_probe()
    stats = _lib.live_by_stack(epoch.value, epoch.value)
    names = set()
    for s in stats:
        for fid, _line, kind in _lib.stack_frames(s.stack_id):
            if kind == _lib.FRAME_PYTHON:
                names.add(_lib.code_info(fid)[1])
    del keep
    lib.cyscope_mem_detach()
    _layout_ok = "_layout_probe" in names
    if not _layout_ok:
        lib.cyscope_mem_set_python_layout(None)
        log.warning("cyscope: Python frame layout check failed; stacks will have no Python frames")


class _Region:
    def __init__(self, exact: bool, native: bool, label: str, execution_count=None, cell_id=None):
        self.exact = exact
        self.native = native
        self.label = label
        self.execution_count = execution_count
        self.cell_id = cell_id
        self.attached = False
        self.max_peak = -(1 << 62)
        self.best_snapshot: tuple[list, int] | None = None

    def _harvest(self) -> None:
        """Keep the peak snapshot before an inner region resets it."""
        snap, cur = _lib.peak_by_stack()
        if snap and (self.best_snapshot is None or cur > self.best_snapshot[1]):
            self.best_snapshot = (snap, cur)

    def start(self) -> _Region:
        lib = _lib.lib()
        # No untracked() here: bookkeeping made while paused but freed later
        # would be subtracted without having been added. Instead t0 is read
        # last and t1 first, so a region's figures exclude its own
        # bookkeeping (an enclosing region does see it).
        with _lock:
            self.attached = _attach(self.exact, self.native)
            if not self.attached:
                return self
            # Stack ids are dense (1..n): keep the raw array, diff at the end.
            self.stacks0 = _lib.stack_totals()
            prev = ctypes.c_int64()
            for r in _open:
                r._harvest()
            lib.cyscope_mem_reset_peak(ctypes.byref(prev))
            for r in _open:
                r.max_peak = max(r.max_peak, prev.value)
            epoch = ctypes.c_uint32()
            lib.cyscope_mem_next_epoch(ctypes.byref(epoch))
            self.epoch_lo = epoch.value
            _open.append(self)
            self.t0 = _lib.totals()
            self.perf0 = time.perf_counter()
        return self

    def finish(self) -> _report.Report:
        lib = _lib.lib()
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
        t1 = _lib.totals()
        # Close the epoch range first: the bookkeeping below is not the region's.
        epoch = ctypes.c_uint32()
        lib.cyscope_mem_next_epoch(ctypes.byref(epoch))
        hi = epoch.value - 1
        stacks1 = _lib.stack_totals()
        rep.duration_ms = (time.perf_counter() - self.perf0) * 1000.0
        with _lock:
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
                rep.allocated_stacks = []
                s0 = self.stacks0
                for s in stacks1:
                    i = s.stack_id - 1
                    b0, c0 = (s0[i].bytes, s0[i].count) if i < len(s0) else (0.0, 0.0)
                    if s.bytes - b0 > 0.5:
                        rep.allocated_stacks.append(_report.StackBytes(s.stack_id, 0, s.bytes - b0, s.count - c0, 0, 0))
                rep.allocated_stacks = _report.cap_stacks(rep.allocated_stacks)
            finally:
                # Even when interrupted half-way, the region closes: it leaves
                # the open list and gives back its attach.
                if self in _open:
                    _open.remove(self)
                # Outer regions see this region's peak through the global
                # peak, which is not reset here.
                _detach(self.exact, self.native)
                self.attached = False
        return rep


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


class _Tracking:
    """Context manager returned by track(); the report fills in on exit."""

    def __init__(self, native: bool, exact: bool, label: str):
        self.native = native
        self.exact = exact
        self.label = label
        self.report: _report.Report | None = None

    def __enter__(self) -> _report.Report:
        self._region = _Region(self.exact, self.native, self.label)
        self.report = _report.Report(label=self.label, exact=self.exact, native=self.native)
        self._region.start()
        if not self._region.attached:
            log.warning("cyscope.track: allocation tracker unavailable: %s", unavailable_reason())
        return self.report

    def __exit__(self, *exc) -> bool:
        done = self._region.finish()
        # Fill the object the with-statement handed out.
        self.report.__dict__.update(done.__dict__)
        return False


def track(native: bool = False, exact: bool = False, label: str = "track") -> _Tracking:
    """Track allocations of the whole process while the block runs.

    ``with cyscope.track() as report: ...`` then read ``report.peak_bytes``,
    ``report.flamegraph()`` etc. ``exact=True`` records the stack of every
    allocation, ``native=True`` adds native frames. Blocks nest.
    """
    return _Tracking(native=native, exact=exact, label=label)


def history() -> list[_report.Report]:
    """One report per executed cell (while the kernel tracker runs), oldest first."""
    with _lock:
        return list(_history)


def live_by_cell() -> dict:
    """Bytes allocated by each cell that are still alive now (estimates).

    Keys are execution counts; None collects allocations made outside cells.
    """
    if _lib.lib() is None:
        return {}
    with untracked(), _lock:
        stats = _report.stats_live(0, 0xFFFFFFFF)
        ranges = list(_cell_epochs) + [
            (r.epoch_lo, 0xFFFFFFFF, r.execution_count, r.cell_id)
            for r in _open
            if r.execution_count is not None and r.attached
        ]
    ranges.sort()
    out: dict = {}
    import bisect

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
    if _lib.lib() is None:
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


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (n, ctypes.c_size_t)
        for n in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _heap_in_use() -> int:
    """glibc's own figure of heap bytes in use (baseline before attaching)."""
    try:
        libc = ctypes.CDLL(None)
        fn = libc.mallinfo2
        fn.restype = _MallInfo2
        mi = fn()
        return int(mi.uordblks + mi.hblkhd)
    except (AttributeError, OSError):
        return 0


class KernelCellTracker:
    """The memory monitor's CellTracker: one region per executed cell."""

    def __init__(self, exact: bool = False, native: bool = False):
        self.exact = exact
        self.native = native
        self._cell: _Region | None = None
        self._closed = False
        with untracked():
            self._baseline = _heap_in_use()
        with _lock:
            ok = _attach(exact, native)
            self._current0 = _lib.totals().current_bytes if ok else 0
        if not ok:
            raise RuntimeError(f"allocation tracker unavailable: {unavailable_reason()}")
        atexit.register(self.close)

    def cell_started(self, execution_count: int, cell_id: str | None) -> None:
        if self._closed:
            return
        if self._cell is not None:  # a cell that never finished (interrupt lost the event)
            self.cell_finished()
        self._cell = _Region(self.exact, self.native, f"cell [{execution_count}]", execution_count, cell_id)
        self._cell.start()

    def cell_finished(self) -> dict | None:
        region, self._cell = self._cell, None
        if region is None or not region.attached:
            return None
        rep = region.finish()
        with _lock:
            _history.append(rep)
            _cell_epochs.append((rep.epochs[0], rep.epochs[1], rep.execution_count, rep.cell_id))
        return rep.to_cell_memory()

    def snapshot(self) -> dict | None:
        if self._closed or _lib.lib() is None:
            return None
        t = _lib.totals()
        if not t.attached:
            return None
        base = self._baseline - self._current0
        return {
            "current_bytes": max(0, base + t.current_bytes),
            "peak_bytes": max(0, base + t.peak_bytes),
            "allocated_bytes": int(t.allocated_bytes),
            "allocations": int(t.allocations),
            "tracker_bytes": int(t.tracker_bytes),
        }

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._cell is not None:
            with contextlib.suppress(Exception):
                self._cell.finish()
            self._cell = None
        with _lock:
            _detach(self.exact, self.native)


def create_cell_tracker(exact: bool = False, native: bool = False) -> KernelCellTracker | None:
    """The kernel's CellTracker, or None (reason logged) without the native library."""
    if _lib.lib() is None:
        log.warning("cyscope: per-cell memory tracking off: %s", unavailable_reason())
        return None
    try:
        return KernelCellTracker(exact=exact, native=native)
    except RuntimeError as exc:
        log.warning("cyscope: per-cell memory tracking off: %s", exc)
        return None
