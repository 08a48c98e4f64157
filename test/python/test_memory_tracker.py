"""The allocation tracker seen from Python: exact totals, leaks by .pyx line,
threads, numpy, attach/detach cycles, nesting and the export formats."""

from __future__ import annotations

import json
import re
import threading

import pytest
from cyscope import memory
from cyscope.memory import _lib, _symbols
from memory_helpers import (
    ESCAPE,
    TotalsProbe,
    at_least,
    build_module,
    line_of,
    native_totals,
    only_this_thread,
    pyx_source,
)


@pytest.fixture(autouse=True)
def _tracker_required():
    # No silent skip: without the native tracker the feature is broken.
    assert memory.available(), memory.unavailable_reason()


PATTERN = pyx_source(
    ESCAPE
    + """
from libc.stdlib cimport malloc, free

cdef extern from "malloc.h":
    size_t malloc_usable_size(void* p) nogil

cdef void* ptrs[1000]
cdef void* kept = NULL

cdef size_t usable = 0

def pattern(int n, size_t size):
    # n blocks of size bytes, all freed; last_usable() is the sum of their
    # usable sizes (returning it would allocate an int object in the window)
    global usable
    cdef int i
    usable = 0
    for i in range(n):
        ptrs[i] = malloc(size)  # PATTERN-MALLOC
        cyscope_escape(ptrs[i])
    for i in range(n):
        usable += malloc_usable_size(ptrs[i])
        free(ptrs[i])

def last_usable():
    return usable

def leak():
    global kept
    kept = malloc(1000003)  # LEAK-MALLOC
    cyscope_escape(kept)

def release():
    global kept
    free(kept)
    kept = NULL
"""
)

PARALLEL = pyx_source(
    ESCAPE
    + """
from libc.stdlib cimport malloc, free
from cython.parallel cimport prange

def par(int n):
    cdef int i
    cdef void* p
    with nogil:
        for i in prange(n, num_threads=4, schedule="static"):
            p = malloc(72)  # PRANGE-MALLOC
            cyscope_escape(p)
            free(p)
"""
)


@pytest.fixture(scope="module")
def pattern_mod(tmp_path_factory):
    mod, pyx = build_module(tmp_path_factory.mktemp("mem_pattern"), "cyscope_mem_pattern", PATTERN)
    return mod, str(pyx)


def _find_all(node, pred, out=None):
    out = [] if out is None else out
    if pred(node):
        out.append(node)
    for child in node["children"]:
        _find_all(child, pred, out)
    return out


def _find(node, pred):
    if pred(node):
        return node
    for child in node["children"]:
        hit = _find(child, pred)
        if hit is not None:
            return hit
    return None


def test_known_pattern_gives_exact_totals(pattern_mod):
    mod, _pyx = pattern_mod
    mod.pattern(10, 24)  # warm-up
    # Default mode counts a block as malloc_usable_size() unless it was
    # sampled (then: requested size); a huge sampling interval rules that out.
    import ctypes

    # Totals are process-wide: another thread of the test process (IPython's
    # history saver, a kernel's sampler left by an earlier test) may allocate
    # meanwhile. The counts are exact, so one of a few attempts must match
    # to the byte; every attempt is shown if none does.
    attempts = []
    probe = TotalsProbe()
    for _ in range(5):
        with memory.track():
            _lib.lib().cyscope_mem_configure(ctypes.byref(_lib.config_struct(False, False, 1 << 50)))
            probe.start()
            mod.pattern(1000, 24)
            probe.stop()
            _lib.lib().cyscope_mem_configure(ctypes.byref(_lib.config_struct(False, False)))
        usable = mod.last_usable()
        assert usable >= 24 * 1000
        seen = probe.seen()
        attempts.append(seen)
        if seen == (1000, usable, 1000, usable, 0):
            break
    assert attempts[-1] == (1000, usable, 1000, usable, 0), attempts
    # Exact mode records requested sizes and every stack.
    with memory.track(exact=True) as report:
        probe.start()
        mod.pattern(1000, 100)
        probe.stop()
    # Process-wide totals may include another thread's few allocations; the
    # line's own node below must be exact.
    allocations, allocated = probe.seen()[:2]
    assert 1000 <= allocations <= 1000 + 16
    assert 100 * 1000 <= allocated <= 100 * 1000 + 4096
    line = line_of(PATTERN, "PATTERN-MALLOC")
    node = _find(
        report.flamegraph("allocated"),
        lambda n: n["kind"] == "cython" and n["line"] == line and n["file"].endswith(".pyx"),
    )
    assert node is not None, report.to_folded("allocated")
    assert node["bytes"] == 100 * 1000
    assert node["count"] == 1000
    assert node["name"] == "pattern"
    assert report.allocations >= 1000


