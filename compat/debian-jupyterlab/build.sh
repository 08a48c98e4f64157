#!/usr/bin/env bash
# Assemble JupyterLab 4.5 from npm into build/ (see README.md). Idempotent:
# `npm ci` only when node_modules is missing or older than the lock file,
# webpack only when an input is newer than the last good build.
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
cd "$ROOT/compat/debian-jupyterlab"

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "debian-jupyterlab: npm ci"
  npm ci --no-audit --no-fund
fi

stamp=build/.built
if stale "$stamp" package.json package-lock.json webpack.config.js src; then
  say "debian-jupyterlab: webpack (development build)"
  rm -f "$stamp"
  mkdir -p build
  if ! node_modules/.bin/webpack --config webpack.config.js >build/webpack.log 2>&1; then
    cat build/webpack.log
    exit 1
  fi
  touch "$stamp"
fi
