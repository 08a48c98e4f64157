"""Every remembered cell's stacks as one file, for the memory panel's export
buttons (asked for as user expressions, so nothing runs as a cell).

``history_export("speedscope", view)`` displays as ``application/json``: a
speedscope file with one profile per cell. ``history_export("folded", view)``
displays as ``text/plain``: Brendan Gregg's folded stacks of every cell
(trimmed stacks start at their cell's line, so cells stay apart).
"""

from __future__ import annotations

from .report import VIEWS

FORMATS = ("speedscope", "folded")


def speedscope(reports, view: str) -> dict:
    frames: list[dict] = []
    index: dict = {}
    profiles = [r.speedscope_profile(view, frames, index) for r in reports]
    return {
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "exporter": "cyscope",
        "name": f"cyscope: memory of {len(reports)} cells ({view})",
        "activeProfileIndex": 0,
        "shared": {"frames": frames},
        "profiles": profiles,
    }


def folded(reports, view: str) -> str:
    return "".join(r.to_folded(view) for r in reports)


class HistoryExport:
    """Displays as the export of every cell in the kernel's history."""

    def __init__(self, fmt: str, view: str = "peak"):
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        if view not in VIEWS:
            raise ValueError(f"view must be one of {', '.join(VIEWS)}, not {view!r}")
        self.format = fmt
        self.view = view

    def _repr_mimebundle_(self, include=None, exclude=None):
        from ..memory import history

        reports = [r for r in history() if r.execution_count is not None]
        if self.format == "speedscope":
            return {"application/json": speedscope(reports, self.view)}
        return {"text/plain": folded(reports, self.view)}


def history_export(fmt: str, view: str = "peak") -> HistoryExport:
    return HistoryExport(fmt, view)