def test_leak_is_attributed_to_pyx_line(pattern_mod):
    mod, _pyx = pattern_mod
    with memory.track() as report:
        mod.leak()
    try:
        line = line_of(PATTERN, "LEAK-MALLOC")
        assert line > 1  # line 1 is the (blank) %%cython line
        top = report.leaks_by_line()[0]
        assert top["bytes"] == 1000003
        assert top["count"] == 1
        assert top["kind"] == "cython"
        assert top["line"] == line
        assert top["file"].endswith("cyscope_mem_pattern.pyx")
        assert report.leaked_bytes >= 1000003
        assert at_least(report.net_bytes, 1000003)
        assert at_least(report.peak_bytes, 1000003)
    finally:
        mod.release()


def test_prange_allocations_are_counted(tmp_path):
    mod, _ = build_module(tmp_path, "cyscope_mem_par", PARALLEL, openmp=True)
    mod.par(100)  # start the OpenMP team outside the measurement
    with memory.track(exact=True) as report:
        mod.par(4000)
    line = line_of(PARALLEL, "PRANGE-MALLOC")
    # The OpenMP master thread's share sits under the calling Python frames,
    # the worker threads' shares have no Python frames: sum both.
    nodes = _find_all(report.flamegraph("allocated"), lambda n: n["kind"] == "cython" and n["line"] == line)
    assert nodes, report.to_folded("allocated")
    assert sum(n["count"] for n in nodes) == 4000
    assert sum(n["bytes"] for n in nodes) == 4000 * 72
    assert len(nodes) >= 2  # several threads took part
    assert report.allocations >= 4000


def test_python_thread_allocations_are_counted():
    kept = []

    def worker():
        for _ in range(10):
            kept.append(bytearray(200_000))

    with memory.track() as report:
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    assert at_least(report.net_bytes, 10 * 200_000)
    assert report.leaked_bytes >= 10 * 200_000
    names = {g["name"] for g in report.leaks_by_line()}
    assert "worker" in names
    kept.clear()


def test_numpy_arrays_are_counted():
    np = pytest.importorskip("numpy")
    with memory.track() as report:
        a = np.ones((1000, 1000))
    leaks = report.leaks_by_line()
    assert any(g["bytes"] == 8_000_000 for g in leaks), leaks
    assert at_least(report.net_bytes, 8_000_000)
    assert report.allocated_bytes >= 8_000_000
    del a
    with memory.track() as freed:
        pass
    assert freed.net_bytes < 8_000_000


def test_attach_detach_1000_times_leaves_process_unpatched(pattern_mod):
    mod, _ = pattern_mod
    lib = _lib.lib()
    cfg = _lib.config_struct(False, False)
    import ctypes

    for _ in range(1000):
        assert lib.cyscope_mem_attach(ctypes.byref(cfg)) == 0
        mod.pattern(10, 64)
        assert lib.cyscope_mem_detach() == 0
    t = native_totals()
    assert t.attached == 0
    assert t.patched_slots == 0
    assert _lib.scan_patched() == 0  # every slot of every loaded object restored
    before = native_totals().allocations
    mod.pattern(100, 64)
    assert native_totals().allocations == before  # really detached
    with memory.track() as report:
        mod.pattern(100, 24)
    assert report.allocations >= 100


