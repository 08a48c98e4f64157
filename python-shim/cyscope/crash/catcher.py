"""Arming the crash handler of libcyscope for this kernel, and keeping it informed.

Everything the handler will need is prepared here, in advance: the reports folder,
gdb's argv (pid included) and a clean environment for it, the messages a report
carries when gdb is missing or may not attach, the interpreter's frame layout.
While cells run, the handler is told which cell runs (``pre_run_cell``) and which
cell built which module or compiled which file, so a report names cells, not
temporary files. None of this costs a cell more than a few microseconds; the
handler itself does nothing until a fatal signal arrives.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import platform
import shutil
import sys
import threading

from .. import __version__
from . import _native, store

log = logging.getLogger("cyscope")

ENV_SWITCH = "CYSCOPE_CRASH_CATCHER"  # "0": do not install
ENV_GDB = "CYSCOPE_GDB"  # gdb to use; "" or "none": no gdb
ENV_TIMEOUT = "CYSCOPE_CRASH_TIMEOUT"  # seconds to wait for gdb
DEFAULT_TIMEOUT_S = 4.0
_HERE = os.path.dirname(os.path.abspath(__file__))
GDB_SCRIPT = os.path.join(_HERE, "gdb_report.py")

HOW_TO_ENABLE = (
    "In a container (Docker, Podman), start it with --cap-add=SYS_PTRACE (and a seccomp profile that allows "
    "ptrace); in Kubernetes add SYS_PTRACE to the container's securityContext capabilities. With Yama, "
    "kernel.yama.ptrace_scope must be 0 or 1 (cyscope lets its own gdb attach under 1)."
)


def ptrace_scope() -> int | None:
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def find_gdb() -> tuple[str | None, str]:
    """(gdb's absolute path, or None with the reason)."""
    configured = os.environ.get(ENV_GDB)
    if configured is not None:
        if configured.strip().lower() in ("", "0", "none", "off"):
            return None, f"gdb is turned off (${ENV_GDB}={configured!r})"
        path = shutil.which(configured) if os.sep not in configured else configured
        if path and os.access(path, os.X_OK):
            return os.path.abspath(path), ""
        return None, f"gdb was not found at ${ENV_GDB}={configured!r}"
    path = shutil.which("gdb")
    if path:
        return os.path.abspath(path), ""
    return None, "gdb is not installed (not found on PATH)"


def messages(gdb_reason: str, timeout_s: float) -> dict:
    scope = ptrace_scope()
    scope_note = f" This machine has kernel.yama.ptrace_scope = {scope}." if scope is not None else ""
    return {
        "no_tracer": (
            f"{gdb_reason}, so this report was written by the kernel itself: the crashing thread's frames and "
            "the running cell, but no C locals and no other threads. Install gdb for full reports "
            "(Debian/Ubuntu: apt install gdb; Fedora: dnf install gdb; conda: conda install -c conda-forge gdb), "
            f"or point ${ENV_GDB} at it."
        ),
        "refused": (
            "gdb was not allowed to attach to the kernel (ptrace refused), so this report was written by the "
            f"kernel itself: the crashing thread's frames and the running cell, but no C locals and no other "
            f"threads. {HOW_TO_ENABLE}{scope_note}"
        ),
        "failed": (
            "gdb ran but wrote no report (its first error is below), so this report was written by the kernel "
            "itself: the crashing thread's frames and the running cell, but no C locals and no other threads."
        ),
        "timeout": (
            f"gdb did not finish within {timeout_s:g} s, so this report was written by the kernel itself. Set "
            f"${ENV_TIMEOUT} (seconds) to wait longer."
        ),
    }


def gdb_argv(gdb: str, pid: int) -> list[str]:
    settings = [
        "set debuginfod enabled off",  # never wait for the network
        # A kernel maps hundreds of libraries (480 in SageMath's); reading the symbols
        # of all of them takes gdb seconds. gdb_report.py loads the ones it needs.
        "set auto-solib-add off",
        "set auto-load python-scripts off",
        "set auto-load gdb-scripts off",
        "set auto-load local-gdbinit off",
        "set pagination off",
        "set confirm off",
        "set print thread-events off",
        "set print inferior-events off",
    ]
    argv = [gdb, "-nx", "-nh", "-batch", "-q"]
    for s in settings:
        argv += ["-iex", s]
    return [*argv, "-p", str(pid), "-x", GDB_SCRIPT]


def gdb_env(pending_path: str) -> list[str]:
    # gdb embeds its own Python: the kernel's PYTHONPATH/PYTHONHOME would break it.
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "USER", "LOGNAME", "TMPDIR")}
    keep.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    keep.update(
        LC_ALL="C.UTF-8",
        LANG="C.UTF-8",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONNOUSERSITE="1",
        CYSCOPE_CRASH_PENDING=pending_path,
        CYSCOPE_CRASH_LIB=_HERE,
    )
    return [f"{k}={v}" for k, v in sorted(keep.items())]


