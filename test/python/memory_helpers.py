"""Helpers for the memory tests: compile small Cython modules in a temp dir.

Cython's own cythonize writes the C file; gcc builds the extension directly
(no setuptools), with -g so the tracker can map call sites to .pyx lines.
The same code runs under Cython 3 (.venv) and Cython 0.29 (Debian python3).
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import os
import subprocess
import sys
import sysconfig
import textwrap
import threading
from pathlib import Path

# Keeps pointers alive from the compiler's point of view: gcc would otherwise
# delete a malloc/free pair whose pointer does not escape.
ESCAPE = '''
cdef extern from *:
    """
    static void* volatile cyscope_sink;
    static void cyscope_escape(void* p) { cyscope_sink = p; }
    """
    void cyscope_escape(void* p) nogil
'''

# Net and peak are process-wide: while a tracked block runs, another thread or
# the cyclic GC may free blocks allocated before it, so those two figures can
# land a little under what the block itself kept (CI once saw 360 bytes under).
# Leaked bytes and per-line figures only count blocks allocated inside the
# window and stay exact.
PROCESS_WIDE_SLACK = 256 * 1024


def at_least(value: int, expected: int) -> bool:
    """A process-wide net or peak figure that covers `expected`, give or take
    frees of older blocks by other threads (PROCESS_WIDE_SLACK)."""
    return value >= expected - PROCESS_WIDE_SLACK


@contextlib.contextmanager
def only_this_thread():
    """Region figures from the calling thread alone: every other thread of
    the process is left out (cyscope_mem_exclude_threads, as the kernel
    leaves out its own threads) and the cyclic GC is off, so nothing frees
    older memory inside the block (IPython's history thread after the shell
    tests once freed ~400 kB inside one). For tests that bound net and peak
    from below tightly."""
    import ctypes

    from cyscope.memory import _lib

    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    tids = [t.native_id for t in threading.enumerate() if t is not threading.current_thread() and t.native_id]
    array = (ctypes.c_int64 * len(tids))(*tids)
    assert _lib.lib().cyscope_mem_exclude_threads(array, len(tids)) == _lib.OK
    try:
        yield
    finally:
        _lib.lib().cyscope_mem_exclude_threads(None, 0)
        if was_enabled:
            gc.enable()


def pyx_source(body: str) -> str:
    """A .pyx whose line 1 is blank, as the %%cython magic's line 1 is `%%cython`."""
    return "\n" + textwrap.dedent(body).lstrip("\n")


def line_of(source: str, marker: str) -> int:
    for number, text in enumerate(source.splitlines(), 1):
        if marker in text:
            return number
    raise AssertionError(f"{marker!r} not in source")


def build_module(tmp: Path, name: str, source: str, openmp: bool = False, numpy: bool = False):
    tmp.mkdir(parents=True, exist_ok=True)
    pyx = tmp / f"{name}.pyx"
    pyx.write_text(source)
    from Cython.Build import cythonize

    cythonize([str(pyx)], quiet=True, compiler_directives={"language_level": 3}, force=True)
    c_file = tmp / f"{name}.c"
    ext = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    out = tmp / f"{name}{ext}"
    cmd = [
        os.environ.get("CC", "gcc"),
        "-shared",
        "-fPIC",
        "-g",
        "-O2",
        "-fno-strict-aliasing",
        f"-I{sysconfig.get_paths()['include']}",
        str(c_file),
        "-o",
        str(out),
    ]
    if openmp:
        cmd[1:1] = ["-fopenmp"]
    if numpy:
        import numpy as np

        cmd.insert(1, f"-I{np.get_include()}")
    subprocess.run(cmd, check=True, capture_output=True)
    spec = importlib.util.spec_from_file_location(name, out)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.modules[name] = mod
    return mod, pyx


def native_totals():
    from cyscope.memory import _lib

    return _lib.totals()


class TotalsProbe:
    """Reads the native totals at two points without allocating in between.

    Python objects are counted one by one, so reading totals into a new
    ctypes object (native_totals()) would count that object in the window:
    both structs and their pointers are made up front.
    """

    def __init__(self):
        import ctypes

        from cyscope.memory import _lib

        self.t0 = _lib.MemTotals(size=ctypes.sizeof(_lib.MemTotals))
        self.t1 = _lib.MemTotals(size=ctypes.sizeof(_lib.MemTotals))
        self._r0, self._r1 = ctypes.byref(self.t0), ctypes.byref(self.t1)
        self._get = _lib.totals_reader()

    def start(self):
        self._get(self._r0)

    def stop(self):
        self._get(self._r1)

    def seen(self) -> tuple:
        """(allocations, allocated bytes, frees, freed bytes, net) between the two."""
        a, b = self.t0, self.t1
        return (
            b.allocations - a.allocations,
            b.allocated_bytes - a.allocated_bytes,
            b.frees - a.frees,
            b.freed_bytes - a.freed_bytes,
            b.current_bytes - a.current_bytes,
        )