def test_module_loaded_after_attach_is_tracked(tmp_path):
    probe = TotalsProbe()
    with memory.track(exact=True) as report:
        mod, _ = build_module(tmp_path, "cyscope_mem_late", PATTERN.replace("PATTERN-MALLOC", "LATE-MALLOC"))
        probe.start()
        mod.pattern(500, 40)
        probe.stop()
    allocations, allocated = probe.seen()[:2]
    assert 500 <= allocations <= 500 + 16
    assert 500 * 40 <= allocated <= 500 * 40 + 4096
    node = _find(report.flamegraph("allocated"), lambda n: n["kind"] == "cython" and n["count"] == 500)
    assert node is not None
    assert node["bytes"] == 500 * 40


def test_nested_track():
    # No other thread and no GC run may free older memory inside the blocks,
    # so net and peak are bounded from below within what the interpreter
    # itself frees on this thread meanwhile (a few hundred bytes at most).
    with only_this_thread():
        with memory.track() as outer:
            a = bytearray(300_000)
            with memory.track(exact=True) as inner:
                b = bytearray(400_000)
            c = bytearray(500_000)
    assert inner.net_bytes >= 400_000 - 4096, inner.net_bytes
    assert inner.peak_bytes >= 400_000 - 4096, inner.peak_bytes
    assert outer.net_bytes >= 1_200_000 - 4096, outer.net_bytes
    assert outer.peak_bytes >= 1_200_000 - 4096, outer.peak_bytes
    assert outer.allocated_bytes >= inner.allocated_bytes + 800_000
    assert inner.leaked_bytes >= 400_000
    assert outer.leaked_bytes >= 1_200_000
    del a, b, c


def test_peak_is_relative_and_freed_memory_does_not_leak():
    with memory.track() as report:
        big = bytearray(5_000_000)
        del big
    assert at_least(report.peak_bytes, 5_000_000)
    assert report.net_bytes < 1_000_000
    assert report.leaked_bytes < 1_000_000
    peak = report.flamegraph("peak")
    assert peak["bytes"] >= 5_000_000


def test_export_shapes(pattern_mod):
    mod, _ = pattern_mod
    with memory.track() as report:
        mod.leak()
        keep = bytearray(400_000)
    mod.release()
    fg = report.flamegraph("leaks")
    for key in ("name", "file", "line", "kind", "cell", "bytes", "count", "children"):
        assert key in fg
    assert fg["kind"] == "root"

    def walk(node):
        assert node["kind"] in ("root", "python", "cython", "native")
        assert isinstance(node["bytes"], int) and isinstance(node["count"], int)
        assert sum(c["bytes"] for c in node["children"]) <= node["bytes"] + len(node["children"])
        for c in node["children"]:
            walk(c)

    walk(fg)
    assert fg["bytes"] >= 1_400_003
    ss = report.to_speedscope("leaks")
    json.dumps(ss)
    prof = ss["profiles"][0]
    assert prof["type"] == "sampled" and prof["unit"] == "bytes"
    assert len(prof["samples"]) == len(prof["weights"])
    assert all(0 <= i < len(ss["shared"]["frames"]) for s in prof["samples"] for i in s)
    assert prof["endValue"] == sum(prof["weights"])
    folded = report.to_folded("leaks")
    assert folded.endswith("\n")
    for row in folded.splitlines():
        assert re.match(r"^.+ \d+$", row)
    assert any("cyscope_mem_pattern.pyx" in row and row.endswith(" 1000003") for row in folded.splitlines())
    del keep


