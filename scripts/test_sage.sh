#!/usr/bin/env bash
# Opt-in Sage test for cyscope's %%cython (NOT part of `npm test` or the default pytest run).
#
# Installs Debian's `sagemath` (about 750 MB download, a few minutes) unless Sage is already
# importable, then runs test/python/sage_cython_check.py in Sage's Python (a %%cython cell that
# cimports Sage types and libgmp must compile, link against Sage's libraries and run) and
# test/python/sage_kernel_check.py against Debian's real `sagemath` Jupyter kernel.
# Then test/python/sage_crash_check.py: the crash catcher in that kernel, next to cysignals,
# and test/python/sage_debugger_check.py: a breakpoint in a %%cython cell in that kernel.
#
#   sudo scripts/test_sage.sh            # installs sagemath if needed
#   CYSCOPE_SAGE_INSTALL=0 scripts/test_sage.sh   # never install; fail if Sage is missing
set -euo pipefail
cd "$(dirname "$0")/.."

PY=/usr/bin/python3
if ! "$PY" -c "import sage.all" >/dev/null 2>&1 || [ ! -d /usr/share/jupyter/kernels/sagemath ]; then
  if [ "${CYSCOPE_SAGE_INSTALL:-1}" != "1" ]; then
    echo "Sage is not installed and CYSCOPE_SAGE_INSTALL=0; nothing to test" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends sagemath sagemath-jupyter
fi

export PYTHONPATH="$PWD/python-shim${PYTHONPATH:+:$PYTHONPATH}"
CYSCOPE_CACHE_DIR="$(mktemp -d)/cache"
export CYSCOPE_CACHE_DIR
# 1. the magic in Sage's Python; 2. cyscope in the real SageMath Jupyter kernel.
if command -v sage >/dev/null 2>&1; then
  sage -python test/python/sage_cython_check.py
else
  "$PY" test/python/sage_cython_check.py
fi
"$PY" test/python/sage_kernel_check.py
# 3. the crash catcher in the SageMath kernel, next to cysignals' handlers.
"$PY" test/python/sage_crash_check.py
# 4. a breakpoint in a %%cython cell in that kernel, over the debugger's protocol.
"$PY" test/python/sage_debugger_check.py
