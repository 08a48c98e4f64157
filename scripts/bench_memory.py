"""Benchmark: cost of memory tracking, cyscope vs tracemalloc vs memray.

Run: .venv/bin/python scripts/bench_memory.py [--reps 7] [--markdown docs/memory-benchmarks.md]

For each workload and tracker, prints tracked time / untracked time of the
workload alone (tracker start/stop excluded), from --reps interleaved
(untracked, tracked) pairs, best of each side. cyscope's modes count Python
objects one by one; "objects by arena" is the default mode with that
switched off (CYSCOPE_PYTHON_OBJECTS=0), for reference. Workloads:
  (a) Cython: 1,000,000 malloc/free pairs of 64 B (pointer escapes)
  (b) Cython: 10 rounds of 100,000 live 64 B blocks, then freed
  (c) Python: list of 1,000,000 small dicts
  (d) numpy: 10,000 x 3 arrays of 1000 float64
The Cython workloads are compiled with Cython's cythonize in a private temp
dir. memray is optional (skipped with a note when not installed).

Then, in a real IPython shell with cyscope loaded as a kernel loads it, the
cost of the per-cell work at cell end (post_run_cell: the monitor closing
the cell's record and the tracker its region) at cell 100 and at cell
--cells (10,000), and the tracker's own memory at both: per-cell work must
follow what the cell did, not how long the kernel has run.

Before that, the figure a block making 1,000 small dicts shows (net bytes)
in cyscope's default and exact modes, beside tracemalloc's for the same
code: objects are counted one by one, so they must agree within 5 %.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import os
import platform
import subprocess
import sys
import sysconfig
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python-shim"))

from cyscope import memory  # noqa: E402

WORKLOAD_PYX = '''
from libc.stdlib cimport malloc, free

cdef extern from *:
    """
    static void* volatile bench_sink;
    static void bench_escape(void* p) { bench_sink = p; }
    """
    void bench_escape(void* p) nogil

def pairs(int n):
    cdef int i
    cdef void* p
    for i in range(n):
        p = malloc(64)
        bench_escape(p)
        free(p)

def rounds(int rounds, int n):
    cdef int r, i
    cdef void** ptrs = <void**>malloc(n * sizeof(void*))
    for r in range(rounds):
        for i in range(n):
            ptrs[i] = malloc(64)
            bench_escape(ptrs[i])
        for i in range(n):
            free(ptrs[i])
    free(ptrs)
'''


def build_workloads(tmp: Path):
    from Cython.Build import cythonize

    pyx = tmp / "cyscope_bench_workloads.pyx"
    pyx.write_text(WORKLOAD_PYX)
    cythonize([str(pyx)], quiet=True, compiler_directives={"language_level": 3})
    out = tmp / ("cyscope_bench_workloads" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-g",
            "-O2",
            f"-I{sysconfig.get_paths()['include']}",
            str(tmp / "cyscope_bench_workloads.c"),
            "-o",
            str(out),
        ],
        check=True,
    )
    spec = importlib.util.spec_from_file_location("cyscope_bench_workloads", out)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def workloads(mod):
    import numpy as np

    def a():
        mod.pairs(1_000_000)

    def b():
        mod.rounds(10, 100_000)

    def c():
        return [{"a": i} for i in range(1_000_000)]

    def d():
        for _ in range(10_000):
            x = np.zeros(1000)
            y = np.ones(1000)
            z = x + y
        return z

    return [
        ("(a) Cython: 1,000,000 malloc/free pairs of 64 B", a),
        ("(b) Cython: 10 rounds of 100,000 live 64 B blocks", b),
        ("(c) Python: list of 1,000,000 small dicts", c),
        ("(d) numpy: 10,000 x 3 arrays of 1000 float64", d),
    ]


@contextlib.contextmanager
def _objects_by_arena():
    """cyscope's default mode as before objects were counted one by one (for reference)."""
    os.environ["CYSCOPE_PYTHON_OBJECTS"] = "0"
    try:
        with memory.track():
            yield
    finally:
        del os.environ["CYSCOPE_PYTHON_OBJECTS"]


