"""Read what the debugger needs from the C file Cython generated for one cell.

The probe build compiles the cell with Cython's ``linetrace`` directive, which makes
Cython write ``__Pyx_TraceLine(line, [offset,] nogil, goto_error)`` before the code of
every executable statement, with the error exit that is right at that point (a ``try``
block's, a ``nogil`` block's, a ``prange`` body's). Those are the probe sites. This
module finds them, the C function around each one, that function's locals (names and
C types from its declarations and parameters), and the struct, union, enum and typedef
definitions needed to decode the locals' bytes later. Nothing here compiles or runs.

Both Cython 0.29 and 3.x are handled: their output differs in the trace macros' arity
(3 vs 4 arguments), ``__Pyx_TraceCall`` vs ``__Pyx_TraceStartFunc`` and a few spellings.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

_TRACE_LINE = re.compile(r"^(?P<indent>\s*)__Pyx_TraceLine\((?P<args>.*)\)\s*;?\s*$")
_TRACE_START = re.compile(
    r'__Pyx_Trace(?:StartFunc|Call)\("(?P<name>[^"]*)",\s*__pyx_f\[(?P<file>\d+)\],\s*(?P<line>\d+)'
)
_FILE_TABLE = re.compile(r"^static const char\s*\*\s*(?:const\s+)?__pyx_f\[\] = \{")
_HEADER_START = re.compile(r"^[A-Za-z_][^;{}]*?\b(?P<name>[A-Za-z_]\w*)\((?P<rest>.*)$")
_NOT_FUNCTION = re.compile(r"^(?:typedef|struct|union|enum|#|extern\s+\"C\")\b")
_STRUCT_START = re.compile(r"^(?P<kind>struct|union) (?P<name>\w+) \{\s*$")
_TYPEDEF_RECORD_START = re.compile(r"^typedef (?P<kind>struct|union)(?: (?P<tag>\w+))? ?\{\s*$")
_TYPEDEF_RECORD_END = re.compile(r"^\}\s*(?P<name>\w+)\s*;\s*$")
_ENUM_START = re.compile(r"^(?:typedef )?enum(?: (?P<tag>\w+))? ?\{\s*$")
_ENUM_END = re.compile(r"^\}\s*(?P<name>\w+)?\s*;\s*$")
_TYPEDEF = re.compile(r"^typedef (?P<type>[^;(){}]+?)\s*\b(?P<name>\w+)\s*;\s*$")
_DECL = re.compile(
    r"^\s*(?:CYTHON_UNUSED\s+)?(?P<type>(?:[A-Za-z_][\w:<>, ]*?))\s*(?P<stars>[\s*]*?)\s*"
    r"\b(?P<name>[A-Za-z_]\w*)\s*(?P<array>(?:\[[^\]]*\]\s*)*)(?:=.*)?;\s*$"
)
_FNPTR_DECL = re.compile(
    r"^\s*(?:CYTHON_UNUSED\s+)?(?P<ret>[A-Za-z_][\w\s*]*?)\s*\(\s*\*\s*(?P<name>__pyx_v_\w+)\s*\)\s*\((?P<args>[^;]*)\)\s*(?:=.*)?;\s*$"
)
_MODULE_GLOBAL = re.compile(
    r"^static (?:CYTHON_UNUSED )?(?P<type>[A-Za-z_][\w:<>, ]*?)\s*(?P<stars>[\s*]*?)\s*"
    r"\b(?P<name>__pyx_v_\w+)\s*(?P<array>(?:\[[^\]]*\]\s*)*)(?:=.*)?;\s*$"
)
_CALLED = re.compile(r"\b(__pyx_\w+)\(")
_NONDECL_WORDS = {"return", "goto", "else", "case", "break", "continue", "do", "if", "for", "while", "switch"}
_MANGLED = re.compile(r"^__pyx_(?:t|obj|e|v|f|pf|pw|scope_struct)_((?:\d+\w*?_)*)(?P<rest>\w*)$")


@dataclass
class Local:
    """One local variable (or parameter) of a C function, as Cython declared it."""

    name: str  # the Cython name: __pyx_v_ stripped
    cname: str  # the C name
    type: str  # the C type, e.g. "int", "double *", "struct __pyx_t_4cell_Point"
    array: str = ""  # array dimensions, e.g. "[4]", or ""
    declaration: str = ""  # the declaration with the name replaced by "{name}" (for re-emitting it)
    role: str = "local"  # "local", "param", "scope" (a closure's scope pointer)


@dataclass
class Function:
    index: int
    cname: str
    name: str  # Cython's name for it ("tri", "<module>")
    def_line: int | None  # .pyx line of the def/cdef, None for module code
    kind: str  # "function" or "module"
    header_line: int  # 0-based C line where the definition starts
    end_line: int  # 0-based C line of the closing brace
    locals: list[Local] = field(default_factory=list)
    calls: set = field(default_factory=set)  # cnames this function calls
    body_start: int = 0  # 0-based C line after the opening brace
    header: str = ""  # the declaration up to the opening brace, when it fits on one line
    params: str = ""
    static_locals: bool = False  # a `static` inside the body: copies of it would not share it


@dataclass
class Site:
    index: int
    line: int  # .pyx line
    function: int  # Function.index
    nogil: bool
    error_goto: str  # the C statement that leaves through Cython's error exit here
    c_line: int  # 0-based line of the __Pyx_TraceLine in the C file
    indent: str


@dataclass
class Record:
    kind: str  # "struct" or "union"
    ctype: str  # how C names it: "struct X" or a typedef name
    fields: list[Local] = field(default_factory=list)


@dataclass
class GeneratedC:
    lines: list[str]
    pyx_index: int | None
    functions: list[Function]
    sites: list[Site]
    records: dict[str, Record]  # ctype -> Record
    typedefs: dict[str, str]  # name -> C type
    enums: dict[str, dict[int, str]]  # ctype -> value -> name
    module_globals: list[Local]


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split at ``sep`` outside parentheses, brackets and angle brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([<{":
            depth += 1
        elif ch in ")]>}":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def cython_name(cname: str) -> str:
    """``__pyx_v_total`` -> ``total``; ``__pyx_t_4cell_Point`` -> ``Point``; other names unchanged."""
    if cname.startswith("__pyx_v_") and not re.match(r"__pyx_v_\d", cname):
        return cname[len("__pyx_v_") :]
    m = re.match(r"^__pyx_(?:t|obj|e|v|ptype)_(.*)$", cname)
    if not m:
        return cname
    rest = m.group(1)
    # Cython prefixes a module's mangled names with <len><segment> for each dotted part.
    while True:
        seg = re.match(r"^(\d+)", rest)
        if not seg:
            break
        n = int(seg.group(1))
        body = rest[len(seg.group(1)) :]
        if len(body) < n:
            break
        rest = body[n:].lstrip("_")
    return rest or cname


def _parse_declaration(text: str, role: str = "local") -> Local | None:
    fp = _FNPTR_DECL.match(text)
    if fp:
        name = fp.group("name")
        decl = f"{fp.group('ret').strip()} (*{{name}})({fp.group('args').strip()})"
        return Local(
            cython_name(name), name, f"{fp.group('ret').strip()} (*)({fp.group('args').strip()})", "", decl, role
        )
    m = _DECL.match(text if text.endswith(";") else text + ";")
    if not m:
        return None
    ctype = " ".join(m.group("type").split())
    if not ctype or ctype.split()[0] in _NONDECL_WORDS:
        return None
    stars = m.group("stars").replace(" ", "")
    name = m.group("name")
    array = "".join(m.group("array").split())
    full = f"{ctype} {stars}".strip() if stars else ctype
    decl = f"{ctype} {stars}{{name}}{array}"
    return Local(cython_name(name), name, full, array, decl, role)


def _parse_params(params: str) -> list[Local]:
    out = []
    for part in split_top_level(params):
        part = part.replace("CYTHON_UNUSED ", "").strip()
        if part in ("void", "...") or "__pyx_v_" not in part:
            continue
        local = _parse_declaration(part, "param")
        if local is not None and local.cname.startswith("__pyx_v_"):
            out.append(local)
    return out


def _file_table(lines: list[str], start: int) -> list[str]:
    entries = []
    for text in lines[start : start + 200]:
        entries += re.findall(r'"((?:[^"\\]|\\.)*)"', text)
        if "};" in text:
            break
    return entries


def _record_fields(lines: list[str], start: int) -> tuple[list[Local], int]:
    fields = []
    i = start
    while i < len(lines) and not lines[i].startswith("}"):
        text = lines[i].strip()
        if text and not text.startswith(("#", "/*", "PyObject_HEAD", "PyObject_VAR_HEAD")):
            local = _parse_declaration(text, "field")
            if local is not None:
                local.name = local.cname  # fields keep their C names
                fields.append(local)
        i += 1
    return fields, i


def parse(c_text: str, pyx_name: str) -> GeneratedC:
    """Parse the generated C of a cell whose source file is called ``pyx_name``."""
    lines = c_text.split("\n")
    pyx_index = None
    functions: list[Function] = []
    sites: list[Site] = []
    records: dict[str, Record] = {}
    typedefs: dict[str, str] = {}
    enums: dict[str, dict[int, str]] = {}
    module_globals: list[Local] = []

    i, n = 0, len(lines)
    while i < n:
        text = lines[i]
        if pyx_index is None and _FILE_TABLE.match(text):
            for k, entry in enumerate(_file_table(lines, i)):
                if os.path.basename(entry.replace("\\\\", "\\")) == pyx_name:
                    pyx_index = k
                    break
            i += 1
            continue
        m = _STRUCT_START.match(text)
        if m:
            fields, end = _record_fields(lines, i + 1)
            ctype = f"{m.group('kind')} {m.group('name')}"
            records[ctype] = Record(m.group("kind"), ctype, fields)
            i = end + 1
            continue
        m = _TYPEDEF_RECORD_START.match(text)
        if m:
            fields, end = _record_fields(lines, i + 1)
            tail = _TYPEDEF_RECORD_END.match(lines[end]) if end < n else None
            if tail:
                records[tail.group("name")] = Record(m.group("kind"), tail.group("name"), fields)
                if m.group("tag"):
                    records[f"{m.group('kind')} {m.group('tag')}"] = records[tail.group("name")]
            i = end + 1
            continue
        m = _ENUM_START.match(text)
        if m:
            values: dict[int, str] = {}
            nxt = 0
            j = i + 1
            while j < n and not lines[j].startswith("}"):
                for item in split_top_level(lines[j].strip().rstrip(",")):
                    name, _, val = item.partition("=")
                    name = name.strip()
                    if not re.match(r"^\w+$", name):
                        continue
                    try:
                        nxt = int(val.strip().rstrip("L"), 0) if val.strip() else nxt
                    except ValueError:
                        pass
                    values[nxt] = cython_name(name)
                    nxt += 1
                j += 1
            tail = _ENUM_END.match(lines[j]) if j < n else None
            if m.group("tag"):
                enums[f"enum {m.group('tag')}"] = values
            if tail and tail.group("name"):
                enums[tail.group("name")] = values
            i = j + 1
            continue
        m = _TYPEDEF.match(text)
        if m:
            typedefs[m.group("name")] = " ".join(m.group("type").split())
            i += 1
            continue
        m = _MODULE_GLOBAL.match(text)
        if m and "__pyx_v_" in m.group("name"):
            local = _parse_declaration(text[len("static ") :], "global")
            if local is not None:
                local.name = cython_name(local.cname)
                module_globals.append(local)
            i += 1
            continue
        if text[:1].isalpha() or text[:1] == "_":
            fn, end = _try_function(lines, i, len(functions))
            if fn is not None:
                _scan_body(lines, fn, pyx_index, sites)
                functions.append(fn)
                i = end + 1
                continue
        i += 1
    probed = {s.function for s in sites}
    names = {f.cname for f in functions if f.index in probed}
    for fn in functions:
        fn.calls &= names - {fn.cname}
    return GeneratedC(lines, pyx_index, functions, sites, records, typedefs, enums, module_globals)


def _try_function(lines: list[str], start: int, index: int) -> tuple[Function | None, int]:
    text = lines[start]
    if _NOT_FUNCTION.match(text) or text.rstrip().endswith(";"):
        return None, start
    m = _HEADER_START.match(text)
    if not m or "=" in text[: text.index("(")]:
        return None, start
    header = [text]
    j = start
    while not lines[j].rstrip().endswith("{"):
        j += 1
        if j >= len(lines) or j - start > 40:
            return None, start
        nxt = lines[j]
        if nxt.rstrip().endswith(";") and not nxt.lstrip().startswith("#"):
            return None, start
        if not nxt.lstrip().startswith("#"):
            header.append(nxt)
    joined = " ".join(h.strip() for h in header)
    params = joined[joined.index("(") + 1 : joined.rindex(")")] if ")" in joined else ""
    body_start = j + 1
    k = _closing_brace(lines, j)
    cname = m.group("name")
    kind = "module" if cname.startswith("__pyx_pymod_exec_") else "function"
    fn = Function(index, cname, "<module>" if kind == "module" else cname, None, kind, start, k)
    fn.locals = _parse_params(params)
    fn.body_start = body_start
    fn.params = params
    if j == start:  # `... name(params) {` on one line
        fn.header = text.rstrip()[:-1].rstrip()
    fn.static_locals = any(line.lstrip().startswith("static ") for line in lines[body_start:k])
    return fn, k


_STRIP = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|//.*$')


def _closing_brace(lines: list[str], opening: int) -> int:
    """The line of the brace that closes the one ending line ``opening`` (comments and literals skipped)."""
    depth = 0
    in_comment = False
    for k in range(opening, len(lines)):
        text = lines[k]
        pos = 0
        out = []
        while pos < len(text):
            if in_comment:
                end = text.find("*/", pos)
                if end < 0:
                    pos = len(text)
                    break
                in_comment = False
                pos = end + 2
                continue
            start = text.find("/*", pos)
            if start < 0:
                out.append(text[pos:])
                break
            out.append(text[pos:start])
            in_comment = True
            pos = start + 2
        code = _STRIP.sub("", "".join(out))
        if code.lstrip().startswith("#"):
            continue
        depth += code.count("{") - code.count("}")
        if depth <= 0 and k > opening:
            return k
    return len(lines) - 1


def _scan_body(lines: list[str], fn: Function, pyx_index: int | None, sites: list[Site]) -> None:
    body_start = fn.body_start
    in_decls = True
    for k in range(body_start, fn.end_line):
        text = lines[k]
        stripped = text.strip()
        if in_decls:
            if not stripped or stripped.startswith(
                ("#", "/*", "__Pyx_TraceDeclarations", "__Pyx_RefNannyDeclarations")
            ):
                pass
            elif "(" in stripped and not _FNPTR_DECL.match(text):
                in_decls = False
            else:
                local = _parse_declaration(text)
                if local is None:
                    in_decls = False
                elif local.cname.startswith("__pyx_v_"):
                    fn.locals.append(local)
                elif local.cname == "__pyx_cur_scope":
                    local.role = "scope"
                    fn.locals.append(local)
        if "__Pyx_Trace" not in text:
            fn.calls.update(_CALLED.findall(text))
            continue
        m = _TRACE_START.search(text)
        if m and pyx_index is not None and int(m.group("file")) == pyx_index:
            fn.def_line = int(m.group("line"))
            if fn.kind == "function":
                fn.name = m.group("name")
            continue
        m = _TRACE_LINE.match(text)
        if not m:
            continue
        args = split_top_level(m.group("args"))
        if len(args) == 4:  # Cython 3: line, offset, nogil, goto_error
            line, nogil, error = args[0], args[2], args[3]
        elif len(args) == 3:  # Cython 0.29: line, nogil, goto_error
            line, nogil, error = args
        else:
            continue
        fm = re.match(r"__PYX_ERR\((\d+),", error)
        if pyx_index is None or not fm or int(fm.group(1)) != pyx_index or not line.isdigit():
            continue
        sites.append(Site(len(sites), int(line), fn.index, nogil.strip() == "1", error, k, m.group("indent")))
