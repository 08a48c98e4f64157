"""Hostile and unlucky %%cython runs: option injection, module names, interrupts at every
phase, a compiler out of memory. Each ends in a clear error, leaves no half-built entry
in the cache, and the kernel carries on."""

from __future__ import annotations

import os
import stat
import textwrap

import pytest
from cython_helpers import DIAG_MIME, _cy_session_shell, cache_root, last_result, recorder, run, run_ok, shell

__all__ = ["_cy_session_shell", "cache_root", "recorder", "shell"]  # fixtures used by name


def _leftover_builds() -> list[str]:
    from cyscope.cython import cache, utility

    utility.wait(600)  # a shared utility module being built in the background is no leftover
    tag = cache.cache_dir()
    return [n for n in os.listdir(tag) if n.startswith(".build-")]


def test_options_are_never_run_by_a_shell(shell, tmp_path):
    from cyscope.cython import CythonBuildError

    # IPython splits the line without a shell; a shell would create each marker (a redirection).
    markers = [tmp_path / f"injected-{i}" for i in range(4)]
    line = (
        f"%%cython --compile-args=-DX>{markers[0]} --link-args=-lm>{markers[1]} "
        f"--lib=m>{markers[2]} --include=x;touch>{markers[3]}"
    )
    result = run(shell, line + "\ndef injected():\n    return 1\n")
    assert isinstance(result.error_in_exec, CythonBuildError)  # the compiler got the text as it is, and refused it
    assert str(markers[2]) in result.error_in_exec.output
    assert not any(m.exists() for m in markers)
    run_ok(shell, "kernel_fine = 1")


@pytest.mark.parametrize(
    "name, why",
    [
        ("class", "not a valid module name"),
        ("not-a-name", "not a valid module name"),
        ("sys", "already imported"),
        ("__main__", "already imported"),
        ("a" * 300, "at most 200"),
    ],
)
def test_hostile_module_names_are_refused(shell, name, why):
    import sys

    from IPython.core.error import UsageError

    main_before = sys.modules["__main__"]
    result = run(shell, f"%%cython -n {name}\ndef hostile():\n    return 1\n")
    assert isinstance(result.error_in_exec, UsageError) and why in str(result.error_in_exec)
    assert sys.modules["__main__"] is main_before and sys.modules["sys"] is sys
    run_ok(shell, "kernel_fine = 1")


def test_a_named_module_can_be_rebuilt_under_its_name(shell):
    run_ok(shell, "%%cython -n cyscope_renamed_ok\ndef v():\n    return 1\n")
    run_ok(shell, "%%cython -n cyscope_renamed_ok\ndef v():\n    return 2\n")  # its own earlier build: fine
    assert shell.user_ns["v"]() == 2


PHASES = [
    "write_source",
    "configure",
    "run_cython",
    "compile_module",
    "write_annotation",
    "write_debug_line_map",
    "publish",
]


@pytest.mark.parametrize("phase", PHASES)
def test_interrupt_at_every_phase_leaves_nothing_half_built(shell, monkeypatch, phase):
    from cyscope.cython import cache, pipeline

    cell = f"%%cython -a --debug\ndef interrupted_{phase}():\n    return 7\n"

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, phase, interrupt)
    result = run(shell, cell)
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert _leftover_builds() == []
    monkeypatch.undo()
    run_ok(shell, cell)
    res = last_result(shell)
    assert not res.cache_hit and shell.user_ns[f"interrupted_{phase}"]() == 7
    assert cache.trusted_module(os.path.dirname(res.directory), res.key, os.path.basename(res.so_path))


def _script(path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_interrupt_while_the_compiler_runs(shell, monkeypatch, tmp_path):
    """A real SIGINT (the kernel's interrupt) arrives while gcc runs."""
    cc = _script(tmp_path / "cc-interrupted", 'kill -INT $PPID\nsleep 1\nexec gcc "$@"\n')
    monkeypatch.setenv("CC", cc)
    result = run(shell, "%%cython\ndef sigint_during_gcc():\n    return 1\n")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert _leftover_builds() == []
    monkeypatch.delenv("CC")
    run_ok(shell, "%%cython\ndef sigint_during_gcc():\n    return 1\n")


def test_compiler_out_of_memory_is_named(shell, recorder, monkeypatch, tmp_path):
    from cyscope.cython import CythonBuildError

    # 12 MB of data segment: cc1 starts, then cannot allocate what Cython's C needs.
    cc = _script(tmp_path / "cc-small-memory", 'ulimit -d 12000\nexec gcc "$@"\n')
    monkeypatch.setenv("CC", cc)
    result = run(shell, "%%cython\ndef starved():\n    return 1\n")
    assert isinstance(result.error_in_exec, CythonBuildError)
    assert str(result.error_in_exec).startswith("out of memory")
    bundle = next(b for b in recorder.bundles if DIAG_MIME in b)
    assert bundle[DIAG_MIME]["stage"] == "oom"
    assert bundle["text/plain"].startswith("The build ran out of memory")
    monkeypatch.delenv("CC")
    run_ok(shell, "%%cython\ndef starved():\n    return 1\n")


def test_failed_build_keeps_the_files_its_messages_name(shell, recorder):
    cell = textwrap.dedent('''\
        %%cython
        cdef extern from *:
            """
            static int twice(int x);
            static int twice(long x) { return (int)(2 * x); }
            """
            int twice(int x)
        def use_twice():
            return twice(2)
        ''')
    result = run(shell, cell)
    assert not result.success
    payload = recorder.of(DIAG_MIME)[0]
    output = payload["output"]
    assert ".build-" not in output and ".build-" not in str(payload["diagnostics"])
    note = next(line for line in output.splitlines() if "note:" in line and "twice" in line)
    path = note.split(":", 1)[0]
    assert os.path.exists(path)  # the C file the note names was kept
    assert note.endswith("[cell line 4]")  # and the note says which cell line its C line is
    run_ok(shell, cell.replace("static int twice(long x)", "static int twice(int x)"))
