"""A breakpoint-probe build (``--debug``) that imports Cython's shared utility module
still stops at its breakpoints, shows its C locals and returns the right value."""

from __future__ import annotations

from debugger_helpers import Harness, dbg_shell, harness

__all__ = ["dbg_shell", "harness"]  # fixtures used by name

WARM = "\ndef warm_debug():\n    return 1\n"
LOOP = """
def tri_shared(int n):
    cdef int i, s = 0
    for i in range(n):
        s += i
    return s
"""  # cell lines: 1 %%cython, 2 def, 3 cdef, 4 for, 5 s += i, 6 return


def test_probe_build_with_the_shared_utility_module_stops(harness: Harness):
    from cyscope.cython import utility

    harness.build(WARM)  # the first --debug cell starts the debug flags' shared module
    assert utility.wait(600), "the shared utility module's background build did not finish"
    result = harness.build(LOOP)
    if utility.available():
        assert result.shared_utility is not None  # Cython 3.1+: the probe build imports it
    else:
        assert result.shared_utility is None  # Cython 0.29: self-contained, as before
    path = harness.path_of(result)
    (bp,) = harness.session.set_breakpoints(path, [{"line": 5}])
    assert bp.verified
    harness.run(result.module.tri_shared, 3)
    _ev, stop = harness.stopped()
    frames = harness.frames(stop)
    assert (frames[0].name, frames[0].line) == ("tri_shared", 5)
    loc = harness.local_vars(stop)
    assert (loc["i"]["value"], loc["i"]["type"], loc["n"]["value"]) == ("0", "int", "3")
    harness.session.set_breakpoints(path, [])
    harness.resume(stop)
    assert harness.result() == 3
