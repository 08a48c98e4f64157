# Shared helpers for the project's scripts (sourced, not run).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
export PATH="$VENV/bin:$ROOT/node_modules/.bin:$PATH"

say() { printf '\033[1m[cyscope]\033[0m %s\n' "$*"; }

# stale STAMP INPUT...: true when STAMP is missing or an input is newer. A
# build removes its stamp first and touches it only once it succeeded, so a
# failed or interrupted build is never taken as done.
stale() {
  local stamp="$1"
  shift
  [ ! -f "$stamp" ] || [ -n "$(find "$@" -newer "$stamp" -print -quit)" ]
}
