"""Shared fixtures and helpers for the %%cython tests (test_cython_*.py).

One real IPython shell per session with cyscope's magic registered, a private cache
folder under pytest's tmp dir (CYSCOPE_CACHE_DIR), and a recorder of everything the
magic displays.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROTOCOL = ROOT / "protocol"
SHIM = ROOT / "python-shim"
if str(SHIM) not in sys.path:
    sys.path.insert(0, str(SHIM))

DIAG_MIME = "application/vnd.cyscope.diagnostics+json"
ANN_MIME = "application/vnd.cyscope.annotation+json"


def cython_major() -> int:
    import Cython

    return int(Cython.__version__.split(".")[0])


def load_schema(name: str) -> dict:
    # What the kernel publishes is held to the schema's strict view.
    from protocol_views import sender_schema

    return sender_schema(name)


def validate(payload: dict, schema_name: str) -> None:
    import jsonschema

    schema = load_schema(schema_name)
    jsonschema.validate(payload, schema, cls=jsonschema.Draft202012Validator)


class Recorder:
    """Collects the MIME bundles published through the shell's display publisher."""

    def __init__(self):
        self.bundles: list[dict] = []

    def publish(self, data, metadata=None, *args, **kwargs):
        self.bundles.append(dict(data))

    def clear(self):
        self.bundles.clear()

    def of(self, mime: str) -> list[dict]:
        return [b[mime] for b in self.bundles if mime in b]


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cyscope-cache") / "cache"
    old = os.environ.get("CYSCOPE_CACHE_DIR")
    os.environ["CYSCOPE_CACHE_DIR"] = str(root)
    yield root
    if old is None:
        os.environ.pop("CYSCOPE_CACHE_DIR", None)
    else:
        os.environ["CYSCOPE_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def _cy_session_shell(cache_root):
    from IPython.testing.globalipapp import get_ipython, start_ipython

    return start_ipython() or get_ipython()  # None once already started (e.g. by another test module)


@pytest.fixture
def shell(_cy_session_shell):
    """The session's IPython shell with cyscope's %%cython registered (idempotent; other tests may unload it)."""
    import cyscope.cython

    cyscope.cython.register(_cy_session_shell)
    return _cy_session_shell


@pytest.fixture
def recorder(shell, monkeypatch):
    rec = Recorder()
    monkeypatch.setattr(shell.display_pub, "publish", rec.publish)
    return rec


def run(shell, source: str):
    """run_cell and return its ExecutionResult (the cell's own exceptions stay in the result)."""
    return shell.run_cell(source, store_history=False)


def run_ok(shell, source: str):
    result = run(shell, source)
    if not result.success:
        raise AssertionError(f"cell failed: {result.error_in_exec or result.error_before_exec!r}")
    return result


def last_result(shell):
    import cyscope.cython

    return cyscope.cython.last_result(shell)


# A kernel of its own: a fresh process has loaded no module yet, so what it loads comes
# from the cache as it is now (this process would reuse a module it already loaded).
CHILD_RUNNER = """\
import json, sys
from IPython.testing.globalipapp import start_ipython
import cyscope.cython
ip = start_ipython()
cyscope.cython.register(ip)
results = []
for cell, expr in json.loads(sys.argv[1]):
    r = ip.run_cell(cell, store_history=False)
    entry = {"ok": r.success, "error": repr(r.error_in_exec) if r.error_in_exec is not None else None}
    res = cyscope.cython.last_result(ip)
    if r.success and res is not None:
        entry.update(so_path=res.so_path, key=res.key, directory=res.directory, cache_hit=res.cache_hit)
        entry["value"] = repr(eval(expr, ip.user_ns)) if expr else None
    results.append(entry)
sys.stdout.flush()
print("\\nRESULTS " + json.dumps(results))
"""


_SHIM_COPY: list = []


def _shim_readable_by_all() -> pathlib.Path:
    """python-shim/ as another user can import it. A checkout inside a private folder
    (``mktemp -d`` is 0700) is out of that user's reach, so it gets a root-owned 0755
    copy (the native loader accepts root-owned folders); otherwise the checkout itself."""
    import atexit
    import shutil
    import stat
    import tempfile

    if all(os.stat(p).st_mode & stat.S_IXOTH for p in [SHIM, *SHIM.parents]):
        return SHIM
    if not _SHIM_COPY:
        top = pathlib.Path(tempfile.mkdtemp(prefix="cyscope-shim-"))
        atexit.register(shutil.rmtree, top, True)
        os.chmod(top, 0o755)
        shutil.copytree(SHIM, top / "python-shim", ignore=shutil.ignore_patterns("__pycache__"))
        _SHIM_COPY.append(top / "python-shim")
    return _SHIM_COPY[0]


def run_in_child(cells, cache_dir, env=None, user=None, timeout=300):
    """Run ``[(cell, expression), ...]`` in a fresh IPython process with cyscope's %%cython.

    Returns ``(results, stdout, stderr)``; each result has ``ok``, ``error`` and, when the
    cell built, ``so_path``, ``key``, ``directory``, ``cache_hit`` and ``value`` (the
    expression's repr). ``user`` runs it as another user (``pwd`` entry; needs root).
    """
    import subprocess

    child_env = dict(os.environ, CYSCOPE_CACHE_DIR=str(cache_dir))
    shim = SHIM if user is None else _shim_readable_by_all()
    child_env["PYTHONPATH"] = os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", "")])
    child_env.update(env or {})
    kwargs = {}
    if user is not None:
        kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    python = sys.executable if user is None else "/usr/bin/python3"
    proc = subprocess.run(
        [python, "-c", CHILD_RUNNER, json.dumps(cells)],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )
    at = proc.stdout.rfind("RESULTS [")  # IPython may start the line with a terminal-title escape
    if proc.returncode != 0 or at < 0:
        raise AssertionError(f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout[at + len("RESULTS ") :].splitlines()[0]), proc.stdout, proc.stderr


INTRUDER = "cyscope-intruder"


@pytest.fixture(scope="session")
def intruder():
    """A second user, ``cyscope-intruder`` (created with ``useradd``; needs root, as in CI)."""
    import pwd
    import subprocess

    if os.getuid() != 0:
        pytest.skip(
            "NOT RUN: these cache-security tests need root to create a second user with useradd "
            "(CI runs as root); run them as root to check the cache refuses other users' files"
        )
    try:
        return pwd.getpwnam(INTRUDER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", INTRUDER], check=True
        )
        return pwd.getpwnam(INTRUDER)
