#!/usr/bin/env python3
"""Benchmark cyscope's %%cython against Cython's own magic, in one process and one IPython shell.

Measures, interleaving the two magics trial by trial (medians):
  cold compile   a cell never seen before (new code each trial)
  cache hit      the identical cell again
  edit-and-rerun a trivially edited version of the cell just run

Both magics are called directly (``CyscopeCythonMagics.cython`` and
``Cython.Build.IpythonMagic.CythonMagics.cython``), each with its own fresh cache folder.

    PYTHONPATH=python-shim .venv/bin/python scripts/bench_magic.py [--trials 7] [--hits 200]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python-shim"))

CELL = """\
def tri(int n):
    cdef int i, s = 0
    for i in range(n):
        s += i
    return s + {k}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=11, help="cold and edit trials per magic (default 11)")
    parser.add_argument("--hits", type=int, default=200, help="cache-hit calls per magic (default 200)")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="cyscope-bench-")
    os.environ["IPYTHONDIR"] = os.path.join(tmp, "ipython")
    os.environ["XDG_CACHE_HOME"] = os.path.join(tmp, "xdg")  # Cython's cache: get_ipython_cache_dir()/cython
    os.environ["CYSCOPE_CACHE_DIR"] = os.path.join(tmp, "cyscope")

    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import Cython
        from Cython.Build.IpythonMagic import CythonMagics

    from cyscope.cython.magic import CyscopeCythonMagics

    ours = CyscopeCythonMagics(shell)
    theirs = CythonMagics(shell)
    magics = {"cyscope": ours.cython, "Cython": theirs.cython}
    counter = iter(range(10**9))
    tag = str(time.time_ns())

    def fresh_cell() -> str:
        return f"# {tag} {next(counter)}\n" + CELL.format(k=0)

    def timed(fn, cell) -> float:
        t = time.perf_counter()
        fn("", cell)
        return time.perf_counter() - t

    # warm-up: imports, distutils and compiler caches, for both
    for fn in magics.values():
        timed(fn, fresh_cell())

    cold = {k: [] for k in magics}
    edit = {k: [] for k in magics}
    hit = {k: [] for k in magics}
    for trial in range(args.trials):
        order = list(magics.items()) if trial % 2 == 0 else list(magics.items())[::-1]
        for name, fn in order:
            base = fresh_cell()
            cold[name].append(timed(fn, base))
            edit[name].append(timed(fn, base.replace("s + 0", "s + 1")))
    return report(cold, edit, hit, magics, args, fresh_cell, timed, Cython.__version__)


def report(cold, edit, hit, magics, args, fresh_cell, timed, cython_version) -> int:
    # cache hits: one cell per magic, compiled once, then called args.hits times, interleaved
    cells = {name: fresh_cell() for name in magics}
    for name, fn in magics.items():
        fn("", cells[name])
    for name in magics:
        hit[name] = []
    for i in range(args.hits):
        order = list(magics.items()) if i % 2 == 0 else list(magics.items())[::-1]
        for name, fn in order:
            hit[name].append(timed(fn, cells[name]))

    def med(xs):
        return statistics.median(xs)

    print(
        f"Python {sys.version.split()[0]} ({sys.executable}), Cython {cython_version}, "
        f"{os.cpu_count()} CPUs; medians of {args.trials} interleaved trials ({args.hits} for cache hits)"
    )
    print(f"{'measure':<16}{'cyscope':>12}{'Cython':>12}{'ratio':>9}{'min ratio':>11}")
    ok = True
    for label, data, goal in (("cold compile", cold, 1.05), ("cache hit", hit, 1.0), ("edit-and-rerun", edit, 1.05)):
        a, b = med(data["cyscope"]), med(data["Cython"])
        ratio = a / b
        min_ratio = min(data["cyscope"]) / min(data["Cython"])
        ok &= ratio <= goal
        print(f"{label:<16}{a * 1e3:>10.2f}ms{b * 1e3:>10.2f}ms{ratio:>9.3f}{min_ratio:>11.3f}  (goal <= {goal:.2f})")
    try:
        load = os.getloadavg()[0]
        print(f"load average during the run: {load:.2f} on {os.cpu_count()} CPUs (a busy machine blurs compile times)")
    except OSError:
        pass
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
