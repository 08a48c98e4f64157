"""The %%cython build as a pipeline of phases: plugins join it, and Cython itself is left alone."""

from __future__ import annotations

import os
import re
import textwrap

import pytest
from cyscope.cython.plugins import BuildPlugin
from cython_helpers import _cy_session_shell, cache_root, last_result, recorder, run, run_ok, shell

__all__ = ["_cy_session_shell", "cache_root", "recorder", "shell"]  # fixtures used by name

PLUGIN_CELL = textwrap.dedent("""\
    %%cython{opts}
    cdef extern from *:
        int CYSCOPE_FROM_PROCESS_C
        int CYSCOPE_FROM_CONFIGURE
    def plugin_values():
        return CYSCOPE_FROM_PROCESS_C, CYSCOPE_FROM_CONFIGURE
    """)


class MarkerPlugin(BuildPlugin):
    """A plugin as the debugger's probes or the crash catcher would be: an option, a C phase, a load hook."""

    name = "marker"

    def __init__(self):
        self.calls = []

    def add_arguments(self, add_argument):
        add_argument("--marker-value", type=int, default=None, help="value the marker phase compiles in")

    def key(self, opts):
        value = opts.plugin_args.get("marker_value")
        return None if value is None else {"value": value}

    def configure(self, job):
        self.calls.append(("configure", job.name))
        job.compile_args.append("-DCYSCOPE_FROM_CONFIGURE=7")

    def process_c(self, job, c_path):
        self.calls.append(("process_c", c_path))
        value = job.opts.plugin_args["marker_value"]
        if value < 0:
            raise RuntimeError("negative marker")
        with open(c_path, encoding="utf-8") as f:
            text = f.read()
        with open(c_path, "w", encoding="utf-8") as f:
            f.write(f"#define CYSCOPE_FROM_PROCESS_C {value}\n" + text)
        return [{"severity": "warning", "line": 2, "column": None, "message": "marked", "source": "cc"}]

    def loaded(self, result):
        self.calls.append(("loaded", result.cache_hit))


@pytest.fixture
def marker():
    from cyscope.cython import plugins

    plugin = plugins.register(MarkerPlugin())
    yield plugin
    plugins.unregister(plugin)


def test_plugin_option_phase_and_load_hook(shell, marker, recorder):
    run_ok(shell, PLUGIN_CELL.format(opts=" --marker-value=41"))
    assert shell.user_ns["plugin_values"]() == (41, 7)  # process_c rewrote the C, configure set a flag
    built = last_result(shell)
    assert [c[0] for c in marker.calls] == ["configure", "process_c", "loaded"]
    assert marker.calls[1][1].startswith(os.path.dirname(built.directory))  # the C file, in the build folder
    assert marker.calls[2] == ("loaded", False)
    assert any(d["message"] == "marked" for d in built.diagnostics)  # the phase's diagnostics are the build's

    marker.calls.clear()
    run_ok(shell, PLUGIN_CELL.format(opts=" --marker-value=41"))
    assert last_result(shell).cache_hit and marker.calls == [("loaded", True)]

    run_ok(shell, PLUGIN_CELL.format(opts=" --marker-value=42"))  # the plugin's key takes part in the cache key
    assert shell.user_ns["plugin_values"]() == (42, 7)
    assert last_result(shell).key != built.key


def test_plugin_stays_out_of_builds_it_does_not_join(shell, marker):
    run_ok(shell, "%%cython\ndef not_marked():\n    return 3\n")
    assert marker.calls == [] and shell.user_ns["not_marked"]() == 3


def test_plugin_keeps_plain_keys(shell, marker):
    """Registering a plugin that stays out of a build does not change the build's key (no needless rebuilds)."""
    from cyscope.cython import plugins

    cell = "%%cython\ndef same_key():\n    return 1\n"
    run_ok(shell, cell)
    with_plugin = last_result(shell).key
    plugins.unregister(marker)
    run_ok(shell, cell)
    assert last_result(shell).key == with_plugin and last_result(shell).cache_hit


def test_plugin_options_in_help_and_unknown_without_plugin(shell, marker):
    from cyscope.cython import plugins
    from cyscope.cython.magic import CyscopeCythonMagics, _parser
    from IPython.core.error import UsageError

    _parser()
    assert "--marker-value" in CyscopeCythonMagics.cython.__doc__
    plugins.unregister(marker)
    result = run(shell, PLUGIN_CELL.format(opts=" --marker-value=1"))
    assert isinstance(result.error_in_exec, UsageError)
    assert "--marker-value" not in CyscopeCythonMagics.cython.__doc__


def test_failing_plugin_fails_the_build_with_its_name(shell, marker, recorder):
    from cyscope.cython import CythonBuildError

    result = run(shell, PLUGIN_CELL.format(opts=" --marker-value=-1"))
    assert isinstance(result.error_in_exec, CythonBuildError)
    assert "marker" in str(result.error_in_exec) and "negative marker" in str(result.error_in_exec)
    run_ok(shell, "still_alive = 1")


def test_cython_is_not_patched_during_a_build(shell, marker, monkeypatch):
    """The .pyx gets its published absolute path without changing Cython's classes for the process:
    a compilation running at the same time elsewhere (another thread, Cython's own magic) is unaffected."""
    from Cython.Compiler import Main
    from Cython.Compiler.Scanning import FileSourceDescriptor

    names = ("get_description", "get_error_description", "get_filenametable_entry")
    pristine = {n: FileSourceDescriptor.__dict__[n] for n in names}
    seen = []
    original_parse = Main.Context.parse

    def spying_parse(self, source_desc, *args, **kwargs):
        seen.append({n: FileSourceDescriptor.__dict__[n] for n in names})  # while Cython runs on the cell
        return original_parse(self, source_desc, *args, **kwargs)

    monkeypatch.setattr(Main.Context, "parse", spying_parse)
    run_ok(shell, "%%cython\ndef unpatched():\n    return 1\n")
    assert seen and all(s == pristine for s in seen)
    res = last_result(shell)
    with open(res.c_path) as f:
        comments = set(re.findall(r'/\* "([^"]+\.pyx)":\d+', f.read()))
    assert comments == {res.pyx_path}  # and the cell's C still names the published .pyx
