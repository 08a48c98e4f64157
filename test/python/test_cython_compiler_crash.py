"""A C compiler that crashes (killed by a signal) gives a clear error on the
cell, publishes what it printed, leaves nothing half-built in the cache, and
the next build with a working compiler succeeds."""

from __future__ import annotations

import os
import stat

from cython_helpers import DIAG_MIME, _cy_session_shell, cache_root, recorder, run, run_ok, shell, validate

__all__ = ["_cy_session_shell", "cache_root", "recorder", "shell"]  # fixtures used by name

CELL = "%%cython\ndef crashes_the_compiler():\n    return 7\n"


def test_a_crashing_compiler_is_a_clear_error_and_loses_nothing(shell, recorder, tmp_path, monkeypatch):
    from cyscope.cython import CythonBuildError

    crashing = tmp_path / "crashing-cc"
    crashing.write_text('#!/bin/sh\necho "internal compiler error: simulated" >&2\nkill -SEGV $$\n')
    crashing.chmod(crashing.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("CC", str(crashing))
    monkeypatch.setenv("LDSHARED", f"{crashing} -shared")

    root = os.environ["CYSCOPE_CACHE_DIR"]
    before = _built_modules(root)
    result = run(shell, CELL)
    assert not result.success
    assert isinstance(result.error_in_exec, CythonBuildError)
    payloads = recorder.of(DIAG_MIME)
    assert len(payloads) == 1
    payload = payloads[0]
    validate(payload, "diagnostics.schema.json")
    assert payload["ok"] is False
    assert any(d["severity"] == "error" for d in payload["diagnostics"])
    assert "internal compiler error: simulated" in payload["output"]  # nothing the compiler said is lost
    assert "crashes_the_compiler" not in shell.user_ns

    # No half-built module is left where a later run would take it for a cache hit.
    assert _built_modules(root) == before

    monkeypatch.delenv("CC")
    monkeypatch.delenv("LDSHARED")
    run_ok(shell, CELL)
    run_ok(shell, "assert crashes_the_compiler() == 7")


def _built_modules(root: str) -> set[str]:
    return {
        os.path.join(d, f)
        for d, _, files in os.walk(root)
        if "/.build-" not in d and "/utility-" not in d  # shared utility modules: built in the background
        for f in files
        if f.endswith(".so")
    }
