#!/usr/bin/env python3
"""Benchmark breakpoints in %%cython cells: the cost of disarmed probes, and stop and step latency.

One real kernel (jupyter_client, the kernel's interpreter given by --python), driven as
JupyterLab drives it (DAP in debug_request messages on the control channel):

  build      the time (CPU, kernel and compiler; and wall) of building four numeric
             loops, cache missed, with the debugger off and on (probes); module sizes.
  cost       numeric loops built twice from the same code: a plain build (the debugger
             off) and a probe build (the debugger on, every probe disarmed). Trials are
             interleaved and timed in the kernel with CPU time; the ratio of the minima.
  stop       from the probe reached (the kernel's CLOCK_MONOTONIC) to the `stopped`
             event received here (the same clock), over --stops stops.
  step       from sending `next` to receiving the step's `stopped` event, over --steps.

    .venv/bin/python scripts/bench_breakpoints.py              # or: npm run bench:breakpoints
    .venv/bin/python scripts/bench_breakpoints.py --python /usr/bin/python3   # Debian's kernel, Cython 0.29
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import pathlib
import queue
import statistics
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]

LOOPS = """\
def tri(long n):
    cdef long i, s = 0
    for i in range(n):
        s += i
    return s

def pi_series(long n):
    cdef long k
    cdef double s = 0, sign = 1
    for k in range(n):
        s += sign / (2 * k + 1)
        sign = -sign
    return 4 * s

def sum_squares(double[::1] a):
    cdef Py_ssize_t i
    cdef double s = 0, x
    for i in range(a.shape[0]):
        x = a[i]
        s += x * x
    return s

def mandel(int w, int h, int maxit):
    cdef int i, j, k, count = 0
    cdef double cr, ci, zr, zi, t
    for i in range(h):
        for j in range(w):
            cr = -2.0 + 3.0 * j / w
            ci = -1.5 + 3.0 * i / h
            zr = 0.0
            zi = 0.0
            k = 0
            while k < maxit and zr * zr + zi * zi < 4.0:
                t = zr * zr - zi * zi + cr
                zi = 2.0 * zr * zi + ci
                zr = t
                k += 1
            count += k
    return count

def never_called():
    return 0
"""  # a breakpoint on never_called's line arms the module without stopping anywhere
CALLS = {
    "tri": "tri(30_000_000)",
    "pi_series": "pi_series(10_000_000)",
    "sum_squares": "sum_squares(_bench_array)",
    "mandel": "mandel(240, 160, 200)",
}
STOP_CELL = """%%cython -n _bench_stop
def spin(int n):
    cdef int i, s = 0
    for i in range(n):
        s += i
    return s
