"""The probes' side in Python: loaded probe modules, arming, and the entry the probes call.

A probe build (see :mod:`.instrument`) exports, per module ``TAG``:

* ``__cyscope_armed_TAG``: a pointer to one byte per probe site (bit 1 breakpoint,
  bit 2 step), which this module writes through ctypes;
* ``__cyscope_ctl_TAG``: the step in progress (kind, stack pointer, function, thread),
  which the probes' C code reads to skip the sites a step passes over without the GIL;
* ``__cyscope_layouts_TAG``: ``sizeof``/``offsetof`` tables of the snapshot structs and
  of the structs the locals use;
* ``__cyscope_globals_TAG``: the addresses of the module's C globals.

:func:`probe_hit` is called by an armed probe with the GIL held, on the thread that
reached it. It hands a :class:`Hit` to the controller (the debug session), which may
keep the thread there (stopped) for as long as it likes; what it returns goes back to
the C code: 0 carries on, a raised ``KeyboardInterrupt`` leaves through Cython's error
exit at that statement.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field

from .ctype import TypeSystem

log = logging.getLogger("cyscope")

ARM_BREAKPOINT = 1
ARM_STEP = 2

STEP_NONE, STEP_IN, STEP_OVER, STEP_OUT = 0, 1, 2, 3


class _Ctl(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_int),
        ("func", ctypes.c_int),
        ("sp", ctypes.c_size_t),
        ("thread", ctypes.c_ulong),
    ]


@dataclass
class Function:
    index: int
    cname: str
    name: str
    kind: str
    def_line: int | None
    locals: list[dict]
    snapshot_layout: int
    calls: list[int]


@dataclass
class Hit:
    """One armed probe reached on one thread."""

    module: ProbeModule
    site: int
    sp: int
    snapshot: int  # address of the snapshot struct (valid while the thread waits in probe_hit)
    trace: tuple  # return addresses from backtrace(), innermost first
    thread: int  # threading.get_ident() of the thread
    time: float = field(default_factory=time.perf_counter)

    @property
    def line(self) -> int:
        return self.module.sites[self.site][0]

    @property
    def function(self) -> Function:
        return self.module.functions[self.module.sites[self.site][1]]


class ProbeModule:
    """One loaded probe build: its map, and ctypes views of its exported tables."""

    def __init__(self, module, so_path: str, probe_map: dict, source_path: str | None, pyx_path: str | None):
        self.module = module
        self.name = probe_map["module"]
        self.tag = probe_map["tag"]
        self.so_path = so_path
        self.map = probe_map
        self.source_path = source_path
        self.pyx_path = pyx_path
        self.sites: list[tuple[int, int, int]] = [tuple(s) for s in probe_map["sites"]]
        self.functions = [
            Function(
                k,
                f["cname"],
                f["name"],
                f["kind"],
                f.get("def_line"),
                f["locals"],
                f["snapshot_layout"],
                f.get("calls", []),
            )
            for k, f in enumerate(probe_map["functions"])
        ]
        handle = ctypes.CDLL(so_path, mode=os.RTLD_NOLOAD | getattr(os, "RTLD_LAZY", 1))
        self._handle = handle
        armed_ptr = ctypes.c_void_p.in_dll(handle, f"__cyscope_armed_{self.tag}").value
        self.armed = (ctypes.c_ubyte * max(len(self.sites), 1)).from_address(armed_ptr)
        active_ptr = ctypes.c_void_p.in_dll(handle, f"__cyscope_active_{self.tag}").value
        self.active = ctypes.c_int.from_address(active_ptr)
        self.ctl = _Ctl.in_dll(handle, f"__cyscope_ctl_{self.tag}")
        self.layouts = self._read_layouts(handle)
        self.globals_addr = self._read_globals(handle)
        self.types = TypeSystem(probe_map, self.layouts)
        self.lines: dict[int, list[int]] = {}
        for k, (line, _f, _n) in enumerate(self.sites):
            self.lines.setdefault(line, []).append(k)
        self._callees = None
        self._bints = None

    def _read_layouts(self, handle) -> list[list[int]]:
        table = ctypes.c_void_p.in_dll(handle, f"__cyscope_layouts_{self.tag}")
        base = ctypes.addressof(table)
        out = []
        k = 0
        while True:
            ptr = ctypes.c_void_p.from_address(base + 8 * k).value
            if not ptr:
                break
            out.append(ptr)
            k += 1
        sizes = self._layout_lengths()
        return [list((ctypes.c_ssize_t * sizes.get(k, 1)).from_address(p)) for k, p in enumerate(out)]

    def _layout_lengths(self) -> dict[int, int]:
        lengths = {}
        for rec in self.map.get("records", {}).values():
            lengths[rec["layout"]] = 1 + 2 * len(rec["fields"])
        for f in self.map["functions"]:
            lengths[f["snapshot_layout"]] = 1 + 2 * len(f["locals"])
        return lengths

    def _read_globals(self, handle) -> list[int]:
        table = ctypes.c_void_p.in_dll(handle, f"__cyscope_globals_{self.tag}")
        base = ctypes.addressof(table)
        return [ctypes.c_void_p.from_address(base + 8 * k).value or 0 for k in range(len(self.map.get("globals", [])))]

    # -- arming ---------------------------------------------------------------------
    def set_bits(self, sites, bits: int, on: bool) -> None:
        for k in sites:
            if 0 <= k < len(self.sites):
                self.armed[k] = (self.armed[k] | bits) if on else (self.armed[k] & ~bits)
        # Functions entered from now on run their probed version while anything is armed.
        self.active.value = 1 if any(self.armed[k] for k in range(len(self.sites))) else 0

    def clear(self, bits: int) -> None:
        self.set_bits(range(len(self.sites)), bits, False)

    def stoppable_lines(self) -> list[int]:
        return sorted(self.lines)

    def bint_names(self, index: int) -> set[str]:
        """Names declared ``bint`` in the function (C says ``int``; Cython's source says more)."""
        if self._bints is None:
            self._bints = _bint_names(self)
        return self._bints.get(index, set())

    def callees(self, index: int) -> set[int]:
        """Functions ``index`` calls, directly or not (to tell an inlined callee from a caller)."""
        if self._callees is None:
            self._callees = {}
        hit = self._callees.get(index)
        if hit is None:
            seen: set[int] = set()
            todo = list(self.functions[index].calls)
            while todo:
                k = todo.pop()
                if k not in seen:
                    seen.add(k)
                    todo += self.functions[k].calls
            self._callees[index] = hit = seen
        return hit


_BINT_DECL = re.compile(r"\bbint\s+([A-Za-z_]\w*(?:\s*(?:=[^,]*)?\s*,\s*[A-Za-z_]\w*)*)")


def _bint_names(pm: ProbeModule) -> dict[int, set[str]]:
    """Per function, the names its source region declares as ``bint`` (parameters and cdefs)."""
    try:
        with open(pm.pyx_path or "", encoding="utf-8") as f:
            lines = f.read().split("\n")
    except OSError:
        return {}
    starts = sorted((f.def_line, f.index) for f in pm.functions if f.def_line and f.kind == "function")
    out: dict[int, set[str]] = {}
    for k, (start, index) in enumerate(starts):
        end = starts[k + 1][0] - 1 if k + 1 < len(starts) else len(lines)
        names: set[str] = set()
        for text in lines[start - 1 : end]:
            text = text.split("#", 1)[0]
            in_signature = "def " in text and "(" in text
            for m in _BINT_DECL.finditer(text):
                for part in m.group(1).split(",")[: 1 if in_signature else None]:
                    name = part.split("=")[0].strip()
                    if name.isidentifier():
                        names.add(name)
        out[index] = names
    return out


_lock = threading.RLock()
_modules: dict[str, ProbeModule] = {}
_controller = None


def register(module, so_path: str, map_path: str, source_path: str | None = None, pyx_path: str | None = None):
    """Make a freshly loaded probe build known; returns its :class:`ProbeModule`."""
    with open(map_path, encoding="utf-8") as f:
        probe_map = json.load(f)
    with _lock:
        existing = _modules.get(probe_map["tag"])
        if existing is not None and existing.so_path == so_path:
            if source_path:
                existing.source_path = source_path
            return existing
        pm = ProbeModule(module, so_path, probe_map, source_path, pyx_path)
        _modules[pm.tag] = pm
        return pm


_loading_listeners: list = []


def on_module_loading(listener) -> None:
    """``listener(probe_module)`` runs when a probe build starts its module code (before any of it)."""
    if listener not in _loading_listeners:
        _loading_listeners.append(listener)


def module_loading(tag: str, armed_symbol: int) -> None:
    """Called by a probe build's module code before its first statement (see instrument.py)."""
    from .stack import dladdr

    so_path = dladdr(armed_symbol)[0]
    if not so_path:
        return
    map_path = os.path.join(os.path.dirname(so_path), tag + ".probes.json")
    if not os.path.exists(map_path):
        return
    try:
        pm = register(
            sys.modules.get(tag), so_path, map_path, None, os.path.join(os.path.dirname(so_path), tag + ".pyx")
        )
    except (OSError, ValueError, KeyError) as exc:  # a damaged or foreign probe build: no breakpoints, no failure
        log.warning("cyscope: breakpoints are off in %s: %s", tag, exc)
        return
    for listener in list(_loading_listeners):
        listener(pm)


def modules() -> list[ProbeModule]:
    with _lock:
        return list(_modules.values())


def module(tag: str) -> ProbeModule | None:
    return _modules.get(tag)


def set_controller(controller) -> None:
    """The object whose ``probe_hit(hit)`` decides what an armed probe does (None: nobody)."""
    global _controller
    _controller = controller


def controller():
    return _controller


def start_step(kind: int, thread: int, sp: int, home: ProbeModule | None, func: int) -> None:
    """Arm every probe of every module for a step of ``kind`` from the given frame."""
    with _lock:
        for pm in _modules.values():
            pm.ctl.kind = kind
            pm.ctl.thread = thread
            pm.ctl.sp = sp
            pm.ctl.func = func if pm is home else -1
            pm.set_bits(range(len(pm.sites)), ARM_STEP, True)


def end_step() -> None:
    with _lock:
        for pm in _modules.values():
            pm.ctl.kind = STEP_NONE
            pm.clear(ARM_STEP)


def probe_hit(tag: str, site: int, sp: int, snapshot: int, trace: tuple) -> int:
    """Called by an armed probe (GIL held). See the module docstring."""
    pm = _modules.get(tag)
    ctl = _controller
    if pm is None or ctl is None:
        # Armed by a session that is gone: stand down.
        if pm is not None:
            pm.clear(ARM_BREAKPOINT | ARM_STEP)
        return 0
    return ctl.probe_hit(Hit(pm, site, sp, snapshot, trace, threading.get_ident()))
