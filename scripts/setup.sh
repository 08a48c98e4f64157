#!/usr/bin/env bash
# Install everything the project needs, once: Debian packages (as root),
# the pinned virtual environment, and npm packages. Idempotent and quick when
# nothing is missing; every other script starts by calling it.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

APT_PACKAGES=(
  chromium            # e2e tests (Playwright drives /usr/bin/chromium)
  python3-ipykernel   # Debian's interpreter: the SageMath kernel's python
  python3-debugpy     # its debugger (JupyterLab's debugger; cyscope's breakpoints)
  python3-jupyter-client
  python3-jupyter-server      # with python3-jupyterlab-server: serves the
  python3-jupyterlab-server   # JupyterLab of compat/debian-jupyterlab (e2e)
  python3-pytest
  python3-jsonschema
  python3-numpy
  python3-dev
  python3-setuptools
  cython3             # Cython 0.29, what Debian's Sage uses
  clang-format        # C/C++ formatting check
  cmake
  valgrind
  g++
  gdb                 # crash reports: attached to a crashing kernel (tests need it)
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}"
    exit 1
  fi
  say "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

stamp="$VENV/.cyscope-requirements"
if [ ! -x "$PY" ] || ! cmp -s "$ROOT/requirements-dev.txt" "$stamp"; then
  say "creating/updating the virtual environment in .venv"
  [ -x "$PY" ] || python3 -m venv "$VENV"
  "$PY" -m pip install -q --upgrade pip
  "$PY" -m pip install -q -r "$ROOT/requirements-dev.txt"
  cp "$ROOT/requirements-dev.txt" "$stamp"
fi

# CPython 3.12 and 3.13 (pyenv's interpreters) for the kernel-side test
# suites: cyscope reads each version's frames and allocator differently.
for minor in 3.12 3.13; do
  venv="$ROOT/.venv-py${minor/./}"
  stamp="$venv/.cyscope-requirements"
  if [ ! -x "$venv/bin/python" ] || ! cmp -s "$ROOT/requirements-kernel.txt" "$stamp"; then
    base=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/$minor.*/bin/python$minor 2>/dev/null | sort -V | tail -1)
    if [ -z "$base" ]; then
      say "CPython $minor not found under ${PYENV_ROOT:-$HOME/.pyenv}/versions: install it with \`pyenv install $minor\`"
      exit 1
    fi
    say "creating .venv-py${minor/./} ($("$base" -c 'import platform; print(platform.python_version())'))"
    [ -x "$venv/bin/python" ] || "$base" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q -r "$ROOT/requirements-kernel.txt"
    cp "$ROOT/requirements-kernel.txt" "$stamp"
  fi
done

# JupyterLab 4.5 (the previous minor) in a second venv: the e2e tests check
# that the extension built with 4.6's toolchain also loads there.
LAB45="$ROOT/.venv-lab45"
if [ ! -x "$LAB45/bin/jupyter-lab" ]; then
  say "creating .venv-lab45 (JupyterLab 4.5 compatibility target)"
  python3 -m venv "$LAB45"
  "$LAB45/bin/python" -m pip install -q "jupyterlab==4.5.11" "ipykernel==7.4.0"
fi

if [ ! -d "$ROOT/node_modules" ] || [ "$ROOT/package-lock.json" -nt "$ROOT/node_modules/.package-lock.json" ]; then
  say "npm ci"
  (cd "$ROOT" && npm ci --no-audit --no-fund)
fi
