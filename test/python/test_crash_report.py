"""The crash catcher's kernel-side parts without crashing anything: the C-to-cell line map,
Cython's names, the reports folder, orphaned pending reports, addr2line naming, the text
form, gdb's argv and environment, the --catch-crashes build option."""

from __future__ import annotations

import ctypes
import json
import os
import stat
import textwrap
from pathlib import Path

import pytest
from cyscope import native
from cyscope.crash import catcher, cellmap, render, reports, store, symbolize

REPO = Path(__file__).resolve().parents[2]
VALID = json.loads((REPO / "protocol" / "fixtures" / "crash-valid.json").read_text())

# What Cython writes, reduced to the parts the map reads: position comments, a
# function per statement group, Cython 0.29's def comment above the exit code, and
# a wrapper with no comment of its own.
GENERATED = textwrap.dedent(
    """\
    /* "/c/m.pyx":5
     * cdef int read_at(int *p, int n) nogil:
     */
    static int __pyx_f_1m_read_at(int *__pyx_v_p, int __pyx_v_n) {
      int __pyx_r;

      /* "/c/m.pyx":6
     *     return p[n]
     */
      __pyx_r = (__pyx_v_p[__pyx_v_n]);
      goto __pyx_L0;

      /* "/c/m.pyx":5
     * cdef int read_at(int *p, int n) nogil:
     */

      /* function exit code */
      __pyx_L0:;
      return __pyx_r;
    }

    /* "/c/m.pyx":9
     * def null_deref(int n):
     */

    /* Python wrapper */
    static PyObject *__pyx_pw_1m_1null_deref(PyObject *__pyx_self,
    PyObject *__pyx_args
    ) {
      return __pyx_pf_1m_null_deref(__pyx_self, 3);
    }

    static int __Pyx_Utility(void) {
      return 0;
    }
    """
)


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_c_lines_map_to_the_statement_above_them():
    cmap = cellmap.CMap(GENERATED.splitlines())
    assert cmap.pyx_line(line_of(GENERATED, "__pyx_r = (__pyx_v_p")) == ("/c/m.pyx", 6)
    # the function's first line: its def comment
    assert cmap.pyx_line(line_of(GENERATED, "int __pyx_r;")) == ("/c/m.pyx", 5)
    # the exit code (0.29 repeats the def comment above it): the last statement
    assert cmap.pyx_line(line_of(GENERATED, "return __pyx_r;")) == ("/c/m.pyx", 6)
    # a wrapper without comments: the def line above it
    assert cmap.pyx_line(line_of(GENERATED, "return __pyx_pf_1m_null_deref")) == ("/c/m.pyx", 9)
    # Cython's utility code after a comment-less gap: nothing
    assert cmap.pyx_line(line_of(GENERATED, "return 0;")) is None


@pytest.mark.parametrize(
    ("c_name", "name"),
    [
        ("__pyx_f_21_cyscope_magic_abc123_helper", "helper"),
        ("__pyx_pf_21_cyscope_magic_abc123_2par._omp_fn.0", "par (OpenMP worker)"),
        ("__pyx_pf_21_cyscope_magic_abc123_1K_meth", "K.meth"),
        ("__pyx_pw_21_cyscope_magic_abc123_1K_1meth", "K.meth"),
        ("__pyx_pf_21_cyscope_magic_abc123_crash", "crash"),
        ("__pyx_pymod_exec__cyscope_magic_abc123", "<module>"),
    ],
)
def test_cython_c_names_read_as_the_cell_names_them(c_name, name):
    assert cellmap.cell_function_name(c_name, "_cyscope_magic_abc123") == name


def test_the_def_line_names_a_function_the_c_name_does_not():
    assert (
        cellmap.cell_function_name("__pyx_f_3odd_weird", "other", "cdef int helper(int *p, int n) nogil:") == "helper"
    )
    assert cellmap._DEF.search("    cdef int x = f(3)") is None


