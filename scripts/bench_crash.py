"""Crash catcher numbers, measured in one run (a noisy shared machine: ratios and spreads, no gates).

1. Time to the report: a real kernel crashes N times in a %%cython helper; for each, the
   time from the signal (the report's ``time_unix_ms``, taken in the handler) to the
   report file's last write, with gdb and without it (``CYSCOPE_GDB=none``). Budget: 5 s.
2. What a kernel that never crashes pays: the handler costs nothing until a signal
   arrives; the catcher's per-cell bookkeeping (pre/post_run_cell) is timed directly and
   as a share of an empty cell in a real IPython shell.

    .venv/bin/python scripts/bench_crash.py [--crashes 5]
    /usr/bin/python3 scripts/bench_crash.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python-shim"))
sys.path.insert(0, str(ROOT / "test" / "python"))

CELL = """%%cython
cdef int read_at(int *p, int n) noexcept nogil:
    return p[n]
ctypedef int (*reader_t)(int *, int) noexcept nogil
cdef reader_t reader = read_at
def null_deref(int n, size_t address=0):
    return reader(<int *>address, n)
"""


def time_to_report(crashes: int, gdb: bool) -> list[float]:
    """Seconds from the signal to the report on disk.

    With gdb: gdb's write of crash-<id>.json (nothing rewrites a gdb report). Without:
    the kernel writes the report and then dies; the test side sees the death (polling
    every 50 ms) and the time from the request to it bounds the report's delay.
    """
    from test_crash_kernel import CrashKernel

    tmp = Path(tempfile.mkdtemp(prefix="cyscope-bench-crash-"))
    # The real time limit (CrashKernel gives tests a generous one).
    kernel = CrashKernel(tmp, env={"CYSCOPE_CRASH_TIMEOUT": "4"} if gdb else {"CYSCOPE_GDB": "none"})
    latencies = []
    try:
        for _ in range(crashes):
            kernel.run(CELL)
            died = kernel.crash("null_deref(3)")
            report = kernel.reports()[-1]
            assert report["tracer"]["status"] == ("ok" if gdb else "missing"), report["tracer"]
            if gdb:
                folder = tmp / "crash" / report["kernel"]["key"]
                written = (folder / f"crash-{report['id']}.json").stat().st_mtime
                latencies.append(written - report["time_unix_ms"] / 1000)
            else:
                latencies.append(died)
    finally:
        kernel.close()
    return latencies


def per_cell_cost(cells: int) -> tuple[float, float, float]:
    """(µs per cell of the catcher's bookkeeping, µs per empty cell without, with it)."""
    os.environ.setdefault("CYSCOPE_CRASH_DIR", tempfile.mkdtemp(prefix="cyscope-bench-crash-"))
    from cyscope import crash
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython()
    catcher = crash.attach(ip)
    assert catcher is not None, "the catcher did not install"
    start = time.perf_counter()
    for i in range(cells):
        catcher.cell_started(i, "cell-id", "pass")
        catcher.cell_finished(i, "cell-id")
    bookkeeping = (time.perf_counter() - start) / cells * 1e6

    def empty_cells() -> float:
        t0 = time.perf_counter()
        for _ in range(cells):
            ip.run_cell("pass", store_history=True)
        return (time.perf_counter() - t0) / cells * 1e6

    with_catcher = min(empty_cells() for _ in range(3))
    crash.detach(ip)
    without = min(empty_cells() for _ in range(3))
    return bookkeeping, without, with_catcher


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crashes", type=int, default=5)
    parser.add_argument("--cells", type=int, default=2000)
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]} ({sys.executable})")
    with_gdb = time_to_report(args.crashes, gdb=True)
    print(
        f"signal -> gdb's report written: median {statistics.median(with_gdb):.2f} s, "
        f"max {max(with_gdb):.2f} s over {len(with_gdb)} crashes (budget 5 s: "
        f"{max(with_gdb) / 5:.0%} of it at worst)"
    )
    without_gdb = time_to_report(args.crashes, gdb=False)
    print(
        f"without gdb, request -> kernel dead (report written before): median "
        f"{statistics.median(without_gdb):.2f} s, max {max(without_gdb):.2f} s"
    )
    bookkeeping, without, with_catcher = per_cell_cost(args.cells)
    print(
        f"per cell: catcher bookkeeping {bookkeeping:.1f} µs; empty cell {without:.0f} µs without the catcher, "
        f"{with_catcher:.0f} µs with it (ratio {with_catcher / without:.3f})"
    )
    print(
        json.dumps(
            {"gdb_s": with_gdb, "no_gdb_s": without_gdb, "bookkeeping_us": bookkeeping, "ratio": with_catcher / without}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
