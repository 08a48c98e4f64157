"""The full crash report, written by gdb attached to the crashing kernel.

Run by the crash handler as ``gdb -batch -p PID -x gdb_report.py`` (argv prepared in
advance, see ``catcher.py``) while the kernel waits inside its handler. The handler
has already written the in-process report (``$CYSCOPE_CRASH_PENDING``): signal,
address, thread, the crashing thread's Python frames, the running cell, which cells
built which modules. This script adds what only a debugger sees: every native frame
named (inlined calls too), the cell line of each ``%%cython`` frame, the C locals and
arguments of those frames with their C types, and the other threads' top frames.
It writes ``crash-<id>.json`` beside the pending file (atomically) and exits; gdb
detaches and the handler carries on.

Runs in gdb's embedded Python, not the kernel's: standard library and ``cellmap``
only. Uses gdb's Python API (``gdb.Frame``, ``gdb.Block``, ``gdb.Value``).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time

import gdb  # type: ignore[import-not-found]

sys.path.insert(0, os.environ.get("CYSCOPE_CRASH_LIB") or os.path.dirname(os.path.abspath(__file__)))
import cellmap

MAX_FRAMES = 128  # of the crashing thread
OTHER_THREAD_FRAMES = 3
VALUE_CHARS = 200
EVAL_LOOP = "_PyEval_EvalFrameDefault"


def main() -> None:
    started = time.monotonic()
    pending = os.environ["CYSCOPE_CRASH_PENDING"]
    with open(pending, encoding="utf-8") as f:
        report = json.load(f)
    inferior = gdb.selected_inferior()
    if inferior.pid == 0:
        raise SystemExit("cyscope: gdb is not attached to the kernel")
    load_symbols(report)
    tid = report["thread"]["tid"]
    index = cellmap.CellIndex(report.get("cells", []), report.get("cell"))
    python_frames = [f for f in report.get("frames", []) if f.get("kind") == "python"]

    crashing = None
    others = []
    for thread in inferior.threads():
        if thread.ptid[1] == tid:
            crashing = thread
        else:
            others.append(thread)
    if crashing is None:
        raise SystemExit(f"cyscope: thread {tid} not found in the kernel")

    frames = crashing_frames(crashing, python_frames, index)
    report["frames"] = frames
    report["thread"]["openmp"] = any(_is_openmp(f) for f in frames)
    report["threads"] = [thread_summary(t, index) for t in sorted(others, key=lambda t: t.num)]
    report["source"] = "gdb"
    report["tracer"] = {
        "name": "gdb",
        "status": "ok",
        "message": None,
        "detail": None,
        "version": gdb.VERSION,
        "seconds": round(time.monotonic() - started, 3),
    }
    folder = os.path.dirname(pending)
    final = os.path.join(folder, f"crash-{report['id']}.json")
    tmp = os.path.join(folder, f".crash-{report['id']}.gdb.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    os.replace(tmp, final)


# Libraries whose symbols and unwind tables are always wanted: the handler's own and
# the C library's (the handler waits in it), to unwind from the handler to the crash.
ALWAYS = ("libcyscope", "libc.so")


def load_symbols(report: dict) -> None:
    """Read the symbols of the libraries on the crashing thread's stack (the in-process
    report lists them), the cells' modules and a few more; not of every library mapped."""
    names = set(ALWAYS)
    for frame in report.get("frames", []):
        if frame.get("module"):
            names.add(os.path.basename(frame["module"]))
    for cell in report.get("cells", []):
        if cell.get("kind") == "cython" and cell.get("path"):
            names.add(os.path.basename(cell["path"]))
    if report.get("python_module"):
        names.add(os.path.basename(report["python_module"]))
    # One command: each one re-reads the kernel's list of libraries (slow with hundreds).
    # gdb's regular expressions are POSIX basic ones, with GNU's \| for "or".
    pattern = "\\|".join(re.sub(r"([.\[\]*^$\\])", r"\\\1", name) for name in sorted(names))
    gdb.execute("sharedlibrary " + pattern, to_string=True)


def stack(thread, limit: int) -> list:
    thread.switch()
    out = []
    frame = gdb.newest_frame()
    while frame is not None and len(out) < limit:
        out.append(frame)
        try:
            frame = frame.older()
        except gdb.error:
            break
    return out


def crashing_frames(thread, python_frames: list[dict], index: cellmap.CellIndex) -> list[dict]:
    raw = stack(thread, MAX_FRAMES + 64)
    # Above the signal frame: the handler itself (waiting for us). Below it: the crash.
    for i, frame in enumerate(raw):
        if frame.type() == gdb.SIGTRAMP_FRAME:
            raw = raw[i + 1 :]
            break
    out: list[dict] = []
    py = 0
    for n, frame in enumerate(raw[:MAX_FRAMES]):
        out.append(native_frame(frame, exact=n == 0, index=index))
        if frame.name() == EVAL_LOOP:
            # The Python frames this interpreter loop was running, up to the one
            # it was entered for (3.11 runs Python-to-Python calls in one loop).
            while py < len(python_frames):
                out.append(python_frames[py])
                py += 1
                if out[-1].get("python_entry"):
                    break
    out.extend(python_frames[py:])
    return out


