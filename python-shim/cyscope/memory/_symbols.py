"""Turn recorded frames into (name, file, line, kind, cell), lazily at report time.

* Python frames: the tracker recorded (code index, line); the code registry
  gives file and function. A file that IPython compiled for a cell
  (``/tmp/ipykernel_<pid>/<hash>.py``) maps to that cell's execution count via
  IPython's own ``compile._filename_map``; the cell id comes from what
  ``cell_started`` was told for that execution count.
* Native frames: return addresses. ``dladdr`` names the object; for a Cython
  extension module built with line tables (``-g``, the default CFLAGS of both
  supported interpreters) ``addr2line`` maps the address to a line of the
  generated C file, and the ``/* "file.pyx":N`` comments Cython writes above
  each statement's code map that C line to the ``.pyx`` line. That is the
  ``cython`` kind. Everything else is ``native``.
"""

from __future__ import annotations

import bisect
import ctypes
import dataclasses
import logging
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass

from . import _lib

log = logging.getLogger("cyscope.memory")


@dataclass(frozen=True)
class Frame:
    name: str
    file: str | None
    line: int | None
    kind: str  # 'python' | 'cython' | 'native'
    cell: int | None = None
    # The shared object a native or cython frame's code is in (not part of
    # the frame's identity: the name, file and line already are).
    obj: str | None = None

    def key(self) -> tuple:
        return (self.name, self.file, self.line, self.kind, self.cell)


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

_lock = threading.RLock()
# Registered by the %%cython magic (or anyone): .pyx path -> (exec count, cell id).
_cython_sources: dict[str, tuple[int | None, str | None]] = {}

_code_cache: dict[int, tuple[str, str, int]] = {}
_native_cache: dict[tuple[int, bool], Frame] = {}
_cmap_cache: dict[str, _CMap | None] = {}


def register_cython_source(pyx_path: str, execution_count: int | None, cell_id: str | None = None) -> None:
    """Tell the symboliser which cell a compiled .pyx came from."""
    with _lock:
        _cython_sources[os.path.realpath(pyx_path)] = (execution_count, cell_id)


def _ipython_filename_map() -> dict:
    # Only a process that already runs IPython has cells (importing it here
    # would cost a plain script ~40 ms for nothing).
    if "IPython" not in sys.modules:
        return {}
    try:
        from IPython import get_ipython  # type: ignore
    except Exception:
        return {}
    ip = get_ipython()
    compiler = getattr(ip, "compile", None) if ip is not None else None
    return getattr(compiler, "_filename_map", None) or {}


def cell_of_file(filename: str) -> int | None:
    count = _ipython_filename_map().get(filename)
    if isinstance(count, int):
        return count
    real = os.path.realpath(filename) if filename.endswith((".pyx", ".pxd", ".pxi")) else None
    if real and real in _cython_sources:
        return _cython_sources[real][0]
    return None


def python_frame(code_index: int, line: int) -> Frame:
    info = _code_cache.get(code_index)
    if info is None:
        info = _lib.code_info(code_index)
        _code_cache[code_index] = info
    filename, name, _first = info
    return Frame(name=name, file=filename, line=line, kind="python", cell=cell_of_file(filename))


@dataclass
class _CMap:
    """Where the statements of a generated C file come from."""

    path: str
    lines: list[int]  # C lines of Cython's position comments, sorted
    targets: list[tuple[str, int]]  # the (.pyx path, line) each one names
    code_from: int  # the module's own code lies between these C lines;
    code_to: int  # Cython's utility code (helpers) before and after

    def pyx_of(self, cline: int) -> tuple[str, int] | None:
        k = bisect.bisect_right(self.lines, cline) - 1
        return self.targets[k] if k >= 0 else None

    def definition_line(self, c_function: str) -> int | None:
        """The C line where c_function is defined (not declared)."""
        pattern = re.compile(rf"\b{re.escape(c_function)}\(")
        try:
            with open(self.path, encoding="utf-8", errors="replace") as fh:
                for number, text in enumerate(fh, 1):
                    declared = text.rstrip().endswith(";") or "/*proto*/" in text.replace(" ", "")
                    if pattern.search(text) and not declared:
                        return number
        except OSError:
            pass
        return None


# Cython ends the module's own code with this comment; helpers follow.
_SUPPORT = "/* --- Runtime support code --- */"


def _c_to_pyx_map(c_file: str) -> _CMap | None:
    """The position comments of a generated C file (Cython's own parser:
    cython.linemap), with relative .pyx paths resolved next to it."""
    if c_file in _cmap_cache:
        return _cmap_cache[c_file]
    from ..cython.linemap import all_position_blocks

    result = None
    try:
        with open(c_file, encoding="utf-8", errors="replace") as fh:
            c_lines = fh.read().splitlines()
    except OSError:
        c_lines = []
    blocks = [b for b in all_position_blocks(c_lines) if b[2].endswith((".pyx", ".pxd", ".pxi", ".py"))]
    if blocks:
        base = os.path.dirname(c_file)
        targets = []
        for _comment, _code, path, line in blocks:
            if not os.path.isabs(path):
                cand = os.path.join(base, path)
                path = cand if os.path.exists(cand) else path
            targets.append((path, line))
        support = next((n for n, text in enumerate(c_lines, 1) if text.strip() == _SUPPORT), len(c_lines) + 1)
        result = _CMap(c_file, [b[0] for b in blocks], targets, blocks[0][0], support)
    if len(_cmap_cache) > 256:
        _cmap_cache.clear()
    _cmap_cache[c_file] = result
    return result