def test_cell_tracker_protocol_and_history(monkeypatch):
    from IPython.core.compilerop import CachingCompiler

    tracker = memory.create_cell_tracker()
    assert tracker is not None
    try:
        cc = CachingCompiler()
        src = "x = bytearray(700_000)\n"
        name = cc.cache(src, 41)
        monkeypatch.setattr(_symbols, "_ipython_filename_map", lambda: cc._filename_map)
        before = len(memory.history())
        tracker.cell_started(41, "cell-abc")
        ns = {}
        exec(compile(src, name, "exec"), ns)
        figures = tracker.cell_finished()
        assert {"peak_bytes", "net_bytes", "allocated_bytes", "allocations", "leaked_bytes"} <= set(figures)
        assert figures["leaked_bytes"] >= 700_000
        hist = memory.history()
        assert len(hist) == min(before + 1, 1000)  # history keeps the last 1000
        rep = hist[-1]
        assert rep.execution_count == 41 and rep.cell_id == "cell-abc"
        top = rep.leaks_by_line()[0]
        assert top["cell"] == 41 and top["line"] == 1 and top["kind"] == "python"
        by_cell = memory.live_by_cell()
        assert by_cell.get(41, 0) >= 700_000
        snap = tracker.snapshot()
        assert snap["current_bytes"] > 0 and snap["peak_bytes"] >= 0
        del ns
    finally:
        tracker.close()
    assert native_totals().attached == 0


def test_untracked_pauses_this_thread(pattern_mod):
    mod, _ = pattern_mod
    with memory.track() as report:
        with memory.untracked():
            mod.pattern(500, 24)
    assert report.allocations < 500


API_ALLOC = pyx_source(
    """
def make(int n):
    cdef list out = []
    cdef int i
    for i in range(n):
        out.append(bytearray(1000))  # API-LINE
    return out
"""
)


def test_native_mode_attributes_c_api_allocations_to_pyx_line(tmp_path):
    # bytearray(1000) is allocated by libpython on behalf of the Cython code:
    # only the unwound native stack links it to the .pyx line.
    mod, _ = build_module(tmp_path, "cyscope_mem_api", API_ALLOC)
    with memory.track(native=True, exact=True) as report:
        keep = mod.make(2000)
    line = line_of(API_ALLOC, "API-LINE")
    nodes = _find_all(report.flamegraph("leaks"), lambda n: n["kind"] == "cython" and n["line"] == line)
    assert nodes, report.to_folded("leaks")
    assert sum(n["count"] for n in nodes) >= 2000
    assert all(n["name"] == "make" for n in nodes)
    assert any(n["kind"] == "native" for n in nodes[0]["children"])
    del keep


def test_report_stacks_are_capped():
    from cyscope.memory import _report

    stats = [_report.StackBytes(1000 + i, 0, float(i + 1), 1.0, i + 1, 1) for i in range(10)]
    capped = _report.cap_stacks(stats, limit=3)
    assert len(capped) == 3
    assert capped[0].bytes == 10 and capped[1].bytes == 9
    assert capped[2].stack_id == 0 and capped[2].bytes == sum(range(1, 9)) and capped[2].records == 8
    rep = _report.Report(leaks=[capped[2]])
    fg = rep.flamegraph("leaks")
    assert fg["bytes"] == 36
    assert fg["children"][0]["name"] == "<other stacks>"


def test_default_mode_samples_reach_pyx_line_through_c_api(tmp_path):
    # Sampled records carry a native stack, so even without native=True the
    # bytes Cython code allocates through the C API land on its .pyx line.
    mod, _ = build_module(tmp_path, "cyscope_mem_api_default", API_ALLOC)
    with memory.track() as report:
        keep = mod.make(20_000)  # about 20 MB of bytearrays, ~40 samples
    line = line_of(API_ALLOC, "API-LINE")
    nodes = _find_all(report.flamegraph("leaks"), lambda n: n["kind"] == "cython" and n["line"] == line)
    assert nodes, report.to_folded("leaks")
    estimate = sum(n["bytes"] for n in nodes)
    # Unbiased estimate; its standard deviation is sqrt(512 KiB x 20 MB) = 16 %.
    assert 0.4 * 20_000 * 1000 < estimate < 1.6 * 20_000 * 1000, report.to_folded("leaks")
    assert all(c["kind"] != "native" for n in nodes for c in n["children"])  # native frames hidden
    del keep
