"""Per-cell memory rows and the live memory stream.

A daemon thread samples the process while a cell runs (every `interval_ms`)
and sleeps otherwise, so an idle kernel sends nothing. IPython's
pre_run_cell/post_run_cell events open and close a cell record; silent
executions (the frontend's own `%load_ext`) fire neither, so they leave no row.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Callable, Protocol

from . import process_memory, protocol

DEFAULT_INTERVAL_MS = 100
# Enough rows for a long session, bounded so the kernel never grows for it.
MAX_RECORDS = 10_000

Send = Callable[[dict], None]

log = logging.getLogger(__name__)


class CellTracker(Protocol):
    """What the native allocator tracker offers the monitor (cyscope.memory)."""

    def cell_started(self, execution_count: int, cell_id: str | None) -> None: ...

    def cell_finished(self) -> dict | None:
        """Exact figures of the cell (protocol cellMemory), or None."""

    def snapshot(self) -> dict | None:
        """{"current_bytes", "peak_bytes"} now, or None when not attached."""


def _now_ms() -> float:
    return time.time() * 1000.0


class MemoryMonitor:
    def __init__(
        self,
        send: Send,
        interval_ms: int = DEFAULT_INTERVAL_MS,
        rss: Callable[[], int] | None = None,
        tracker: CellTracker | None = None,
    ):
        self._send = send
        self._tracker = tracker
        self._rss = rss or process_memory.rss_bytes
        self._interval_ms = interval_ms
        self._records: deque[dict] = deque(maxlen=MAX_RECORDS)
        self._cond = threading.Condition()
        self._current: dict | None = None  # the open cell record, if a cell runs
        self._started_perf = 0.0
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- lifetime -------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="cyscope-memory-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    @property
    def interval_ms(self) -> int:
        return self._interval_ms

    def set_interval(self, interval_ms: int) -> None:
        with self._cond:
            self._interval_ms = interval_ms
            self._cond.notify_all()

    def set_tracker(self, tracker: CellTracker | None) -> None:
        """Use another tracker (or none) from the next cell on.

        Called between cells (comm messages wait while a cell runs); a cell
        open now keeps its RSS figures and loses only the tracker's.
        """
        with self._cond:
            self._tracker = tracker

    def records(self) -> list[dict]:
        with self._cond:
            return [dict(r) for r in self._records]

    # -- IPython events -------------------------------------------------------
    def cell_started(self, execution_count: int, cell_id: str | None, first_line: str | None = None) -> None:
        # A failing tracker costs the cell its exact figures, never its row.
        tracker = self._tracker
        if tracker is not None:
            try:
                tracker.cell_started(execution_count, cell_id)
            except Exception:
                log.exception("cyscope: the allocation tracker failed to open cell [%s]", execution_count)
        rss = self._rss()
        with self._cond:
            self._current = {
                "execution_count": execution_count,
                "cell_id": cell_id,
                "started_ms": _now_ms(),
                "duration_ms": 0.0,
                "rss_before": rss,
                "rss_after": rss,
                "rss_peak": rss,
                "success": False,
                "memory": None,
            }
            if first_line is not None:
                self._current["first_line"] = first_line
            self._started_perf = time.perf_counter()
            self._cond.notify_all()

    def cell_finished(self, success: bool, execution_count: int | None = None) -> dict | None:
        # The cell's own time and memory, before the tracker builds its report.
        ended = time.perf_counter()
        rss = self._rss()
        memory = self._tracker_figures()
        with self._cond:
            record = self._current
            if record is None:
                return None
            self._current = None
            record["duration_ms"] = (ended - self._started_perf) * 1000.0
            record["rss_after"] = rss
            record["rss_peak"] = max(record["rss_peak"], rss)
            record["success"] = bool(success)
            record["memory"] = memory
            if execution_count is not None:
                record["execution_count"] = execution_count
            self._records.append(record)
            count = record["execution_count"]
        self._send(self._sample_message(rss, running=False, execution_count=count))
        self._send(protocol.cell(dict(record)))
        return record

    def _tracker_figures(self) -> dict | None:
        tracker = self._tracker
        if tracker is None:
            return None
        try:
            return tracker.cell_finished()
        except Exception:
            log.exception("cyscope: the allocation tracker failed to close the cell")
            return None

    def current_cell(self) -> tuple[int, str | None] | None:
        """(execution count, cell id) of the cell running now, if any."""
        with self._cond:
            if self._current is None:
                return None
            return self._current["execution_count"], self._current["cell_id"]

    def current_sample(self) -> dict:
        """A sample taken now (running or not): sent to each new comm."""
        with self._cond:
            count = self._current["execution_count"] if self._current is not None else None
        return self._sample_message(self._rss(), running=count is not None, execution_count=count)

    # -- sampling thread ------------------------------------------------------
    def _sample_message(self, rss: int, running: bool, execution_count: int | None) -> dict:
        tracker = self._tracker
        native = tracker.snapshot() if tracker is not None else None
        return protocol.sample(
            t_ms=_now_ms(), rss_bytes=rss, running=running, execution_count=execution_count, native=native
        )

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._current is None and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                execution_count = self._current["execution_count"]
            try:
                self._sample_running_cell(execution_count)
            except Exception:
                # A closed comm or an unreadable /proc must not stop the sampler.
                log.debug("cyscope: a memory sample failed", exc_info=True)
            with self._cond:
                if not self._stopping:
                    self._cond.wait(self._interval_ms / 1000.0)

    def _sample_running_cell(self, execution_count: int) -> None:
        rss = self._rss()
        with self._cond:
            # Sent under the lock: cell_finished cannot close the cell between
            # this check and the send, so a "running" sample never arrives
            # after the cell's final one (the panel shows the latest).
            if self._current is None or self._current["execution_count"] != execution_count:
                return
            self._current["rss_peak"] = max(self._current["rss_peak"], rss)
            self._send(self._sample_message(rss, True, execution_count))
