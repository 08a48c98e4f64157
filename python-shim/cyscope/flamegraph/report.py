"""A memory report (``cyscope.memory.Report``) as a flamegraph MIME bundle."""

from __future__ import annotations

import dataclasses

from . import payload as payload_mod
from .svg import svg_html
from .text import summary

VIEWS = ("peak", "leaks", "allocated")


def _title(report, view: str) -> str:
    what = report.label or "track"
    return f"{what} · {view}"


def _cell_ids() -> dict[int, str]:
    """Execution count -> cell id, for every cell the kernel remembers."""
    from ..memory import _symbols, history

    ids = {r.execution_count: r.cell_id for r in history() if r.execution_count is not None and r.cell_id}
    for count, cell_id in list(_symbols._cython_sources.values()):
        if count is not None and cell_id and count not in ids:
            ids[count] = cell_id
    return ids


def _relabel_cell(frame, cell: int):
    """The same frame, moved to another cell (for comparing two runs of one cell)."""
    from ..memory import _report, _symbols

    raw = _symbols.Frame(frame.name, frame.file, frame.line, "python" if frame.kind == "cell" else frame.kind, cell)
    return dataclasses.replace(frame, cell=cell, label=_report.frame_label(raw))


def _compare_stacks(report, baseline, view: str, trim: bool, collapse_native: bool, inverted: bool) -> list:
    """The baseline's stacks, its own cell's frames counted as this report's
    cell: `--compare 4` in cell [7] matches `cell [4] line 2` with `cell [7] line 2`."""
    from ..memory import _report

    stacks = baseline.stack_keys(view, trim, collapse_native, inverted)
    here, there = report.execution_count, baseline.execution_count
    if here is None or there is None or here == there:
        return stacks
    # This report's frames of its own cell, by what matches across runs.
    ours = {
        (fr.name, fr.line, fr.kind): fr
        for frames, _b, _c in report.shown_stacks(view, trim, collapse_native)
        for fr in frames
        if fr.cell == here
    }
    w = payload_mod.KEY_WIDTH
    mapping: dict[bytes, bytes] = {}

    def remap(key: bytes) -> bytes:
        out = []
        for i in range(0, len(key), w):
            part = key[i : i + w]
            new = mapping.get(part)
            if new is None:
                fr = _report.numbered_frame(int.from_bytes(part, "big"))
                if fr.cell == there:
                    fr = ours.get((fr.name, fr.line, fr.kind)) or _relabel_cell(fr, here)
                new = mapping[part] = _report.frame_number(fr).to_bytes(w, "big")
            out.append(new)
        return b"".join(out)

    return [(remap(k), b, c) for k, b, c in stacks]


def flamegraph_payload(
    report,
    view: str = "peak",
    *,
    threshold: int | None = None,
    inverted: bool = False,
    compare=None,
    trim: bool = True,
    collapse_native: bool = True,
    max_nodes: int = payload_mod.MAX_NODES,
) -> dict:
    """The ``application/vnd.cyscope.flamegraph.v1+json`` payload of a report.

    view: 'peak', 'leaks' or 'allocated'; threshold: bytes under which a
    frame's children are merged into one node (default: a 100,000th of the
    total); inverted: allocating frames at the root; compare: another
    Report, whose bytes fill the comparison column.
    """
    from ..memory import _report

    if view not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)}, not {view!r}")
    extra = {
        "totals": {
            "peak_bytes": int(report.peak_bytes),
            "leaked_bytes": int(report.leaked_bytes),
            "allocated_bytes": int(report.allocated_bytes),
            "allocations": int(report.allocations),
            "net_bytes": int(report.net_bytes),
            "duration_ms": round(float(report.duration_ms), 3),
        },
        "exact": bool(report.exact),
        "native": bool(report.native),
        "trimmed": bool(trim),
    }
    if report.execution_count is not None:
        extra["cell"] = int(report.execution_count)
    if report.cell_id:
        extra["cell_id"] = str(report.cell_id)
    with payload_mod.no_collection():
        columns = report.stack_columns(view, trim, collapse_native, inverted)
        if columns is not None:
            stacks = payload_mod.StackColumns(*columns)
        else:
            stacks = report.stack_keys(view, trim, collapse_native, inverted)
        base = None
        if compare is not None:
            base = _compare_stacks(report, compare, view, trim, collapse_native, inverted)
        data = payload_mod.build(
            stacks,
            _report.numbered_frame,
            title=_title(report, view),
            view=view,
            threshold=threshold,
            inverted=inverted,
            compare=base,
            compare_title=_title(compare, view) if compare is not None else None,
            max_nodes=max_nodes,
            extra=extra,
        )
    if compare is not None and compare.execution_count is not None:
        data["compare"]["cell"] = int(compare.execution_count)
    ids = _cell_ids()
    if report.execution_count is not None and report.cell_id:
        ids[report.execution_count] = report.cell_id
    used = set(data["frames"]["cell"])
    cells = {str(c): ids[c] for c in sorted(used) if c in ids}
    if cells:
        data["cells"] = cells
    return data


def flamegraph_bundle(report, view: str = "peak", **options) -> dict:
    """The MIME bundle: the payload, an SVG flamegraph in HTML, a text summary."""
    data = flamegraph_payload(report, view, **options)
    return {payload_mod.MIME: data, "text/html": svg_html(data), "text/plain": summary(data)}


class Flamegraph:
    """Displays as a report's flamegraph (the payload is built when shown)."""

    def __init__(self, report, view: str = "peak", **options):
        if view not in VIEWS:
            raise ValueError(f"view must be one of {', '.join(VIEWS)}, not {view!r}")
        self.report = report
        self.view = view
        self.options = options

    def _repr_mimebundle_(self, include=None, exclude=None):
        return flamegraph_bundle(self.report, self.view, **self.options)

    def __repr__(self) -> str:
        return f"<cyscope flamegraph of {_title(self.report, self.view)}>"


def report_of_cell(execution_count: int):
    """The history's report of cell [N] (the last run with that number)."""
    from ..memory import history

    for report in reversed(history()):
        if report.execution_count == execution_count:
            return report
    raise LookupError(
        f"no memory report for cell [{execution_count}]: the kernel keeps the last cells it ran "
        "with cyscope loaded (see cyscope.memory.history())"
    )


def cell_flamegraph(execution_count: int, view: str = "peak", **options) -> Flamegraph:
    """Cell [N]'s flamegraph from the kernel's history, without running it again."""
    return Flamegraph(report_of_cell(int(execution_count)), view, **options)