def native_frame(frame, exact: bool, index: cellmap.CellIndex, with_locals: bool = True) -> dict:
    pc = frame.pc()
    function = frame.name()
    try:
        sal = frame.find_sal()
    except gdb.error:
        sal = None
    c_file = sal.symtab.fullname() if sal is not None and sal.symtab is not None else None
    c_line = sal.line if sal is not None and sal.line else None
    module = gdb.solib_name(pc) or gdb.current_progspace().filename
    out = {
        "kind": "native",
        "function": function,
        "file": c_file,
        "line": c_line,
        "address": hex(pc),
        "exact": exact,
        "module": module,
    }
    if frame.type() == gdb.INLINE_FRAME:
        out["inlined"] = True
    cell_frame = cellmap.cython_frame(out, function, c_file, c_line, index)
    if cell_frame is not out:
        cell_frame["c_function"] = function
        cell_frame["c_file"] = c_file
        cell_frame["c_line"] = c_line
        if with_locals:
            cell_frame["locals"] = cell_locals(frame)
    return cell_frame


def cell_locals(frame) -> list[dict]:
    """The cell's variables of this frame (Cython's ``__pyx_v_`` names), arguments first."""
    try:
        block = frame.block()
    except RuntimeError:
        return []
    found: list[dict] = []
    seen = set()
    while block is not None:
        for sym in block:
            if not (sym.is_argument or sym.is_variable) or sym.name in seen:
                continue
            if not sym.name.startswith("__pyx_v_"):
                continue  # Cython's temporaries and bookkeeping
            seen.add(sym.name)
            found.append(describe(frame, sym, block))
        if block.function is not None:
            break
        block = block.superblock
    found.sort(key=lambda v: not v["argument"])
    return found


def describe(frame, sym, block) -> dict:
    out = {
        "name": sym.name[len("__pyx_v_") :],
        "type": str(sym.type),
        "value": None,
        "argument": bool(sym.is_argument),
        "optimized_out": False,
    }
    try:
        value = frame.read_var(sym, block)
        if value.is_optimized_out:
            out["value"] = "<optimized out>"
            out["optimized_out"] = True
        else:
            out["value"] = format_value(value)
    except Exception as exc:  # gdb.error, gdb.MemoryError: report, never fail the report
        out["value"] = f"<unreadable: {exc}>"
    return out


def format_value(value) -> str:
    t = value.type.strip_typedefs()
    if t.code == gdb.TYPE_CODE_PTR:
        address = int(value)
        if address == 0:
            return "NULL"
        target = t.target().strip_typedefs()
        if target.code == gdb.TYPE_CODE_STRUCT and target.tag in ("_object", "PyObject"):
            return python_object(value, address)
        if target.code == gdb.TYPE_CODE_INT and target.sizeof == 1:
            try:
                return f"{hex(address)} {json.dumps(value.string(length=VALUE_CHARS))}"
            except (gdb.error, gdb.MemoryError, UnicodeDecodeError):
                return f"{hex(address)} <unreadable>"
        return hex(address)
    if t.code in (gdb.TYPE_CODE_INT, gdb.TYPE_CODE_FLT, gdb.TYPE_CODE_BOOL, gdb.TYPE_CODE_CHAR, gdb.TYPE_CODE_ENUM):
        return str(value)
    text = value.format_string(max_elements=8, max_depth=2, repeat_threshold=10)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def python_object(value, address: int) -> str:
    try:
        tp_name = value.dereference()["ob_type"].dereference()["tp_name"].string(length=80)
        return f"<{tp_name} object at {hex(address)}>"
    except (gdb.error, gdb.MemoryError, UnicodeDecodeError):
        return f"<PyObject at {hex(address)}>"


def thread_summary(thread, index: cellmap.CellIndex) -> dict:
    frames = [native_frame(f, exact=i == 0, index=index, with_locals=False) for i, f in enumerate(stack(thread, 12))]
    return {
        "tid": thread.ptid[1],
        "name": thread.name,
        "main": thread.ptid[1] == thread.ptid[0],
        "openmp": any(_is_openmp(f) for f in frames),
        "frames": frames[:OTHER_THREAD_FRAMES],
    }


def _is_openmp(frame: dict) -> bool:
    module = os.path.basename(frame.get("module") or "")
    return module.startswith("libgomp") or (frame.get("function") or "").startswith("gomp_thread_start")


main()
