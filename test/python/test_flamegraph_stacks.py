"""Stacks as the flamegraph shows them: they start at the cell, frames are
named as a person names them, C++ is demangled, native runs collapse."""

from __future__ import annotations

import re
import sys

from cyscope import memory
from cyscope.memory import _report, _symbols
from flamegraph_helpers import fg_shell, run

__all__ = ["fg_shell"]  # fixtures used by name

# C++ allocations below a %%cython function, and Python objects made by one.
CPLUS_CELL = (
    "%%cython --cplus\n"
    "from libcpp.vector cimport vector\n"
    "\n"
    "def grow(int n):\n"
    "    cdef vector[long] v\n"
    "    cdef int i\n"
    "    for i in range(n):\n"
    "        v.push_back(i)\n"
    "    return v.size()\n"
    "\n"
    "def objects(int n):\n"
    "    return [bytearray(1000) for _ in range(n)]\n"
)
HOST = re.compile(r"/(IPython|ipykernel|_pytest|pluggy|asyncio|tornado|cyscope)/|runpy|<frozen")


def _report_of(count: int):
    (report,) = [r for r in memory.history() if r.execution_count == count]
    return report


def test_cxx_names_are_demangled():
    assert _symbols.demangle(["_ZNSt6vectorIiSaIiEE9push_backERKi", "malloc", "_Z3fooi", ""]) == [
        "std::vector<int, std::allocator<int> >::push_back(int const&)",
        "malloc",
        "foo(int)",
        "",
    ]


def test_cython_names_lose_the_parameters_of_a_cplus_build():
    assert _symbols._cython_name("__pyx_pf_4cell_grow") == "grow"
    assert _symbols._cython_name("__pyx_pf_4cell_grow(_object*, int)") == "grow"
    assert _symbols._cython_name("__pyx_pf_4cell_3Foo_bar(__pyx_obj_4cell_Foo*)") == "Foo.bar"


def test_a_cell_stack_starts_at_the_cell_and_names_its_lines(fg_shell):
    define = run(fg_shell, "def make(n):\n    return [bytearray(200_000) for _ in range(n)]\n")
    call = run(fg_shell, "x = 1\nkept = make(40)\n")
    report = _report_of(call.execution_count)
    stacks = report.shown_stacks("leaks")
    big = max(stacks, key=lambda s: s[1])
    labels = [f.label for f in big[0]]
    expected = [
        f"cell [{call.execution_count}] line 2",
        f"make · cell [{define.execution_count}] line 2",
    ]
    if sys.version_info < (3, 12):  # 3.12 inlines comprehensions (PEP 709)
        expected.append(f"<listcomp> · cell [{define.execution_count}] line 2")
    assert labels[: len(expected)] == expected, labels
    assert big[0][0].kind == "cell" and big[0][1].kind == "python"
    # No frame of the kernel that runs the cell comes first, in any stack.
    for frames, _bytes, _count in stacks:
        assert frames and not HOST.search(frames[0].file or ""), [f.label for f in frames]
    # trim=False keeps them: the same stack then starts far above the cell.
    full = max(report.shown_stacks("leaks", trim=False), key=lambda s: s[1])[0]
    assert len(full) > len(big[0]) and HOST.search(full[0].file or ""), [f.label for f in full]
    assert [f.label for f in full[-len(big[0]) :]] == labels
    assert report.to_folded("leaks").splitlines()[0].startswith("cell [")
    assert "interactiveshell.py" in report.to_folded("leaks", trim=False)


def test_a_cython_function_is_named_by_its_cell_line(fg_shell):
    build = run(
        fg_shell,
        "%%cython\n"
        "cdef list keep = []\n"
        "\n"
        "def grow(int n):\n"
        "    cdef int i\n"
        "    for i in range(n):\n"
        "        keep.append(bytearray(1_000_000))  # line 7\n",
    )
    call = run(fg_shell, "grow(20)")
    folded = _report_of(call.execution_count).to_folded("leaks")
    line = f"cell [{call.execution_count}] line 1;grow · cell [{build.execution_count}] line 7 "
    assert any(row.startswith(line) for row in folded.splitlines()), folded


