"""The DAP routing layer (cyscope.debugger.dap.Bridge) against a stand-in for ipykernel's
Debugger: which requests reach debugpy unchanged, which cyscope answers, and that a
malformed or stale request always gets an answer. (Over the wire, with the real ipykernel
and debugpy: test/kernel/debugger*.test.ts.)"""

from __future__ import annotations

import asyncio

import debugger_helpers  # noqa: F401  (puts python-shim on the path)
import pytest
from cyscope.debugger import runtime
from cyscope.debugger.dap import Bridge
from cyscope.debugger.session import DebugSession
from cyscope.debugger.variables import REF_BASE


class FakeKernelDebugger:
    """What the Bridge uses of ipykernel's Debugger; records what would reach debugpy."""

    def __init__(self):
        self.forwarded: list[dict] = []
        self.is_started = True
        self.breakpoint_list: dict = {}
        self.stopped_threads: set = set()
        self.events: list = []
        self.fail_next = False

    def event_callback(self, event):
        self.events.append(event)

    async def process_request(self, message):
        self.forwarded.append(message)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("debugpy went away")
        command = message["command"]
        body: dict = {}
        if command == "setBreakpoints":
            body = {"breakpoints": [{"verified": True, "line": b["line"]} for b in message["arguments"]["breakpoints"]]}
        elif command == "debugInfo":
            body = {"isStarted": True, "breakpoints": [], "stoppedThreads": [1]}
        elif command == "dumpCell":
            body = {"sourcePath": "/tmp/cell-" + str(abs(hash(message["arguments"]["code"]))) + ".py"}
        return {"type": "response", "request_seq": message["seq"], "success": True, "command": command, "body": body}


@pytest.fixture
def bridge():
    saved = runtime.controller()
    fake = FakeKernelDebugger()
    session = DebugSession(emit=fake.event_callback)
    b = Bridge(fake, session)
    yield b
    runtime.set_controller(saved)


def request(b: Bridge, command: str, **arguments):
    return asyncio.run(b.process_request({"type": "request", "seq": 7, "command": command, "arguments": arguments}))


def test_python_requests_reach_debugpy_unchanged(bridge):
    fake = bridge.debugger
    for command, args in [
        ("stackTrace", {"threadId": 1}),
        ("scopes", {"frameId": 140000000000}),
        ("variables", {"variablesReference": 140000000001}),
        ("continue", {"threadId": 1}),
        ("next", {"threadId": 1}),
        ("evaluate", {"expression": "x", "frameId": 140000000000}),
        ("configurationDone", {}),
        ("source", {"source": {"path": "/tmp/x.py"}}),
    ]:
        reply = request(bridge, command, **args)
        assert reply["success"] and fake.forwarded[-1]["command"] == command
        assert fake.forwarded[-1]["arguments"] == args


def test_conditions_on_python_cells_survive_bare_line_resends(bridge):
    fake = bridge.debugger
    request(bridge, "setBreakpoints", source={"path": "/tmp/a.py"}, breakpoints=[{"line": 3, "condition": "x > 1"}])
    assert fake.forwarded[-1]["arguments"]["breakpoints"] == [{"line": 3, "condition": "x > 1"}]
    # JupyterLab's own re-send (lines only) gets the condition back before it reaches debugpy.
    request(bridge, "setBreakpoints", source={"path": "/tmp/a.py"}, breakpoints=[{"line": 3}, {"line": 5}])
    assert fake.forwarded[-1]["arguments"]["breakpoints"] == [{"line": 3, "condition": "x > 1"}, {"line": 5}]
    assert fake.breakpoint_list["/tmp/a.py"] == [{"line": 3, "condition": "x > 1"}, {"line": 5}]
    # An explicit empty condition clears it.
    request(bridge, "setBreakpoints", source={"path": "/tmp/a.py"}, breakpoints=[{"line": 3, "condition": ""}])
    assert fake.forwarded[-1]["arguments"]["breakpoints"] == [{"line": 3}]


def test_cython_cell_breakpoints_are_answered_by_cyscope(bridge):
    fake = bridge.debugger
    code = "%%cython\ndef f():\n    return 1\n"
    path = request(bridge, "dumpCell", code=code)["body"]["sourcePath"]
    before = len(fake.forwarded)
    reply = request(bridge, "setBreakpoints", source={"path": path}, breakpoints=[{"line": 3}], sourceModified=False)
    assert len(fake.forwarded) == before, "a %%cython cell's breakpoints must not reach debugpy"
    (bp,) = reply["body"]["breakpoints"]
    assert bp["verified"] is False and "run the cell" in bp["message"]
    assert fake.breakpoint_list[path] == [{"line": 3}]  # debugInfo reports it, JupyterLab keeps it
    # A build without probes: the message says to run the cell again with the debugger on.
    bridge.session.note_build(path, None)
    reply = request(bridge, "setBreakpoints", source={"path": path}, breakpoints=[{"line": 3}])
    assert "built without the debugger" in reply["body"]["breakpoints"][0]["message"]
    reply = request(bridge, "setBreakpoints", source={"path": path}, breakpoints=[])
    assert reply["body"]["breakpoints"] == [] and path not in fake.breakpoint_list