class CrashCatcher:
    """The handler's configuration for this process, and what the kernel side tells it."""

    def __init__(self, ipython=None):
        self.ipython = ipython
        self.lib = _native.library()
        self.key, self.connection_file = store.kernel_key(ipython)
        self.directory = store.kernel_dir(self.key)
        os.utime(self.directory)  # in use: not stale
        self.gdb, self.gdb_reason = find_gdb()
        try:
            self.timeout_s = float(os.environ.get(ENV_TIMEOUT, DEFAULT_TIMEOUT_S))
        except ValueError:
            self.timeout_s = DEFAULT_TIMEOUT_S
        self._keep: list = []  # ctypes buffers the config points into
        self._lock = threading.Lock()
        self._cysignals_checked = False
        self.installed = False

    # ------------------------------------------------------------ install
    def install(self) -> None:
        pid = os.getpid()
        pending = os.path.join(self.directory, f".pending-{pid}.json")
        tracer_log = os.path.join(self.directory, f".tracer-{pid}.log")
        texts = messages(self.gdb_reason, self.timeout_s)
        static = json.dumps(
            {
                "kernel": {"key": self.key, "connection_file": self.connection_file},
                "python": platform.python_version(),
                "python_executable": sys.executable,
                "cyscope_version": __version__,
            }
        )[1:-1]
        argv = _native.strings(gdb_argv(self.gdb, pid)) if self.gdb else None
        envp = _native.strings(gdb_env(pending))
        config = _native.CrashConfig(
            size=ctypes.sizeof(_native.CrashConfig),
            report_dir=_native.encode(self.directory),
            pending_path=_native.encode(pending),
            tracer_log_path=_native.encode(tracer_log),
            tracer_argv=ctypes.cast(argv, ctypes.POINTER(ctypes.c_char_p)) if argv is not None else None,
            tracer_envp=ctypes.cast(envp, ctypes.POINTER(ctypes.c_char_p)),
            tracer_timeout_ms=int(self.timeout_s * 1000),
            report_json=static.encode(),
            no_tracer_message=texts["no_tracer"].encode(),
            refused_message=texts["refused"].encode(),
            failed_message=texts["failed"].encode(),
            timeout_message=texts["timeout"].encode(),
        )
        rc = self.lib.cyscope_crash_install(ctypes.byref(config))
        if rc != _native.OK:
            raise OSError(f"cyscope_crash_install failed ({rc})")
        layout = _native.python_layout()
        self.lib.cyscope_crash_set_python_layout(ctypes.byref(layout) if layout is not None else None)
        self._keep = [argv, envp, config, layout]
        self.installed = True
        self.check_cysignals()
        store.prune(self.directory)

    def uninstall(self) -> None:
        if self.installed:
            self.lib.cyscope_crash_uninstall()
            self.installed = False

    def check_cysignals(self) -> None:
        """In Sage, cysignals turns a crash inside sig_on() into an exception: let it, without a report."""
        if self._cysignals_checked or "cysignals.signals" not in sys.modules:
            return
        self._cysignals_checked = True
        address = cysignals_counter_address(sys.modules["cysignals.signals"])
        if address:
            self.lib.cyscope_crash_defer_while(ctypes.c_void_p(address))
            self._keep.append(sys.modules["cysignals.signals"])

    # ------------------------------------------------------- cells and code
    def cell_started(self, execution_count: int | None, cell_id: str | None, raw_cell: str = "") -> None:
        # Our handlers in front again if someone replaced them since the last cell
        # (SageMath's kernel installs cysignals' anew before every request).
        self.lib.cyscope_crash_reclaim(None)
        count = execution_count if isinstance(execution_count, int) else -1
        self.lib.cyscope_crash_set_cell(count, _native.encode(cell_id), 1)
        if raw_cell.lstrip().startswith("%%cython"):
            # A crash while this cell's module loads: the module is not noted yet.
            self.note(_native.CELL_CYTHON, "", count, cell_id)
        compiler = getattr(self.ipython, "compile", None)
        if compiler is not None and hasattr(compiler, "get_code_name"):
            try:
                self.note(_native.CELL_PYTHON, compiler.get_code_name(raw_cell, raw_cell, count), count, cell_id)
            except Exception:
                pass
        self.check_cysignals()

    def cell_finished(self, execution_count: int | None, cell_id: str | None) -> None:
        count = execution_count if isinstance(execution_count, int) else -1
        self.lib.cyscope_crash_set_cell(count, _native.encode(cell_id), 0)
        # IPython's own record of the file it compiled the cell to (exact
        # where the name computed at the start was not).
        filename_map = getattr(getattr(self.ipython, "compile", None), "_filename_map", None)
        if isinstance(filename_map, dict):
            for i, filename in enumerate(reversed(filename_map)):  # the newest few: O(1)
                if i == 3:
                    break
                if filename_map[filename] == execution_count:
                    self.note(_native.CELL_PYTHON, filename, count, cell_id)

    def note(self, kind: int, path: str, count: int | None, cell_id: str | None) -> None:
        count = count if isinstance(count, int) else -1
        with self._lock:
            self.lib.cyscope_crash_note_cell_code(kind, _native.encode(path), count, _native.encode(cell_id))

    def note_module(self, so_path: str, count: int | None, cell_id: str | None) -> None:
        self.note(_native.CELL_CYTHON, os.path.realpath(so_path), count, cell_id)


def cysignals_counter_address(module) -> int | None:
    """Address of cysignals' ``cysigs.sig_on_count`` (the first field of ``cysigs``), from its C API capsule."""
    capi = getattr(module, "__pyx_capi__", None)
    capsule = capi.get("cysigs") if isinstance(capi, dict) else None
    if capsule is None:
        return None
    api = ctypes.pythonapi
    api.PyCapsule_GetName.restype = ctypes.c_char_p
    api.PyCapsule_GetName.argtypes = [ctypes.py_object]
    api.PyCapsule_GetPointer.restype = ctypes.c_void_p
    api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    try:
        return api.PyCapsule_GetPointer(capsule, api.PyCapsule_GetName(capsule)) or None
    except Exception:
        return None
