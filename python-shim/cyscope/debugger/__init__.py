"""Breakpoints in compiled ``%%cython`` cells, inside JupyterLab's own debugger.

How the parts fit (docs/debugger.md says more):

* :mod:`cyscope.cython.probes` (a build plugin) makes probe builds while the debugger
  is on, with :mod:`.instrument` (which reads the generated C with :mod:`.generated_c`);
* :mod:`.runtime` knows the loaded probe builds and is what an armed probe calls;
* :mod:`.session` holds breakpoints, stops threads and steps (no wire format);
* :mod:`.dap` wraps ipykernel's debugger so that JupyterLab's requests about compiled
  cells reach the session and everything else reaches debugpy;
* :mod:`.stack`, :mod:`.variables`, :mod:`.ctype`, :mod:`.memory` build what the
  Callstack and Variables panels show.

:func:`install` wires all of it into one IPython shell (called when cyscope loads).
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("cyscope")

_ATTR = "_cyscope_debugger"


class KernelDebugger:
    """cyscope's debugger in one shell: the session, the bridge to ipykernel's debugger,
    the build plugin, and the IPython hooks that tie them to cells."""

    def __init__(self, ipython):
        from ..cython import plugins
        from ..cython.probes import ProbesPlugin
        from . import runtime
        from .dap import Bridge
        from .session import DebugSession

        self.ipython = ipython
        self.kernel = getattr(ipython, "kernel", None)
        kernel_debugger = getattr(self.kernel, "debugger", None)
        self.bridge = None
        self.session = DebugSession(emit=self._emit)
        if kernel_debugger is not None and hasattr(kernel_debugger, "process_request"):
            self.bridge = Bridge(kernel_debugger, self.session)
        self.raw_cell: str | None = None
        self.plugin = plugins.register(ProbesPlugin(self.probes_wanted, self.loaded))
        runtime.on_module_loading(self._module_loading)
        ipython.events.register("pre_run_cell", self._pre_run_cell)
        ipython.events.register("post_run_cell", self._post_run_cell)
        self._original_shutdown = None
        handlers = getattr(self.kernel, "control_handlers", None)
        if isinstance(handlers, dict) and "shutdown_request" in handlers:
            self._original_shutdown = handlers["shutdown_request"]
            handlers["shutdown_request"] = self._shutdown_request

    def uninstall(self) -> None:
        from ..cython import plugins
        from . import runtime

        plugins.unregister(self.plugin)
        for name, cb in (("pre_run_cell", self._pre_run_cell), ("post_run_cell", self._post_run_cell)):
            try:
                self.ipython.events.unregister(name, cb)
            except ValueError:
                pass
        self.session.clear()
        if self.bridge is not None:
            self.bridge.uninstall()
        if self._original_shutdown is not None:
            self.kernel.control_handlers["shutdown_request"] = self._original_shutdown
        if runtime.controller() is self.session:
            runtime.set_controller(None)

    # -- kernel ----------------------------------------------------------------------
    def _emit(self, event: dict) -> None:
        if self.bridge is not None:
            self.bridge.debugger.event_callback(event)

    def _shutdown_request(self, *args, **kwargs):
        # A stopped cell would keep the kernel from ever shutting down (or restarting).
        self.session.resume_all("interrupt")
        return self._original_shutdown(*args, **kwargs)

    @property
    def debugger_on(self) -> bool:
        return self.bridge is not None and self.bridge.started

    def probes_wanted(self, opts) -> bool:
        return bool(getattr(opts, "debug", False)) or self.debugger_on

    # -- cells -----------------------------------------------------------------------
    def _pre_run_cell(self, info) -> None:
        self.raw_cell = getattr(info, "raw_cell", None)

    def _post_run_cell(self, result) -> None:
        self.session.cell_finished()
        self._note_plain_build()

    def source_of(self, pyx_path: str | None) -> tuple[str | None, str | None]:
        """(the source path JupyterLab uses for the cell being run, its code) if the cell
        being run is the one this .pyx came from; else (None, None)."""
        raw = self.raw_cell
        if not raw or not pyx_path or not raw.lstrip().startswith("%%cython"):
            return None, None
        try:
            with open(pyx_path, encoding="utf-8") as f:
                pyx = f.read()
        except OSError:
            return None, None
        body = raw.lstrip().split("\n", 1)[1] if "\n" in raw.lstrip() else ""
        if body.rstrip() != pyx.split("\n", 1)[-1].rstrip():  # line 1 of the .pyx stands for %%cython
            return None, None
        try:
            from ipykernel.compiler import get_file_name
        except ImportError:
            return None, raw
        path = get_file_name(raw)
        if not os.path.exists(path) and os.path.isdir(os.path.dirname(path)):
            try:  # what ipykernel's dumpCell would have written: JupyterLab's Source panel reads it
                with open(path, "w", encoding="utf-8") as f:
                    f.write(raw)
            except OSError:
                pass
        return path, raw

    def _module_loading(self, pm) -> None:
        path, code = self.source_of(pm.pyx_path)
        pm.source_path = path or pm.pyx_path
        self.session.note_build(pm.source_path, pm, code)

    def loaded(self, result) -> None:
        from . import runtime

        map_path = os.path.join(result.directory, result.module_name + ".probes.json")
        path, code = self.source_of(result.pyx_path)
        if not os.path.exists(map_path):
            if path is not None:
                self.session.note_build(path, None, code)
            return
        try:
            pm = runtime.register(result.module, result.so_path, map_path, path or result.pyx_path, result.pyx_path)
        except (OSError, ValueError, KeyError) as exc:  # a damaged probe build: the module works, breakpoints not
            log.warning("cyscope: breakpoints are off in this cell: %s", exc)
            if path is not None:
                self.session.note_build(path, None, code)
            return
        if path is not None:
            pm.source_path = path
        self.session.note_build(pm.source_path, pm, code)

    def _note_plain_build(self) -> None:
        """A cell built without the plugin (the debugger was off): its breakpoints say so."""
        try:
            from ..cython import last_result

            result = last_result(self.ipython)
        except Exception:
            return
        if result is None or getattr(result, "_cyscope_noted", False):
            return
        try:
            result._cyscope_noted = True
        except AttributeError:
            return
        map_path = os.path.join(result.directory, result.module_name + ".probes.json")
        if not os.path.exists(map_path):
            path, code = self.source_of(result.pyx_path)
            if path is not None:
                self.session.note_build(path, None, code)


def install(ipython) -> KernelDebugger | None:
    """Wire the debugger into ``ipython`` (idempotent)."""
    existing = getattr(ipython, _ATTR, None)
    if existing is not None:
        return existing
    dbg = KernelDebugger(ipython)
    setattr(ipython, _ATTR, dbg)
    return dbg


def uninstall(ipython) -> None:
    dbg = getattr(ipython, _ATTR, None)
    if dbg is not None:
        dbg.uninstall()
        setattr(ipython, _ATTR, None)


def current(ipython) -> KernelDebugger | None:
    return getattr(ipython, _ATTR, None)
