"""The per-cell tracker inside a real ipykernel: cell attribution, a compiled
module's leak on its .pyx line, interrupt, fork, and clean detach."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest
from cyscope import memory

jupyter_client = pytest.importorskip("jupyter_client")

ROOT = Path(__file__).resolve().parents[2]

# What the kernel integration does (the lead wires the same calls into the
# MemoryMonitor); registered by hand here so this test covers the tracker alone.
SETUP = textwrap.dedent(
    """
    import cyscope.memory as M
    from cyscope.extension import _count_of_starting_cell
    _tr = M.create_cell_tracker()
    _ip = get_ipython()
    _figures = {}
    def _pre(info):
        _tr.cell_started(_count_of_starting_cell(_ip), getattr(info, "cell_id", None))
    def _post(result):
        _figures[result.execution_count] = _tr.cell_finished()
    _ip.events.register("pre_run_cell", _pre)
    _ip.events.register("post_run_cell", _post)
    """
)


class Kernel:
    def __init__(self, tmp_path: Path):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "python-shim"), str(ROOT / "test" / "python")])
        self.km = jupyter_client.KernelManager()
        self.km.kernel_spec_manager.ensure_native_kernel = True
        self.km.kernel_name = "python3"
        self.km.start_kernel(env=env, cwd=str(tmp_path))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def run(self, code: str, timeout: float = 60.0, interrupt_after: float | None = None) -> dict:
        msg_id = self.kc.execute(code)
        if interrupt_after is not None:
            import time

            time.sleep(interrupt_after)
            self.km.interrupt_kernel()
        reply = self.kc.get_shell_msg(timeout=timeout)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=timeout)
        return reply["content"]

    def value(self, expr: str):
        content = self.run(f"__cyscope_probe = repr({expr})")
        assert content["status"] == "ok", content
        reply = self.kc.execute("", user_expressions={"v": "__cyscope_probe"})
        msg = self.kc.get_shell_msg(timeout=30)
        while msg["parent_header"].get("msg_id") != reply:
            msg = self.kc.get_shell_msg(timeout=30)
        data = msg["content"]["user_expressions"]["v"]
        assert data["status"] == "ok", data
        import ast

        return ast.literal_eval(ast.literal_eval(data["data"]["text/plain"]))

    def close(self):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture
def kernel(tmp_path):
    assert memory.available(), memory.unavailable_reason()
    k = Kernel(tmp_path)
    try:
        assert k.run(SETUP)["status"] == "ok"
        yield k
    finally:
        k.close()


def test_cells_are_tracked_and_attributed(kernel, tmp_path):
    content = kernel.run("x = bytearray(3_000_000)\ny = 1")
    assert content["status"] == "ok"
    count = content["execution_count"]
    rep = kernel.value(
        "[(r.execution_count, r.leaked_bytes, r.net_bytes, r.leaks_by_line()[0]) for r in M.history()][-1]"
    )
    assert rep[0] == count
    # net also sees the kernel freeing a few unrelated blocks during the cell
    assert rep[1] >= 3_000_000 and rep[2] >= 2_900_000
    top = rep[3]
    assert top["cell"] == count and top["line"] == 1 and top["kind"] == "python"
    assert top["bytes"] >= 3_000_000
    figures = kernel.value(f"_figures[{count}]")
    assert {"peak_bytes", "net_bytes", "allocated_bytes", "allocations", "leaked_bytes"} <= set(figures)
    assert figures["leaked_bytes"] >= 3_000_000

    # A compiled module's leak lands on its .pyx line (line 1 = %%cython line).
    build = textwrap.dedent(
        f"""
        from pathlib import Path
        from memory_helpers import ESCAPE, build_module, pyx_source
        SRC = pyx_source(ESCAPE + '''
        from libc.stdlib cimport malloc
        cdef void* kept = NULL
        def leak():
            global kept
            kept = malloc(1000003)
            cyscope_escape(kept)
        ''')
        with M.untracked():
            mod, pyx = build_module(Path({str(tmp_path)!r}) / "kmod", "cyscope_kernel_leak", SRC)
        M.register_cython_source(str(pyx), 99, "cython-cell")
        """
    )
    assert kernel.run(build)["status"] == "ok"
    content = kernel.run("mod.leak()")
    assert content["status"] == "ok"
    top = kernel.value("M.history()[-1].leaks_by_line()[0]")
    pyx_lines = kernel.value("SRC.splitlines()")
    assert top["bytes"] == 1000003
    assert top["kind"] == "cython"
    assert pyx_lines[top["line"] - 1].strip().startswith("kept = malloc(1000003)")
    assert top["cell"] == 99
    alive = kernel.value("M.live_by_cell()")
    assert alive.get(count, 0) >= 3_000_000


def test_interrupt_fork_and_detach(kernel):
    content = kernel.run("import time\nwhile True: time.sleep(0.01)", interrupt_after=1.5)
    assert content["status"] == "error" and content["ename"] == "KeyboardInterrupt"
    # ipykernel 6 aborts requests that arrive right after an error: let the
    # abort window pass.
    import time

    time.sleep(1.0)
    content = kernel.run("z = bytearray(2_000_000)")
    assert content["status"] == "ok"
    rep = kernel.value("(M.history()[-1].execution_count, M.history()[-1].leaked_bytes)")
    assert rep[0] == content["execution_count"] and rep[1] >= 2_000_000
    fork = textwrap.dedent(
        """
        import os
        from cyscope.memory import _lib
        pid = os.fork()
        if pid == 0:
            os._exit(0 if _lib.scan_patched() == 0 and not _lib.totals().attached else 3)
        _, status = os.waitpid(pid, 0)
        child_ok = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        """
    )
    assert kernel.run(fork)["status"] == "ok"
    assert kernel.value("child_ok") is True
    assert kernel.value("_lib.scan_patched() > 0") is True
    content = kernel.run("_ip.events.unregister('pre_run_cell', _pre); _ip.events.unregister('post_run_cell', _post)")
    assert content["status"] == "ok"
    assert kernel.value("(_tr.close(), _lib.totals().attached, _lib.scan_patched())[1:]") == (0, 0)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))


def test_python_objects_in_a_real_kernel(kernel):
    """Objects counted one by one in a kernel, on every interpreter the suites run on."""

    def figures(code: str) -> dict:
        content = kernel.run(code)
        assert content["status"] == "ok", content
        return kernel.value(f"_figures[{content['execution_count']}]")

    # Empty the free lists first, so the dicts come from pymalloc (as they
    # do for tracemalloc below).
    figures("import gc; gc.collect()")
    made = figures("d = [{'a': i} for i in range(1000)]")
    traced = kernel.run(
        "import tracemalloc; gc.collect(); tracemalloc.start()\n"
        "_t0 = tracemalloc.get_traced_memory()[0]\n"
        "d2 = [{'a': i} for i in range(1000)]\n"
        "_traced = tracemalloc.get_traced_memory()[0] - _t0; tracemalloc.stop(); del d2; gc.collect()"
    )
    assert traced["status"] == "ok", traced
    reference = kernel.value("_traced")
    # The cell's figure also carries the kernel's bookkeeping for the cell
    # (a few KB: history, the previous cell's leftovers).
    assert abs(made["net_bytes"] - reference) <= 0.05 * reference, (made["net_bytes"], reference)
    gone = figures("del d; gc.collect()")
    assert gone["net_bytes"] <= -0.9 * made["net_bytes"], (made, gone)
    # A Python line that allocates is attributed to its cell and line.
    content = kernel.run("x = 1\nrows = [(i, i + 0.5) for i in range(100_000)]")
    assert content["status"] == "ok"
    top = kernel.value("M.history()[-1].leaks_by_line()[0]")
    assert (top["cell"], top["line"], top["kind"]) == (content["execution_count"], 2, "python"), top
    # Nothing to tell the panel on a supported interpreter.
    assert kernel.value("_tr.snapshot().get('notices')") is None
