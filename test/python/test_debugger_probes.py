"""Probe builds and stops, with the real %%cython magic and the real compiler.

The compiled code runs on a worker thread; the test thread plays the frontend through
the DebugSession (the DAP layer on top is tested in test_debugger_dap.py and, over the
wire, in test/kernel/debugger*.test.ts). Runs on both interpreters (Cython 3 and 0.29).
"""

from __future__ import annotations

import ctypes
import os

import pytest
from debugger_helpers import Harness, cython_major, dbg_shell, harness

__all__ = ["dbg_shell", "harness"]  # fixtures used by name

LOOP = """
def tri(int n):
    cdef int i, s = 0
    for i in range(n):
        s += i
    return s
"""  # cell lines: 1 %%cython, 2 def, 3 cdef, 4 for, 5 s += i, 6 return

TYPES = """
cdef struct Inner:
    int a
    float b

cdef struct Point:
    double x
    int y
    Inner inner
    double vals[3]

cdef double GLOBAL_SCALE = 2.5

def values(double[:] data, double[:, ::1] grid, bint flag):
    cdef Point pt
    cdef Point *pp = &pt
    cdef double *p = &data[1]
    cdef double *bad = <double *> 16
    cdef int *nothing = NULL
    cdef const char *name = "hello"
    cdef unsigned char c = 65
    cdef long long big = -(1 << 40)
    cdef float f = 0.25
    obj = {"a": [1, 2, 3]}
    pt.x = 1.5
    pt.y = 7
    pt.inner.a = 3
    pt.inner.b = 0.5
    pt.vals[0] = 1.0
    pt.vals[1] = 2.0
    pt.vals[2] = 3.0
    return pt.x + p[0] + grid[1, 2] + GLOBAL_SCALE
"""  # line 32: the return


