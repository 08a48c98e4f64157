"""Inline flamegraphs of where a cell's (or a ``track()`` block's) memory went.

A report's stacks become one MIME bundle: the versioned payload
(``application/vnd.cyscope.flamegraph.v1+json``, drawn by the JupyterLab
extension), a self-contained SVG in ``text/html`` for every other frontend
and for exported HTML, and a few lines of ``text/plain``. Nothing is built
until a flamegraph is asked for.

Public names:
    flamegraph_bundle(report, view="peak", ...)   the MIME bundle
    flamegraph_payload(report, view="peak", ...)  the payload alone
    Flamegraph(report, ...)                       displays as the bundle
    cell_flamegraph(execution_count, view)        a cell's, from the history
    history_export("speedscope" | "folded", view) every cell's stacks as one file
    register(ipython)                             %%memory and %memory_flamegraph
"""

from __future__ import annotations

from .exports import history_export
from .payload import MIME
from .report import Flamegraph, cell_flamegraph, flamegraph_bundle, flamegraph_payload


def register(ipython) -> None:
    from .magic import register as _register

    _register(ipython)


__all__ = [
    "MIME",
    "Flamegraph",
    "cell_flamegraph",
    "flamegraph_bundle",
    "flamegraph_payload",
    "history_export",
    "register",
]
