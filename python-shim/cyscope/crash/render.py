"""A crash report as text (the ``text/plain`` of the output, CellCrashed's traceback) and as a MIME bundle."""

from __future__ import annotations

import os

MIME = "application/vnd.cyscope.crash.v1+json"
SHOWN_FRAMES = 40


def cell_label(ref: dict | None) -> str:
    if not ref:
        return "an unknown cell"
    count = ref.get("execution_count")
    return f"cell [{count}]" if isinstance(count, int) and count >= 0 else "a cell"


def crash_site(report: dict) -> dict | None:
    """The innermost frame with a cell line: where to look first."""
    for frame in report.get("frames") or []:
        cell = frame.get("cell")
        if isinstance(cell, dict) and cell.get("line"):
            return frame
    return None


def headline(report: dict) -> str:
    signal = report.get("signal") or {}
    what = f"{signal.get('name', 'a fatal signal')} ({signal.get('description', '')})".replace(" ()", "")
    address = signal.get("address")
    if address is not None:
        code = signal.get("code_description")
        what += f" at address {address}" + (f": {code}" if code else "")
    site = crash_site(report)
    where = ""
    if site is not None:
        where = f" in {cell_label(site['cell'])} line {site['cell']['line']}"
        if site.get("function"):
            where += f" ({site['function']})"
    caught = report.get("caught")
    return f"{'Caught' if caught else 'Kernel crashed:'} {what}{where}"


def is_wrapper(frame: dict, inner: dict | None) -> bool:
    """Cython's argument-parsing wrapper around the function just inside it (same name, same cell)."""
    return (
        inner is not None
        and frame.get("kind") == "cython"
        and inner.get("kind") == "cython"
        and frame.get("function") == inner.get("function")
        and (frame.get("c_function") or "").startswith("__pyx_pw_")
    )


def _frame_line(n: int, frame: dict) -> list[str]:
    kind = frame.get("kind")
    function = frame.get("function") or "??"
    cell = frame.get("cell") if isinstance(frame.get("cell"), dict) else None
    if cell and cell.get("line"):
        place = f"{cell_label(cell)} line {cell['line']}"
    elif frame.get("file"):
        place = f"{frame['file']}:{frame.get('line') or '?'}"
    else:
        place = os.path.basename(frame.get("module") or "") or "?"
        if frame.get("address"):
            place += f" {frame['address']}"
    tag = {"cython": "cython", "python": "python"}.get(kind, "native")
    out = [f"  #{n:<3} {tag:<7} {function}  {place}" + ("  (inlined)" if frame.get("inlined") else "")]
    if frame.get("source"):
        out.append(f"         | {frame['source'].strip()}")
    for var in frame.get("locals") or []:
        out.append(f"         {var['name']} = {var['value']}  ({var['type']}{', argument' if var['argument'] else ''})")
    return out


def to_text(report: dict, path: str | None = None) -> str:
    lines = [headline(report)]
    thread = report.get("thread") or {}
    who = "the main thread" if thread.get("main") else "a worker thread"
    if thread.get("openmp"):
        who = "an OpenMP worker thread (prange)"
    lines.append(
        f"  thread {thread.get('tid')} ({thread.get('name') or 'unnamed'}), {who}; "
        f"pid {report.get('pid')}; {report.get('time')}"
    )
    running = report.get("cell")
    if isinstance(running, dict):
        state = "running" if running.get("running") else "the last cell run"
        lines.append(f"  {cell_label(running)} was {state}")
    if not report.get("caught"):
        lines.append("  The kernel died: its state (variables, imports, loaded modules) was lost.")
    else:
        lines.append("  The kernel lives on (--catch-crashes); memory the crashed code held stays allocated.")
    lines.append("")
    lines.append("Frames, innermost first:")
    python_module = report.get("python_module")
    frames = report.get("frames") or []
    outermost = max((i for i, f in enumerate(frames) if f.get("cell")), default=-1)
    hidden = 0
    shown = 0
    previous = None
    for n, frame in enumerate(frames):
        interpreter = frame.get("kind") == "native" and python_module and frame.get("module") == python_module
        if interpreter or 0 <= outermost < n:
            hidden += 1  # the interpreter's own machinery, or the kernel's below the cells
            continue
        if is_wrapper(frame, previous):
            continue
        previous = frame
        if shown >= SHOWN_FRAMES:
            hidden += 1
            continue
        lines += _frame_line(n, frame)
        shown += 1
    if hidden:
        lines.append(f"  ({hidden} more frames of the interpreter and the kernel not shown; all are in the report)")
    threads = report.get("threads") or []
    if threads:
        lines.append("")
        lines.append("Other threads:")
        for t in threads:
            top = " <- ".join((f.get("function") or "??") for f in t.get("frames") or [])
            lines.append(f"  {t.get('tid')} ({t.get('name') or 'unnamed'}{', main' if t.get('main') else ''}): {top}")
    tracer = report.get("tracer") or {}
    lines.append("")
    if tracer.get("status") == "ok":
        lines.append(
            f"Report written by gdb {tracer.get('version', '')} in {tracer.get('seconds', '?')} s.".replace("  ", " ")
        )
    else:
        lines.append(f"Report written by the kernel itself: {tracer.get('message') or ''}")
        if tracer.get("detail"):
            lines.append(f"  gdb said: {tracer['detail']}")
    if path:
        lines.append(f"Saved as {path}")
    return "\n".join(lines)


def bundle(report: dict, path: str | None = None) -> dict:
    return {MIME: report, "text/plain": to_text(report, path)}
