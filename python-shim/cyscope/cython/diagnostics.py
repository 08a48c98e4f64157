"""Turning Cython, C compiler and linker output into diagnostics on cell lines.

A diagnostic is ``{severity, line, column, message, source}``: ``line`` is the cell's
line (1-based, the ``%%cython`` line is 1; line 1 of the .pyx stands for it, so .pyx
line N is cell line N), ``column`` 1-based or ``None``, ``source`` one of ``cython``,
``cc``, ``ld``.
"""

from __future__ import annotations

import os
import re

from .linemap import position_blocks

MIME_TYPE = "application/vnd.cyscope.diagnostics+json"
VERSION = 1

# Cython: "[warning: |performance hint: ]<file>:<line>:<col>: <message>"; col is 0-based.
_CYTHON = re.compile(
    r"^(?P<kind>warning: |performance hint: )?(?P<file>\S[^:\n]*\.(?:pyx|pxd|pxi)):(?P<line>\d+):(?P<col>\d+): "
    r"(?P<msg>.*)$"
)
# gcc/clang: "<file>:<line>[:<col>]: <severity>: <message>"; col 1-based.
_CC = re.compile(
    r"^(?P<file>[^:\n]+):(?P<line>\d+):(?:(?P<col>\d+):)? (?P<sev>fatal error|error|warning): (?P<msg>.*)$"
)
# "gcc: error: unrecognized command-line option '-fbogus'" and the like.
_DRIVER = re.compile(
    r"^(?P<prog>[\w./+-]*(?:gcc|g\+\+|cc|c\+\+|clang|clang\+\+)(?:-\d+)?): "
    r"(?P<sev>fatal error|error|warning): (?P<msg>.*)$"
)
_LD = re.compile(r"^(?P<prog>\S*(?:\bld|collect2|ld\.\w+))(?::[^:\n]*)*?: (?P<msg>.*)$")
_MISSING_HEADER = re.compile(r"^(?P<header>[^:]+): No such file or directory")
_UNDEFINED = re.compile(r"undefined (?:symbol|reference to)[:]? [`'\"]?(?P<sym>[A-Za-z_]\w*)")


def diagnostic(severity, line, column, message, source) -> dict:
    return {"severity": severity, "line": line, "column": column, "message": message, "source": source}


def _dedupe(diags: list[dict]) -> list[dict]:
    seen, out = set(), []
    for d in diags:
        key = (d["severity"], d["line"], d["column"], d["message"], d["source"])
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def parse_cython(output: str, pyx_name: str) -> list[dict]:
    diags = []
    for raw in output.splitlines():
        m = _CYTHON.match(raw.strip())
        if not m:
            continue
        kind = m.group("kind") or ""
        severity = "error" if not kind else "warning"
        msg = m.group("msg").strip()
        if kind.startswith("performance"):
            msg = "performance hint: " + msg
        if os.path.basename(m.group("file")) == pyx_name:
            diags.append(diagnostic(severity, int(m.group("line")), int(m.group("col")) + 1, msg, "cython"))
        else:  # an included .pxd/.pxi: keep where it came from in the message
            where = f"{m.group('file')}:{m.group('line')}:{m.group('col')}"
            diags.append(diagnostic(severity, None, None, f"{where}: {msg}", "cython"))
    return _dedupe(diags)


class CellMapper:
    """Maps a line of the generated C file back to a cell line (and column when possible)."""

    def __init__(self, cell_lines: list[str], c_path: str | None, pyx_name: str, magic_line: str = ""):
        self.cell_lines = cell_lines  # index 0 is the %%cython line
        self.magic_line = magic_line
        self.c_lines: list[str] = []
        if c_path and os.path.exists(c_path):
            with open(c_path, encoding="utf-8", errors="replace") as f:
                self.c_lines = f.read().splitlines()
        self.blocks = position_blocks(self.c_lines, pyx_name) if self.c_lines else []

    def _find_text(self, needle: str) -> tuple[int, int] | None:
        needle = needle.strip()
        if len(needle) < 3:
            return None
        for idx, text in enumerate(self.cell_lines):
            if idx == 0:
                continue
            pos = text.find(needle)
            if pos >= 0:
                return idx + 1, pos
        return None

    def map_c_line(self, c_line: int, c_col: int | None) -> tuple[int | None, int | None]:
        if 1 <= c_line <= len(self.c_lines):
            text = self.c_lines[c_line - 1]
            # 1. verbatim C from the cell (cdef extern from * docstrings, etc.)
            found = self._find_text(text)
            if found:
                line, pos = found
                indent = len(text) - len(text.lstrip())
                column = None
                if c_col is not None and indent <= c_col - 1 < len(text.rstrip()):
                    column = pos + (c_col - 1 - indent) + 1
                return line, column
            # 2. Cython's position comment in force at that C line (inside the same function)
            i = c_line - 1
            while i >= 0:
                t = self.c_lines[i]
                if t.startswith("}"):
                    break
                i -= 1
            lo = i + 1
            best = None
            for comment_line, _code_line, pyx_line in self.blocks:
                if lo < comment_line <= c_line:
                    best = pyx_line
            if best is not None:
                return best, None
        return None, None

    def line_for_option_text(self, text: str) -> int | None:
        if text and text in self.magic_line:
            return 1
        for idx, line in enumerate(self.cell_lines):
            if idx and line.lstrip().startswith("#") and text and text in line:
                return idx + 1
        return None