def test_import_machinery_is_not_shown(fg_shell, tmp_path, monkeypatch):
    (tmp_path / "fg_imported_module.py").write_text("DATA = [bytearray(300_000) for _ in range(5)]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    call = run(fg_shell, "import fg_imported_module")
    report = _report_of(call.execution_count)
    shown = report.to_folded("leaks")
    assert "fg_imported_module.py:1" in shown and "<frozen" not in shown, shown
    assert "importlib._bootstrap" in report.to_folded("leaks", trim=False)


def test_native_frames_are_demangled_and_their_runs_collapsed(fg_shell):
    run(fg_shell, CPLUS_CELL)
    with memory.track(native=True, exact=True) as report:
        fg_shell.run_cell("grew = grow(1_000_000)\nmade = objects(5000)", store_history=True)
    collapsed = report.to_folded("allocated")
    assert "grow · cell [" in collapsed and "operator new(unsigned long) · libstdc++" in collapsed, collapsed
    runs = re.findall(r"[\w.+-]+: (\d+) frames", collapsed)
    assert runs and all(int(n) >= 2 for n in runs), collapsed
    expanded = report.to_folded("allocated", collapse_native=False)
    assert not re.search(r": \d+ frames", expanded)
    assert max(r.count(";") for r in expanded.splitlines()) > max(r.count(";") for r in collapsed.splitlines())
    # The collapsed node keeps the frames it stands for.
    tree = report.flamegraph("allocated")
    found = []

    def walk(node):
        if re.search(r": \d+ frames$", node["label"]):
            found.append(node)
        for child in node["children"]:
            walk(child)

    walk(tree)
    assert found and all(len(n["frames"]) == int(n["label"].rsplit(": ", 1)[1].split()[0]) for n in found)


def test_frame_labels():
    cell = _symbols.Frame("<module>", "/tmp/ipykernel_1/2.py", 2, "python", 4)
    fn = _symbols.Frame("grow", "/c/_cyscope_magic_ab.pyx", 9, "cython", 3)
    lib = _symbols.Frame("zeros", "/usr/lib/python3/dist-packages/numpy/core/numeric.py", 12, "python")
    cxx = _symbols.Frame("operator new(unsigned long)", None, None, "native", obj="/usr/lib/libstdc++.so.6")
    ext = _symbols.Frame("f", None, None, "native", obj="/x/_ctypes.cpython-311-x86_64-linux-gnu.so")
    assert _report.frame_label(cell) == "cell [4] line 2"
    assert _report.frame_label(fn) == "grow · cell [3] line 9"
    assert _report.frame_label(lib) == "zeros · core/numeric.py:12"
    assert _report.frame_label(cxx) == "operator new(unsigned long) · libstdc++"
    assert _report.frame_label(ext) == "f · _ctypes"


def _keys_both_ways(report, view: str) -> int:
    """Check the native library's keys of every stack of a view against the
    Python rules (shown_stack) for every option; return how many stacks the
    library built itself (not left to Python)."""
    from cyscope.memory import _lib

    stacks = report._stacks(view)
    ids = [s.stack_id for s in stacks]
    built = 0
    for trim in (True, False):
        for collapse in (True, False):
            for inverted in (False, True):
                data, starts, ends, _v, _c = report.stack_columns(view, trim, collapse, inverted)
                native = [data[a:b] for a, b in zip(starts, ends)]
                python = [_report.stack_key(i, report.native, trim, collapse, inverted) for i in ids]
                assert native == python, (trim, collapse, inverted)
                options = _report._flags(report.native, trim, collapse) | (_lib.KEYS_INVERTED if inverted else 0)
                _data, _ends, fallback = _lib.shown_keys(ids, options, _report._note_frames)
                built += len(ids) - sum(fallback)
    return built


def test_the_native_library_shows_stacks_as_the_python_rules_do(fg_shell, tmp_path, monkeypatch):
    from cyscope.memory import _lib

    assert _lib.has_shown_keys(), _lib.reason()
    _lib.forget_frame_notes()  # every frame named afresh
    (tmp_path / "fg_keys_module.py").write_text("DATA = [bytearray(300_000) for _ in range(3)]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    run(fg_shell, CPLUS_CELL)
    define = run(fg_shell, "def make(n):\n    return [bytearray(200_000) for _ in range(n)]\n")
    with memory.track(exact=True) as report:
        fg_shell.run_cell("import fg_keys_module\nkept = make(10)\nmade = objects(300)\n", store_history=True)
    assert len(report.leaks) > 3 and define.execution_count
    assert "fg_keys_module.py" in report.to_folded("leaks")
    assert _keys_both_ways(report, "leaks") > 0
    with memory.track(native=True, exact=True) as native_report:
        fg_shell.run_cell("grew = grow(100_000)\nmore = objects(300)\nalso = make(3)", store_history=True)
    assert native_report.native and len(native_report.allocated_stacks) > 3
    assert _keys_both_ways(native_report, "allocated") > 0
