"""Reading this kernel's crash reports: finishing in-process ones, and which ones the frontend has not seen."""

from __future__ import annotations

import os

from . import store
from .symbolize import symbolize


def finish(path: str, report: dict) -> dict:
    """Name the native frames of an in-process report once, and save the result."""
    if report.get("source") == "in-process" and "symbolized" not in report:
        symbolize(report)
        try:
            store.write_report(path, report)
        except OSError:
            pass
    return report


def adopt_orphans(directory: str) -> None:
    """A kernel killed while gdb was at work (SIGKILL, the machine) leaves only its pending report:
    keep it as a report, saying so."""
    try:
        names = [n for n in os.listdir(directory) if n.startswith(".pending-") and n.endswith(".json")]
    except OSError:
        return
    for name in names:
        path = os.path.join(directory, name)
        try:
            pid = int(name[len(".pending-") : -len(".json")])
        except ValueError:
            continue
        if pid == os.getpid() or _alive(pid):
            continue
        report = store.read_report(path)
        if report is not None and isinstance(report.get("id"), str):
            tracer = report.get("tracer") if isinstance(report.get("tracer"), dict) else {}
            tracer.update(
                status="running",
                message="The kernel ended while gdb was still writing the full report (it was killed, or the "
                "machine stopped); this is the report the kernel wrote itself.",
            )
            report["tracer"] = tracer
            store.write_report(os.path.join(directory, f"crash-{report['id']}.json"), report)
        try:
            os.unlink(path)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load_all(directory: str) -> list[tuple[str, dict]]:
    """(path, report) of every report of this kernel, oldest first."""
    adopt_orphans(directory)
    out = []
    for path in store.report_paths(directory):
        report = store.read_report(path)
        if report is not None:
            out.append((path, finish(path, report)))
    return out


def undelivered(directory: str) -> list[tuple[str, dict]]:
    """Reports of crashes that killed a kernel, not yet sent to a frontend."""
    return [(p, r) for p, r in load_all(directory) if not r.get("caught") and not store.is_shown(p)]
