"""Cython 3.1+'s utility code in one shared module: built once, shared by the cells of a
kernel, rebuilt when the compiler flags change, refused and rebuilt when damaged or
another user's. On Cython 0.29 (Debian's, Sage's) every cell stays self-contained."""

from __future__ import annotations

import os
import shutil
import sys

import pytest
from cython_helpers import (
    _cy_session_shell,
    cache_root,
    cython_major,
    intruder,
    last_result,
    run_in_child,
    run_ok,
    shell,
)

__all__ = ["_cy_session_shell", "cache_root", "intruder", "shell"]  # fixtures used by name

CELL_A = (
    "%%cython{opts}\ndef shared_a(int n):\n"
    "    cdef int i, s = 0\n    for i in range(n):\n        s += i\n    return s\n"
)
CELL_B = (
    "%%cython{opts}\ndef shared_b(double[::1] v):\n"
    "    cdef double s = 0\n    for x in v:\n        s += x\n    return s\n"
)


def sharing() -> bool:
    from cyscope.cython import utility

    return utility.available()


def _c_text(result) -> str:
    with open(result.c_path, encoding="utf-8") as f:
        return f.read()


def _warm(shell, opts: str = "") -> None:
    """The first cell with these flags is built with its own utility code and starts the
    shared module's background build: wait for it, as a kernel's later cells would."""
    from cyscope.cython import utility

    run_ok(shell, f"%%cython{opts}\n# warm-up {opts!r}\ndef warm_up():\n    return 1\n")
    assert last_result(shell).module.warm_up() == 1
    assert utility.wait(600), "the shared utility module's background build did not finish"


def test_first_cell_does_not_wait_for_the_shared_module(shell):
    opts = " --compile-args=-DCYSCOPE_FRESH_FLAGS=1"  # flags no other test uses: no shared module yet
    run_ok(shell, CELL_A.format(opts=opts))
    first = last_result(shell)
    assert first.shared_utility is None and shell.user_ns["shared_a"](5) == 10  # its own utility code
    if not sharing():
        assert "_cyscope_utility_" not in _c_text(first)
        return
    from cyscope.cython import utility

    assert utility.wait(600)
    run_ok(shell, CELL_A.format(opts=opts) + "# edited\n")
    assert last_result(shell).shared_utility is not None  # the next cell uses the module built meanwhile
    run_ok(shell, CELL_A.format(opts=opts))
    assert last_result(shell).cache_hit and last_result(shell).shared_utility is None  # the first stays as built


def test_two_cells_share_one_utility_module(shell):
    import array

    _warm(shell)
    run_ok(shell, CELL_A.format(opts=""))
    a = last_result(shell)
    run_ok(shell, CELL_B.format(opts=""))
    b = last_result(shell)
    assert shell.user_ns["shared_a"](5) == 10
    assert shell.user_ns["shared_b"](array.array("d", [1.5, 2.5])) == 4.0  # memoryviews come from the shared module
    if not sharing():  # Cython 0.29: each cell carries its own utility code, as before
        assert a.shared_utility is None and b.shared_utility is None
        assert "_cyscope_utility_" not in _c_text(a)
        return
    assert a.shared_utility and a.shared_utility == b.shared_utility
    name = os.path.basename(a.shared_utility).split(".", 1)[0]
    assert sys.modules[name].__file__ == a.shared_utility  # loaded once, imported by both cells
    for result in (a, b):
        text = _c_text(result)
        assert f'PyImport_ImportModule("{name}")' in text
        assert "static void __Pyx_RaiseArgtupleInvalid(" not in text  # not repeated in the cell


def test_flags_and_language_get_their_own_utility_module(shell, monkeypatch):
    if not sharing():
        run_ok(shell, CELL_A.format(opts=" --compile-args=-DCYSCOPE_OTHER_FLAG=1"))
        assert last_result(shell).shared_utility is None
        return
    found = []
    for opts, cflags in (("", None), (" --compile-args=-DCYSCOPE_OTHER_FLAG=1", None), ("", "-DCYSCOPE_ENV=1"),
                         (" --cplus", None)):  # fmt: skip
        if cflags:
            monkeypatch.setenv("CFLAGS", cflags)  # the compiler settings changed
        _warm(shell, opts)
        run_ok(shell, CELL_A.format(opts=opts))
        found.append(last_result(shell).shared_utility)
        monkeypatch.delenv("CFLAGS", raising=False)
    assert None not in found and len(set(found)) == 4  # each built for its own flags
    assert all(os.path.exists(p) for p in found)  # and each kept for the cells that import it
    assert shell.user_ns["shared_a"](4) == 6


