"""Benchmark: building the flamegraph payload of a report with many distinct stacks.

Run: .venv/bin/python scripts/bench_flamegraph_payload.py [--reps 5] [--stacks 1000 10000 100000]

A recursive Python function whose every level calls on from one of ten
lines allocates one 600-byte ``bytes`` at each leaf (one block: header and
data together), in exact mode, so a report holds 10^depth distinct real
stacks (no synthetic data). ``--bytearray`` allocates a ``bytearray``
instead: an object and its buffer, two stacks a leaf. The tracker keeps at
most 5,000 stacks per view of a report; this benchmark lifts that cap to
measure 100,000.

Prints, per size: the first build (frames resolved, trimmed and named,
then the payload), the payload alone once the frames are known (what every
later flamegraph of the report costs), JSON encoding, the SVG and text
fallbacks, node count and encoded size. Best of --reps.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python-shim"))

from cyscope import memory  # noqa: E402
from cyscope.flamegraph import flamegraph_payload  # noqa: E402
from cyscope.flamegraph.svg import svg_html  # noqa: E402
from cyscope.flamegraph.text import summary  # noqa: E402
from cyscope.memory import _report  # noqa: E402

KEEP: list = []
LEAF = bytes


def level(depth: int, path: int) -> None:
    if depth == 0:
        KEEP.append(LEAF(600))  # above pymalloc's 512 B: a malloc, recorded in exact mode
        return
    branch, path = path % 10, path // 10
    if branch == 0:
        level(depth - 1, path)
    elif branch == 1:
        level(depth - 1, path)
    elif branch == 2:
        level(depth - 1, path)
    elif branch == 3:
        level(depth - 1, path)
    elif branch == 4:
        level(depth - 1, path)
    elif branch == 5:
        level(depth - 1, path)
    elif branch == 6:
        level(depth - 1, path)
    elif branch == 7:
        level(depth - 1, path)
    elif branch == 8:
        level(depth - 1, path)
    else:
        level(depth - 1, path)


def report_with(stacks: int):
    depth = len(str(stacks)) - 1
    assert 10**depth == stacks, "--stacks must be powers of ten"
    uncapped = _report.cap_stacks
    _report.cap_stacks = lambda stats, limit=None: stats
    try:
        KEEP.clear()
        with memory.track(exact=True) as report:
            for path in range(stacks):
                level(depth, path)
    finally:
        _report.cap_stacks = uncapped
    return report


def best(reps: int, fn) -> tuple[float, object]:
    times, result = [], None
    for _ in range(reps):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1000, result


def forget_frames() -> None:
    """As if no stack had been resolved yet (new cells, new code)."""
    from cyscope.memory import _lib, _symbols

    for cache in (_report._resolved, _report._shown_cache, _report._shown_memo, _report._py_frames):
        cache.clear()
    _symbols._code_cache.clear()
    _symbols._native_cache.clear()
    _lib.forget_frame_notes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--stacks", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--bytearray", action="store_true", help="two stacks a leaf: an object and its buffer")
    args = parser.parse_args()
    global LEAF
    LEAF = bytearray if args.bytearray else bytes
    if not memory.available():
        sys.exit(f"the native tracker is not available: {memory.unavailable_reason()}")
    loop_ms, _ = best(5, lambda: sum(range(1_000_000)))
    print(f"Python {sys.version.split()[0]}; sum(range(10**6)) takes {loop_ms:.1f} ms here (machine speed)")
    print(
        "| stacks in the report | nodes | first build (resolve + payload) | payload (frames known) "
        "| JSON encode | JSON size | SVG + text |"
    )
    print("|---|---|---|---|---|---|---|")
    for stacks in args.stacks:
        report = report_with(stacks)
        assert len(report.peak_stacks) >= stacks * (2 if args.bytearray else 1) * 0.99, len(report.peak_stacks)

        def cold(report=report):
            forget_frames()
            return flamegraph_payload(report)

        cold_ms, _ = best(args.reps, cold)
        warm_ms, data = best(args.reps, lambda report=report: flamegraph_payload(report))
        encode_ms, encoded = best(args.reps, lambda data=data: json.dumps(data, separators=(",", ":")))
        fallback_ms, _ = best(args.reps, lambda data=data: (svg_html(data), summary(data)))
        print(
            f"| {len(report.peak_stacks):,} ({stacks:,} leaves) | {len(data['nodes']['level']):,} "
            f"| {cold_ms:.0f} ms | {warm_ms:.0f} ms "
            f"| {encode_ms:.0f} ms | {len(encoded) / 1e6:.2f} MB | {fallback_ms:.0f} ms |"
        )
        KEEP.clear()


if __name__ == "__main__":
    main()
