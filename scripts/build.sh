#!/usr/bin/env bash
# Build every layer: native library, TypeScript, labextension; then expose the
# checkout to the venv's Jupyter in development mode. Idempotent.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ "${CYSCOPE_SKIP_SETUP:-}" = 1 ] || bash "$ROOT/scripts/setup.sh"
cd "$ROOT"

say "native: cmake build"
cmake -S native -B native/build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build native/build -j2 >/dev/null
install -d -m 0755 python-shim/cyscope/_native
# Copy then rename, never rewrite in place: a running kernel may have it mapped.
install -m 0755 native/build/libcyscope.so python-shim/cyscope/_native/.libcyscope.so.tmp
mv -f python-shim/cyscope/_native/.libcyscope.so.tmp python-shim/cyscope/_native/libcyscope.so

say "frontend: protocol types + tsc + labextension"
node scripts/protocol-codegen.js
tsc --sourceMap
labext_stamp=.cache/labextension.built
if stale "$labext_stamp" lib style schema package.json; then
  rm -f "$labext_stamp"
  jupyter labextension build --development True . >/dev/null
  mkdir -p .cache && touch "$labext_stamp"
fi

# JupyterLab 4.5 from npm for Debian's own Jupyter server (e2e compatibility
# target). The demo does not serve it, so `npm run demo` skips its 500 MB of
# node_modules (CYSCOPE_BUILD_COMPAT=0).
if [ "${CYSCOPE_BUILD_COMPAT:-1}" != 0 ]; then
  bash "$ROOT/compat/debian-jupyterlab/build.sh"
fi

# Development install: the venv imports cyscope from the checkout and its
# Jupyter finds the labextension through a symlink (what `pip install -e` +
# `jupyter labextension develop` would do, without re-installing each time).
for venv in "$VENV" "$ROOT/.venv-lab45"; do
  [ -x "$venv/bin/python" ] || continue
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$ROOT/python-shim" > "$site/cyscope-dev.pth"
  ext_dir="$venv/share/jupyter/labextensions"
  mkdir -p "$ext_dir"
  ln -sfn "$ROOT/python-shim/cyscope/labextension" "$ext_dir/jupyterlab-cyscope"
done
say "build done"
