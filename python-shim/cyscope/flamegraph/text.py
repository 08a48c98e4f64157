"""The text/plain form of a flamegraph payload: where the bytes are, in a few lines."""

from __future__ import annotations

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB' (the memory panel's style)."""
    sign = "-" if n < 0 else ""
    n = abs(float(n))
    unit = 0
    while n >= 1024 and unit < len(_UNITS) - 1:
        n /= 1024
        unit += 1
    return f"{sign}{int(n)} B" if unit == 0 else f"{sign}{n:.1f} {_UNITS[unit]}"


def share(part: float, total: float) -> str:
    return f"{100.0 * part / total:.1f}%" if total > 0 else "-"


def top_lines(data: dict, limit: int = 10) -> list[tuple[str, int, int]]:
    """(frame label, self bytes, allocations) of the frames that hold the
    most bytes themselves, summed over every place they appear."""
    strings = data["strings"]
    frames, nodes = data["frames"], data["nodes"]
    kinds = data["kinds"]
    levels, counts, own_bytes, frame_of = nodes["level"], nodes["count"], nodes["self"], nodes["frame"]
    # A node's own allocations: its count less its children's.
    own_count = list(counts)
    last_at: list[int] = []  # the latest node seen at each level: the parent of the next one below
    for i, level in enumerate(levels):
        del last_at[level:]
        if level:
            own_count[last_at[level - 1]] -= counts[i]
        last_at.append(i)
    by_frame: dict[int, list[int]] = {}
    for i, own in enumerate(own_bytes):
        if own > 0:
            entry = by_frame.setdefault(frame_of[i], [0, 0])
            entry[0] += own
            entry[1] += max(0, own_count[i])
    rows = sorted(by_frame.items(), key=lambda kv: -kv[1][0])[:limit]
    out = []
    for f, (own, count) in rows:
        label = strings[frames["label"][f]]
        if kinds[frames["kind"][f]] == "root":
            label = "(outside any frame)"
        out.append((label, own, count))
    return out


def summary(data: dict, limit: int = 10) -> str:
    """Title, total and the top lines by their own bytes."""
    total = data["total"]
    lines = [f"cyscope flamegraph: {data['title']}: {format_bytes(total)}"]
    totals = data.get("totals")
    if totals:
        lines.append(
            f"  peak {format_bytes(totals['peak_bytes'])}, leaked {format_bytes(totals['leaked_bytes'])}, "
            f"allocated {format_bytes(totals['allocated_bytes'])} in {totals['allocations']} allocations"
        )
    if "compare" in data:
        lines.append(f"  compared with {data['compare']['title']}: {format_bytes(data['compare']['total'])}")
    rows = top_lines(data, limit)
    if rows:
        lines.append("  top lines (own bytes):")
        width = max(len(format_bytes(own)) for _, own, _ in rows)
        for label, own, _count in rows:
            lines.append(f"    {format_bytes(own):>{width}}  {share(own, total):>6}  {label}")
    else:
        lines.append("  (no stacks recorded)")
    return "\n".join(lines)
