"""cyscope's %%cython cache: private folder, refusal of untrusted folders, concurrent kernels."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap

import pytest
from cython_helpers import SHIM, _cy_session_shell, cache_root, last_result, run_ok, shell

__all__ = ["_cy_session_shell", "cache_root", "shell"]  # fixtures used by name


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_cache_dir_is_private(shell, cache_root):
    run_ok(shell, "%%cython\ndef private_fn():\n    return 0\n")
    res = last_result(shell)
    assert res.directory.startswith(str(cache_root))
    assert _mode(cache_root) == 0o700
    assert _mode(os.path.dirname(res.directory)) == 0o700
    assert _mode(res.directory) == 0o700


def test_default_location_follows_xdg(monkeypatch, tmp_path):
    from cyscope.cython import cache

    monkeypatch.delenv("CYSCOPE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    path = cache.cache_dir()
    assert path == str(tmp_path / "xdg" / "cyscope" / cache.python_tag())
    assert _mode(path) == 0o700 and _mode(os.path.dirname(path)) == 0o700
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_root() == str(tmp_path / "home" / ".cache" / "cyscope")


def test_group_writable_cache_is_repaired(monkeypatch, tmp_path):
    from cyscope.cython import cache

    root = tmp_path / "shared"
    root.mkdir()
    os.chmod(root, 0o777)
    monkeypatch.setenv("CYSCOPE_CACHE_DIR", str(root))
    cache.cache_dir()
    assert _mode(root) == 0o700


def test_symlinked_cache_is_refused(monkeypatch, tmp_path):
    from cyscope.cython import cache

    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "link")
    monkeypatch.setenv("CYSCOPE_CACHE_DIR", str(tmp_path / "link"))
    with pytest.raises(cache.CacheDirError):
        cache.cache_dir()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a folder to another user")
def test_cache_owned_by_someone_else_is_refused(monkeypatch, tmp_path):
    from cyscope.cython import cache

    root = tmp_path / "theirs"
    root.mkdir(mode=0o700)
    os.chown(root, 65534, 65534)
    monkeypatch.setenv("CYSCOPE_CACHE_DIR", str(root))
    with pytest.raises(cache.CacheDirError, match="belongs to uid 65534"):
        cache.cache_dir()


CHILD = textwrap.dedent("""\
    import sys, time
    from IPython.testing.globalipapp import start_ipython
    import cyscope.cython
    ip = start_ipython()
    cyscope.cython.register(ip)
    start_at = float(sys.argv[1])
    while time.time() < start_at:
        time.sleep(0.005)
    r = ip.run_cell('''%%cython
    def raced(int n):
        cdef int i, s = 0
        for i in range(n):
            s += i * i
        return s
    ''')
    assert r.success, r.error_in_exec
    assert ip.user_ns['raced'](4) == 14
    res = cyscope.cython.last_result(ip)
    print("OK", res.so_path, res.cache_hit)
    """)


def test_two_processes_compile_the_same_cell(tmp_path):
    import time

    cache = tmp_path / "race-cache"
    env = dict(
        os.environ,
        CYSCOPE_CACHE_DIR=str(cache),
        PYTHONPATH=os.pathsep.join([str(SHIM), os.environ.get("PYTHONPATH", "")]),
    )
    start_at = str(time.time() + 3.0)  # both start compiling at the same moment, after their imports
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, start_at], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "OK" in out
    # typically both built (neither saw the other's module at start); the rename decided who published
    assert all(out.split()[-1] in ("True", "False") for out, _ in outs)
    paths = {out.split()[1] for out, _ in outs}
    assert len(paths) == 1  # the same published module
    (tag_dir,) = [p for p in cache.iterdir()]
    entries = os.listdir(tag_dir)
    assert not [e for e in entries if e.startswith((".build-", ".refused-"))]  # no half-built leftovers
    assert len([e for e in entries if not e.startswith("utility-")]) == 1  # one cell (+ the shared utility module)
    # a third process gets a cache hit
    out = subprocess.run([sys.executable, "-c", CHILD, "0"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "True"


def test_stale_build_folders_are_removed(shell, cache_root):
    from cyscope.cython import cache

    tag_dir = cache.cache_dir()
    stale = os.path.join(tag_dir, ".build-stale-test")
    fresh = os.path.join(tag_dir, ".build-fresh-test")
    for d in (stale, fresh):
        os.makedirs(os.path.join(d, "build"), exist_ok=True)
    os.utime(stale, (1, 1))
    run_ok(shell, "%%cython\ndef after_stale():\n    return 1\n")
    assert not os.path.exists(stale)
    assert os.path.exists(fresh)  # may belong to a build running in another kernel
    os.rmdir(os.path.join(fresh, "build"))
    os.rmdir(fresh)
