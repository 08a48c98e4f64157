"""Opt-in check (scripts/test_sage.sh): cyscope's %%cython in a SageMath Python, with Sage cimports.

Not collected by pytest (no test_ prefix): it needs Debian's ``sagemath`` (about 750 MB).
Run it with ``sage -python`` or with the Python that has Sage installed.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python-shim"))
os.environ.setdefault("CYSCOPE_CACHE_DIR", os.path.join(tempfile.mkdtemp(prefix="cyscope-sage-"), "cache"))

CELL = """\
from sage.rings.integer cimport Integer
from sage.libs.gmp.mpz cimport mpz_sizeinbase

def doubled(Integer x):
    return x * 2

def bit_length(Integer x):
    return mpz_sizeinbase(x.value, 2)
"""


def main() -> int:
    t = time.perf_counter()
    import sage.all  # noqa: F401  what a SageMath kernel has done before the first cell

    print(f"sage.all imported in {time.perf_counter() - t:.1f} s")
    import cyscope.cython
    from cyscope.cython.sage import sage_config
    from IPython.testing.globalipapp import start_ipython

    config = sage_config()
    assert config is not None, "Sage is loaded but its build settings were not found"
    print("Sage include dirs:", config.include_dirs)
    print("Sage libraries:", config.libraries)

    ip = start_ipython()
    cyscope.cython.register(ip)
    result = ip.run_cell("%%cython\n" + CELL)
    if not result.success:
        print("FAILED:", result.error_in_exec, file=sys.stderr)
        return 1
    from sage.all import Integer

    assert ip.user_ns["doubled"](Integer(21)) == 42
    assert ip.user_ns["bit_length"](Integer(255)) == 8
    res = cyscope.cython.last_result(ip)
    print("OK: Sage cimports compiled and ran;", res.so_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
