"""Nothing another user could have touched is loaded from the %%cython cache.

Run as root (CI does), these tests create a second user, ``cyscope-intruder``, with
``useradd`` and act as that user for real (files it plants belong to its uid, folders
it makes are its own). Not as root, they are skipped with a message saying why.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import textwrap

import pytest
from cython_helpers import _cy_session_shell, cache_root, intruder, run, run_in_child, run_ok, shell

__all__ = ["_cy_session_shell", "cache_root", "intruder", "shell"]  # fixtures used by name

VICTIM_CELL = "%%cython -n planted_victim\ndef f(int n):\n    return n + 1\n"
EVIL_CELL = "%%cython -n planted_victim\nprint('PLANTED MODULE RAN')\ndef f(int n):\n    return -999\n"


@pytest.fixture
def base():
    """A folder under /tmp that the intruder can pass through (0711) but not write to."""
    path = tempfile.mkdtemp(prefix="cyscope-security-", dir="/tmp")
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def as_user(user, *argv):
    subprocess.run(list(argv), check=True, user=user.pw_uid, group=user.pw_gid, extra_groups=[])


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _evil_module(base: str, tag_cache: str) -> str:
    """The planted module: same name as the victim's, prints a message and returns -999, readable by all."""
    results, _out, _err = run_in_child([(EVIL_CELL, "f(1)")], tag_cache)
    assert results[0]["ok"], results
    evil = os.path.join(base, "evil.so")
    shutil.copy(results[0]["so_path"], evil)
    os.chmod(evil, 0o644)
    return evil


def _victim_build(cache: str) -> dict:
    results, _out, _err = run_in_child([(VICTIM_CELL, "f(1)")], cache)
    assert results[0]["ok"] and results[0]["value"] == "2", results
    return results[0]


def test_module_planted_in_an_open_cache_is_refused_and_rebuilt(intruder, base):
    """The reported attack: root and ABI folders are the victim's but 0777; another uid plants
    <root>/<abi>/<key of the victim's cell>/<module>.so, and the victim runs the cell."""
    cache = os.path.join(base, "cache")
    built = _victim_build(cache)
    evil = _evil_module(base, os.path.join(base, "evil-cache"))
    tag = os.path.dirname(built["directory"])
    shutil.rmtree(built["directory"])
    os.chmod(cache, 0o777)
    os.chmod(tag, 0o777)
    as_user(intruder, "mkdir", built["directory"])
    as_user(intruder, "cp", evil, built["so_path"])
    assert os.stat(built["so_path"]).st_uid == intruder.pw_uid

    results, out, _err = run_in_child([(VICTIM_CELL, "f(1)")], cache)
    assert "PLANTED MODULE RAN" not in out
    assert results[0]["ok"] and results[0]["value"] == "2"  # the victim's own code, built again
    assert not results[0]["cache_hit"]
    # the open folders are closed, and nothing of the intruder's is left where it was
    assert _mode(cache) == 0o700 and _mode(tag) == 0o700
    assert os.stat(built["directory"]).st_uid == os.getuid() and _mode(built["directory"]) == 0o700
    assert os.stat(built["so_path"]).st_uid == os.getuid()


def test_module_of_another_user_in_a_private_entry_is_refused(intruder, base):
    cache = os.path.join(base, "cache")
    built = _victim_build(cache)
    evil = _evil_module(base, os.path.join(base, "evil-cache"))
    shutil.copy(evil, built["so_path"])
    os.chown(built["so_path"], intruder.pw_uid, intruder.pw_gid)

    results, out, err = run_in_child([(VICTIM_CELL, "f(1)")], cache)
    assert "PLANTED MODULE RAN" not in out and results[0]["value"] == "2"
    assert f"owned by another user (uid {intruder.pw_uid})" in err  # the user is told, once
    assert os.stat(built["so_path"]).st_uid == os.getuid()


