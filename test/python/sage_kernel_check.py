"""Opt-in check (scripts/test_sage.sh): cyscope inside Debian's real SageMath Jupyter kernel.

Starts the `sagemath` kernelspec (from Debian's sagemath-jupyter) with only the checkout's
python-shim/ on PYTHONPATH, loads cyscope the way the frontend does (a silent execute),
then runs a %%cython cell that cimports Sage types, and checks cyscope recorded the cell.
Not collected by pytest (no test_ prefix).
"""

from __future__ import annotations

import os
import sys
import tempfile

from jupyter_client.manager import start_new_kernel
from kernel_runner import run_code

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

CELL = """%%cython
from sage.rings.integer cimport Integer

def doubled(Integer x):
    return x * 2
"""


def main() -> int:
    env = dict(
        os.environ,
        PYTHONPATH=os.path.join(REPO, "python-shim"),
        CYSCOPE_CACHE_DIR=os.path.join(tempfile.mkdtemp(prefix="cyscope-sage-kernel-"), "cache"),
    )
    km, kc = start_new_kernel(kernel_name="sagemath", env=env, startup_timeout=180)
    try:
        status, out = run_code(kc, "%load_ext cyscope", silent=True)
        assert status == "ok", f"silent %load_ext cyscope failed in the Sage kernel: {out}"
        status, out = run_code(kc, CELL)
        assert status == "ok", f"%%cython with Sage cimports failed:\n{out}"
        status, out = run_code(kc, "print(doubled(Integer(21)), type(doubled(Integer(21))).__name__)")
        assert status == "ok" and "42 Integer" in out, out
        status, out = run_code(
            kc,
            "from cyscope.extension import current_state\n"
            "print([r['execution_count'] for r in current_state(get_ipython()).monitor.records()])",
        )
        assert status == "ok" and "[1, 2" in out, f"cyscope did not record the cells: {out}"
        print("OK: the SageMath kernel loaded cyscope, compiled a %%cython cell with Sage cimports, and recorded it")
        return 0
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


if __name__ == "__main__":
    sys.exit(main())