def test_the_running_cython_cell_owns_modules_not_yet_noted(tmp_path):
    so = tmp_path / "_cyscope_magic_ab.cpython-311-x86_64-linux-gnu.so"
    (tmp_path / "_cyscope_magic_ab.pyx").write_text("\n")
    so.write_bytes(b"")
    building = {"kind": "cython", "path": "", "execution_count": 7, "cell_id": "c7"}
    index = cellmap.CellIndex([building], {"execution_count": 7, "cell_id": "c7", "running": True})
    assert index.cython(str(so)) == building
    # a later cell is running: the pending build is not its
    index = cellmap.CellIndex([building], {"execution_count": 8, "cell_id": "c8", "running": True})
    assert index.cython(str(so)) is None


def test_reports_folder_is_private_and_refuses_symlinks(tmp_path):
    root = tmp_path / "runtime" / "cyscope-crash"
    folder = store.kernel_dir("kernel-1", str(root))
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    os.chmod(folder, 0o755)
    store.kernel_dir("kernel-1", str(root))
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700  # repaired
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    os.symlink(elsewhere, root / "kernel-2")
    with pytest.raises(store.CrashDirError, match="not a plain directory"):
        store.kernel_dir("kernel-2", str(root))
    if os.getuid() == 0:
        other = root / "kernel-3"
        other.mkdir(mode=0o700)
        os.chown(other, 65534, 65534)
        with pytest.raises(store.CrashDirError, match="belongs to uid 65534"):
            store.kernel_dir("kernel-3", str(root))


def test_the_kernel_key_is_the_connection_file_name():
    class Kernel:
        pass

    class Shell:
        kernel = Kernel()

    key, connection = store.kernel_key(None)
    assert key == f"process-{os.getpid()}" and connection is None
    # No kernel app in this process: still a usable key.
    assert store.kernel_key(Shell())[0]


def test_reports_are_listed_oldest_first_and_pruned(tmp_path):
    for i in range(store.KEEP_PER_KERNEL + 3):
        report = dict(VALID[2], id=f"{1000 + i}-1-1")
        store.write_report(str(tmp_path / f"crash-{1000 + i}-1-1.json"), report)
    store.mark_shown(str(tmp_path / "crash-1000-1-1.json"))
    store.prune(str(tmp_path), str(tmp_path.parent))
    paths = store.report_paths(str(tmp_path))
    assert len(paths) == store.KEEP_PER_KERNEL
    assert paths[0].endswith("crash-1003-1-1.json") and paths[-1].endswith(f"crash-{1000 + 22}-1-1.json")
    assert not (tmp_path / "crash-1000-1-1.shown").exists()
    for p in paths:
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600


def test_a_pending_report_of_a_dead_kernel_becomes_its_report(tmp_path):
    dead = 2**22 + 12345  # above pid_max's default: no such process
    pending = dict(VALID[2], id="555-1-1")
    pending["tracer"] = dict(pending["tracer"], status="running", message=None)
    (tmp_path / f".pending-{dead}.json").write_text(json.dumps(pending))
    (tmp_path / f".pending-{os.getpid()}.json").write_text(json.dumps(dict(pending, id="556-1-1")))
    reports.adopt_orphans(str(tmp_path))
    adopted = json.loads((tmp_path / "crash-555-1-1.json").read_text())
    assert adopted["tracer"]["status"] == "running"
    assert "killed" in adopted["tracer"]["message"]
    assert not (tmp_path / f".pending-{dead}.json").exists()
    assert (tmp_path / f".pending-{os.getpid()}.json").exists()  # ours: still being written


def test_undelivered_reports_are_those_not_shown_and_not_caught(tmp_path):
    store.write_report(str(tmp_path / "crash-1-1-1.json"), dict(VALID[0], id="1-1-1"))
    store.write_report(str(tmp_path / "crash-2-1-1.json"), dict(VALID[3], id="2-1-1"))  # caught
    store.write_report(str(tmp_path / "crash-3-1-1.json"), dict(VALID[1], id="3-1-1"))
    store.mark_shown(str(tmp_path / "crash-3-1-1.json"))
    assert [r["id"] for _, r in reports.undelivered(str(tmp_path))] == ["1-1-1"]