def test_pgo_and_the_switch_keep_cells_self_contained(shell, monkeypatch):
    _warm(shell)
    run_ok(shell, "%%cython --pgo\ndef pgo_alone():\n    return 1\n")
    assert last_result(shell).shared_utility is None
    monkeypatch.setenv("CYSCOPE_SHARED_UTILITY", "0")
    run_ok(shell, CELL_A.format(opts=""))
    assert last_result(shell).shared_utility is None
    text = _c_text(last_result(shell))
    assert "_cyscope_utility_" not in text
    if cython_major() >= 3:  # Cython 3 writes its utility code into the cell again
        assert "static void __Pyx_RaiseArgtupleInvalid(" in text


def test_precompiled_python_h_is_used(shell):
    if not sharing():
        pytest.skip("NOT RUN on Cython < 3.1: the precompiled header comes with the shared utility module")
    _warm(shell, " --compile-args=-H")
    run_ok(shell, CELL_A.format(opts=" --compile-args=-H"))  # gcc lists the headers it reads; '!' = precompiled
    res = last_result(shell)
    entry = os.path.dirname(res.shared_utility)
    gch = os.path.join(entry, "pch", "Python.h.gch")
    assert os.path.exists(gch)
    assert f"! {gch}" in res.output


# In a fresh process: the first cell starts the shared module's build, which is waited for,
# then an edited cell imports it.
WAIT_EXPR = "__import__('cyscope.cython.utility').cython.utility.wait(600)"
SHARED_EXPR = "(shared_a(5), __import__('cyscope.cython').cython.last_result(get_ipython()).shared_utility)"
EDITED = CELL_A.format(opts="") + "# edited\n"
FIRST = [(CELL_A.format(opts=""), WAIT_EXPR), (EDITED, SHARED_EXPR)]


@pytest.fixture(scope="module")
def built_cache(tmp_path_factory):
    """A cache holding the shared module and a cell that imports it (built once for these tests)."""
    if not sharing():
        pytest.skip("NOT RUN on Cython < 3.1: no shared utility module")
    cache = tmp_path_factory.mktemp("shared-utility") / "cache"
    (_w, first), _o, _e = run_in_child(FIRST, cache)
    return cache, eval(first["value"])[1]


def _copy(built_cache, tmp_path):
    """A copy of ``built_cache`` at the same path depth: (cache, shared module path)."""
    cache, shared = built_cache
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy, symlinks=True)
    return copy, str(copy / os.path.relpath(shared, cache))


def test_corrupt_utility_module_is_rebuilt(built_cache, tmp_path):
    cache, shared = _copy(built_cache, tmp_path)
    with open(shared, "r+b") as f:
        f.truncate(100)
    (again,), _o, err = run_in_child([(EDITED, SHARED_EXPR)], cache)
    assert again["ok"] and again["cache_hit"]  # the cell itself was fine
    assert eval(again["value"]) == (10, shared)
    assert os.path.getsize(shared) > 1000 and "does not load" in err


def test_utility_module_of_another_user_is_refused_and_rebuilt(intruder, built_cache, tmp_path):
    cache, shared = _copy(built_cache, tmp_path)
    name = os.path.basename(shared).split(".", 1)[0]
    # another user's module of the same name in its place: it must never run
    evil_cell = f"%%cython -n {name}\nprint('PLANTED UTILITY RAN')\n"
    (evil,), _o, _e = run_in_child([(evil_cell, None)], tmp_path / "evil", env={"CYSCOPE_SHARED_UTILITY": "0"})
    shutil.copy(evil["so_path"], shared)
    os.chown(shared, intruder.pw_uid, intruder.pw_gid)
    (again,), out, err = run_in_child([(EDITED, SHARED_EXPR)], cache)
    assert "PLANTED UTILITY RAN" not in out
    assert eval(again["value"]) == (10, shared)
    assert f"owned by another user (uid {intruder.pw_uid})" in err  # the user is told
    assert os.stat(shared).st_uid == os.getuid()
    # a precompiled header of another user is not read: the cell reads the real Python.h
    from cyscope.cython import utility

    entry = os.path.dirname(shared)
    assert utility.pch_dir(entry) == os.path.join(entry, "pch")
    os.chown(os.path.join(entry, "pch", "Python.h.gch"), intruder.pw_uid, intruder.pw_gid)
    assert utility.pch_dir(entry) is None


def test_missing_utility_module_is_built_again(built_cache, tmp_path):
    cache, shared = _copy(built_cache, tmp_path)
    shutil.rmtree(os.path.dirname(shared))
    (again,), _o, _e = run_in_child([(EDITED, SHARED_EXPR)], cache)
    assert again["cache_hit"] and eval(again["value"]) == (10, shared)
