#!/usr/bin/env bash
# The README's demo command: JupyterLab with cyscope and the demo notebook,
# on 127.0.0.1 only, with a token. Prints the URL to open.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
CYSCOPE_BUILD_COMPAT=0 bash scripts/build.sh

port="${CYSCOPE_DEMO_PORT:-8888}"
token="${CYSCOPE_DEMO_TOKEN:-$("$PY" -c 'import secrets; print(secrets.token_hex(24))')}"
workdir="$ROOT/.cache/demo"
mkdir -p -m 0700 "$workdir"
cp -n examples/*.ipynb "$workdir/" 2>/dev/null || true

say "JupyterLab with cyscope: http://127.0.0.1:$port/lab/tree/demo.ipynb?token=$token"
allow_root=()
[ "$(id -u)" -eq 0 ] && allow_root=(--ServerApp.allow_root=True)
exec jupyter lab --no-browser \
  --ServerApp.ip=127.0.0.1 --ServerApp.port="$port" \
  --IdentityProvider.token="$token" \
  --ServerApp.root_dir="$workdir" "${allow_root[@]}"
