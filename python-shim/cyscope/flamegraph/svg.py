"""The text/html form of a flamegraph payload: one self-contained SVG.

For every frontend without cyscope's renderer and for exported HTML
(nbconvert): no script, nothing fetched, a tooltip per box as its
``<title>``. Only boxes at least half a pixel wide are drawn (a few
thousand at most), so the HTML stays small whatever the payload holds.
"""

from __future__ import annotations

from html import escape

from .text import format_bytes, share

WIDTH = 1200
ROW = 18
HEADER = 24
FONT_PX = 11
CHAR_PX = 6.6  # average advance of an 11 px sans-serif character
MIN_BOX_PX = 0.5
MAX_BOXES = 6000

# Light fills with dark text read on any page background.
FILLS = {
    "root": "#b0bec5",
    "cell": "#64b5f6",
    "python": "#a5d6f7",
    "cython": "#ffcc80",
    "native": "#d7dde1",
    "other": "#eeeeee",
}
GROWTH = ("#e57373", "#ffcdd2")  # strong, faint
SHRINK = ("#64b5f6", "#d0e7fb")
STROKE = "#ffffff"


def _diff_fill(value: int, base: int) -> str:
    if value == base:
        return FILLS["native"]
    bigger = max(value, base)
    strong = bigger and abs(value - base) / bigger >= 0.25
    pair = GROWTH if value > base else SHRINK
    return pair[0] if strong else pair[1]


def _fit(label: str, px: float) -> str:
    room = int((px - 6) / CHAR_PX)
    if room < 3:
        return ""
    return label if len(label) <= room else label[: room - 1] + "…"


def svg_html(data: dict) -> str:
    """The payload drawn as an icicle (the root on top), in a <div>."""
    strings = data["strings"]
    frames, nodes = data["frames"], data["nodes"]
    kinds = data["kinds"]
    levels, values, selfs, counts, frame_of = (
        nodes["level"],
        nodes["value"],
        nodes["self"],
        nodes["count"],
        nodes["frame"],
    )
    bases = nodes.get("base")
    total = max(values[0] if values else 0, 1)
    scale = WIDTH / total
    min_value = MIN_BOX_PX / scale
    # Keep the drawing small: raise the minimum width if too many boxes pass it.
    wide = sum(1 for v in values if v >= min_value)
    if wide > MAX_BOXES:
        min_value = sorted(values, reverse=True)[MAX_BOXES]
    boxes: list[str] = []
    x_at: list[float] = [0.0]  # where the next child of a node at each level starts
    skip_below = None  # levels below this belong to a subtree too small to draw
    deepest = 0
    for i, level in enumerate(levels):
        if skip_below is not None:
            if level > skip_below:
                continue
            skip_below = None
        del x_at[level + 1 :]
        x = x_at[level] if level < len(x_at) else x_at[-1]
        value = values[i]
        x_at[level] = x + value * scale
        x_at.append(x)
        if value < min_value:
            skip_below = level
            continue
        deepest = max(deepest, level)
        f = frame_of[i]
        kind = kinds[frames["kind"][f]] if frames["kind"][f] < len(kinds) else "native"
        label = strings[frames["label"][f]]
        px = value * scale
        tip = f"{label}\n{format_bytes(value)} ({share(value, total)}), self {format_bytes(selfs[i])}"
        tip += f", {counts[i]} allocation{'s' if counts[i] != 1 else ''}"
        fill = FILLS.get(kind, FILLS["native"])
        if bases is not None:
            fill = _diff_fill(value, bases[i])
            tip += f"\nwas {format_bytes(bases[i])} in {data.get('compare', {}).get('title', 'the baseline')}"
        y = HEADER + level * ROW
        text = _fit(label, px)
        parts = [
            f"<g><title>{escape(tip)}</title>",
            f'<rect x="{x:.2f}" y="{y}" width="{px:.2f}" height="{ROW - 1}" fill="{fill}" stroke="{STROKE}"'
            ' stroke-width="0.5"/>',
        ]
        if text:
            parts.append(f'<text x="{x + 3:.2f}" y="{y + ROW - 5}">{escape(text)}</text>')
        parts.append("</g>")
        boxes.append("".join(parts))
    height = HEADER + (deepest + 1) * ROW + 4
    heading = f"{data['title']}: {format_bytes(values[0] if values else 0)}"
    if "compare" in data:
        heading += f", compared with {data['compare']['title']} (red: grew, blue: shrank)"
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="cyscope-flamegraph-svg" width="100%" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(heading)}" '
        f'font-family="sans-serif" font-size="{FONT_PX}" fill="#000">'
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>'
        f'<text x="4" y="16" font-size="12" font-weight="bold">{escape(heading)}</text>' + "".join(boxes) + "</svg>"
    )
    return f'<div class="cyscope-flamegraph-html" style="max-width:{WIDTH}px">{svg}</div>'
