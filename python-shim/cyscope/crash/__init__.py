"""The crash catcher: what killed the kernel, shown in the notebook after the restart.

While cyscope is loaded, a fatal signal in the kernel (SIGSEGV, SIGBUS, SIGFPE,
SIGILL, SIGABRT) runs libcyscope's handler: it writes a report (gdb attaches
for the full one), then the kernel dies as it would have. The restarted kernel
of the same notebook finds the report and sends it to the frontend, which puts
it in the crashed cell's output. ``%%cython --catch-crashes`` turns such a crash
in a cell's functions into :class:`CellCrashed` instead. User guide:
``docs/crash-reports.md``.

| module | what |
| --- | --- |
| ``catcher`` | arming the native handler: gdb's argv and environment, messages, the cells it should name |
| ``store`` | the private per-kernel reports folder |
| ``reports`` | reading reports back (naming in-process frames once) |
| ``gdb_report`` | the script gdb runs against the dying kernel |
| ``cellmap`` | generated C and Cython's C names back to cell lines and names (also used by gdb) |
| ``symbolize`` | addr2line for in-process reports |
| ``render`` | text and MIME bundle |
| ``catch`` | ``--catch-crashes``: the build plugin, the guard, ``CellCrashed`` |
"""

from __future__ import annotations

import logging
import os

from . import render

log = logging.getLogger("cyscope")

__all__ = ["CellCrashed", "attach", "crash_reports", "current", "detach", "hello_fields"]

_catcher = None  # one per process: signal handlers are process-wide
_hooks: dict[int, tuple] = {}


def __getattr__(name):
    if name == "CellCrashed":  # imports the %%cython plugin machinery: only when asked for
        from .catch import CellCrashed

        return CellCrashed
    raise AttributeError(f"module 'cyscope.crash' has no attribute {name!r}")


def current():
    """The process's CrashCatcher, or None (not loaded, turned off, or the library is missing)."""
    return _catcher


def attach(ipython):
    """Install the catcher (once per process) and follow this shell's cells. Never raises."""
    global _catcher
    from .catcher import ENV_SWITCH, CrashCatcher

    if os.environ.get(ENV_SWITCH, "1") == "0":
        return None
    try:
        if _catcher is None:
            catcher = CrashCatcher(ipython)
            catcher.install()
            _catcher = catcher
    except Exception as exc:
        log.warning("cyscope: crash reports are off in this kernel: %s", exc)
        return None
    if id(ipython) not in _hooks:
        hooks = (_pre_run_cell(ipython), _post_run_cell(ipython))
        ipython.events.register("pre_run_cell", hooks[0])
        ipython.events.register("post_run_cell", hooks[1])
        _hooks[id(ipython)] = hooks
    _register_plugin()
    return _catcher


def detach(ipython) -> None:
    global _catcher
    hooks = _hooks.pop(id(ipython), None)
    if hooks is not None:
        for name, callback in zip(("pre_run_cell", "post_run_cell"), hooks):
            try:
                ipython.events.unregister(name, callback)
            except ValueError:
                pass
    if not _hooks and _catcher is not None:
        _catcher.uninstall()
        _catcher = None
    try:
        from ..cython import plugins
        from .catch import CatchCrashesPlugin

        for plugin in plugins.registered():
            if isinstance(plugin, CatchCrashesPlugin):
                plugins.unregister(plugin)
    except Exception:
        pass


def _register_plugin() -> None:
    try:
        from ..cython import plugins
        from .catch import CatchCrashesPlugin

        if not any(isinstance(p, CatchCrashesPlugin) for p in plugins.registered()):
            plugins.register(CatchCrashesPlugin())
    except Exception as exc:  # no %%cython here (no Cython): the catcher still works
        log.debug("cyscope: --catch-crashes unavailable: %s", exc)


def _pre_run_cell(ipython):
    def pre_run_cell(info):
        catcher = _catcher
        if catcher is None:
            return
        from ..extension import _count_of_starting_cell

        try:
            catcher.cell_started(
                _count_of_starting_cell(ipython), getattr(info, "cell_id", None), getattr(info, "raw_cell", "") or ""
            )
        except Exception:
            log.debug("cyscope: crash catcher could not note the cell", exc_info=True)

    return pre_run_cell


def _post_run_cell(ipython):
    state = {"last": None}

    def post_run_cell(result):
        catcher = _catcher
        if catcher is None:
            return
        count = getattr(result, "execution_count", None)
        cell_id = getattr(getattr(result, "info", None), "cell_id", None)
        try:
            catcher.cell_finished(count, cell_id)
            from ..cython import last_result

            built = last_result(ipython)
            if built is not None and built is not state["last"]:
                state["last"] = built
                catcher.note_module(built.so_path, count, cell_id)
        except Exception:
            log.debug("cyscope: crash catcher could not note the cell", exc_info=True)

    return post_run_cell


def crash_reports() -> list[dict]:
    """This kernel's crash reports, oldest first (the newest last), as plain dicts.

    "This kernel" is the notebook's kernel across restarts: reports of the
    process that died are here in the restarted one.
    """
    from . import reports, store

    if _catcher is not None:
        directory = _catcher.directory
    else:
        key, _ = store.kernel_key(_current_shell())
        directory = os.path.join(store.runtime_root(), key)
        if not os.path.isdir(directory):
            return []
    return [report for _, report in reports.load_all(directory)]


def _current_shell():
    try:
        from IPython import get_ipython

        return get_ipython()
    except Exception:
        return None


def hello_fields() -> dict:
    """``{"crashes": [...]}`` for the comm's ``hello``: reports no frontend has been sent yet (then marked
    as sent), or ``{}``. A field of ``hello``, not a message of its own: frontends that do not know it
    ignore it, as every reader ignores fields it does not know."""
    if _catcher is None:
        return {}
    from . import reports, store

    entries = []
    try:
        for path, report in reports.undelivered(_catcher.directory):
            entries.append({"report": report, "text": render.to_text(report, path)})
            store.mark_shown(path)
    except Exception:
        log.warning("cyscope: could not read the crash reports", exc_info=True)
    return {"crashes": entries} if entries else {}