def _file_symbols(so_path: str) -> set[str]:
    handle = ctypes.CDLL(so_path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    found = set()
    for name in ("__cyscope_armed_", "__cyscope_ctl_"):
        tag = os.path.basename(so_path).split(".")[0]
        if hasattr(handle, name + tag):
            found.add(name)
    return found


def test_debug_build_has_probes_and_plain_build_has_none(harness: Harness):
    plain = harness.build(LOOP, "")
    probed = harness.build(LOOP, "--debug")
    assert plain.key != probed.key, "the probe setting must be part of the cache key"
    assert not os.path.exists(os.path.join(plain.directory, plain.module_name + ".probes.json"))
    assert _file_symbols(plain.so_path) == set()
    assert os.path.exists(os.path.join(probed.directory, probed.module_name + ".probes.json"))
    assert _file_symbols(probed.so_path) == {"__cyscope_armed_", "__cyscope_ctl_"}
    # Disarmed probes change nothing.
    assert probed.module.tri(100) == plain.module.tri(100) == 4950


def test_breakpoint_stop_locals_next_continue(harness: Harness):
    result = harness.build(LOOP)
    path = harness.path_of(result)
    (bp,) = harness.session.set_breakpoints(path, [{"line": 5}])
    assert bp.verified and bp.line == 5
    harness.run(result.module.tri, 3)
    ev, stop = harness.stopped()
    assert ev["body"]["reason"] == "breakpoint" and ev["body"]["hitBreakpointIds"] == [bp.id]
    frames = harness.frames(stop)
    assert (frames[0].name, frames[0].line, frames[0].path) == ("tri", 5, path)
    loc = harness.local_vars(stop)
    assert (loc["i"]["value"], loc["i"]["type"]) == ("0", "int")
    assert loc["n"]["value"] == "3"
    harness.resume(stop, "next")
    ev, stop = harness.stopped()
    # Cython 3 marks the loop header on every pass (as Python does); 0.29 only before the loop.
    assert ev["body"]["reason"] == ("step" if cython_major() >= 3 else "breakpoint")
    harness.resume(stop, "continue")
    ev, stop = harness.stopped()
    assert harness.local_vars(stop)["i"]["value"] in ("1", "2")
    harness.session.set_breakpoints(path, [])
    harness.resume(stop)
    assert harness.result() == 3


def test_breakpoint_moves_to_next_line_that_runs(harness: Harness):
    result = harness.build(LOOP)
    path = harness.path_of(result)
    moved, beyond = harness.session.set_breakpoints(path, [{"line": 2}, {"line": 40}])
    assert moved.verified and moved.line == 3
    assert "moved from line" in (moved.message or "")
    assert not beyond.verified and "no code" in beyond.message


def test_values_of_every_kind(harness: Harness):
    import numpy as np

    result = harness.build(TYPES)
    path = harness.path_of(result)
    harness.session.set_breakpoints(path, [{"line": 32}])
    data = np.arange(6, dtype=np.float64) / 2
    grid = np.arange(12, dtype=np.float64).reshape(3, 4)
    harness.run(result.module.values, data, grid, True)
    _ev, stop = harness.stopped()
    loc = harness.local_vars(stop)
    assert (loc["flag"]["type"], loc["flag"]["value"]) == ("bint", "True")
    assert loc["c"]["value"] == "65 'A'" and loc["c"]["type"] == "unsigned char"
    assert loc["big"]["value"] == str(-(1 << 40))
    assert loc["f"]["value"] == "0.25" and loc["f"]["type"] == "float"
    assert "'hello'" in loc["name"]["value"]
    assert loc["nothing"]["value"] == "NULL"
    assert loc["bad"]["value"].endswith("<unreadable>"), loc["bad"]
    # double*: address and the value pointed at, expandable
    assert loc["p"]["type"] == "double *" and loc["p"]["value"].endswith("→ 0.5")
    (pointee,) = harness.children(stop, loc["p"]["variablesReference"])
    assert (pointee["name"], pointee["value"]) == ("*p", "0.5")
    # struct: a summary and its fields, a nested struct and an array field
    assert loc["pt"]["type"] == "Point" and loc["pt"]["value"].startswith("Point {x=1.5, y=7")
    fields = {f["name"]: f for f in harness.children(stop, loc["pt"]["variablesReference"])}
    assert fields["inner"]["value"] == "Inner {a=3, b=0.5}"
    assert fields["vals"]["value"] == "[1.0, 2.0, 3.0]"
    assert [v["value"] for v in harness.children(stop, fields["vals"]["variablesReference"])] == ["1.0", "2.0", "3.0"]
    # pointer to struct: its fields behind the address
    assert "Point {x=1.5" in loc["pp"]["value"]
    # memoryviews: shape, element type, first elements, expandable rows
    assert loc["data"]["value"] == "double[:] shape=(6,) [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]"
    kids = {k["name"]: k for k in harness.children(stop, loc["data"]["variablesReference"])}
    assert kids["shape"]["value"] == "(6,)" and kids["[5]"]["value"] == "2.5"
    assert kids["base"]["type"] == "ndarray[float64]"
    assert loc["grid"]["value"].startswith("double[:, :] shape=(3, 4)")
    rows = {k["name"]: k for k in harness.children(stop, loc["grid"]["variablesReference"])}
    row1 = {k["name"]: k["value"] for k in harness.children(stop, rows["[1]"]["variablesReference"])}
    assert row1["[1, 2]"] == "6.0"
    # a Python object: its repr, expandable
    assert loc["obj"]["value"] == "{'a': [1, 2, 3]}" and loc["obj"]["type"] == "dict"
    (item,) = harness.children(stop, loc["obj"]["variablesReference"])
    assert item["name"] == "'a'" and item["value"] == "[1, 2, 3]"
    # module globals: C globals with their C type, then Python names
    frame = harness.frames(stop)[0]
    scopes = harness.ask(stop, lambda: harness.session.scopes_of(stop, frame))
    assert [s["name"] for s in scopes] == ["Locals", "Globals"]
    glob = {g["name"]: g for g in harness.children(stop, scopes[1]["variablesReference"])}
    assert (glob["GLOBAL_SCALE"]["type"], glob["GLOBAL_SCALE"]["value"]) == ("double", "2.5")
    assert "values" in glob
    # evaluate: C values converted as Cython converts them (struct -> dict, char* -> bytes)
    address = harness.ask(stop, lambda: harness.session.evaluate_in(stop, frame, "p"))
    assert address == data.ctypes.data + 8, "a pointer evaluates to its address"
    assert harness.ask(stop, lambda: harness.session.evaluate_in(stop, frame, "pt['x'] + flag")) == 2.5
    assert harness.ask(stop, lambda: harness.session.evaluate_in(stop, frame, "pt['inner']['a'] * 2")) == 6
    assert harness.ask(stop, lambda: harness.session.evaluate_in(stop, frame, "name")) == b"hello"
    assert harness.ask(stop, lambda: harness.session.evaluate_in(stop, frame, "sum(data)")) == 7.5
    harness.session.set_breakpoints(path, [])
    harness.resume(stop)
    assert harness.result() == 1.5 + 0.5 + 6.0 + 2.5


def test_condition_and_hit_count(harness: Harness):
    result = harness.build(LOOP)
    path = harness.path_of(result)
    harness.session.set_breakpoints(path, [{"line": 5, "condition": "i == 500"}])
    harness.run(result.module.tri, 1000)
    _ev, stop = harness.stopped()
    assert harness.local_vars(stop)["i"]["value"] == "500"
    harness.resume(stop)
    assert harness.result() == sum(range(1000)), "stopped a second time"
    harness.session.set_breakpoints(path, [{"line": 5, "hitCondition": "3"}])
    harness.run(result.module.tri, 10)
    _ev, stop = harness.stopped()
    assert harness.local_vars(stop)["i"]["value"] == "2"
    harness.resume(stop)
    assert harness.result() == 45
    # A bad condition stops and says why, rather than skipping silently.
    harness.session.set_breakpoints(path, [{"line": 5, "condition": "no_such_name > 1"}])
    harness.run(result.module.tri, 2)
    ev, stop = harness.stopped()
    assert "NameError" in ev["body"]["text"]
    harness.session.set_breakpoints(path, [])
    harness.resume(stop)
    harness.result()
    # A condition that is not Python is refused when set.
    (bad,) = harness.session.set_breakpoints(path, [{"line": 5, "condition": "i ==="}])
    assert not bad.verified and "not a Python expression" in bad.message


def test_conditions_survive_bare_line_resends(harness: Harness):
    result = harness.build(LOOP)
    path = harness.path_of(result)
    harness.session.set_breakpoints(path, [{"line": 5, "condition": "i == 3"}])
    # JupyterLab re-sends the cell's breakpoints as bare lines: the condition stays...
    (bp,) = harness.session.set_breakpoints(path, [{"line": 5}])
    assert bp.condition == "i == 3"
    assert harness.session.breakpoint_lines()[path] == [{"line": 5, "condition": "i == 3"}]
    # ... until a request carrying conditions says otherwise.
    (bp,) = harness.session.set_breakpoints(path, [{"line": 5, "condition": ""}])
    assert bp.condition is None
    harness.session.set_breakpoints(path, [])


NESTED = """
cdef int helper(int x):
    cdef int doubled = x * 2
    return doubled + 1

cdef inline int tiny(int x):
    return x + 100

def outer(int n):
    cdef int a = helper(n)
    cdef int b = tiny(a)
    return a + b
"""  # 3 doubled, 4 return, 7 tiny's return, 10 a = helper(n), 11 b = tiny(a), 12 return


def test_step_in_out_and_over_nested_functions(harness: Harness):
    result = harness.build(NESTED)
    path = harness.path_of(result)
    harness.session.set_breakpoints(path, [{"line": 10}])
    harness.run(result.module.outer, 5)
    _ev, stop = harness.stopped()
    harness.session.set_breakpoints(path, [])
    harness.resume(stop, "stepIn")
    ev, stop = harness.stopped()
    assert ev["body"]["reason"] == "step"
    frames = harness.frames(stop)
    assert (frames[0].name, frames[0].line) == ("helper", 3)
    # The compiled caller is the next frame, on its call line; then the Python caller.
    assert (frames[1].name, frames[1].line, frames[1].kind) == ("outer", 10, "cython-caller")
    assert frames[2].kind == "python" and frames[2].path.endswith("debugger_helpers.py")  # Harness.run
    harness.resume(stop, "stepOut")
    _ev, stop = harness.stopped()
    frames = harness.frames(stop)
    assert frames[0].name == "outer" and frames[0].line in (10, 11)
    if frames[0].line == 10:  # Cython 0.29 may report the rest of the assignment on line 10
        harness.resume(stop, "next")
        _ev, stop = harness.stopped()
    assert harness.frames(stop)[0].line == 11
    harness.resume(stop, "next")  # over tiny(): inlined or not, it is not entered
    _ev, stop = harness.stopped()
    assert (harness.frames(stop)[0].name, harness.frames(stop)[0].line) == ("outer", 12)
    assert harness.local_vars(stop)["b"]["value"] == "111"
    harness.resume(stop)
    assert harness.result() == 11 + 111


def test_interrupt_while_stopped_raises_keyboardinterrupt_in_the_cell(harness: Harness):
    result = harness.build(LOOP)
    path = harness.path_of(result)
    harness.session.set_breakpoints(path, [{"line": 5}])
    harness.run(result.module.tri, 10)
    _ev, stop = harness.stopped()
    harness.session.resume(stop.thread, "interrupt")
    with pytest.raises(KeyboardInterrupt) as info:
        harness.result()
    # The traceback starts in the cell's code, not in cyscope's runtime.
    files = []
    tb = info.value.__traceback__
    while tb is not None:
        files.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    assert not any("cyscope" + os.sep + "debugger" in f for f in files), files
    harness.session.cell_finished()
    harness.session.set_breakpoints(path, [])
    assert result.module.tri(4) == 6


def test_interrupt_landing_between_the_stopped_event_and_the_park(harness: Harness):
    """SIGINT can arrive just after "stopped" went out and before the thread parks (a
    loaded machine stretches that gap): the stop must still end with "continued" and
    leave nothing listed as stopped."""
    result = harness.build(LOOP)
    path = harness.path_of(result)
    harness.session.set_breakpoints(path, [{"line": 5}])

    def emit_then_interrupt(event):
        harness.events.put(event)
        if event["event"] == "stopped":
            raise KeyboardInterrupt

    harness.session.emit = emit_then_interrupt
    harness.run(result.module.tri, 10)
    stopped = harness.event("stopped")
    harness.session.emit = harness.events.put
    kind, exc = harness.results.get(timeout=20)
    assert kind == "error" and isinstance(exc, KeyboardInterrupt), (kind, exc)
    continued = harness.event("continued")
    assert continued["body"]["threadId"] == stopped["body"]["threadId"]
    assert harness.session.stop_of_thread(stopped["body"]["threadId"]) is None
    harness.session.cell_finished()
    harness.session.set_breakpoints(path, [])
    assert result.module.tri(4) == 6


def test_stale_requests_and_a_thousand_stops(harness: Harness):
    import gc
    import tracemalloc

    result = harness.build(LOOP)
    path = harness.path_of(result)
    harness.session.set_breakpoints(path, [{"line": 5}])
    harness.run(result.module.tri, 1100)
    tracemalloc.start()
    sizes = []
    old_ref = None
    for k in range(1100):
        _ev, stop = harness.stopped()
        if k in (100, 1099):
            gc.collect()
            sizes.append(tracemalloc.get_traced_memory()[0])
        loc = harness.local_vars(stop)
        assert loc["i"]["value"] == str(k)
        if old_ref is not None:
            assert harness.session.find_reference(old_ref) == (None, None)
        frame = harness.frames(stop)[0]
        old_ref = harness.ask(stop, lambda stop=stop, frame=frame: harness.session.scopes_of(stop, frame))[0][
            "variablesReference"
        ]
        if k == 1099:
            harness.session.set_breakpoints(path, [])
        harness.resume(stop)
    tracemalloc.stop()
    assert harness.result() == sum(range(1100))
    assert sizes[1] - sizes[0] < 200_000, f"memory grew by {sizes[1] - sizes[0]} bytes over 1000 stops"
    assert harness.session.stops == {}


NOGIL = """
from cython.parallel cimport prange

def summed(double[:] a):
    cdef Py_ssize_t i
    cdef double t = 0
    with nogil:
        for i in range(a.shape[0]):
            t += a[i]
    return t

def parallel(int n):
    cdef int i
    cdef long total = 0
    for i in prange(n, nogil=True, num_threads=2, schedule="static", chunksize=1):
        total += i
    return total
"""  # 9: t += a[i] (nogil), 16: total += i (prange body)


def test_nogil_block_takes_the_gil_to_stop(harness: Harness):
    import numpy as np

    result = harness.build(NOGIL)
    path = harness.path_of(result)
    harness.session.set_breakpoints(path, [{"line": 9, "hitCondition": "2"}])
    harness.run(result.module.summed, np.ones(4))
    _ev, stop = harness.stopped()
    loc = harness.local_vars(stop)
    assert (loc["i"]["value"], loc["t"]["value"]) == ("1", "1.0")
    harness.session.set_breakpoints(path, [])
    harness.resume(stop)
    assert harness.result() == 4.0


def test_prange_workers_stop_in_turn_as_their_own_threads(harness: Harness):
    result = harness.build(NOGIL, "--debug --compile-args=-fopenmp --link-args=-fopenmp")
    path = harness.path_of(result)
    harness.session.set_breakpoints(path, [{"line": 16}])
    harness.run(result.module.parallel, 4)
    seen = []
    threads = set()
    for _ in range(4):
        ev, stop = harness.stopped()
        threads.add(ev["body"]["threadId"])
        assert len(harness.session.stops) == 1, "two threads stopped at once"
        seen.append(int(harness.local_vars(stop)["i"]["value"]))
        harness.resume(stop)
    assert sorted(seen) == [0, 1, 2, 3]
    assert len(threads) == 2, "each OpenMP worker is its own DAP thread"
    harness.session.set_breakpoints(path, [])
    assert harness.result() == 6


MODULE_LEVEL = """
cdef int counter = 0
counter += 41
total = counter + 1
"""  # 3: counter += 41, 4: total = ...


def test_module_level_breakpoint_stops_during_the_import(harness: Harness):
    from ipykernel.compiler import get_file_name

    # As in a kernel: JupyterLab sets the breakpoint on the cell's path before the cell runs.
    cell = MODULE_LEVEL.lstrip("\n") + f"# {os.getpid()} {id(harness)}\n"
    raw = "%%cython --debug\n" + cell
    path = get_file_name(raw)
    (bp,) = harness.session.set_breakpoints(path, [{"line": 4}])
    assert not bp.verified and "has not been run" in bp.message
    harness.kd.raw_cell = raw  # what pre_run_cell records in a kernel
    harness.run(lambda: harness.shell.run_cell_magic("cython", "--debug", cell))
    _ev, stop = harness.stopped(120)
    changed = [e for e in list(harness.events.queue) if e["event"] == "breakpoint"]
    frames = harness.frames(stop)
    assert (frames[0].name, frames[0].line, frames[0].path) == ("<module>", 4, path)
    frame = frames[0]
    scopes = harness.ask(stop, lambda: harness.session.scopes_of(stop, frame))
    glob = {g["name"]: g["value"] for g in harness.children(stop, scopes[1]["variablesReference"])}
    assert glob["counter"] == "41"
    harness.session.set_breakpoints(path, [])
    harness.resume(stop)
    harness.result(120)
    assert changed == [] or changed[0]["body"]["breakpoint"]["verified"]


def test_probes_never_break_the_program_when_the_runtime_is_gone(harness: Harness):
    from cyscope.debugger import runtime

    result = harness.build(LOOP)
    path = harness.path_of(result)
    harness.session.set_breakpoints(path, [{"line": 5}])
    saved = runtime.controller()
    runtime.set_controller(None)
    try:
        assert result.module.tri(5) == 10  # armed, nobody listening: runs through, disarms
        pm = next(p for p in runtime.modules() if p.so_path == result.so_path)
        assert not any(pm.armed[k] for k in range(len(pm.sites)))
    finally:
        runtime.set_controller(saved)
        harness.session.set_breakpoints(path, [])


def test_memory_reader_is_safe():
    from cyscope.debugger import memory

    x = ctypes.c_double(3.5)
    assert memory.read(ctypes.addressof(x), 8) == bytes(x)
    assert memory.read(0, 8) is None
    assert memory.read(16, 8) is None
    assert memory.read(0xDEADBEEF000, 8) is None
    s = ctypes.create_string_buffer(b"text\0more")
    assert memory.read_c_string(ctypes.addressof(s)) == (b"text", False)
    assert memory.read_c_string(0) is None


def test_memory_reader_pipe_fallback(monkeypatch):
    from cyscope.debugger import memory

    monkeypatch.setattr(memory, "_use_pipe", True)
    x = ctypes.c_int64(-7)
    assert memory.read(ctypes.addressof(x), 8) == bytes(x)
    assert memory.read(0xDEADBEEF000, 8) is None


MORE_KINDS = """
cdef enum Color:
    RED
    GREEN = 5

cdef class Counter:
    cdef public int hits
    cdef double weight
    def bump(self, int by):
        cdef Color colour = GREEN
        self.hits += by
        self.weight = 0.5
        return self.hits + colour

def outer(int k):
    def inner(int j):
        return j + k
    return inner(1)
"""  # 11: self.hits += by (in bump), 17: return j + k (in inner)


def test_enum_cdef_class_fields_and_closure_variables(harness: Harness):
    result = harness.build(MORE_KINDS)
    path = harness.path_of(result)
    harness.session.set_breakpoints(path, [{"line": 11}, {"line": 17}])
    counter = result.module.Counter()
    harness.run(counter.bump, 2)
    _ev, stop = harness.stopped()
    loc = harness.local_vars(stop)
    assert (loc["colour"]["type"], loc["colour"]["value"]) == ("Color", "GREEN (5)")
    assert loc["self"]["type"] == "Counter"
    fields = {f["name"]: f for f in harness.children(stop, loc["self"]["variablesReference"])}
    # C fields of the cdef class, the private one included (Python cannot see it).
    assert (fields["hits"]["type"], fields["hits"]["value"]) == ("int", "0")
    assert fields["weight"]["type"] == "double"
    harness.resume(stop)
    assert harness.result() == 7
    harness.run(result.module.outer, 41)
    _ev, stop = harness.stopped()
    loc = harness.local_vars(stop)
    # The closure's variable shows as a local of the inner function.
    assert (loc["j"]["value"], loc["k"]["value"], loc["k"]["type"]) == ("1", "41", "int")
    harness.session.set_breakpoints(path, [])
    harness.resume(stop)
    assert harness.result() == 42
