#!/usr/bin/env bash
# Opt-in Sage test for cyscope's %%cython (NOT part of `npm test` or the default pytest run).
#
# Installs Debian's `sagemath` (about 750 MB download, a few minutes) unless Sage is already
# importable, then runs test/python/sage_cython_check.py in Sage's Python: a %%cython cell that
# cimports Sage types and libgmp must compile, link against Sage's libraries and run.
#
#   sudo scripts/test_sage.sh            # installs sagemath if needed
#   CYSCOPE_SAGE_INSTALL=0 scripts/test_sage.sh   # never install; fail if Sage is missing
set -euo pipefail
cd "$(dirname "$0")/.."

PY=/usr/bin/python3
if ! "$PY" -c "import sage.all" >/dev/null 2>&1; then
  if [ "${CYSCOPE_SAGE_INSTALL:-1}" != "1" ]; then
    echo "Sage is not installed and CYSCOPE_SAGE_INSTALL=0; nothing to test" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends sagemath
fi

export PYTHONPATH="$PWD/python-shim${PYTHONPATH:+:$PYTHONPATH}"
CYSCOPE_CACHE_DIR="$(mktemp -d)/cache"
export CYSCOPE_CACHE_DIR
if command -v sage >/dev/null 2>&1; then
  exec sage -python test/python/sage_cython_check.py
else
  exec "$PY" test/python/sage_cython_check.py
fi