def _cython_name(c_function: str) -> str:
    """__pyx_pf_4cell_3Foo_bar -> Foo.bar; __pyx_f_4cell_leak -> leak.

    Names are length-prefixed parts (module, classes) then the name. In a
    Python wrapper (``__pyx_pw_4cell_1grab``, what a symbol table names when
    the function itself was inlined into it) the last part carries an index
    instead: a prefix that is not followed by ``_`` or the end is one.
    A C++ build's names arrive demangled, with their parameter list
    (``__pyx_pf_4cell_grow(_object*, int)``): the list is dropped.
    """
    c_function = c_function.split("(", 1)[0]
    m = re.match(r"__pyx_(?:pf|pw|f|fuse_\d+)_(.*)$", c_function)
    if not m:
        return c_function
    rest = m.group(1)
    parts = []
    while True:
        m2 = re.match(r"(\d+)(.*)$", rest)
        if not m2:
            break
        n, tail = int(m2.group(1)), m2.group(2)
        if parts and len(tail) > n and tail[n] != "_":  # an index, then the name
            rest = tail
            break
        parts.append(tail[:n])
        rest = tail[n:].lstrip("_")
    if rest:
        parts.append(rest)
    return ".".join(parts[1:]) if len(parts) > 1 else (parts[0] if parts else c_function)


_line_tables: dict[str, object] = {}


def _line_tables_of(obj: str, offsets: list[int]) -> list[list[tuple[str, str, int]]] | None:
    """addr2line's answer read from the object's own symbols and line table
    (no inlining: one frame per address), or None where they cannot be read."""
    from . import _elf

    table = _line_tables.get(obj)
    if table is None:
        try:
            table = _elf.LineTable(obj)
        except (OSError, ValueError, IndexError, struct.error) as exc:
            log.info("cyscope: cannot read the line table of %s: %s", obj, exc)
            table = False
        if len(_line_tables) > 256:
            _line_tables.clear()
        _line_tables[obj] = table
    if not table:
        return None
    return [[table.lookup(off)] for off in offsets]


# Why the symboliser could not be used, once known (reported once).
_missing: str | None = None


def missing_symboliser() -> str | None:
    """A notice for the panel when addr2line is missing, else None."""
    return _missing


def _symboliser() -> str | None:
    global _missing
    exe = shutil.which("addr2line")
    if exe is None and _missing is None:
        _missing = (
            "addr2line (GNU binutils) is not installed: native frames show as library and symbol, "
            "%%cython frames by their line tables read without it; install it (apt-get install binutils)"
        )
        log.warning("cyscope: %s", _missing)
    return exe


