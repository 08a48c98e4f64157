"""cyscope's %%cython: diagnostics on cell lines (Cython, C compiler, linker), schemas, a real kernel's reply."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import pytest
from cython_helpers import (
    DIAG_MIME,
    PROTOCOL,
    SHIM,
    _cy_session_shell,
    cache_root,
    last_result,
    recorder,
    run,
    run_ok,
    shell,
    validate,
)

__all__ = ["_cy_session_shell", "cache_root", "recorder", "shell"]  # fixtures used by name


def _only_payload(recorder):
    payloads = recorder.of(DIAG_MIME)
    assert len(payloads) == 1, recorder.bundles
    validate(payloads[0], "diagnostics.schema.json")
    return payloads[0]


def _errors(payload):
    return [d for d in payload["diagnostics"] if d["severity"] == "error"]


def test_cython_error_on_cell_line(shell, recorder):
    from cyscope.cython import CythonBuildError

    result = run(shell, "%%cython\ndef f(x):\n    return undefined_name\n")
    assert not result.success
    assert isinstance(result.error_in_exec, CythonBuildError)
    payload = _only_payload(recorder)
    assert payload["ok"] is False
    (err,) = _errors(payload)
    assert err == {
        "severity": "error",
        "line": 3,
        "column": 12,
        "message": "undeclared name not builtin: undefined_name",
        "source": "cython",
    }
    assert "Error compiling Cython file" in payload["output"]  # the full output travels with it
    text = next(b for b in recorder.bundles if DIAG_MIME in b)["text/plain"]
    assert "line 3" in text and "undefined_name" in text
    # a short traceback: our exception's summary, no frames from the magic's internals
    tb = result.error_in_exec._render_traceback_()
    assert len(tb) <= 3 and "line 3" in tb[0]
    run_ok(shell, "kernel_still_fine = 1")


def test_c_compiler_error_maps_verbatim_c_to_cell_line(shell, recorder):
    cell = textwrap.dedent('''\
        %%cython
        cdef extern from *:
            """
            int broken_fn(void) { return }
            """
            int broken_fn()
        def call():
            return broken_fn()
        ''')
    result = run(shell, cell)
    assert not result.success
    payload = _only_payload(recorder)
    errors = _errors(payload)
    assert errors and errors[0]["source"] == "cc"
    assert errors[0]["line"] == 4
    assert errors[0]["column"] == cell.splitlines()[3].index("}") + 1
    assert "expected expression" in errors[0]["message"]


def test_missing_header_maps_to_extern_line(shell, recorder):
    result = run(
        shell, '%%cython\ncdef extern from "cyscope_no_such_header.h":\n    int nope()\ndef g():\n    return nope()\n'
    )
    assert not result.success
    errors = _errors(_only_payload(recorder))
    assert errors[0]["source"] == "cc" and errors[0]["line"] == 2
    assert "cyscope_no_such_header.h" in errors[0]["message"]


def test_linker_error_on_magic_line(shell, recorder):
    result = run(shell, "%%cython -l cyscope_no_such_lib\ndef h():\n    return 1\n")
    assert not result.success
    errors = _errors(_only_payload(recorder))
    assert errors[0]["source"] == "ld"
    assert errors[0]["line"] == 1  # the option came from the %%cython line
    assert "cyscope_no_such_lib" in errors[0]["message"]


def test_warning_only_cell_succeeds_and_shows_warnings(shell, recorder):
    run_ok(shell, "%%cython\ndef warned():\n    return 1\n    print('never')\n")
    assert shell.user_ns["warned"]() == 1
    payload = _only_payload(recorder)
    assert payload["ok"] is True
    assert payload["diagnostics"] == [
        {
            "severity": "warning",
            "line": 4,
            "column": payload["diagnostics"][0]["column"],
            "message": "Unreachable code",
            "source": "cython",
        }
    ]


def test_c_compiler_warning_is_kept(shell, recorder):
    cell = textwrap.dedent('''\
        %%cython --compile-args=-Wunused-variable
        cdef extern from *:
            """
            static int with_unused(void) { int unused_local_xyz; return 3; }
            """
            int with_unused()
        def wu():
            return with_unused()
        ''')
    run_ok(shell, cell)
    assert shell.user_ns["wu"]() == 3
    payload = _only_payload(recorder)
    warning = next(d for d in payload["diagnostics"] if "unused_local_xyz" in d["message"])
    assert warning["severity"] == "warning" and warning["source"] == "cc" and warning["line"] == 4


def test_bad_option_is_a_usage_error(shell):
    from IPython.core.error import UsageError

    result = run(shell, "%%cython --no-such-option\ndef z():\n    return 0\n")
    assert isinstance(result.error_in_exec, UsageError)
    assert "--no-such-option" in str(result.error_in_exec)
    result = run(shell, "%%cython -n not-an-identifier\ndef z():\n    return 0\n")
    assert isinstance(result.error_in_exec, UsageError)
    run_ok(shell, "%%cython\ndef z():\n    return 0\n")
    assert shell.user_ns["z"]() == 0


@pytest.mark.parametrize("name", ["diagnostics", "annotation"])
def test_schema_fixtures(name):
    import jsonschema

    schema = json.loads((PROTOCOL / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    valid = json.loads((PROTOCOL / "fixtures" / f"{name}-valid.json").read_text())
    invalid = json.loads((PROTOCOL / "fixtures" / f"{name}-invalid.json").read_text())
    assert valid and invalid
    for payload in valid:
        validator.validate(payload)
    for payload in invalid:
        assert not validator.is_valid(payload), payload


def test_real_kernel_reply_is_error_with_bundle(tmp_path, cache_root):
    """ipykernel marks the execute_reply 'error' and the diagnostics bundle arrives before the error."""
    jupyter_client = pytest.importorskip("jupyter_client")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec_dir = tmp_path / "kernels" / "cyscope-test"
    spec_dir.mkdir(parents=True)
    env = {
        "PYTHONPATH": os.pathsep.join([str(SHIM), os.environ.get("PYTHONPATH", "")]),
        "CYSCOPE_CACHE_DIR": str(cache_root),
    }
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "cyscope test",
                "language": "python",
                "env": env,
            }
        )
    )
    ksm = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    km = KernelManager(kernel_name="cyscope-test", kernel_spec_manager=ksm)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        kc.execute_interactive("import cyscope.cython; cyscope.cython.register(get_ipython())", timeout=60)
        messages = []
        reply = kc.execute_interactive(
            "%%cython\ndef k():\n    return nowhere\n", timeout=120, output_hook=messages.append
        )
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "CythonBuildError"
        kinds = [m["msg_type"] for m in messages]
        displays = [m for m in messages if m["msg_type"] == "display_data" and DIAG_MIME in m["content"]["data"]]
        assert displays and kinds.index("display_data") < kinds.index("error")
        payload = displays[0]["content"]["data"][DIAG_MIME]
        validate(payload, "diagnostics.schema.json")
        assert payload["diagnostics"][0]["line"] == 3
        error = next(m for m in messages if m["msg_type"] == "error")
        assert len(error["content"]["traceback"]) <= 3
        assert jupyter_client is not None
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.mark.parametrize(
    "cell, stage, headline, summary",
    [
        ("%%cython\ndef s1():\n    return nowhere1\n", "cython", "Cython compilation failed", "Cython error"),
        (
            '%%cython\ncdef extern from *:\n    """\n    int s2_broken(void) { return }\n    """\n'
            "    int s2_broken()\ndef s2():\n    return s2_broken()\n",
            "cc",
            "C compilation failed",
            "C compiler error",
        ),
        ("%%cython -l cyscope_no_such_lib_s3\ndef s3():\n    return 1\n", "ld", "Linking failed", "linker error"),
    ],
)
def test_the_failed_stage_is_named(shell, recorder, cell, stage, headline, summary):
    result = run(shell, cell)
    assert str(result.error_in_exec).startswith(summary)
    bundle = next(b for b in recorder.bundles if DIAG_MIME in b)
    assert bundle[DIAG_MIME]["stage"] == stage
    validate(bundle[DIAG_MIME], "diagnostics.schema.json")
    assert bundle["text/plain"].startswith(headline + ":")


def test_compiler_notes_name_the_kept_file_and_the_cell_line(shell, recorder):
    """A successful build's warning and its note: both name the published C file (not the
    deleted build folder) and the cell line their C line comes from."""
    cell = textwrap.dedent('''\
        %%cython
        cdef extern from *:
            """
            __attribute__((deprecated)) static int old_api(void) { return 1; }
            static int new_api(void) { return old_api() + 1; }
            """
            int new_api()
        def notes():
            return new_api()
        ''')
    run_ok(shell, cell)
    output = _only_payload(recorder)["output"]
    res = last_result(shell)
    assert ".build-" not in output
    note = next(line for line in output.splitlines() if "note: declared here" in line)
    assert note.startswith(res.c_path + ":") and note.endswith("[cell line 4]")
    warning = next(line for line in output.splitlines() if "deprecated" in line and "warning:" in line)
    assert warning.endswith("[cell line 5]")


def test_long_first_code_line_on_cython_029(shell, monkeypatch):
    """Cython 0.29 scans the first two lines of a .pyx for an encoding with a regex that is
    quadratic on a run of word characters (150,000 characters: 27 s; 1 MB: over 300 s). Line 1
    of cyscope's .pyx declares the encoding, so the cell's first code line is never scanned."""
    import Cython.Utils

    long_line = "x = '" + "a" * 150_000 + "'"
    if Cython.Utils.__file__.endswith(".py") and hasattr(Cython.Utils, "_match_file_encoding"):
        scanned = []
        original = Cython.Utils._match_file_encoding

        def spy(line, *args):
            scanned.append(len(line))
            return original(line, *args)

        monkeypatch.setattr(Cython.Utils, "_match_file_encoding", spy)
        run_ok(shell, "%%cython\n" + long_line + "\ndef long_first():\n    return len(x)\n")
        assert scanned and max(scanned) < 1000  # only line 1 was looked at
    else:  # Cython 3 skips code lines there by itself; the cell builds all the same
        run_ok(shell, "%%cython\n" + long_line + "\ndef long_first():\n    return len(x)\n")
    assert shell.user_ns["long_first"]() == 150_000
