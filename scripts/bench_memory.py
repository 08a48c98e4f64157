"""Benchmark: cost of memory tracking, cyscope vs tracemalloc vs memray.

Run: .venv/bin/python scripts/bench_memory.py [--reps 7] [--markdown docs/memory-benchmarks.md]

For each workload and tracker, prints tracked time / untracked time of the
workload alone (tracker start/stop excluded), from --reps interleaved
(untracked, tracked) pairs, best of each side. Workloads:
  (a) Cython: 1,000,000 malloc/free pairs of 64 B (pointer escapes)
  (b) Cython: 10 rounds of 100,000 live 64 B blocks, then freed
  (c) Python: list of 1,000,000 small dicts
  (d) numpy: 10,000 x 3 arrays of 1000 float64
The Cython workloads are compiled with Cython's cythonize in a private temp
dir. memray is optional (skipped with a note when not installed).
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


def trackers(tmp: Path):
    out = [
        ("cyscope default", lambda: memory.track()),
        ("cyscope native", lambda: memory.track(native=True)),
        ("cyscope exact", lambda: memory.track(exact=True)),
        ("cyscope exact+native", lambda: memory.track(exact=True, native=True)),
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--markdown", help="write the table into this file (between markers)")
    args = ap.parse_args()
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
        path = Path(args.markdown)
        content = path.read_text() if path.exists() else ""
        begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
        block = f"{begin}\n{env}\n\n{text}\n{end}"
        if begin in content and end in content:
            content = content[: content.index(begin)] + block + content[content.index(end) + len(end) :]
        else:
            content += "\n" + block + "\n"
        path.write_text(content)
    return 0


if __name__ == "__main__":
    sys.exit(main())
