"""Native frames of ``%%cython`` modules back to cell lines and cell names.

Standard library only: gdb's own Python imports this module (``gdb_report.py``),
and so does the kernel when it names the frames of an in-process report.

Cython writes, before the C code of each statement, a comment naming its
source line::

    /* "/…/_cyscope_magic_ab12.pyx":10
     *     return helper(p, n)             # <<<<<<<<<<<<<<
     */

A C line belongs to the last such comment above it. The .pyx of a cell has a
blank first line standing for the ``%%cython`` line, so .pyx line N is cell
line N. Only functions Cython wrote for the cell's code (``__pyx_f_``,
``__pyx_pf_``, ``__pyx_pw_``, the module's exec function, and the OpenMP
bodies the C compiler outlined from them) are mapped: the utility functions
Cython appends (``__Pyx_…``) have no comments, and the last comment above
them belongs to another function.
"""

from __future__ import annotations

import bisect
import os
import re

_BLOCK = re.compile(r'^\s*/\* "(?P<file>[^"]+)":(?P<line>\d+)\s*$')
_FUNCTION = re.compile(r"^(?:[A-Za-z_][^;]*)?\)\s*\{\s*$")  # the line opening a function body (col. 0)
_EXIT = re.compile(r"/\* function exit code \*/")
_CELL_FUNCTION = re.compile(r"^__pyx_(?:f|pf|pw|pymod_exec)_")
_OMP = re.compile(r"\._omp_fn\.\d+$")
# A function's first line: def/cdef/cpdef ... name(... ending with ':' (a cdef declaration
# with a call in it, `cdef int x = f(3)`, does not end with ':').
_DEF = re.compile(r"^\s*(?:cpdef|cdef|def)\s[^(]*?\b(?P<name>[A-Za-z_]\w*)\s*\(.*:\s*(?:#.*)?$")
_MANGLED_LEN = re.compile(r"^(\d+)")


class CMap:
    """C line -> (.pyx path, .pyx line) for one generated C file."""

    def __init__(self, c_lines: list[str]):
        self._starts: list[int] = []
        self._targets: list[tuple[str, int]] = []
        self._in_function: list[int] = []  # the function each block is in (its first line; 0: between functions)
        self._functions: list[int] = []  # first lines of function definitions
        exit_blocks: set[int] = set()
        current = 0
        for i, text in enumerate(c_lines, start=1):
            if _FUNCTION.match(text):
                self._functions.append(i)
                current = i
            elif text == "}":  # a function's closing brace (a struct's ends in "};")
                current = 0
            elif _EXIT.search(text) and self._starts:
                exit_blocks.add(len(self._starts) - 1)
            m = _BLOCK.match(text)
            if m:
                self._starts.append(i)
                self._targets.append((m.group("file"), int(m.group("line"))))
                self._in_function.append(current)
        # Cython 0.29 puts the def line's comment again above a function's exit code
        # (`return __pyx_r`). An optimised build may do the last statement's work there
        # (`return p[n]` loads p[n] at the return): map it to that statement instead.
        for k in exit_blocks:
            if k > 0 and self._in_function[k - 1] == self._in_function[k] and self._in_function[k]:
                self._targets[k] = self._targets[k - 1]

    def pyx_line(self, c_line: int) -> tuple[str, int] | None:
        """The statement whose code ``c_line`` is, or None when its function has no comment of its own."""
        k = bisect.bisect_right(self._starts, c_line) - 1
        if k < 0:
            return None
        f = bisect.bisect_right(self._functions, c_line) - 1
        function = self._functions[f] if f >= 0 else 0
        if self._in_function[k] == function:
            return self._targets[k]
        # The comment just above a function's first line names its def line; one in
        # another function's body does not describe this one (Cython's argument
        # wrappers have no comments of their own).
        previous_function = self._functions[f - 1] if f >= 1 else 0
        if self._in_function[k] == 0 and previous_function < self._starts[k] < function:
            return self._targets[k]
        return None


_maps: dict[str, CMap | None] = {}


def c_map(c_path: str) -> CMap | None:
    if c_path not in _maps:
        try:
            with open(c_path, encoding="utf-8", errors="replace") as f:
                _maps[c_path] = CMap(f.read().splitlines())
        except OSError:
            _maps[c_path] = None
    return _maps[c_path]


def is_cell_function(c_name: str | None) -> bool:
    return bool(c_name) and bool(_CELL_FUNCTION.match(_OMP.sub("", c_name)))


def module_name_of(so_path: str) -> str:
    """``/…/_cyscope_magic_ab12.cpython-311-x86_64-linux-gnu.so`` -> ``_cyscope_magic_ab12``."""
    return os.path.basename(so_path).split(".", 1)[0]