def test_malformed_and_stale_requests_get_an_answer(bridge):
    fake = bridge.debugger
    assert asyncio.run(bridge.process_request("not a dict"))["success"] is False
    assert asyncio.run(bridge.process_request({"seq": 1}))["success"] is False
    reply = request(bridge, "setBreakpoints", source={"path": "/tmp/a.py"}, breakpoints="nope")
    assert reply["success"] is False and "list" in reply["message"]
    reply = request(bridge, "setBreakpoints", breakpoints=[])
    assert reply["success"] is False
    ours = REF_BASE + 10**6
    for command, args in [
        ("stackTrace", {"threadId": ours}),
        ("scopes", {"frameId": ours}),
        ("variables", {"variablesReference": ours}),
        ("evaluate", {"expression": "1", "frameId": ours}),
        ("continue", {"threadId": ours}),
        ("next", {"threadId": ours}),
        ("stepIn", {"threadId": ours}),
        ("stepOut", {"threadId": ours}),
        ("setVariable", {"variablesReference": ours, "name": "x", "value": "1"}),
        ("exceptionInfo", {"threadId": ours}),
    ]:
        count = len(fake.forwarded)
        reply = request(bridge, command, **args)
        assert reply["success"] is False and reply["message"], command
        assert len(fake.forwarded) == count, f"{command} about cyscope's numbers reached debugpy"
    # An exception in ipykernel's own handler still gets a reply.
    fake.fail_next = True
    reply = request(bridge, "stackTrace", threadId=1)
    assert reply["success"] is False and "debugpy went away" in reply["message"]


def test_debug_info_lists_cyscope_stopped_threads_and_attach_hides_cyscope(bridge):
    bridge.session.stops[REF_BASE + 5] = object()  # a stopped thread, as far as debugInfo cares
    try:
        body = request(bridge, "debugInfo")["body"]
        assert body["stoppedThreads"] == [1, REF_BASE + 5]
    finally:
        bridge.session.stops.clear()
    request(bridge, "attach", rules=[{"path": "/kernel", "include": False}])
    rules = bridge.debugger.forwarded[-1]["arguments"]["rules"]
    assert rules[0] == {"path": "/kernel", "include": False}
    assert rules[1]["include"] is False and rules[1]["path"].endswith("cyscope")


def test_disconnect_clears_breakpoints(bridge):
    path = request(bridge, "dumpCell", code="%%cython\nx = 1\n")["body"]["sourcePath"]
    request(bridge, "setBreakpoints", source={"path": path}, breakpoints=[{"line": 2}])
    assert bridge.session.breakpoints
    request(bridge, "disconnect")
    assert not bridge.session.breakpoints


def test_continue_for_thread_1_reaches_the_stopped_compiled_thread(bridge):
    """JupyterLab 4.6 drops the thread from its list before it reads it back for the
    `continue` request and sends thread 1: with a compiled frame stopped and debugpy's
    thread 1 running, that continue is cyscope's."""
    from cyscope.debugger.session import Stop, _Resume

    fake = bridge.debugger
    stop = Stop(REF_BASE + 7, None, "breakpoint", [], None)
    bridge.session.stops[stop.thread] = stop

    async def scenario():
        reply = await bridge.process_request(
            {"type": "request", "seq": 3, "command": "continue", "arguments": {"threadId": 1}}
        )
        again = await bridge.process_request(
            {"type": "request", "seq": 4, "command": "continue", "arguments": {"threadId": 1}}
        )
        await asyncio.sleep(0.1)  # the resume goes once the reply is out
        return reply, again

    try:
        reply, again = asyncio.run(scenario())
        assert reply["success"] and not [m for m in fake.forwarded if m["command"] == "continue"]
        assert isinstance(stop.tasks.get_nowait(), _Resume)
        # A stop is resumed once: the second continue (a double click) is not forwarded to a
        # later stop, and debugpy never sees it either while cyscope has a stop.
        assert again["success"] is False
        # With debugpy's thread 1 stopped, thread 1 is debugpy's.
        stop.resume_claimed = False
        fake.stopped_threads = {1}
        reply = request(bridge, "continue", threadId=1)
        assert fake.forwarded[-1]["command"] == "continue"
    finally:
        bridge.session.stops.clear()
