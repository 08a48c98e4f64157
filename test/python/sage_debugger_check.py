"""Opt-in check (scripts/test_sage.sh): a breakpoint in a %%cython cell inside Debian's real
SageMath Jupyter kernel, driven with the Debug Adapter Protocol as JupyterLab drives it.

Debian's `sagemath` kernelspec does not say `"debugger": true` in its metadata, so
JupyterLab does not offer its debugger for it unless the kernelspec is given that line
(docs/debugger.md); the kernel itself (ipykernel's, with Debian's debugpy) answers the
debugger's requests, and cyscope's breakpoints work there as in any Python kernel.
Not collected by pytest (no test_ prefix).
"""

from __future__ import annotations

import asyncio
import os
import queue
import sys
import tempfile
import time

from jupyter_client.manager import start_new_kernel
from kernel_runner import run_code

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

CELL = """%%cython
from sage.rings.integer cimport Integer

def doubled_each(Integer x, int n):
    cdef int i
    total = x
    for i in range(n):
        total = total * 2
    return total
"""  # line 8: total = total * 2


def _sync(value):
    """Debian's jupyter_client 7 hands back a coroutine from the control channel's get_msg."""
    if asyncio.iscoroutine(value):
        return asyncio.new_event_loop().run_until_complete(value)
    return value


def main() -> int:
    env = dict(
        os.environ,
        PYTHONPATH=os.path.join(REPO, "python-shim"),
        CYSCOPE_CACHE_DIR=os.path.join(tempfile.mkdtemp(prefix="cyscope-sage-debugger-"), "cache"),
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    km, kc = start_new_kernel(kernel_name="sagemath", env=env, startup_timeout=180)
    seq = [0]

    def dap(command: str, **arguments) -> dict:
        seq[0] += 1
        msg = kc.session.msg(
            "debug_request", {"type": "request", "seq": seq[0], "command": command, "arguments": arguments}
        )
        kc.control_channel.send(msg)
        while True:
            reply = _sync(kc.control_channel.get_msg(timeout=60))
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                return reply["content"]

    def stopped_event(timeout: float = 60) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                msg = kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            if msg["msg_type"] == "debug_event" and msg["content"].get("event") == "stopped":
                return msg["content"]
        raise AssertionError("no stopped event from the Sage kernel")

    try:
        status, out = run_code(kc, "%load_ext cyscope", silent=True)
        assert status == "ok", f"silent %load_ext cyscope failed in the Sage kernel: {out}"
        assert dap("initialize", clientID="jupyterlab", adapterID="sagemath", pathFormat="path", linesStartAt1=True)[
            "success"
        ], "the Sage kernel has no debugger (is python3-debugpy installed?)"
        assert dap("attach")["success"]
        path = dap("dumpCell", code=CELL)["body"]["sourcePath"]
        status, out = run_code(kc, CELL)
        assert status == "ok", f"%%cython with Sage cimports failed:\n{out}"
        bp = dap("setBreakpoints", source={"path": path}, breakpoints=[{"line": 8}], sourceModified=False)
        assert bp["body"]["breakpoints"][0]["verified"], bp
        dap("configurationDone")
        msg_id = kc.execute("result = doubled_each(Integer(21), 3)")
        tid = stopped_event()["body"]["threadId"]
        frames = dap("stackTrace", threadId=tid)["body"]["stackFrames"]
        assert (frames[0]["name"], frames[0]["line"], frames[0]["source"]["path"]) == ("doubled_each", 8, path), frames
        scopes = dap("scopes", frameId=frames[0]["id"])["body"]["scopes"]
        local = {
            v["name"]: v
            for v in dap("variables", variablesReference=scopes[0]["variablesReference"])["body"]["variables"]
        }
        assert (local["i"]["value"], local["i"]["type"]) == ("0", "int"), local
        assert (local["total"]["value"], local["total"]["type"]) == ("21", "Integer"), local
        dap("setBreakpoints", source={"path": path}, breakpoints=[], sourceModified=False)
        assert dap("continue", threadId=tid)["success"]
        while True:
            reply = kc.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                assert reply["content"]["status"] == "ok", reply["content"]
                break
        status, out = run_code(kc, "print(result)")
        assert status == "ok" and "168" in out, out
        print("OK: the SageMath kernel stopped in a %%cython cell with Sage types, showed its locals and went on")
        return 0
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


if __name__ == "__main__":
    sys.exit(main())
