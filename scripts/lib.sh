# Shared helpers for the project's scripts (sourced, not run).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
export PATH="$VENV/bin:$ROOT/node_modules/.bin:$PATH"

say() { printf '\033[1m[cyscope]\033[0m %s\n' "$*"; }
