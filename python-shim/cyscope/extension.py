"""Wiring of cyscope into an IPython shell (terminal IPython or ipykernel)."""

from __future__ import annotations

import logging
import os
import platform
import sys

from . import __version__, crash, native, protocol
from .comm_hub import CommHub
from .memory_monitor import MemoryMonitor

log = logging.getLogger("cyscope")

# One state per shell; held on the shell so %reset cannot drop it.
_STATE_ATTR = "_cyscope_state"


class ExtensionState:
    def __init__(self, ipython):
        self.ipython = ipython
        self.hub = CommHub(on_open=self._greeting, on_message=self._handle)
        self.tracker = _create_tracker()
        self.monitor = MemoryMonitor(send=self.hub.broadcast, tracker=self.tracker)

    def _greeting(self) -> list[dict]:
        hello = protocol.hello(
            cyscope_version=__version__,
            python=platform.python_version(),
            pid=os.getpid(),
            interval_ms=self.monitor.interval_ms,
            native=native.status().to_message(),
        )
        # Crash reports of this kernel's previous process, not yet shown (docs/crash-reports.md).
        hello.update(crash.hello_fields())
        return [
            hello,
            # A figure for the panel at once, not only once a cell runs.
            self.monitor.current_sample(),
        ]

    def _handle(self, message: dict) -> dict | None:
        if message["type"] == "configure":
            self.monitor.set_interval(message["interval_ms"])
            return None
        if message["type"] == "request_history":
            return protocol.history(self.monitor.records())
        raise protocol.ProtocolError(f"unhandled message type {message['type']!r}")

    # IPython event callbacks -------------------------------------------------
    def pre_run_cell(self, info) -> None:
        self.monitor.cell_started(_count_of_starting_cell(self.ipython), getattr(info, "cell_id", None))

    def post_run_cell(self, result) -> None:
        self.monitor.cell_finished(
            bool(getattr(result, "success", True)), execution_count=getattr(result, "execution_count", None)
        )


def _create_tracker():
    """The native allocator tracker for per-cell figures, or None.

    Off when CYSCOPE_TRACKING=0, or when the native library is missing: the
    panel then shows RSS figures only (and says why).
    """
    if os.environ.get("CYSCOPE_TRACKING", "1") == "0":
        return None
    try:
        from .memory import create_cell_tracker

        return create_cell_tracker()
    except Exception as exc:
        log.warning("cyscope: per-cell memory tracking off: %s", exc)
        return None


def _count_of_starting_cell(ipython) -> int:
    """The execution count IPython gives the cell whose pre_run_cell is firing.

    pre_run_cell does not carry it, and `shell.execution_count` is not it
    everywhere: IPython 9 increments the counter before the event, IPython 8
    after it. Both set `result.execution_count` in run_cell_async (our
    caller) before firing the event, so read it there; post_run_cell's
    result confirms the number in any case.
    """
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "run_cell_async":
            result = frame.f_locals.get("result")
            count = getattr(result, "execution_count", None)
            if isinstance(count, int):
                return count
            break
        frame = frame.f_back
    return ipython.execution_count


def load(ipython) -> None:
    if getattr(ipython, _STATE_ATTR, None) is not None:
        return  # loading twice is a no-op, as IPython users expect
    state = ExtensionState(ipython)
    kernel = getattr(ipython, "kernel", None)
    if kernel is not None:
        state.hub.register(kernel)
    ipython.events.register("pre_run_cell", state.pre_run_cell)
    ipython.events.register("post_run_cell", state.post_run_cell)
    state.monitor.start()
    setattr(ipython, _STATE_ATTR, state)
    _register_cython_magic(ipython)
    _register_debugger(ipython)
    _register_flamegraph_magics(ipython)
    crash.attach(ipython)  # the fatal-signal handler; never raises


def _register_cython_magic(ipython) -> None:
    # The memory panel must work even where %%cython cannot (no compiler,
    # an IPython too old): report, don't fail the load.
    try:
        from . import cython as cython_magic

        cython_magic.register(ipython)
    except Exception as exc:
        log.warning("cyscope: %%%%cython is not available in this kernel: %s", exc)


def _register_debugger(ipython) -> None:
    # Breakpoints in %%cython cells (cyscope.debugger): optional like %%cython itself.
    try:
        from . import debugger

        debugger.install(ipython)
    except Exception as exc:
        log.warning("cyscope: breakpoints in %%%%cython cells are not available in this kernel: %s", exc)


def _register_flamegraph_magics(ipython) -> None:
    # %%memory and %memory_flamegraph (cyscope/flamegraph/magic.py).
    try:
        from .flamegraph import register

        register(ipython)
    except Exception as exc:
        log.warning("cyscope: %%%%memory is not available in this kernel: %s", exc)


def unload(ipython) -> None:
    state = getattr(ipython, _STATE_ATTR, None)
    if state is None:
        return
    for name, callback in (("pre_run_cell", state.pre_run_cell), ("post_run_cell", state.post_run_cell)):
        try:
            ipython.events.unregister(name, callback)
        except ValueError:
            pass
    state.monitor.stop()
    state.hub.unregister()
    crash.detach(ipython)
    if state.tracker is not None:
        state.tracker.close()
    try:
        from . import debugger

        debugger.uninstall(ipython)
    except Exception:
        log.debug("cyscope: removing the debugger failed", exc_info=True)
    try:
        from . import cython as cython_magic

        cython_magic.unregister(ipython)
    except Exception:
        log.debug("cyscope: unregistering %%cython failed", exc_info=True)
    setattr(ipython, _STATE_ATTR, None)


def current_state(ipython) -> ExtensionState | None:
    return getattr(ipython, _STATE_ATTR, None)