def parse_compiler(output: str, mapper: CellMapper, c_basename: str, link_failed: bool) -> list[dict]:
    diags = []
    for raw in output.splitlines():
        line = raw.rstrip()
        m = _CC.match(line)
        if m:
            sev = "warning" if m.group("sev") == "warning" else "error"
            msg = m.group("msg").strip()
            fname = m.group("file")
            col = int(m.group("col")) if m.group("col") else None
            if os.path.basename(fname) == c_basename:
                cell_line, cell_col = mapper.map_c_line(int(m.group("line")), col)
                hdr = _MISSING_HEADER.match(msg)
                if hdr and cell_line is None:
                    found = mapper._find_text(f'"{hdr.group("header")}"')
                    cell_line = found[0] if found else mapper.line_for_option_text(hdr.group("header"))
            else:
                cell_line, cell_col = None, None
                msg = f"{fname}:{m.group('line')}: {msg}"
            diags.append(diagnostic(sev, cell_line, cell_col, msg, "cc"))
            continue
        m = _DRIVER.match(line)
        if m:
            msg = m.group("msg").strip()
            sev = "warning" if m.group("sev") == "warning" else "error"
            opt = re.search(r"'(-[^']+)'", msg)
            diags.append(diagnostic(sev, mapper.line_for_option_text(opt.group(1)) if opt else None, None, msg, "cc"))
            continue
        m = _LD.match(line)
        if m:
            msg = m.group("msg").strip()
            if m.group("prog").endswith("collect2") and "ld returned" in msg:
                continue  # the summary line; the real message came before
            sev = "warning" if msg.startswith("warning:") else "error"
            lib = re.search(r"cannot find -l\s*(\S+?)(?::|$)", msg)
            cell_line = mapper.line_for_option_text(lib.group(1)) if lib else None
            if cell_line is None:
                und = _UNDEFINED.search(msg)
                if und:
                    found = mapper._find_text(und.group("sym"))
                    cell_line = found[0] if found else None
            diags.append(diagnostic(sev, cell_line, None, msg, "ld"))
            continue
        und = _UNDEFINED.search(line)
        if und and "(.text" in line:
            found = mapper._find_text(und.group("sym"))
            diags.append(diagnostic("error", found[0] if found else None, None, line.strip(), "ld"))
    return _dedupe(diags)


# The part of a build that failed (the payload's ``stage``): its headline, and the start
# of the one-line error the cell fails with.
STAGES = {
    "cython": ("Cython compilation failed", "Cython error"),
    "cc": ("C compilation failed", "C compiler error"),
    "ld": ("Linking failed", "linker error"),
    "oom": ("The build ran out of memory", "out of memory"),
    "disk": ("The build could not be written", "cannot write the build"),
    "load": ("The compiled module could not be loaded", "load error"),
}

# A compiler killed for memory, or told so: gcc's and the kernel OOM killer's words.
_OOM = re.compile(
    r"out of memory|virtual memory exhausted|cannot allocate memory|std::bad_alloc|"
    r"Killed signal terminated program|signal 9 \[Killed\]",
    re.IGNORECASE,
)
_DISK = re.compile(r"No space left on device|File too large|Disk quota exceeded|Read-only file system")


def stage_error(stage: str) -> str:
    return STAGES.get(stage, (None, f"{stage} error"))[1]


def classify_failure(output: str, stage: str) -> str:
    """``oom`` or ``disk`` when the compiler's output says so, else ``stage`` unchanged."""
    if _OOM.search(output):
        return "oom"
    if _DISK.search(output):
        return "disk"
    return stage


def relocate(text: str, build_dir: str, final_dir: str) -> str:
    """Paths in the build folder, as the compiler printed them, named where the files are kept."""
    return text.replace(build_dir, final_dir) if build_dir else text


def with_cell_lines(output: str, mapper: CellMapper, c_path: str) -> str:
    """Every compiler line about the generated C (errors, warnings, notes, "In function" headers)
    gets the cell line its C line comes from, when there is one."""
    if not mapper.c_lines or not c_path:
        return output
    location = re.compile(re.escape(c_path) + r":(\d+)(?::(\d+))?:")

    def mark(line: str) -> str:
        m = location.search(line)
        if not m:
            return line
        cell_line, _col = mapper.map_c_line(int(m.group(1)), None)
        return f"{line} [cell line {cell_line}]" if cell_line is not None else line

    return "\n".join(mark(line) for line in output.split("\n"))


def payload(diags: list[dict], output: str, ok: bool, module: str | None, stage: str | None = None) -> dict:
    data = {"v": VERSION, "ok": ok, "module": module, "diagnostics": diags, "output": output}
    if not ok and stage:
        data["stage"] = stage
    return data


def as_text(diags: list[dict], output: str, ok: bool, stage: str | None = None) -> str:
    if ok:
        head = "Cython compilation succeeded with warnings"
    else:
        head = STAGES.get(stage or "cython", (f"{stage} failed", None))[0]
    parts = [head + ":"]
    for d in diags:
        where = f"line {d['line']}" if d["line"] is not None else "(no cell line)"
        if d["line"] is not None and d["column"] is not None:
            where += f", column {d['column']}"
        parts.append(f"  {where}: {d['severity']}: {d['message']} [{d['source']}]")
    if output.strip():
        parts.append("")
        parts.append("Full compiler output:")
        parts.append(output.rstrip())
    return "\n".join(parts) + "\n"


def bundle(diags: list[dict], output: str, ok: bool, module: str | None, stage: str | None = None) -> dict:
    return {MIME_TYPE: payload(diags, output, ok, module, stage), "text/plain": as_text(diags, output, ok, stage)}