def run_addr2line(
    exe: str, obj: str, offsets: list[int], demangle: bool = True
) -> list[list[tuple[str, str, int]]] | None:
    """One ``addr2line`` run: for each offset in ``obj``, its inline chain
    [(function, file, line)], innermost first, as addr2line prints it
    (``??``, ``??``, 0 where it knows nothing); None when the run fails.

    Function names come demangled (``-C``): C++ code, including a
    ``%%cython --cplus`` module, reads as written. The crash reports'
    symbolizer runs addr2line through this too. ``demangle=False`` keeps the
    names the object file holds, for callers that look them up (the debugger
    matches Cython's C function names).
    """
    try:
        out = subprocess.run(
            [exe, "-a", "-f", "-i", *(["-C"] if demangle else []), "-e", obj, *[hex(o) for o in offsets]],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    chains: list[list[tuple[str, str, int]]] = []
    i = 0
    while i < len(out):
        if out[i].startswith("0x"):
            chains.append([])
            i += 1
            continue
        if not chains or i + 1 >= len(out):
            break
        func, loc = out[i], out[i + 1]
        path, _, line = loc.rpartition(":")
        line = line.split(" ")[0]
        chains[-1].append((func, path, int(line) if line.isdigit() else 0))
        i += 2
    return chains if len(chains) == len(offsets) else None


def _addr2line(obj: str, offsets: list[int]) -> list[list[tuple[str, str, int]]]:
    """For each offset, its inline chain [(function, file, line)], innermost
    first: addr2line's, or the object's line table read without it."""
    unknown = [[("??", "??", 0)] for _ in offsets]
    if not offsets:
        return unknown
    exe = _symboliser()
    if not exe:
        return _line_tables_of(obj, offsets) or unknown
    chains = run_addr2line(exe, obj, offsets)
    if chains is None:
        return unknown
    return [c or [("??", "??", 0)] for c in chains]


_demangled: dict[str, str] = {}


def demangle(names: list[str]) -> list[str]:
    """C++ symbol names as a person reads them (``_ZNSt6vectorIiSaIiEE9push_backERKi``
    -> ``std::vector<int, std::allocator<int> >::push_back(int const&)``).

    One ``c++filt`` run for every name not seen before; a name that is not
    mangled, or a machine without c++filt, gives the name back unchanged.
    """
    todo = sorted({n for n in names if n.startswith("_Z") and n not in _demangled})
    if todo:
        exe = shutil.which("c++filt")
        out: list[str] = []
        if exe:
            try:
                out = subprocess.run(
                    [exe], input="\n".join(todo) + "\n", capture_output=True, text=True, timeout=60, check=False
                ).stdout.splitlines()
            except (OSError, subprocess.SubprocessError):
                out = []
        if len(out) != len(todo):
            out = todo
        if len(_demangled) > 100_000:
            _demangled.clear()
        _demangled.update(zip(todo, out))
    return [_demangled.get(n, n) for n in names]


def _cython_frame(chain: list[tuple[str, str, int]]) -> Frame | None:
    """The first frame of the inline chain that is code generated from the .pyx.

    Cython's utility helpers (``__Pyx_*``, inlined into the caller) sit in
    the C file outside the module's own code: skip to their caller. Without
    inlining information (the fallback line tables), a line inside a helper
    stands for the function it was inlined into: its definition's line.
    """
    for func, path, cline in chain:
        if not cline or not path.endswith((".c", ".cpp")) or func.startswith("__Pyx_"):
            continue
        cmap = _c_to_pyx_map(path)
        if not cmap:
            return None
        name = func.split("(", 1)[0]
        if not cmap.code_from <= cline < cmap.code_to:
            cline = cmap.definition_line(name) or 0
        target = cmap.pyx_of(cline) if cline else None
        if target is None:
            return None
        pyx, pyx_line = target
        return Frame(name=_cython_name(func), file=pyx, line=pyx_line, kind="cython", cell=cell_of_file(pyx))
    return None


_cython_objects: dict[str, bool] = {}


def is_cython_object(path: str) -> bool:
    """Is this loaded shared object a Cython extension module?

    Cython defines a global ``__pyx_module_is_main_<module>`` in every
    module; look it up through a no-load handle (cheap). A module built with
    -fvisibility=hidden hides it: its frames then show only with native=True.
    """
    hit = _cython_objects.get(path)
    if hit is not None:
        return hit
    result = False
    module = os.path.basename(path).split(".", 1)[0]
    try:
        handle = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        result = hasattr(handle, f"__pyx_module_is_main_{module}")
    except OSError:
        pass
    _cython_objects[path] = result
    return result


def native_frames(pcs: list[int], full: bool = False) -> dict[int, Frame]:
    """Symbolise return addresses, in one addr2line run per object.

    full=False (reports without native stacks) only needs Cython frames:
    addr2line runs on Cython modules only, other objects get dladdr's name.
    """
    todo: dict[str, list[tuple[int, int, str | None]]] = {}
    out: dict[int, Frame] = {}
    for pc in pcs:
        cached = _native_cache.get((pc, full))
        if cached is not None:
            out[pc] = cached
            continue
        info = _DlInfo()
        # pc is a return address: pc - 1 is inside the call instruction.
        if not _dladdr(ctypes.c_void_p(pc - 1), ctypes.byref(info)) or not info.dli_fname:
            frame = Frame(name=hex(pc), file=None, line=None, kind="native")
            _native_cache[(pc, full)] = out[pc] = frame
            continue
        obj = info.dli_fname.decode("utf-8", "replace")
        sname = info.dli_sname.decode("utf-8", "replace") if info.dli_sname else None
        todo.setdefault(obj, []).append((pc, pc - 1 - (info.dli_fbase or 0), sname))
    for obj, items in todo.items():
        wanted = full or is_cython_object(obj)
        resolved = _addr2line(obj, [off for _, off, _ in items]) if wanted else None
        snames = demangle([sname or "" for _, _, sname in items])
        for i, (pc, off, _sname) in enumerate(items):
            frame = None
            if resolved:
                chain = resolved[i]
                frame = _cython_frame(chain)
                func, path, cline = chain[0]
                if frame is None and func != "??":
                    frame = Frame(
                        name=func, file=path if path != "??" else obj, line=cline or None, kind="native", obj=obj
                    )
            if frame is None:
                name = snames[i] or f"{os.path.basename(obj)}+{off:#x}"
                frame = Frame(name=name, file=obj, line=None, kind="native", obj=obj)
            elif frame.obj is None:
                frame = dataclasses.replace(frame, obj=obj)
            _native_cache[(pc, full)] = out[pc] = frame
    if len(_native_cache) > 500_000:
        _native_cache.clear()
    return out