def test_entry_folder_of_another_user_is_refused(intruder, base):
    cache = os.path.join(base, "cache")
    built = _victim_build(cache)
    os.chown(built["directory"], intruder.pw_uid, intruder.pw_gid)  # a folder with the victim's own files
    results, _out, _err = run_in_child([(VICTIM_CELL, "f(1)")], cache)
    assert results[0]["value"] == "2" and not results[0]["cache_hit"]
    assert os.stat(built["directory"]).st_uid == os.getuid()


def test_entry_writable_by_others_is_rebuilt_not_repaired(base):
    cache = os.path.join(base, "cache")
    built = _victim_build(cache)
    os.chmod(built["directory"], 0o777)
    marker = os.path.join(built["directory"], "was-here-before")
    open(marker, "w").close()
    results, _out, err = run_in_child([(VICTIM_CELL, "f(1)")], cache)
    assert results[0]["value"] == "2" and not results[0]["cache_hit"]
    assert "writable by other users" in err
    assert not os.path.exists(marker) and _mode(built["directory"]) == 0o700  # a new entry, not the old one


def test_module_writable_by_others_is_rebuilt(base):
    cache = os.path.join(base, "cache")
    built = _victim_build(cache)
    os.chmod(built["so_path"], 0o666)
    results, _out, err = run_in_child([(VICTIM_CELL, "f(1)")], cache)
    assert results[0]["value"] == "2" and not results[0]["cache_hit"] and "writable by other users" in err
    assert not _mode(built["so_path"]) & 0o022


def test_symlinked_entry_or_module_is_refused(base):
    cache = os.path.join(base, "cache")
    built = _victim_build(cache)
    evil = _evil_module(base, os.path.join(base, "evil-cache"))
    elsewhere = os.path.join(base, "elsewhere")
    os.mkdir(elsewhere, 0o700)
    shutil.copy(evil, os.path.join(elsewhere, os.path.basename(built["so_path"])))
    shutil.rmtree(built["directory"])
    os.symlink(elsewhere, built["directory"])  # the entry is a symlink
    results, out, err = run_in_child([(VICTIM_CELL, "f(1)")], cache)
    assert "PLANTED MODULE RAN" not in out and results[0]["value"] == "2"
    assert "is a symlink" in err
    assert not os.path.islink(built["directory"])

    os.unlink(built["so_path"])
    os.symlink(os.path.join(elsewhere, os.path.basename(built["so_path"])), built["so_path"])  # the module is one
    results, out, _err = run_in_child([(VICTIM_CELL, "f(1)")], cache)
    assert "PLANTED MODULE RAN" not in out and results[0]["value"] == "2"
    assert not os.path.islink(built["so_path"])


def test_corrupt_module_is_rebuilt(base):
    cache = os.path.join(base, "cache")
    built = _victim_build(cache)
    with open(built["so_path"], "r+b") as f:
        f.truncate(100)
    results, _out, _err = run_in_child([(VICTIM_CELL, "f(1)")], cache)
    assert results[0]["ok"] and results[0]["value"] == "2" and not results[0]["cache_hit"]
    assert os.path.getsize(built["so_path"]) > 1000


def test_python_folder_of_another_user_is_set_aside(intruder, base):
    cache = os.path.join(base, "cache")
    built = _victim_build(cache)
    tag = os.path.dirname(built["directory"])
    os.chown(tag, intruder.pw_uid, intruder.pw_gid)
    results, _out, err = run_in_child([(VICTIM_CELL, "f(1)")], cache)
    assert results[0]["value"] == "2" and not results[0]["cache_hit"]
    assert os.stat(tag).st_uid == os.getuid() and "belongs to uid" in err


@pytest.mark.parametrize("variable", ["CYSCOPE_CACHE_DIR", "XDG_CACHE_HOME"])
def test_cache_below_another_users_open_folder_is_refused(intruder, base, monkeypatch, variable):
    from cyscope.cython import cache

    shared = os.path.join(base, "shared")
    os.mkdir(shared)
    os.chown(shared, intruder.pw_uid, intruder.pw_gid)
    as_user(intruder, "chmod", "0777", shared)
    monkeypatch.delenv("CYSCOPE_CACHE_DIR", raising=False)
    monkeypatch.setenv(variable, os.path.join(shared, "cache"))
    with pytest.raises(cache.CacheDirError, match=f"{shared} is owned by another user"):
        cache.cache_dir()