def trackers(tmp: Path):
    out = [
        ("cyscope default", lambda: memory.track()),
        ("cyscope native", lambda: memory.track(native=True)),
        ("cyscope exact", lambda: memory.track(exact=True)),
        ("cyscope exact+native", lambda: memory.track(exact=True, native=True)),
        ("cyscope default, objects by arena", _objects_by_arena),
        ("tracemalloc", _tracemalloc),
    ]
    try:
        import memray  # noqa: F401

        for label, kwargs in (
            ("memray default", {}),
            ("memray native", {"native_traces": True}),
            ("memray python allocators", {"trace_python_allocators": True}),
        ):
            out.append((label, _memray_factory(tmp, kwargs)))
    except ImportError:
        print("memray not installed: its columns are skipped", file=sys.stderr)
    return out


@contextlib.contextmanager
def _tracemalloc():
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def _memray_factory(tmp: Path, kwargs):
    counter = [0]

    @contextlib.contextmanager
    def run():
        import memray

        counter[0] += 1
        path = tmp / f"memray-{os.getpid()}-{counter[0]}.bin"
        with memray.Tracker(str(path), **kwargs):
            yield
        path.unlink(missing_ok=True)

    return run


def timed(fn) -> float:
    t0 = time.perf_counter()
    result = fn()
    dt = time.perf_counter() - t0
    del result
    return dt


def measure(fn, tracker, reps: int) -> tuple[float, float]:
    """Best untracked seconds and best-tracked / best-untracked.

    Interleaved pairs, best of `reps` on each side: on a shared 2-core
    machine other processes only ever add time, so the minimum is the
    least noisy estimate of each side's own cost.
    """
    base, tracked = [], []
    fn()  # warm-up
    for _ in range(reps):
        gc.collect()
        base.append(timed(fn))
        gc.collect()
        with tracker():
            tracked.append(timed(fn))
    return min(base), min(tracked) / min(base)


# A cell of a long session: new code each time (so new code objects and,
# when sampled, new stacks), some objects kept, some freed, now and then a
# larger block kept.
CELL = "x{i} = [{{'a': j, 'b': str(j)}} for j in range(200)]\ny{i} = bytearray(300_000) if {i} % 50 == 0 else None\n"


