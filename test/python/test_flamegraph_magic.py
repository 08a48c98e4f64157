"""%%memory and %memory_flamegraph in a real IPython shell with cyscope
loaded as the frontend loads it, and a report shown as a cell's value."""

from __future__ import annotations

import sys

import pytest
from cyscope import memory
from cyscope.flamegraph.magic import parse_bytes
from flamegraph_helpers import MIME, children, fg_shell, kind, label, payloads, run, validate, widest_path
from IPython.core.error import UsageError

__all__ = ["fg_shell"]  # fixtures used by name

MB = 1_000_000


def _only_payload(shell) -> dict:
    (data,) = payloads(shell)
    return validate(data)


def test_memory_runs_the_cell_and_shows_where_its_memory_went(fg_shell):
    result = run(fg_shell, "%%memory\nkept = [bytearray(1_000_000) for _ in range(20)]\nsmall = 1\nlen(kept)\n")
    count = result.execution_count
    # The cell ran as it would without the magic: names kept, last value shown.
    assert len(fg_shell.user_ns["kept"]) == 20 and fg_shell.user_ns["small"] == 1
    assert fg_shell.user_ns["_"] == 20
    (bundle,) = [b for b in fg_shell.shown if MIME in b]
    assert "<svg" in bundle["text/html"] and "<script" not in bundle["text/html"]
    assert bundle["text/plain"].startswith(f"cyscope flamegraph: cell [{count}] · peak")
    data = validate(bundle[MIME])
    assert data["view"] == "peak" and data["cell"] == count and not data["inverted"]
    assert data["total"] >= 20 * MB
    # The widest frame below the root is the cell's allocating line.
    # CPython 3.12 inlines comprehensions (PEP 709): no <listcomp> frame there.
    expected = [f"cell [{count}] line 2"] + (
        [f"<listcomp> · cell [{count}] line 2"] if sys.version_info < (3, 12) else []
    )
    assert widest_path(data)[: len(expected)] == expected
    assert all(kind(data, c) != "root" for c in children(data, 0))


def test_memory_views(fg_shell):
    cell = (
        "temporary = bytearray(30_000_000)\n"
        "del temporary\n"
        "kept = bytearray(2_000_000)\n"
        "briefly = [bytearray(1_000_000) for _ in range(5)]\n"
        "del briefly\n"
    )
    # Exact: in the sampled mode one small block of the kernel's own (its
    # history, say) can weigh 512 KiB, which the bounds below would feel.
    run(fg_shell, "%%memory --exact\n" + cell)
    run(fg_shell, "%%memory --exact --leaks\n" + cell)
    run(fg_shell, "%%memory --exact --allocated\n" + cell)
    peak, leaks, allocated = (validate(d) for d in payloads(fg_shell))
    assert [d["view"] for d in (peak, leaks, allocated)] == ["peak", "leaks", "allocated"]
    assert 30 * MB <= peak["total"] < 33 * MB
    assert 2 * MB <= leaks["total"] < 3 * MB
    assert allocated["total"] >= 37 * MB
    assert widest_path(leaks)[0].endswith(" line 4")  # `kept = ...` is line 4 (line 1: %%memory)
    assert all(d["exact"] for d in (peak, leaks, allocated))


def test_memory_native_exact_inverted_threshold(fg_shell):
    run(
        fg_shell,
        "%%cython\n"
        "cdef list keep = []\n"
        "def grow(int n):\n"
        "    cdef int i\n"
        "    for i in range(n):\n"
        "        keep.append(bytearray(1_000_000))  # line 6\n",
    )
    run(fg_shell, "%%memory --native --exact\ngrow(10)\n")
    run(fg_shell, "%%memory --inverted --threshold 64K\nsmall = [bytearray(20_000) for _ in range(30)]\ngrow(10)\n")
    native, inverted = (validate(d) for d in payloads(fg_shell))
    assert native["native"] and native["exact"]
    kinds = {kind(native, i) for i in range(len(native["nodes"]["level"]))}
    assert {"cell", "cython", "native"} <= kinds, kinds
    assert inverted["inverted"] and inverted["threshold"] == 64 * 1024
    roots = [label(inverted, c) for c in children(inverted, 0)]
    assert any(r.startswith("grow · cell [") and r.endswith(" line 6") for r in roots), roots


def test_memory_compare(fg_shell):
    first = run(fg_shell, "%%memory\nkept = [bytearray(1_000_000) for _ in range(10)]\n")
    run(fg_shell, f"%%memory --compare {first.execution_count}\nkept = [bytearray(1_000_000) for _ in range(30)]\n")
    data = validate(payloads(fg_shell)[1])
    assert data["compare"]["cell"] == first.execution_count
    assert data["compare"]["title"] == f"cell [{first.execution_count}] · peak"
    node = max(children(data, 0), key=lambda i: data["nodes"]["value"][i])
    # The earlier cell's own lines are matched with this cell's. (A peak
    # snapshot may be up to 1/16 of the growth below the true peak.)
    assert data["nodes"]["value"][node] >= 27 * MB and 9 * MB <= data["nodes"]["base"][node] < 15 * MB


