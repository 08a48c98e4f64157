"""The call stack of a stop: the compiled cell's frames, then the Python frames below.

The frame that stopped is exact (its probe said which function and line). The compiled
frames that called it are found from the return addresses the probe collected with
``backtrace()``: those inside a probe module are mapped by ``addr2line -i`` (the
module carries line tables: the interpreter's CFLAGS have ``-g``) to lines of the
generated C, and Cython's ``/* "cell.pyx":N`` comments map those to cell lines. Their
locals are not captured (only the stopped frame has a snapshot).

Python frames come from the stopped thread's frame chain, without cyscope's own and the
kernel's machinery, down to the outermost notebook cell.
"""

from __future__ import annotations

import bisect
import ctypes
import os
import re
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass, field

from ..memory._symbols import run_addr2line
from .runtime import Hit, ProbeModule

_MARKER = re.compile(r'^\s*/\* "([^"]+)":(\d+)\s*$')


class _DlInfo(ctypes.Structure):
    _fields_ = [
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    ]


_libc = ctypes.CDLL(None)
_dladdr = _libc.dladdr
_dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
_dladdr.restype = ctypes.c_int


def dladdr(pc: int) -> tuple[str | None, int, str | None]:
    info = _DlInfo()
    if not _dladdr(ctypes.c_void_p(pc), ctypes.byref(info)) or not info.dli_fname:
        return None, 0, None
    return (
        info.dli_fname.decode("utf-8", "replace"),
        info.dli_fbase or 0,
        info.dli_sname.decode("utf-8", "replace") if info.dli_sname else None,
    )


def symbol_name(pc: int) -> str | None:
    return dladdr(pc)[2]


@dataclass
class Frame:
    """One DAP stack frame."""

    id: int
    name: str
    path: str | None
    line: int
    kind: str  # "cython" (the stopped frame), "cython-caller", "python"
    module: ProbeModule | None = None
    function: object = None
    python_frame: object = None
    extra: dict = field(default_factory=dict)

    def to_dap(self) -> dict:
        out = {"id": self.id, "name": self.name, "line": self.line, "column": 1}
        if self.path:
            out["source"] = {"name": os.path.basename(self.path), "path": self.path}
        if self.kind == "cython-caller":
            out["presentationHint"] = "subtle"
        return out


class _CLines:
    """C line -> cell line for one generated C file."""

    def __init__(self, c_path: str, pyx_name: str):
        self.c_lines: list[int] = []
        self.pyx_lines: list[int] = []
        try:
            with open(c_path, encoding="utf-8", errors="replace") as f:
                for number, text in enumerate(f, 1):
                    if "/*" not in text:
                        continue
                    m = _MARKER.match(text)
                    if m and os.path.basename(m.group(1)) == pyx_name:
                        self.c_lines.append(number)
                        self.pyx_lines.append(int(m.group(2)))
        except OSError:
            pass

    def pyx_line(self, c_line: int) -> int | None:
        k = bisect.bisect_right(self.c_lines, c_line) - 1
        return self.pyx_lines[k] if k >= 0 else None


_cache_lock = threading.Lock()
_chains: dict[tuple[str, int], list[tuple[str, int]]] = {}
_clines: dict[str, _CLines] = {}


def _addr2line(obj: str, offsets: list[int]) -> list[list[tuple[str, str, int]]]:
    # Names stay as the object holds them: they are looked up among Cython's C names.
    exe = shutil.which("addr2line")
    chains = run_addr2line(exe, obj, offsets, demangle=False) if exe and offsets else None
    return chains if chains is not None else [[] for _ in offsets]


def _module_of(pc: int, modules: list[ProbeModule]) -> tuple[ProbeModule | None, int, str | None]:
    fname, base, sname = dladdr(pc - 1)
    if fname is None:
        return None, 0, None
    real = os.path.realpath(fname)
    for pm in modules:
        if os.path.realpath(pm.so_path) == real:
            return pm, pc - 1 - base, sname
    return None, 0, sname


def _compiled_chain(pm: ProbeModule, offset: int) -> list[tuple[int, int]]:
    """(function index, cell line) of each probed function in the inline chain at offset."""
    key = (pm.so_path, offset)
    with _cache_lock:
        hit = _chains.get(key)
    if hit is not None:
        return hit
    chain = _addr2line(pm.so_path, [offset])[0]
    by_cname = {f.cname: f.index for f in pm.functions}
    pyx_name = os.path.basename(pm.pyx_path or pm.name + ".pyx")
    out = []
    for func, c_path, c_line in chain:
        k = by_cname.get(func)
        if k is None:
            continue
        with _cache_lock:
            cl = _clines.get(c_path)
            if cl is None:
                cl = _clines[c_path] = _CLines(c_path, pyx_name)
        line = cl.pyx_line(c_line) or pm.functions[k].def_line or 0
        out.append((k, line))
    with _cache_lock:
        _chains[key] = out
    return out


def compiled_segments(hit: Hit, modules: list[ProbeModule]) -> list[tuple[int, list[tuple[ProbeModule, int, int]]]]:
    """The compiled callers of the stopped frame, as segments separated by interpreter
    activations: [(interpreter activations before this segment, [(module, function, line)])]."""
    segments: list[tuple[int, list]] = []
    evals = 0
    skipped_self = False
    for pc in hit.trace:
        pm, offset, sname = _module_of(pc, modules)
        if pm is None:
            if sname and sname.startswith("_PyEval_EvalFrame"):
                evals += 1
            continue
        for k, line in _compiled_chain(pm, offset):
            if not skipped_self and pm is hit.module and k == hit.module.sites[hit.site][1]:
                skipped_self = True  # the stopped frame itself: described exactly by the hit
                evals = 0
                continue
            if not segments or evals:
                segments.append((evals, []))
                evals = 0
            segments[-1][1].append((pm, k, line))
    return segments


_INTERNAL = None


def _internal_dirs() -> tuple[str, ...]:
    global _INTERNAL
    if _INTERNAL is None:
        dirs = [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]  # cyscope itself
        for name in ("IPython", "ipykernel", "tornado", "asyncio", "traitlets", "zmq", "jupyter_client", "concurrent"):
            mod = sys.modules.get(name)
            if mod is not None and getattr(mod, "__file__", None):
                dirs.append(os.path.dirname(os.path.abspath(mod.__file__)))
        for path in (threading.__file__, os.__file__):
            dirs.append(os.path.abspath(path))
        _INTERNAL = tuple(dirs)
    return _INTERNAL


def cell_directory() -> str:
    try:
        from ipykernel.compiler import get_tmp_directory

        return get_tmp_directory()
    except Exception:
        return os.path.join(tempfile.gettempdir(), f"ipykernel_{os.getpid()}")


def python_frames(start) -> list:
    """The user's Python frames from ``start`` outwards: no cyscope, kernel or import
    machinery, nothing below the outermost notebook cell."""
    frames = []
    f = start
    while f is not None:
        frames.append(f)
        f = f.f_back
    cells = cell_directory()
    last_cell = max((i for i, f in enumerate(frames) if f.f_code.co_filename.startswith(cells)), default=None)
    if last_cell is not None:
        frames = frames[: last_cell + 1]
    internal = _internal_dirs()
    out = []
    for f in frames:
        name = f.f_code.co_filename
        if name.startswith("<frozen ") or name.startswith(internal):
            continue
        out.append(f)
    return out