def test_addr2line_names_in_process_frames():
    lib = native.library()
    assert lib is not None, native.status().error
    address = ctypes.cast(lib.cyscope_version, ctypes.c_void_p).value
    base = module = None
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and parts[5] == os.path.realpath(native.status().path) and int(parts[2], 16) == 0:
                base, module = int(parts[0].split("-")[0], 16), parts[5]
                break
    assert module is not None
    report = {
        "frames": [
            {
                "kind": "native",
                "function": None,
                "file": None,
                "line": None,
                "address": hex(address),
                "exact": True,
                "module": module,
                "module_base": hex(base),
            },
            {"kind": "python", "function": "f", "file": "x.py", "line": 1, "cell": None},
        ],
        "cells": [],
        "cell": None,
    }
    assert symbolize.symbolize(report) is True
    assert report["frames"][0]["function"] == "cyscope_version"
    assert report["frames"][0]["file"].endswith("process_info.c")
    assert report["frames"][1]["function"] == "f"  # Python frames are left alone
    assert report["symbolized"] is True


def test_text_form_leads_with_the_crash_site():
    text = render.to_text(VALID[0], "/r/crash-1.json")
    first = text.splitlines()[0]
    assert first.startswith("Kernel crashed: SIGSEGV") and "at address 0xc" in first
    assert "cell [2] line 6 (read_at)" in first
    assert "its state (variables, imports, loaded modules) was lost" in text
    assert "p = NULL  (int *, argument)" in text
    assert "Report written by gdb" in text and text.endswith("Saved as /r/crash-1.json")
    # Cython's argument wrapper is folded into the function it wraps
    assert sum(" null_deref " in line for line in text.splitlines()) == 1
    # the interpreter's frames are counted, not listed
    assert "more frames of the interpreter and the kernel not shown" in text
    fallback = render.to_text(VALID[2])
    assert "Report written by the kernel itself: gdb is turned off" in fallback
    worker = render.to_text(VALID[1])
    assert "an OpenMP worker thread (prange)" in worker
    caught = render.to_text(VALID[3])
    assert caught.startswith("Caught SIGSEGV") and "The kernel lives on" in caught
    bundle = render.bundle(VALID[0])
    assert set(bundle) == {render.MIME, "text/plain"} and bundle[render.MIME] is VALID[0]


def test_gdb_argv_and_environment(monkeypatch):
    argv = catcher.gdb_argv("/usr/bin/gdb", 4242)
    assert argv[0] == "/usr/bin/gdb" and argv[argv.index("-p") + 1] == "4242"
    assert argv[-2:] == ["-x", catcher.GDB_SCRIPT] and os.path.exists(catcher.GDB_SCRIPT)
    assert "-nx" in argv and "set debuginfod enabled off" in argv
    monkeypatch.setenv("PYTHONPATH", "/venv/site")
    monkeypatch.setenv("PYTHONHOME", "/venv")
    env = dict(item.split("=", 1) for item in catcher.gdb_env("/r/.pending-1.json"))
    assert "PYTHONPATH" not in env and "PYTHONHOME" not in env  # gdb's own Python must not see the kernel's
    assert env["CYSCOPE_CRASH_PENDING"] == "/r/.pending-1.json"


def test_gdb_is_found_or_says_why(monkeypatch, tmp_path):
    monkeypatch.setenv(catcher.ENV_GDB, "none")
    assert catcher.find_gdb() == (None, "gdb is turned off ($CYSCOPE_GDB='none')")
    monkeypatch.setenv(catcher.ENV_GDB, str(tmp_path / "gdb"))
    path, reason = catcher.find_gdb()
    assert path is None and "not found" in reason
    monkeypatch.delenv(catcher.ENV_GDB)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert catcher.find_gdb() == (None, "gdb is not installed (not found on PATH)")
    texts = catcher.messages("gdb is not installed (not found on PATH)", 4.0)
    assert "apt install gdb" in texts["no_tracer"]
    assert "SYS_PTRACE" in texts["refused"] and "ptrace_scope" in texts["refused"]
    assert "4 s" in texts["timeout"]


def test_catch_crashes_is_a_build_option_with_its_own_cache_entry():
    from cyscope.crash.catch import CatchCrashesPlugin

    plugin = CatchCrashesPlugin()
    added = []
    plugin.add_arguments(lambda *args, **kwargs: added.append((args, kwargs)))
    assert added[0][0] == ("--catch-crashes",)

    class Opts:
        plugin_args = {"catch_crashes": True}

    assert plugin.key(Opts()) == {"catch_crashes": 1}
    Opts.plugin_args = {"catch_crashes": False}
    assert plugin.key(Opts()) is None
