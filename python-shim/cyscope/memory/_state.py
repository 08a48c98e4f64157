"""The one owner of the tracker's process-wide state.

The native library keeps one set of counters for the whole process. Every
region (a kernel cell, a ``track()`` block) and the kernel's cell tracker
share it through the single :data:`TRACKER`: which attaches are held and in
which mode, which regions are open, the finished cells' reports and epoch
ranges, and whether Python frames are read.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections import deque
from typing import TYPE_CHECKING

from . import _frames, _lib, _report

if TYPE_CHECKING:
    from ._regions import Region

log = logging.getLogger("cyscope.memory")

# Reports kept by history(): one per cell, the newest.
MAX_HISTORY = 1000
# Epoch ranges of finished cells kept for live_by_cell().
MAX_CELL_RANGES = 100_000


class PythonObjects:
    """Whether Python objects are counted one by one (pymalloc wrapped).

    Installed with the first attach and removed before the last detach;
    without it, objects count where their allocator takes memory (pymalloc's
    arenas as mappings, larger objects as malloc blocks).
    """

    def __init__(self) -> None:
        self.installed = False
        self.layout: _lib.PyMallocLayout | None = None
        self.reason: str | None = None  # why objects are not counted one by one

    @property
    def counted(self) -> bool:
        return self.installed

    @property
    def arena_level(self) -> bool:
        """pymalloc serves objects, but they are counted by arena (a
        tracer got there first, an unknown layout): worth a notice. Not so
        when switched off, or under another allocator (PYTHONMALLOC=malloc
        makes every object a malloc block, counted one by one anyway)."""
        return (
            not self.installed
            and self.reason is not None
            and not self.reason.startswith("switched off")
            and "allocator is malloc" not in self.reason
        )

    def install(self) -> None:
        if self.installed:
            return
        # Checked at every install: a tracer running at one attach (which
        # hides pymalloc) may be gone at the next.
        if os.environ.get("CYSCOPE_PYTHON_OBJECTS", "1") == "0":
            self.layout, reason = None, "switched off (CYSCOPE_PYTHON_OBJECTS=0)"
        else:
            self.layout, reason = _lib.pymalloc_layout()
        if reason != self.reason and reason:
            log.info("cyscope: Python objects are not counted one by one: %s", reason)
        self.reason = reason
        if self.layout is None:
            return
        rc = _lib.gil_lib().cyscope_mem_python_objects(ctypes.byref(self.layout))
        if rc == _lib.OK:
            self.installed = True
        else:
            self.reason = f"the allocator wrappers could not be installed (status {rc})"
            log.warning("cyscope: Python objects are not counted one by one: %s", self.reason)

    def uninstall(self) -> None:
        if self.installed:
            # ESTATE: someone wrapped ours since; they stay, counting nothing.
            _lib.gil_lib().cyscope_mem_python_objects(None)
            self.installed = False


class Tracker:
    """Process-wide tracker state; use the module's TRACKER, not a new one."""

    def __init__(self) -> None:
        # Guards everything below; re-entrant because a region's finish runs
        # while a caller may already hold it.
        self.lock = threading.RLock()
        self.open_regions: list[Region] = []
        self.history: deque[_report.Report] = deque(maxlen=MAX_HISTORY)
        # (first epoch, last epoch, execution count, cell id) of finished cells.
        self.cell_ranges: deque[tuple[int, int, int | None, str | None]] = deque(maxlen=MAX_CELL_RANGES)
        self._attach_modes: list[tuple[bool, bool]] = []  # one entry per attach held
        self._pid = os.getpid()
        self.python_frames = _frames.PythonFrames()
        self.python_objects = PythonObjects()

    # -- availability ---------------------------------------------------------
    @staticmethod
    def available() -> bool:
        return _lib.lib() is not None

    @staticmethod
    def unavailable_reason() -> str | None:
        return _lib.reason()

    # -- attach / detach (lock held) -------------------------------------------
    def _check_fork(self) -> None:
        """A forked child starts detached (native atfork): forget parent state."""
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            self.open_regions.clear()
            self._attach_modes.clear()

    def _apply_mode(self) -> None:
        """The process-wide mode is the most detailed one anybody asks for."""
        exact = any(e for e, _ in self._attach_modes) or any(r.exact for r in self.open_regions)
        native = any(n for _, n in self._attach_modes) or any(r.native for r in self.open_regions)
        _lib.lib().cyscope_mem_configure(ctypes.byref(_lib.config_struct(exact, native)))

    def attach(self, exact: bool, native: bool) -> bool:
        lib = _lib.lib()
        if lib is None:
            return False
        self._check_fork()
        self.python_frames.setup()
        rc = lib.cyscope_mem_attach(ctypes.byref(_lib.config_struct(exact, native)))
        if rc != _lib.OK:
            log.warning("cyscope: cannot attach the allocation tracker (status %d)", rc)
            return False
        self._attach_modes.append((exact, native))
        self._apply_mode()
        if len(self._attach_modes) == 1:
            self.python_objects.install()
        return True

    def detach(self, exact: bool, native: bool) -> None:
        lib = _lib.lib()
        self._check_fork()
        if lib is None or (exact, native) not in self._attach_modes:
            return
        self._attach_modes.remove((exact, native))
        if not self._attach_modes:
            self.python_objects.uninstall()
        lib.cyscope_mem_detach()
        if self._attach_modes:
            self._apply_mode()

    # -- what the panel should tell --------------------------------------------
    def notices(self) -> list[dict]:
        """Why figures or stacks are less than they could be: [{id, message}].

        Sent to the panel with the tracker's figures (sample.native.notices)
        and logged once when they first arise.
        """
        out = []
        if self.python_frames.reason:
            out.append({"id": "python-frames", "message": f"Python frames are not shown: {self.python_frames.reason}."})
        if self.python_objects.arena_level:
            out.append(
                {
                    "id": "python-objects",
                    "message": "Python objects are counted by pymalloc arena, not one by one: "
                    f"{self.python_objects.reason}.",
                }
            )
        if self.available() and _lib.totals().stacks_refused:
            out.append(
                {
                    "id": "stacks",
                    "message": "The tracker's stack table is full (256 MiB): new stacks show as <other stacks>; "
                    "figures stay exact. Restart the kernel to start afresh.",
                }
            )
        from . import _symbols

        missing = _symbols.missing_symboliser()
        if missing:
            out.append({"id": "symboliser", "message": missing})
        return out

    # -- finished cells ---------------------------------------------------------
    def note_cell(self, report: _report.Report) -> None:
        with self.lock:
            self.history.append(report)
            self.cell_ranges.append((report.epochs[0], report.epochs[1], report.execution_count, report.cell_id))


TRACKER = Tracker()