def test_bad_options_are_refused_before_the_cell_runs(fg_shell):
    for line in ("%%memory --compare 9999", "%%memory --threshold lots", "%%memory --peek"):
        fg_shell.user_ns.pop("ran", None)
        result = fg_shell.run_cell(f"{line}\nran = True\n", store_history=True)
        assert isinstance(result.error_in_exec, UsageError), (line, result.error_in_exec)
        assert "ran" not in fg_shell.user_ns, line
    assert payloads(fg_shell) == []
    assert parse_bytes("4096") == 4096 and parse_bytes("64K") == 65536 and parse_bytes("1.5MiB") == 1572864


def test_a_failing_cell_still_shows_what_it_allocated(fg_shell):
    result = fg_shell.run_cell("%%memory\nkept = bytearray(5_000_000)\nraise ValueError('boom')\n", store_history=True)
    assert isinstance(result.error_in_exec, ValueError)
    data = validate(_only_payload(fg_shell))
    assert data["total"] >= 5 * MB
    assert len(fg_shell.user_ns["kept"]) == 5_000_000


def test_memory_flamegraph_from_history_without_running_again(fg_shell):
    fg_shell.user_ns["runs"] = 0
    cell = run(fg_shell, "runs += 1\nkept = [bytearray(500_000) for _ in range(10)]\n")
    run(fg_shell, f"%memory_flamegraph {cell.execution_count}")
    run(fg_shell, f"%memory_flamegraph {cell.execution_count} --leaks")
    peak, leaks = (validate(d) for d in payloads(fg_shell))
    assert fg_shell.user_ns["runs"] == 1
    assert peak["cell"] == cell.execution_count and leaks["view"] == "leaks"
    assert widest_path(leaks)[0] == f"cell [{cell.execution_count}] line 2"
    with pytest.raises(UsageError, match=r"no memory report for cell \[9999\]"):
        fg_shell.run_line_magic("memory_flamegraph", "9999")


def test_a_report_shown_as_a_cell_value_is_a_flamegraph(fg_shell):
    run(fg_shell, "kept = bytearray(3_000_000)")
    run(fg_shell, "import cyscope.memory\ncyscope.memory.history()[-1]")
    # What ipykernel sends as the cell's result: the value's formatted bundle.
    bundle, _metadata = fg_shell.display_formatter.format(fg_shell.user_ns["_"])
    data = validate(bundle[MIME])
    assert data["total"] >= 3 * MB and "<svg" in bundle["text/html"]
    with memory.track() as report:
        keep = bytearray(2_000_000)
    bundle = report._repr_mimebundle_()
    assert validate(bundle[MIME])["title"] == "track · peak" and "<svg" in bundle["text/html"]
    del keep


def test_what_the_panel_asks_for_as_user_expressions(fg_shell):
    # The memory panel evaluates these silently (user_expressions), then
    # draws or downloads what the display formatter makes of them.
    first = run(fg_shell, "kept = [bytearray(400_000) for _ in range(10)]")
    second = run(fg_shell, "more = bytearray(2_000_000)")
    module = "__import__('cyscope.flamegraph', fromlist=['cell_flamegraph'])"
    for view in ("peak", "leaks"):
        value = eval(f"{module}.cell_flamegraph({first.execution_count}, '{view}')", fg_shell.user_ns)
        bundle, _ = fg_shell.display_formatter.format(value)
        data = validate(bundle[MIME])
        assert data["view"] == view and data["cell"] == first.execution_count
    value = eval(f"{module}.history_export('speedscope', 'peak')", fg_shell.user_ns)
    speedscope = fg_shell.display_formatter.format(value)[0]["application/json"]
    names = [p["name"] for p in speedscope["profiles"]]
    assert f"cell [{first.execution_count}] (peak)" in names and f"cell [{second.execution_count}] (peak)" in names
    assert all(len(p["samples"]) == len(p["weights"]) for p in speedscope["profiles"])
    value = eval(f"{module}.history_export('folded', 'leaks')", fg_shell.user_ns)
    folded = fg_shell.display_formatter.format(value)[0]["text/plain"]
    assert f"cell [{second.execution_count}] line 1 " in folded  # the stacks, not the object's repr
    assert all(line.rsplit(" ", 1)[1].isdigit() for line in folded.splitlines())
    with pytest.raises(ValueError, match="format must be one of"):
        eval(f"{module}.history_export('csv')", fg_shell.user_ns)