def bench_cells(cells: int, window: int = 100) -> dict:
    """post_run_cell cost (ms, median of `window` cells) at cell ~100 and at cell `cells`."""
    import statistics

    from cyscope.extension import current_state
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython()
    ip.run_line_magic("load_ext", "cyscope")
    state = current_state(ip)
    if state.tracker is None:
        raise SystemExit("the native tracker did not attach")
    timings: list[float] = []
    original = state.post_run_cell

    def timed_post_run_cell(result):
        t0 = time.perf_counter()
        original(result)
        timings.append((time.perf_counter() - t0) * 1000.0)

    ip.events.unregister("post_run_cell", original)
    ip.events.register("post_run_cell", timed_post_run_cell)
    tracker_bytes = {}
    for i in range(cells):
        ip.run_cell(CELL.format(i=i), store_history=True)
        if i + 1 in (window + window // 2, cells):
            tracker_bytes[i + 1] = state.tracker.snapshot()["tracker_bytes"]
    early = statistics.median(timings[window // 2 : window + window // 2])
    late = statistics.median(timings[-window:])
    ip.events.unregister("post_run_cell", timed_post_run_cell)
    ip.events.register("post_run_cell", original)
    return {
        "early_ms": early,
        "late_ms": late,
        "ratio": late / early,
        "tracker_early": tracker_bytes[window + window // 2],
        "tracker_late": tracker_bytes[cells],
        "cells": cells,
    }


DICTS = "d = [{'a': i} for i in range(1000)]"


def dicts_figures(runs: int = 5) -> dict:
    """Net bytes of DICTS (median of `runs`) under tracemalloc and cyscope's modes."""
    import statistics

    def tracemalloc_once() -> int:
        ns = {}
        gc.collect()  # empty the free lists: the dicts come from the allocator
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            exec(DICTS, ns)
            return tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
            del ns

    def cyscope_once(exact: bool) -> int:
        ns = {}
        gc.collect()
        with memory.track(exact=exact) as report:
            exec(DICTS, ns)
        del ns
        return report.net_bytes

    out = {"tracemalloc": statistics.median(tracemalloc_once() for _ in range(runs))}
    out["cyscope default"] = statistics.median(cyscope_once(False) for _ in range(runs))
    out["cyscope exact"] = statistics.median(cyscope_once(True) for _ in range(runs))
    return out


def report_dicts(markdown: str | None = None) -> None:
    f = dicts_figures()
    ref = f["tracemalloc"]
    parts = [f"tracemalloc {ref:,.0f} B"] + [
        f"{k} {v:,.0f} B ({(v - ref) / ref * 100:+.1f} %)" for k, v in f.items() if k != "tracemalloc"
    ]
    text = "1,000 small dicts, net bytes (median of 5): " + ", ".join(parts)
    print()
    print(text)
    if markdown:
        write_block(markdown, "dicts", text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--markdown", help="write the table into this file (between markers)")
    ap.add_argument("--cells", type=int, default=10_000, help="cells of the per-cell cost run (0: skip it)")
    ap.add_argument("--only-cells", action="store_true", help="run only the per-cell cost run")
    args = ap.parse_args()
    if args.only_cells:
        return report_cells(args)
    if not memory.available():
        print(f"cyscope native library unavailable: {memory.unavailable_reason()}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="cyscope-bench-") as tmpdir:
        tmp = Path(tmpdir)
        mod = build_workloads(tmp)
        wls = workloads(mod)
        trs = trackers(tmp)
        rows = []
        for wname, fn in wls:
            row = {"workload": wname}
            for tname, tr in trs:
                base, ratio = measure(fn, tr, args.reps)
                row.setdefault("untracked_ms", base * 1000)
                row[tname] = ratio
                print(f"{wname:52s} {tname:26s} {ratio:6.2f}x  (untracked {base * 1000:.1f} ms)", flush=True)
            rows.append(row)
    names = [t for t, _ in trs]
    table = ["| workload | untracked | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for r in rows:
        cells = [f"{r[n]:.2f}x" for n in names]
        table.append(f"| {r['workload']} | {r['untracked_ms']:.1f} ms | " + " | ".join(cells) + " |")
    env = (
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores, "
        f"best of {args.reps} interleaved pairs"
    )
    text = "\n".join(table)
    print()
    print(env)
    print(text)
    if args.markdown:
        write_block(args.markdown, "bench", f"{env}\n\n{text}")
    report_dicts(args.markdown)
    return report_cells(args) if args.cells else 0


def report_cells(args) -> int:
    r = bench_cells(args.cells)
    text = (
        f"post_run_cell at cell 100: {r['early_ms']:.3f} ms, at cell {r['cells']:,}: {r['late_ms']:.3f} ms "
        f"(ratio {r['ratio']:.2f}; medians of 100 cells)\n"
        f"tracker memory at cell 150: {r['tracker_early'] / 1024:.0f} KiB, "
        f"at cell {r['cells']:,}: {r['tracker_late'] / 1024:.0f} KiB"
    )
    print()
    print(text)
    if args.markdown:
        write_block(args.markdown, "cells", text)
    return 0


def write_block(path_name: str, name: str, text: str) -> None:
    """Put `text` between <!-- name:begin --> and <!-- name:end --> in the file."""
    path = Path(path_name)
    content = path.read_text() if path.exists() else ""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{text}\n{end}"
    if begin in content and end in content:
        content = content[: content.index(begin)] + block + content[content.index(end) + len(end) :]
    else:
        content += "\n" + block + "\n"
    path.write_text(content)


if __name__ == "__main__":
    sys.exit(main())
