"""Cython's annotation (the "-a" HTML) as per-line data for the editor.

Both Cython 0.29 and 3.x write one ``<pre class="cython line score-N">`` per source line,
followed, when the line generated code, by ``<pre class='cython code score-N '>`` holding
that C code. ``N`` is the count of Python C-API interactions that Cython's HTML turns
into the yellow shading.
"""

from __future__ import annotations

import html as html_lib
import re

MIME_TYPE = "application/vnd.cyscope.annotation+json"
VERSION = 1

_LINE = re.compile(
    r"""<pre class=["']cython line score-(?P<score>\d+)["'][^>]*>(?P<src>.*?)</pre>"""
    r"""(?:\s*<pre class=["']cython code score-\d+\s*["'][^>]*>(?P<code>.*?)</pre>)?""",
    re.DOTALL,
)
_LINENO = re.compile(r"<span[^>]*>(\d+)</span>:")
_TAG = re.compile(r"<[^>]+>")


def _text(fragment: str) -> str:
    return html_lib.unescape(_TAG.sub("", fragment))


def parse_annotation_html(text: str) -> list[dict]:
    lines = []
    for m in _LINE.finditer(text):
        num = _LINENO.search(m.group("src"))
        if not num:
            continue
        code = _text(m.group("code") or "")
        lines.append({"line": int(num.group(1)), "score": int(m.group("score")), "code": code.rstrip("\n")})
    return lines


def clean_html(text: str) -> str:
    """Style and body content only (embeddable in an output), without the link to the C file."""
    styles = re.findall(r"<style.*?</style>", text, re.DOTALL)
    body = re.search(r"<body[^>]*>(.*)</body>", text, re.DOTALL)
    content = body.group(1) if body else text
    kept = [ln for ln in content.splitlines() if not re.match(r"\s*<p>Raw output: <a href=", ln)]
    return "\n".join([*styles, *kept])


def payload(lines: list[dict], module: str, cell_line_count: int) -> dict:
    by_line = {entry["line"]: entry for entry in lines}
    # One entry per cell line, the %%cython line (1) included, so index == line - 1.
    full = [by_line.get(n, {"line": n, "score": 0, "code": ""}) for n in range(1, cell_line_count + 1)]
    return {
        "v": VERSION,
        "module": module,
        "max_score": max((e["score"] for e in full), default=0),
        "lines": full,
    }


def bundle(data: dict, html_text: str) -> dict:
    scored = sum(1 for e in data["lines"] if e["score"])
    return {
        MIME_TYPE: data,
        "text/html": clean_html(html_text),
        "text/plain": f"<Cython annotation of {data['module']}: {len(data['lines'])} lines, "
        f"{scored} with Python interaction>",
    }