def module_sources(so_path: str) -> tuple[str | None, str | None]:
    """The .pyx and the generated C kept beside a ``%%cython`` module, or None each."""
    folder, name = os.path.dirname(so_path), module_name_of(so_path)
    pyx = os.path.join(folder, name + ".pyx")
    c = next(
        (
            os.path.join(folder, name + ext)
            for ext in (".c", ".cpp")
            if os.path.exists(os.path.join(folder, name + ext))
        ),
        None,
    )
    return (pyx if os.path.exists(pyx) else None), c


def cell_function_name(c_name: str, module: str, def_line_text: str | None = None) -> str:
    """The name the cell gave a function, from Cython's C name (and the ``def`` line, when known)."""
    omp = bool(_OMP.search(c_name))
    base = _OMP.sub("", c_name)
    name = _demangle(base, module)
    m = _DEF.search(def_line_text) if def_line_text else None
    if m and not name.endswith(m.group("name")):  # the C name did not demangle cleanly
        name = m.group("name")
    if base.startswith("__pyx_pymod_exec_"):
        name = "<module>"
    return f"{name} (OpenMP worker)" if omp else name


def _demangle(c_name: str, module: str) -> str:
    rest = _CELL_FUNCTION.sub("", c_name)
    prefix = f"{len(module)}{module}_"
    if rest.startswith(prefix):
        rest = rest[len(prefix) :]
    cls = None
    m = _MANGLED_LEN.match(rest)
    if m:
        n = int(m.group(1))
        body = rest[len(m.group(1)) :]
        if 0 < n < len(body) and body[n] == "_" and body[:n].isidentifier():
            cls, rest = body[:n], body[n + 1 :]
    rest = re.sub(r"^\d+", "", rest)  # Cython's per-module function index
    return f"{cls}.{rest}" if cls else (rest or c_name)


def source_line(path: str | None, line: int | None) -> str | None:
    """Text of one line of a source file (without its newline), or None."""
    if not path or not line or line < 1:
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for i, text in enumerate(f, start=1):
                if i == line:
                    return text.rstrip("\n")
    except OSError:
        return None
    return None


def def_line_before(pyx_path: str | None, line: int) -> str | None:
    """The nearest ``def``/``cdef``/``cpdef`` line at or above ``line`` (names the function)."""
    if not pyx_path:
        return None
    try:
        with open(pyx_path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for i in range(min(line, len(lines)) - 1, -1, -1):
        if _DEF.search(lines[i]):
            return lines[i]
    return None


class CellIndex:
    """Which cell a module or a Python file came from: the ``cells`` list of a report.

    A module built by the cell that was running when the process crashed (a crash
    while the module loaded) was not noted yet: the running ``%%cython`` cell noted
    itself with an empty path for exactly that case.
    """

    def __init__(self, cells: list[dict], running: dict | None):
        self._by_path: dict[tuple[str, str], dict] = {}
        self._building = None
        for c in cells or []:
            if c.get("kind") == "cython" and not c.get("path"):
                self._building = c
            elif c.get("path"):
                self._by_path[(c.get("kind"), os.path.realpath(c["path"]))] = c
        if self._building is not None and running is not None:
            if self._building.get("execution_count") != running.get("execution_count"):
                self._building = None

    def cython(self, so_path: str | None) -> dict | None:
        if not so_path:
            return None
        found = self._by_path.get(("cython", os.path.realpath(so_path)))
        if found is None and self._building is not None and module_sources(so_path)[0]:
            found = self._building
        return found

    def python(self, filename: str | None) -> dict | None:
        return self._by_path.get(("python", os.path.realpath(filename))) if filename else None


def cell_ref(cell: dict | None, line: int | None) -> dict | None:
    if cell is None:
        return None
    return {"execution_count": cell.get("execution_count"), "cell_id": cell.get("cell_id"), "line": line}


def cython_frame(frame: dict, function: str | None, c_file: str | None, c_line: int | None, index: CellIndex) -> dict:
    """Turn a native frame in a ``%%cython`` module into a cell frame, when its code is the cell's.

    ``frame`` has at least ``module``; the result keeps its other fields.
    """
    module = frame.get("module")
    cell = index.cython(module)
    pyx, c_beside = module_sources(module) if module else (None, None)
    if not (is_cell_function(function) and c_line and (cell is not None or pyx)):
        return frame
    cmap = c_map(c_file if c_file and os.path.exists(c_file) else c_beside) if (c_file or c_beside) else None
    target = cmap.pyx_line(c_line) if cmap else None
    if target is None:
        return frame
    pyx_file, line = target
    if not os.path.isabs(pyx_file) and pyx:
        pyx_file = pyx
    out = dict(frame)
    out["kind"] = "cython"
    out["function"] = cell_function_name(function, module_name_of(module), def_line_before(pyx_file, line))
    out["file"] = pyx_file
    out["line"] = line
    out["cell"] = cell_ref(cell, line)
    text = source_line(pyx_file, line)
    if text is not None:
        out["source"] = text
    return out
