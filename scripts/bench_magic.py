#!/usr/bin/env python3
"""Benchmark cyscope's %%cython against Cython's own magic, in one process and one IPython shell.

Measures, interleaving the two magics trial by trial (medians, and the ratio of the minima):
  cold compile    a cell never seen before (new code each trial)
  edit-and-rerun  a trivially edited version of the cell just run
  cache hit       the identical cell again
  runtime         the built code itself: a numeric loop, a memoryview loop, 10^5 calls
                  (with Cython 3.1+ also cyscope's build against its own build of the cell
                  with a self-contained copy of the utility code: "vs own copy")

Both magics are called directly (``CyscopeCythonMagics.cython`` and
``Cython.Build.IpythonMagic.CythonMagics.cython``), each with its own fresh cache folder.
cyscope's shared utility module (Cython 3.1+) is built in the background by the first cell
(timed once, empty caches) and waited for before the trials, as a kernel has it after its
first few seconds.

By default the script then runs itself again on Debian's /usr/bin/python3 (Cython 0.29),
so one run prints both tables (``--this-python-only`` skips that):

    .venv/bin/python scripts/bench_magic.py [--trials 11] [--hits 200]      # or: npm run bench:magic
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python-shim"))
DEBIAN_PYTHON = "/usr/bin/python3"

CELL = """\
def tri(int n):
    cdef int i, s = 0
    for i in range(n):
        s += i
    return s + {k}
"""

RUNTIME_CELL = """\
def loop(long n):
    cdef long i, s = 0
    for i in range(n):
        s += i % 7
    return s
def vsum(double[::1] v):
    cdef Py_ssize_t i
    cdef double s = 0
    for i in range(v.shape[0]):
        s += v[i]
    return s
def call_me(int x):
    return x + 1
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=11, help="cold and edit trials per magic (default 11)")
    parser.add_argument("--hits", type=int, default=200, help="cache-hit calls per magic (default 200)")
    parser.add_argument("--this-python-only", action="store_true", help="do not run again on Debian's python3")
    args = parser.parse_args()

    ok = measure(args)
    if (
        not args.this_python_only
        and os.path.exists(DEBIAN_PYTHON)
        and os.path.realpath(sys.executable) != os.path.realpath(DEBIAN_PYTHON)
    ):
        print()
        sys.stdout.flush()
        argv = [DEBIAN_PYTHON, __file__, "--trials", str(args.trials), "--hits", str(args.hits), "--this-python-only"]
        ok &= subprocess.run(argv, check=False).returncode == 0
    return 0 if ok else 1


def measure(args) -> bool:
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

    from cyscope.cython import utility
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

    # warm-up: imports, distutils and compiler caches, cyscope's shared utility module.
    # Timed once, as the very first cell of a new cache (not a goal: it happens once per
    # Cython, Python and compiler settings, not once per kernel).
    first = {"Cython": [timed(magics["Cython"], fresh_cell())]}  # before cyscope's background build starts
    started = time.perf_counter()
    first["cyscope"] = [timed(magics["cyscope"], fresh_cell())]
    utility.wait()  # the shared module, started in the background by cyscope's first cell
    background = time.perf_counter() - started

    cold = {k: [] for k in magics}
    edit = {k: [] for k in magics}
    for trial in range(args.trials):
        order = list(magics.items()) if trial % 2 == 0 else list(magics.items())[::-1]
        for name, fn in order:
            base = fresh_cell()
            cold[name].append(timed(fn, base))
            edit[name].append(timed(fn, base.replace("s + 0", "s + 1")))

    hit = {name: [] for name in magics}
    cells = {name: fresh_cell() for name in magics}
    for name, fn in magics.items():
        fn("", cells[name])
    for i in range(args.hits):
        order = list(magics.items()) if i % 2 == 0 else list(magics.items())[::-1]
        for name, fn in order:
            hit[name].append(timed(fn, cells[name]))

    runtime = runtime_ratios(shell, magics, tag)

    sharing = utility.available()
    goal = 0.70 if sharing else 1.05
    print(
        f"Python {sys.version.split()[0]} ({sys.executable}), Cython {Cython.__version__}, "
        f"{os.cpu_count()} CPUs; shared utility module: {'yes' if sharing else 'no (Cython < 3.1)'}; "
        f"medians of {args.trials} interleaved trials ({args.hits} for cache hits)"
    )
    print(f"{'measure':<16}{'cyscope':>12}{'Cython':>12}{'ratio':>9}{'min ratio':>11}")
    ok = True
    for label, data, limit in (("cold compile", cold, goal), ("edit-and-rerun", edit, goal), ("cache hit", hit, 1.0)):
        a, b = statistics.median(data["cyscope"]), statistics.median(data["Cython"])
        ratio = a / b
        min_ratio = min(data["cyscope"]) / min(data["Cython"])
        ok &= ratio <= limit
        print(f"{label:<16}{a * 1e3:>10.2f}ms{b * 1e3:>10.2f}ms{ratio:>9.3f}{min_ratio:>11.3f}  (goal <= {limit:.2f})")
    a, b = first["cyscope"][0], first["Cython"][0]
    print(f"{'first cell ever':<16}{a * 1e3:>10.2f}ms{b * 1e3:>10.2f}ms{a / b:>9.3f}{'':>11}  (empty caches, one run)")
    if sharing:
        print(f"{'':<16}(the shared utility module was ready {background:.1f} s after that first cell began)")
    for label, (a, b, own) in runtime.items():
        print(f"{label:<16}{a * 1e3:>10.2f}ms{b * 1e3:>10.2f}ms{a / b:>9.3f}{'':>11}  (same speed: ~1.00)")
        if sharing:  # the same build with and without the shared module: what sharing itself costs
            row = "  vs own copy"
            print(f"{row:<16}{a * 1e3:>10.2f}ms{own * 1e3:>10.2f}ms{a / own:>9.3f}{'':>11}  (same speed: ~1.00)")
    try:
        load = os.getloadavg()[0]
        print(f"load average during the run: {load:.2f} on {os.cpu_count()} CPUs (a busy machine blurs compile times)")
    except OSError:
        pass
    return ok


def runtime_ratios(shell, magics, tag) -> dict:
    """The built code's speed: the same cell built by each magic, timed call for call (minimum of 15)."""
    import array

    builds = dict(magics)
    builds["own copy"] = magics["cyscope"]  # cyscope again, with the cell's own utility code
    funcs = {}
    for name, fn in builds.items():
        if name == "own copy":
            os.environ["CYSCOPE_SHARED_UTILITY"] = "0"
        fn("", f"# runtime {tag} {name}\n" + RUNTIME_CELL)
        os.environ.pop("CYSCOPE_SHARED_UTILITY", None)
        funcs[name] = {k: shell.user_ns[k] for k in ("loop", "vsum", "call_me")}
    values = array.array("d", range(1_000_000))

    def calls(f):
        for i in range(100_000):
            f(i)

    work = {
        "runtime: loop": lambda f: f["loop"](10_000_000),
        "runtime: memview": lambda f: [f["vsum"](values) for _ in range(5)],
        "runtime: calls": lambda f: calls(f["call_me"]),
    }
    best = {label: {name: float("inf") for name in builds} for label in work}
    for rep in range(15):
        for label, job in work.items():
            for name in list(builds) if rep % 2 == 0 else list(builds)[::-1]:
                t = time.perf_counter()
                job(funcs[name])
                best[label][name] = min(best[label][name], time.perf_counter() - t)
    return {label: (b["cyscope"], b["Cython"], b["own copy"]) for label, b in best.items()}


if __name__ == "__main__":
    sys.exit(main())
