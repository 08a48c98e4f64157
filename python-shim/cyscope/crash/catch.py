"""``%%cython --catch-crashes``: a fatal signal in the cell's functions raises :class:`CellCrashed`.

The option is a build plugin (:mod:`cyscope.cython.plugins`): the module it builds is
the same code under its own cache key, and once loaded, every public function of it
is replaced by a guarded one: ``guard(f, *args, **kwargs)`` from libcyscope sets a
jump point (``sigsetjmp``) and calls ``f``; the crash handler, once the report is
written (gdb included), jumps back there (``siglongjmp``) and the guard raises. As
with cysignals' ``sig_on()`` in Sage, the jump skips the crashed C code's cleanup:
memory it allocated stays allocated, what it was updating stays half-updated, locks
it held stay held. Only crashes on the calling thread, with no Python code run
between the guard and the crash, are caught; others end the kernel as usual.
"""

from __future__ import annotations

import ctypes
import functools
import sys

from ..cython.plugins import BuildPlugin
from . import _native, render, store
from .reports import finish

OPTION_DEST = "catch_crashes"


class CellCrashed(RuntimeError):
    """A fatal signal in the code of a ``%%cython --catch-crashes`` cell, caught.

    ``report`` is the crash report (a plain dict, ``protocol/crash.schema.json``),
    the same one a crash that killed the kernel would have left.
    """

    def __init__(self, report: dict | None, signal_number: int, report_path: str | None = None):
        self.report = report or {}
        self.signal_number = signal_number
        self.report_path = report_path
        super().__init__(render.headline(self.report) if report else f"caught signal {signal_number}")

    def _render_traceback_(self):  # IPython shows this instead of a Python traceback
        return [f"CellCrashed: {line}" if i == 0 else line for i, line in enumerate(self.text().splitlines())]

    def text(self) -> str:
        return render.to_text(self.report, self.report_path) if self.report else str(self)


class _Caught(Exception):
    """Raised by the native guard: (signal number, report path)."""


_guard = None


def guard_function():
    """libcyscope's guard(f, *args, **kwargs), made once per process."""
    global _guard
    if _guard is None:
        lib = _native.library()
        out = ctypes.c_void_p()
        rc = lib.cyscope_crash_make_guard(_Caught, ctypes.byref(out))
        if rc != _native.OK or not out.value:
            raise RuntimeError(f"cyscope: the crash guard is not available here (error {rc})")
        # The function object lives as long as the process (its reference is never given back).
        _guard = ctypes.cast(out, ctypes.py_object).value
    return _guard


def crashed(caught: _Caught) -> CellCrashed:
    signal_number, path = caught.args[0], caught.args[1] if len(caught.args) > 1 else None
    report = store.read_report(path) if path else None
    if report is not None:
        report = finish(path, report)
        store.mark_shown(path)  # the kernel lives: no restart will show it
        _display(report, path)
    return CellCrashed(report, signal_number, path)


def _display(report: dict, path: str) -> None:
    """Put the report in the running cell's output (the editor marks the line from it)."""
    if "IPython" not in sys.modules:
        return
    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            display(render.bundle(report, path), raw=True)
    except Exception:
        pass


def guarded(fn):
    guard = guard_function()

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return guard(fn, *args, **kwargs)
        except _Caught as caught:
            raise crashed(caught) from None

    call.__cyscope_unguarded__ = fn
    return call


_FUNCTION_TYPES = ("cython_function_or_method", "builtin_function_or_method", "fused_cython_function", "function")


def guard_module(module) -> list[str]:
    """Replace the module's public functions by guarded ones; returns their names."""
    names = getattr(module, "__all__", None) or [k for k in vars(module) if not k.startswith("_")]
    wrapped = []
    for name in names:
        value = getattr(module, name, None)
        if type(value).__name__ in _FUNCTION_TYPES and not hasattr(value, "__cyscope_unguarded__"):
            setattr(module, name, guarded(value))
            wrapped.append(name)
    return wrapped


class CatchCrashesPlugin(BuildPlugin):
    name = "crash catcher"

    def add_arguments(self, add_argument) -> None:
        add_argument(
            "--catch-crashes",
            dest=OPTION_DEST,
            action="store_true",
            default=False,
            help=(
                "A fatal signal (SIGSEGV, SIGFPE, abort()...) in a function of this cell raises "
                "cyscope.CellCrashed with the crash report instead of killing the kernel. The crashed C code "
                "is abandoned: its memory stays allocated, its state half-updated."
            ),
        )

    def key(self, opts):
        # Its own cache entry: a module loaded guarded must not be reused unguarded.
        return {"catch_crashes": 1} if (opts.plugin_args or {}).get(OPTION_DEST) else None

    def loaded(self, result) -> None:
        guard_module(result.module)