def test_cache_below_a_folder_others_can_write_is_refused_unless_sticky(base, monkeypatch):
    from cyscope.cython import cache

    open_folder = os.path.join(base, "open")
    os.mkdir(open_folder)
    os.chmod(open_folder, 0o777)
    monkeypatch.setenv("CYSCOPE_CACHE_DIR", os.path.join(open_folder, "cache"))
    with pytest.raises(cache.CacheDirError, match=f"{open_folder} is writable by other users"):
        cache.cache_dir()
    os.chmod(open_folder, 0o1777)  # like /tmp: others cannot rename or remove what is ours
    assert cache.cache_dir().startswith(os.path.join(open_folder, "cache"))


def test_refusal_is_a_short_error_in_the_cell(base, shell, monkeypatch):
    open_folder = os.path.join(base, "open")
    os.mkdir(open_folder)
    os.chmod(open_folder, 0o777)
    monkeypatch.setenv("CYSCOPE_CACHE_DIR", os.path.join(open_folder, "cache"))
    result = run(shell, "%%cython\ndef nowhere_to_build():\n    return 1\n")
    assert not result.success
    (line,) = result.error_in_exec._render_traceback_()
    assert "writable by other users" in line and "CYSCOPE_CACHE_DIR" in line
    run_ok(shell, "kernel_fine = 1")


def test_read_only_cache_serves_hits_and_fails_builds_clearly(intruder, base):
    """As a user for whom permissions hold (root ignores them): a cache made read-only by its
    owner stays read-only, its modules load, and a new cell fails with a clear message."""
    home = os.path.join(base, "home")
    os.mkdir(home, 0o700)
    os.chown(home, intruder.pw_uid, intruder.pw_gid)
    cache = os.path.join(home, "ro-cache")
    env = {"HOME": home, "IPYTHONDIR": os.path.join(home, "ipython")}
    results, _o, _e = run_in_child([(VICTIM_CELL, "f(1)")], cache, env=env, user=intruder)
    assert results[0]["value"] == "2"
    tag = os.path.dirname(results[0]["directory"])
    as_user(intruder, "chmod", "0500", tag, cache)
    other = "%%cython\ndef not_cached_yet():\n    return 5\n"
    results, _o, _err = run_in_child(
        [(VICTIM_CELL, "f(1)"), (other, None), ("x = 1", "x")], cache, env=env, user=intruder
    )
    assert results[0]["ok"] and results[0]["cache_hit"] and results[0]["value"] == "2"
    assert not results[1]["ok"] and "cannot write in the cache folder" in results[1]["error"]
    assert "Permission denied" in results[1]["error"]
    assert results[2]["ok"]  # the kernel carries on
    assert _mode(tag) == 0o500  # never opened wider than its owner chose


def test_full_disk_is_a_clear_error(base):
    """RLIMIT_FSIZE makes every write past 64 KiB fail as a full disk would (EFBIG): Cython's C
    file cannot be written. The cell fails naming the cause; the kernel carries on."""
    script = textwrap.dedent("""\
        import resource
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))
    """)
    env = {"PYTHONSTARTUP": ""}
    cells = [
        (script, None),
        ("%%cython\ndef too_big_to_write():\n    return 1\n", None),
        ("import resource\nresource.setrlimit(resource.RLIMIT_FSIZE, (-1, -1))", None),
        ("%%cython\ndef too_big_to_write():\n    return 1\n", "too_big_to_write()"),
    ]
    results, out, _err = run_in_child(cells, os.path.join(base, "cache"), env=env)
    assert not results[1]["ok"]
    assert "cannot write the build" in results[1]["error"] and "File too large" in out
    assert results[3]["ok"] and results[3]["value"] == "1"  # space again: it builds
