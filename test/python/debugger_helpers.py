"""Helpers for the debugger tests (test_debugger_*.py): a real IPython shell with cyscope
loaded, probe builds through the real ``%%cython --debug``, and a harness that runs
compiled code on a worker thread while the test thread plays the frontend.
"""

from __future__ import annotations

import os
import pathlib
import queue
import sys
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHIM = ROOT / "python-shim"
if str(SHIM) not in sys.path:
    sys.path.insert(0, str(SHIM))


def cython_major() -> int:
    import Cython

    return int(Cython.__version__.split(".")[0])


@pytest.fixture(scope="module")
def dbg_shell(tmp_path_factory):
    """An IPython shell with cyscope loaded and a private %%cython cache."""
    from IPython.testing.globalipapp import get_ipython, start_ipython

    old = os.environ.get("CYSCOPE_CACHE_DIR")
    os.environ["CYSCOPE_CACHE_DIR"] = str(tmp_path_factory.mktemp("dbg-cache") / "cache")
    ip = start_ipython() or get_ipython()
    ip.run_line_magic("load_ext", "cyscope")
    yield ip
    ip.run_line_magic("unload_ext", "cyscope")
    if old is None:
        os.environ.pop("CYSCOPE_CACHE_DIR", None)
    else:
        os.environ["CYSCOPE_CACHE_DIR"] = old


class Harness:
    """The test thread as the frontend: compiled code runs on a worker thread."""

    def __init__(self, shell):
        from cyscope import debugger

        self.shell = shell
        self.kd = debugger.current(shell)
        assert self.kd is not None, "cyscope.debugger was not installed by %load_ext cyscope"
        self.session = self.kd.session
        self.events: queue.Queue = queue.Queue()
        self.session.emit = self.events.put
        self.results: queue.Queue = queue.Queue()
        self.threads: list[threading.Thread] = []

    def build(self, cell: str, line: str = "--debug"):
        """Run ``%%cython <line>`` and return the BuildResult; the cell's source path is its .pyx."""
        from cyscope.cython import last_result

        self.shell.run_cell_magic("cython", line, cell.lstrip("\n"))  # line 2 is the cell's first line
        result = last_result(self.shell)
        return result

    def path_of(self, result) -> str:
        from cyscope.debugger import runtime

        for pm in runtime.modules():
            if pm.so_path == result.so_path:
                return pm.source_path
        return result.pyx_path

    def run(self, fn, *args):
        """Call ``fn(*args)`` on a new thread; its result or exception goes to ``self.results``."""

        def target():
            try:
                self.results.put(("ok", fn(*args)))
            except BaseException as exc:
                self.results.put(("error", exc))

        t = threading.Thread(target=target, daemon=True)
        t.start()
        self.threads.append(t)
        return t

    def event(self, name: str, timeout: float = 20) -> dict:
        while True:
            ev = self.events.get(timeout=timeout)
            if ev["event"] == name:
                return ev

    def stopped(self, timeout: float = 20):
        ev = self.event("stopped", timeout)
        stop = self.session.stop_of_thread(ev["body"]["threadId"])
        assert stop is not None
        return ev, stop

    def ask(self, stop, fn):
        return self.session.run_on_stopped_thread(stop, fn).result(20)

    def frames(self, stop):
        return self.ask(stop, lambda: self.session.frames_of(stop))

    def local_vars(self, stop, frame=None) -> dict:
        frame = frame or self.frames(stop)[0]
        scopes = self.ask(stop, lambda: self.session.scopes_of(stop, frame))
        return {v["name"]: v for v in self.children(stop, scopes[0]["variablesReference"])}

    def children(self, stop, ref) -> list[dict]:
        provider = stop.refs.get(ref)
        assert provider is not None, f"reference {ref} is unknown"
        return self.ask(stop, provider)

    def resume(self, stop, kind: str = "continue") -> None:
        assert self.session.resume(stop.thread, kind)
        self.event("continued")

    def result(self, timeout: float = 20):
        kind, value = self.results.get(timeout=timeout)
        if kind == "error":
            raise value
        return value

    def close(self) -> None:
        self.session.clear()
        for t in self.threads:
            t.join(10)
        self.session.emit = lambda event: None


@pytest.fixture
def harness(dbg_shell):
    h = Harness(dbg_shell)
    yield h
    h.close()
