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
        # CYSCOPE_TRACKING=0 in the kernel's environment keeps tracking off,
        # whatever a frontend asks.
        self._tracking_forced_off = os.environ.get("CYSCOPE_TRACKING", "1") == "0"
        # The tracker is created on first need (a comm opens, a cell runs, a
        # frontend configures), so a frontend that wants tracking off gets a
        # kernel that never installed the allocator hooks.
        self._tracking = "off" if self._tracking_forced_off else None
        self._tracking_problem: str | None = None
        self._tracker = None
        self._cython_magic = "cyscope"
        self._cython_problem: str | None = None
        self.monitor = MemoryMonitor(send=self.hub.broadcast)

    # -- settings ---------------------------------------------------------------
    @property
    def tracker(self):
        """The native allocation tracker of this kernel, or None (tracking off or unavailable)."""
        self._ensure_tracking()
        return self._tracker

    @property
    def tracking(self) -> str:
        self._ensure_tracking()
        return self._tracking

    def _ensure_tracking(self) -> None:
        if self._tracking is None:
            self.set_tracking(DEFAULT_TRACKING)

    def set_tracking(self, mode: str) -> None:
        """Switch per-cell memory tracking to `mode` (protocol.TRACKING_MODES) in this kernel."""
        if mode not in protocol.TRACKING_MODES:
            raise ValueError(f"tracking mode must be one of {', '.join(protocol.TRACKING_MODES)}")
        self._tracking_problem = None
        if mode != "off" and self._tracking_forced_off:
            self._tracking_problem = "memory tracking stays off: CYSCOPE_TRACKING=0 in the kernel's environment"
            mode = "off"
        if mode == self._tracking:
            return
        old, self._tracker = self._tracker, None
        if old is not None:
            self.monitor.set_tracker(None)
            old.close()
        tracker = None
        if mode != "off":
            tracker = _create_tracker(mode)
            if tracker is None:
                self._tracking_problem = f"memory tracking is off: {_tracking_unavailable_reason()}"
                mode = "off"
        self._tracker = tracker
        self._tracking = mode
        self.monitor.set_tracker(tracker)

    def tracking_modes(self) -> list[str]:
        if self._tracking_forced_off or _tracking_unavailable_reason() is not None:
            return ["off"]
        return list(protocol.TRACKING_MODES)

    def set_cython_magic(self, which: str) -> None:
        """Make `%%cython` cyscope's or Cython's own in this shell."""
        self._cython_problem = None
        if which == self._cython_magic:
            return
        if which == "cython":
            try:
                import Cython
            except ImportError as exc:
                self._cython_problem = f"%%cython stays cyscope's: Cython's own needs Cython ({exc})"
                return
            _unregister_cython_magic(self.ipython)
            Cython.load_ipython_extension(self.ipython)
        else:
            _register_cython_magic(self.ipython)
        self._cython_magic = which

    def apply(self, settings: dict) -> None:
        """Apply the setting fields of a configure or connect message."""
        if "interval_ms" in settings:
            self.monitor.set_interval(settings["interval_ms"])
        if "tracking" in settings:
            self.set_tracking(settings["tracking"])
        if "cython_magic" in settings:
            self.set_cython_magic(settings["cython_magic"])

    def config_message(self) -> dict:
        self._ensure_tracking()
        return protocol.config(
            interval_ms=self.monitor.interval_ms,
            tracking=self._tracking,
            tracking_modes=self.tracking_modes(),
            cython_magic=self._cython_magic,
            problems=[p for p in (self._tracking_problem, self._cython_problem) if p],
        )

    # -- the comm -----------------------------------------------------------------
    def _greeting(self, connect: dict | None) -> list[dict]:
        if connect is not None:
            self.apply(connect)
        self._ensure_tracking()
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
            # Sent only to frontends that listed "config" (CommHub checks).
            self.config_message(),
        ]

    def _handle(self, message: dict) -> dict | None:
        if message["type"] == "configure":
            tracking = self._tracking
            self.apply(message)
            self.hub.broadcast(self.config_message(), needs="config")
            if self._tracking != tracking:
                # The heap figure changed meaning (or appeared): show it now.
                self.hub.broadcast(self.monitor.current_sample())
            return None
        if message["type"] == "request_history":
            return protocol.history(self.monitor.records())
        raise protocol.ProtocolError(f"unhandled message type {message['type']!r}")

    # IPython event callbacks -------------------------------------------------
    def pre_run_cell(self, info) -> None:
        self._ensure_tracking()
        self.monitor.cell_started(
            _count_of_starting_cell(self.ipython),
            getattr(info, "cell_id", None),
            first_line=_first_line(getattr(info, "raw_cell", None)),
        )

    def post_run_cell(self, result) -> None:
        self.monitor.cell_finished(
            bool(getattr(result, "success", True)), execution_count=getattr(result, "execution_count", None)
        )

    def close(self) -> None:
        self.monitor.stop()
        self.hub.unregister("unloaded")
        if self._tracker is not None:
            self._tracker.close()
            self._tracker = None


# The mode a kernel starts in when no frontend said otherwise.
DEFAULT_TRACKING = "sampled"
FIRST_LINE_CHARS = 200


def _create_tracker(mode: str):
    """The native allocator tracker for per-cell figures in `mode`, or None
    (the native library is missing or refused; the panel says why)."""
    try:
        from .memory import create_cell_tracker

        return create_cell_tracker(exact=mode == "exact", native=mode == "native")
    except Exception as exc:
        log.warning("cyscope: per-cell memory tracking off: %s", exc)
        return None


def _tracking_unavailable_reason() -> str | None:
    try:
        from . import memory

        return None if memory.available() else (memory.unavailable_reason() or "the native library is not loaded")
    except Exception as exc:
        return str(exc)


def _first_line(source) -> str | None:
    """The first non-blank line of a cell's source, at most FIRST_LINE_CHARS long."""
    if not isinstance(source, str):
        return None
    start = 0
    while start < len(source):
        end = source.find("\n", start)
        end = len(source) if end < 0 else end
        # Look at no more than a bounded piece of a (possibly huge) line.
        line = source[start : min(end, start + 4 * FIRST_LINE_CHARS)].strip()
        if line:
            return line[:FIRST_LINE_CHARS]
        start = end + 1
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
    # Breakpoints in %%cython cells (cyscope.debugger): optional like %%cython itself,
    # and off with CYSCOPE_DEBUGGER=0 (JupyterLab's debugger then works as without cyscope).
    if os.environ.get("CYSCOPE_DEBUGGER", "1") == "0":
        return
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


def _unregister_cython_magic(ipython) -> None:
    try:
        from . import cython as cython_magic

        cython_magic.unregister(ipython)
    except Exception:
        log.debug("cyscope: unregistering %%cython failed", exc_info=True)


def unload(ipython) -> None:
    state = getattr(ipython, _STATE_ATTR, None)
    if state is None:
        return
    for name, callback in (("pre_run_cell", state.pre_run_cell), ("post_run_cell", state.post_run_cell)):
        try:
            ipython.events.unregister(name, callback)
        except ValueError:
            pass
    # Frontends are told why their comm closes ("unloaded"), so they do not
    # load cyscope again until the user does.
    state.close()
    crash.detach(ipython)
    try:
        from . import debugger

        debugger.uninstall(ipython)
    except Exception:
        log.debug("cyscope: removing the debugger failed", exc_info=True)
    if state._cython_magic == "cyscope":
        _unregister_cython_magic(ipython)
    setattr(ipython, _STATE_ATTR, None)


def current_state(ipython) -> ExtensionState | None:
    return getattr(ipython, _STATE_ATTR, None)