"""


class Kernel:
    def __init__(self, python: str):
        from jupyter_client import KernelManager
        from jupyter_client.kernelspec import KernelSpec

        tmp = tempfile.mkdtemp(prefix="cyscope-bench-bp-")
        env = dict(
            os.environ,
            PYTHONPATH=str(ROOT / "python-shim"),
            CYSCOPE_CACHE_DIR=os.path.join(tmp, "cache"),
            IPYTHONDIR=os.path.join(tmp, "ipython"),
            PYDEVD_DISABLE_FILE_VALIDATION="1",
        )
        self.km = KernelManager()
        self.km._kernel_spec = KernelSpec(
            argv=[python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name="bench",
            language="python",
        )
        self.km.start_kernel(env=env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.events: queue.Queue = queue.Queue()
        self.seq = 0
        threading.Thread(target=self._read_iopub, daemon=True).start()

    def _read_iopub(self) -> None:
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                continue
            except Exception:
                return
            if msg["msg_type"] == "debug_event":
                self.events.put((time.monotonic(), msg["content"]))

    def execute(self, code: str, timeout: float = 600) -> dict:
        msg_id = self.kc.execute(code)
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                if reply["content"]["status"] != "ok":
                    raise RuntimeError(
                        f"{code[:60]!r}: {reply['content'].get('ename')}: {reply['content'].get('evalue')}"
                    )
                return reply["content"]

    def start(self, code: str) -> str:
        return self.kc.execute(code)

    def wait(self, msg_id: str, timeout: float = 600) -> None:
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                return

    def value(self, expression: str):
        """The value of an expression in the kernel (anything JSON can carry)."""
        wrapped = f"__import__('json').dumps({expression})"
        content = self.kc.execute("", silent=True, user_expressions={"v": wrapped}, reply=True, timeout=600)["content"]
        result = content["user_expressions"]["v"]
        if result["status"] != "ok":
            raise RuntimeError(f"{expression}: {result}")
        return json.loads(ast.literal_eval(result["data"]["text/plain"]))

    def dap(self, command: str, **arguments) -> dict:
        self.seq += 1
        msg = self.kc.session.msg(
            "debug_request", {"type": "request", "seq": self.seq, "command": command, "arguments": arguments}
        )
        self.kc.control_channel.send(msg)
        while True:
            reply = self.kc.control_channel.get_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                return reply["content"]

    def event(self, name: str, timeout: float = 60) -> tuple[float, dict]:
        while True:
            at, ev = self.events.get(timeout=timeout)
            if ev.get("event") == name:
                return at, ev

    def shutdown(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def timing_code(call: str) -> str:
    """CPU seconds of one call, as an expression."""
    return f"(lambda t0: ({call}, __import__('time').process_time() - t0)[1])(__import__('time').process_time())"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"), help="the kernel's interpreter")
    parser.add_argument("--trials", type=int, default=7, help="interleaved timing rounds per loop (default 7)")
    parser.add_argument("--stops", type=int, default=200, help="stops measured (default 200)")
    parser.add_argument("--steps", type=int, default=200, help="steps measured (default 200)")
    args = parser.parse_args()

    kernel = Kernel(args.python)
    try:
        kernel.execute("%load_ext cyscope")
        versions = kernel.value("[__import__('platform').python_version(), __import__('Cython').__version__]")
        print(f"kernel: Python {versions[0]}, Cython {versions[1]} ({args.python})")
        kernel.execute("import numpy as np\n_bench_array = np.random.default_rng(1).random(5_000_000)")
        # Cython and the compiler warm (imports, page cache) before any build is timed.
        kernel.execute("%%cython -n _bench_warm\ndef warm(int n):\n    return n + 1\n")

        def timed_builds(variant: str) -> tuple[float, float]:
            """(CPU seconds, wall seconds) of the cheaper of two cache-missing builds of
            LOOPS (two module names). CPU time counts the kernel (Cython, the probe
            rewrite) and the compiler it runs; other jobs on the machine barely move it."""
            best = None
            for suffix in ("", "_b"):
                kernel.execute(
                    "import resource as _r, time as _t\n"
                    "_bench_c0, _bench_p0 = _r.getrusage(_r.RUSAGE_CHILDREN), _t.process_time()"
                )
                t0 = time.monotonic()
                kernel.execute(f"%%cython -n _bench_{variant}{suffix}\n" + LOOPS)
                wall = time.monotonic() - t0
                cpu = kernel.value(
                    "(lambda c: _t.process_time() - _bench_p0 + c.ru_utime - _bench_c0.ru_utime"
                    " + c.ru_stime - _bench_c0.ru_stime)(_r.getrusage(_r.RUSAGE_CHILDREN))"
                )
                if best is None or cpu < best[0]:
                    best = (cpu, wall)
            return best

        # The same code built with the debugger off, then on.
        build_time = {"plain": timed_builds("plain")}
        kernel.dap("initialize", clientID="jupyterlab", adapterID="python", pathFormat="path", linesStartAt1=True)
        kernel.dap("attach")
        build_time["probes"] = timed_builds("probes")
        has_probes = kernel.value(
            "[__import__('os').path.exists(m.__file__.split('.')[0] + '.probes.json') "
            "for m in (__import__('_bench_plain'), __import__('_bench_probes'))]"
        )
        assert has_probes == [False, True], has_probes
        sizes = kernel.value(
            "[__import__('os').path.getsize(__import__(m).__file__) for m in ('_bench_plain', '_bench_probes')]"
        )
        print("\nbuild of the four loops (the cheaper of two cache-missing builds by CPU time)")
        print(f"{'':<14}{'CPU':>10}{'wall':>10}{'module':>12}")
        for i, variant in enumerate(("plain", "probes")):
            cpu, wall = build_time[variant]
            print(f"{variant:<14}{cpu:>9.2f}s{wall:>9.2f}s{sizes[i] / 1024:>8.0f} KiB")
        (pc, pw), (qc, qw) = build_time["plain"], build_time["probes"]
        print(f"{'ratio':<14}{qc / pc:>10.2f}{qw / pw:>10.2f}{sizes[1] / sizes[0]:>12.2f}")

        def cost(title: str) -> dict:
            print(f"\n{title} (CPU time, minimum of {args.trials} interleaved trials)")
            print(f"{'loop':<14}{'plain':>12}{'probes':>12}{'ratio':>8}")
            ratios = {}
            for name, call in CALLS.items():
                best = {"plain": [], "probes": []}
                for _ in range(args.trials):
                    for variant in ("plain", "probes"):
                        best[variant].append(kernel.value(timing_code(f"__import__('_bench_{variant}').{call}")))
                plain, probes = min(best["plain"]), min(best["probes"])
                ratios[name] = probes / plain
                print(f"{name:<14}{plain * 1e3:>10.1f}ms{probes * 1e3:>10.1f}ms{ratios[name]:>8.2f}")
            return ratios

        ratios = cost("cost of a probe build with every probe disarmed")
        print(f"{'worst':<14}{'':>24}{max(ratios.values()):>8.2f}   (goal: at most 1.3)")
        # While a breakpoint is armed anywhere in the module, its functions run their
        # probed version: each line's check is paid (it never stops here).
        probes_cell = "%%cython -n _bench_probes\n" + LOOPS
        path = kernel.dap("dumpCell", code=probes_cell)["body"]["sourcePath"]
        never_line = probes_cell.split("\n").index("def never_called():") + 2
        armed = kernel.dap("setBreakpoints", source={"path": path}, breakpoints=[{"line": never_line}])
        assert armed["body"]["breakpoints"][0]["verified"], armed
        cost("cost while a breakpoint is armed elsewhere in the same cell")
        kernel.dap("setBreakpoints", source={"path": path}, breakpoints=[])

        # Stop latency: probe reached -> `stopped` event here, on one clock.
        kernel.execute(STOP_CELL)
        dump = kernel.dap("dumpCell", code=STOP_CELL)["body"]["sourcePath"]
        reply = kernel.dap("setBreakpoints", source={"path": dump}, breakpoints=[{"line": 5}], sourceModified=False)
        assert reply["body"]["breakpoints"][0]["verified"], reply
        kernel.dap("configurationDone")
        msg_id = kernel.start(f"spin({args.stops + args.steps + 10})")
        latency = []
        session = (
            "__import__('cyscope.debugger', fromlist=['current']).current(__import__('IPython').get_ipython()).session"
        )
        for _ in range(args.stops):
            arrived, ev = kernel.event("stopped")
            tid = ev["body"]["threadId"]
            frame = kernel.dap("stackTrace", threadId=tid)["body"]["stackFrames"][0]["id"]
            hit = float(
                kernel.dap("evaluate", expression=f"{session}.last_hit_monotonic", frameId=frame)["body"]["result"]
            )
            latency.append(arrived - hit)
            kernel.dap("continue", threadId=tid)
        arrived, ev = kernel.event("stopped")
        tid = ev["body"]["threadId"]
        kernel.dap("setBreakpoints", source={"path": dump}, breakpoints=[], sourceModified=False)
        steps = []
        for _ in range(args.steps):
            sent = time.monotonic()
            kernel.dap("next", threadId=tid)
            arrived, ev = kernel.event("stopped")
            steps.append(arrived - sent)
        kernel.dap("continue", threadId=tid)
        kernel.wait(msg_id)

        def show(label: str, values: list[float]) -> None:
            values = sorted(values)
            p95 = values[int(0.95 * (len(values) - 1))]
            print(
                f"{label:<38}median {statistics.median(values) * 1e3:6.2f} ms   "
                f"p95 {p95 * 1e3:6.2f} ms   max {values[-1] * 1e3:6.2f} ms   (n={len(values)})"
            )

        print()
        show("stop: probe -> stopped event", latency)
        show("step: `next` sent -> stopped event", steps)
        print("(goal: the stopped event within 10 ms of the probe)")
    finally:
        kernel.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
