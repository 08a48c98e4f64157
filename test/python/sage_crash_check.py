"""Opt-in check (scripts/test_sage.sh): the crash catcher in Debian's real SageMath Jupyter kernel.

Sage installs cysignals' handlers for the same fatal signals before cyscope loads. This
checks, in the `sagemath` kernel with only the checkout's python-shim/ on PYTHONPATH:

1. a segfault inside cysignals' sig_on() is still Sage's business: cysignals raises its
   exception, the kernel lives, and cyscope writes no report;
2. a NULL dereference in a helper called from line 10 of a %%cython cell (Sage's Cython
   0.29) kills the kernel with a gdb report naming the cell lines, cysignals' handler
   still runs after cyscope's (its message reaches the kernel's stderr), and the
   restarted kernel finds the report;
3. %%cython --catch-crashes raises cyscope.CellCrashed and the kernel answers the next cell.

Not collected by pytest (no test_ prefix).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

from jupyter_client.manager import KernelManager
from kernel_runner import run_code

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

CELL = """%%cython
# a crash in a helper, reached from line 10
cdef int read_at(int *p, int n) noexcept nogil:
    return p[n]
ctypedef int (*reader_t)(int *, int) noexcept nogil
cdef reader_t reader = read_at  # through a pointer: kept out of line


def null_deref(int n, size_t address=0):
    return reader(<int *>address, n)
"""
assert "return reader(" in CELL.splitlines()[9]

SIG_ON_CELL = """%%cython
from cysignals.signals cimport sig_on, sig_off

def guarded_by_cysignals(size_t address=0):
    cdef int *p = <int *>address
    sig_on()
    p[3] = 1
    sig_off()
"""

# Which library's handler SIGSEGV runs now (Sage's preparser: int(...) for plain ints).
WHOSE_HANDLER = """
import ctypes
class _SA(ctypes.Structure):
    _fields_ = [("h", ctypes.c_void_p), ("mask", ctypes.c_ulong * int(16)),
                ("flags", ctypes.c_int), ("r", ctypes.c_void_p)]
class _DL(ctypes.Structure):
    _fields_ = [("fname", ctypes.c_char_p), ("fbase", ctypes.c_void_p),
                ("sname", ctypes.c_char_p), ("saddr", ctypes.c_void_p)]
_sa, _dl, _libc = _SA(), _DL(), ctypes.CDLL(None)
_libc.sigaction(int(11), None, ctypes.byref(_sa))
_libc.dladdr(ctypes.c_void_p(_sa.h), ctypes.byref(_dl))
print("SIGSEGV handler in", _dl.fname.decode())
"""

CATCH_CELL = """%%cython --catch-crashes
def caught(int n, size_t address=0):
    return (<int *>address)[n]
"""


def reports(kc) -> list[dict]:
    status, out = run_code(kc, "import cyscope, json; print(json.dumps(cyscope.crash_reports()))")
    assert status == "ok", out
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    tmp = tempfile.mkdtemp(prefix="cyscope-sage-crash-")
    env = dict(
        os.environ,
        PYTHONPATH=os.path.join(REPO, "python-shim"),
        CYSCOPE_CACHE_DIR=os.path.join(tmp, "cache"),
        CYSCOPE_CRASH_DIR=os.path.join(tmp, "crash"),
        CYSIGNALS_CRASH_NDEBUG="1",  # cysignals' own gdb run (cysignals-CSI) would only add minutes
        CYSCOPE_CRASH_TIMEOUT="30",  # correctness here; the time is printed, not gated
    )
    stderr_path = os.path.join(tmp, "kernel-stderr.log")
    stderr = open(stderr_path, "w")  # kept open for the kernel's life
    km = KernelManager(kernel_name="sagemath")
    # fd 2 as it is (not ipykernel's pipe to the notebook), so what cysignals' handler
    # writes while the kernel dies reaches the log.
    km.start_kernel(env=env, cwd=tmp, stderr=stderr, extra_arguments=["--IPKernelApp.capture_fd_output=False"])
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=300)
        load = lambda: run_code(kc, "%load_ext cyscope", silent=True)  # noqa: E731
        assert load()[0] == "ok"

        # 1. cysignals' sig_on(): its exception, no report, the kernel lives.
        status, out = run_code(kc, SIG_ON_CELL)
        assert status == "ok", out
        # Sage's kernel installs cysignals' handlers again before every request;
        # cyscope puts its own back in front when the cell starts.
        status, out = run_code(kc, WHOSE_HANDLER)
        assert status == "ok" and "libcyscope.so" in out, out
        status, out = run_code(kc, "guarded_by_cysignals()")
        assert status == "error" and "SignalError" in out, out
        status, out = run_code(kc, "print(6 * 7)")
        assert status == "ok" and "42" in out, out
        assert reports(kc) == [], "a crash cysignals recovers from must not leave a report"
        print("OK: a segfault inside sig_on() is cysignals' (SignalError, no report, the kernel lives)")

        # 2. A crash that kills the Sage kernel.
        status, out = run_code(kc, CELL)
        assert status == "ok", out
        start = time.monotonic()
        kc.execute("null_deref(3)")
        while km.is_alive():
            assert time.monotonic() - start < 120, "the Sage kernel did not die"
            time.sleep(0.1)
        km.restart_kernel(now=True)
        kc.wait_for_ready(timeout=300)
        assert load()[0] == "ok"
        found = reports(kc)
        with open(stderr_path) as f:
            died = f.read()
        assert len(found) == 1, f"no report in {os.path.join(tmp, 'crash')}; the kernel said:\n{died[-3000:]}"
        report = found[0]
        assert report["signal"]["name"] == "SIGSEGV", report["signal"]
        assert report["source"] == "gdb", report["tracer"]
        lines = [f["cell"]["line"] for f in report["frames"] if f["kind"] == "cython"]
        assert lines[:2] == [4, 10], lines
        assert "Unhandled SIGSEGV" in died, "cysignals' handler did not run after cyscope's:\n" + died[-2000:]
        written = os.stat(os.path.join(tmp, "crash", report["kernel"]["key"], f"crash-{report['id']}.json")).st_mtime
        print(
            f"OK: the Sage kernel's crash left a gdb report, cell lines {lines[:2]}, read after the restart; "
            f"written {written - report['time_unix_ms'] / 1000:.2f} s after the signal "
            f"(gdb's script: {report['tracer']['seconds']} s)"
        )

        # 3. --catch-crashes in Sage.
        status, out = run_code(kc, CATCH_CELL)
        assert status == "ok", out
        status, out = run_code(kc, "caught(3)")
        assert status == "error" and "CellCrashed" in out, out
        status, out = run_code(kc, "print(6 * 7)")
        assert status == "ok" and "42" in out, out
        print("OK: --catch-crashes raised CellCrashed in the Sage kernel, which answered the next cell")
        return 0
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        stderr.close()


if __name__ == "__main__":
    sys.exit(main())
