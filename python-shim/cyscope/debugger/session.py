"""Breakpoints, stops and steps in compiled ``%%cython`` cells (no DAP wire format here).

One :class:`DebugSession` per kernel. It knows each cell's latest build (by the source
path JupyterLab uses for the cell), the breakpoints set on those paths, and the threads
stopped in compiled code. It is the runtime's controller: :meth:`probe_hit` runs on the
thread that reached an armed probe, with the GIL, and when that thread must stop it
waits here, in :meth:`_park`, on a queue (the GIL released), running the tasks other
threads post to it (reading locals, evaluating an expression) until one of them says
to resume. Everything that touches the stopped program's objects runs on its own thread.

Threads stop one at a time: a ``prange`` worker that reaches a breakpoint while another
thread is stopped waits its turn, then stops as its own thread.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import queue
import sys
import threading
import time
from dataclasses import dataclass, field

from . import memory, runtime, stack
from .conditions import ConditionError, compile_condition, parse_hit_condition
from .runtime import ARM_BREAKPOINT, ARM_STEP, STEP_IN, STEP_OUT, STEP_OVER, Hit, ProbeModule
from .variables import CValues, References, new_id, python_variable

NOT_BUILT = "cyscope: this %%cython cell has not been run with the debugger on; run the cell to activate the breakpoint"
NO_PROBES = (
    "cyscope: this %%cython cell was built without the debugger; run the cell again (with the debugger on) "
    "to activate the breakpoint"
)
NO_CODE = "cyscope: no code runs on or after this line of the cell"
_breakpoint_ids = itertools.count(1)


@dataclass
class Breakpoint:
    id: int
    path: str
    requested: int
    condition: str | None = None
    hit_condition: str | None = None
    line: int | None = None
    verified: bool = False
    message: str | None = None
    sites: list = field(default_factory=list)  # [(ProbeModule, site)]
    hits: int = 0
    _code: object = None
    _hit_test: object = None

    def to_dap(self) -> dict:
        out = {"id": self.id, "verified": self.verified, "line": self.line if self.line is not None else self.requested}
        out["source"] = {"path": self.path}
        if self.message:
            out["message"] = self.message
        return out


@dataclass
class CellBuild:
    path: str
    probes: ProbeModule | None  # None: built without probes
    code: str | None = None  # the cell as JupyterLab sent it


class _Resume:
    def __init__(self, kind: str):
        self.kind = kind  # "continue", "next", "stepIn", "stepOut", "interrupt"


@dataclass
class Stop:
    thread: int  # DAP thread id
    hit: Hit
    reason: str
    breakpoint_ids: list
    python_start: object  # innermost Python frame below the compiled code
    tasks: queue.Queue = field(default_factory=queue.Queue)
    refs: References = field(default_factory=References)
    frames: list | None = None
    frames_by_id: dict = field(default_factory=dict)
    resumed: bool = False
    resume_claimed: bool = False


class DebugSession:
    def __init__(self, emit=None):
        self.emit = emit or (lambda event: None)
        self._lock = threading.RLock()
        self._slot = threading.Lock()  # one stopped thread at a time
        self.builds: dict[str, CellBuild] = {}
        self.breakpoints: dict[str, list[Breakpoint]] = {}
        self.stops: dict[int, Stop] = {}
        self._thread_ids: dict[int, int] = {}
        self._busy = threading.local()
        self._step: dict | None = None
        self._aborting = False
        self._seq = 0
        self.last_stop_latency: float | None = None
        self.last_hit_monotonic: float | None = None
        runtime.set_controller(self)

    # -- builds --------------------------------------------------------------------
    def note_build(self, path: str, probes: ProbeModule | None, code: str | None = None) -> None:
        """A cell (source path ``path``) was built and loaded, with or without probes."""
        with self._lock:
            old = self.builds.get(path)
            if old is not None and old.probes is probes:
                return
            self.builds[path] = CellBuild(path, probes, code)
            for bp in self.breakpoints.get(path, []):
                before = (bp.verified, bp.line, bp.message)
                self._resolve(bp)
                if (bp.verified, bp.line, bp.message) != before:
                    self.emit_event("breakpoint", {"reason": "changed", "breakpoint": bp.to_dap()})
            self._rearm()

    # -- breakpoints ---------------------------------------------------------------
    def set_breakpoints(self, path: str, requested: list[dict]) -> list[Breakpoint]:
        """Replace the breakpoints of ``path`` (DAP SourceBreakpoint dicts)."""
        with self._lock:
            old = {bp.requested: bp for bp in self.breakpoints.get(path, [])}
            # JupyterLab re-sends a cell's breakpoints as bare lines: then the conditions set
            # earlier (by cyscope's gutter command) stay. A request that carries any condition
            # or hit count is taken as complete, as DAP says.
            explicit = any("condition" in spec or "hitCondition" in spec for spec in requested)
            out = []
            for spec in requested:
                line = spec.get("line")
                if not isinstance(line, int) or isinstance(line, bool):
                    continue
                prev = old.get(line)
                bp = Breakpoint(prev.id if prev else next(_breakpoint_ids), path, line)
                keep = prev is not None and not explicit
                bp.condition = prev.condition if keep else (spec.get("condition") or None)
                bp.hit_condition = prev.hit_condition if keep else (spec.get("hitCondition") or None)
                if prev is not None and (prev.condition, prev.hit_condition) == (bp.condition, bp.hit_condition):
                    bp.hits = prev.hits
                self._resolve(bp)
                out.append(bp)
            self.breakpoints[path] = out
            if not out:
                del self.breakpoints[path]
            self._rearm()
            return out

    def _resolve(self, bp: Breakpoint) -> None:
        bp.sites, bp.line, bp.verified, bp.message = [], None, False, None
        try:
            bp._code = compile_condition(bp.condition)
            bp._hit_test = parse_hit_condition(bp.hit_condition)
        except ConditionError as exc:
            bp.message = f"cyscope: {exc}"
            return
        build = self.builds.get(bp.path)
        if build is None:
            bp.message = NOT_BUILT
            return
        pm = build.probes
        if pm is None:
            bp.message = NO_PROBES
            return
        lines = pm.stoppable_lines()
        later = [ln for ln in lines if ln >= bp.requested]
        if not later:
            bp.message = NO_CODE
            return
        bp.line = later[0]
        bp.sites = [(pm, s) for s in pm.lines[bp.line]]
        bp.verified = True
        if bp.line != bp.requested:
            bp.message = f"cyscope: moved from line {bp.requested} to line {bp.line}, the next line that runs"

    def _rearm(self) -> None:
        for pm in runtime.modules():
            pm.clear(ARM_BREAKPOINT)
        for bps in self.breakpoints.values():
            for bp in bps:
                for pm, site in bp.sites:
                    pm.set_bits([site], ARM_BREAKPOINT, True)

    def breakpoint_lines(self) -> dict[str, list[dict]]:
        """Per path, what the kernel's debugInfo reports (JupyterLab restores these)."""
        with self._lock:
            out = {}
            for path, bps in self.breakpoints.items():
                out[path] = []
                for bp in bps:
                    entry = {"line": bp.line if bp.line is not None else bp.requested}
                    if bp.condition:
                        entry["condition"] = bp.condition
                    if bp.hit_condition:
                        entry["hitCondition"] = bp.hit_condition
                    out[path].append(entry)
            return out

    def clear(self) -> None:
        """The client disconnected: no breakpoints, nobody stopped, no step."""
        with self._lock:
            self.breakpoints.clear()
            self._rearm()
            self._step = None
            runtime.end_step()
        self.resume_all("continue")

    def is_cython_path(self, path: str) -> bool:
        return path in self.builds

    def cell_code(self, path: str) -> str | None:
        build = self.builds.get(path)
        return build.code if build is not None else None

    # -- events ----------------------------------------------------------------------
    def emit_event(self, event: str, body: dict) -> None:
        with self._lock:
            self._seq += 1
            seq = self._seq
        self.emit({"type": "event", "seq": seq, "event": event, "body": body})

    def thread_id(self, os_thread: int) -> int:
        with self._lock:
            tid = self._thread_ids.get(os_thread)
            if tid is None:
                tid = self._thread_ids[os_thread] = new_id()
            return tid

    def thread_name(self, tid: int) -> str:
        for os_thread, t in self._thread_ids.items():
            if t == tid:
                for th in threading.enumerate():
                    if th.ident == os_thread:
                        return f"{th.name} (compiled code)"
                return f"Thread {os_thread} (compiled code)"
        return "compiled code"

    # -- probes ----------------------------------------------------------------------
    def probe_hit(self, hit: Hit) -> int:
        if getattr(self._busy, "on", False):
            return 0  # code run by a task of this thread's own stop (evaluate, a repr)
        if self._aborting:
            if hit.thread != threading.main_thread().ident:
                raise KeyboardInterrupt
            return 0
        pm, site = hit.module, hit.site
        armed = pm.armed[site]
        reason, ids, note = None, [], None
        if armed & ARM_BREAKPOINT:
            reason, ids, note = self._check_breakpoints(hit)
        if reason is None and armed & ARM_STEP and self._step_ends(hit):
            reason = "step"
        if reason is None:
            return 0
        return self._stop(hit, reason, ids, note)

    def _at_site(self, hit: Hit) -> list[Breakpoint]:
        with self._lock:
            return [
                bp
                for bps in self.breakpoints.values()
                for bp in bps
                if any(pm is hit.module and s == hit.site for pm, s in bp.sites)
            ]

    def _check_breakpoints(self, hit: Hit):
        stop_ids, notes = [], []
        frame_locals = None
        for bp in self._at_site(hit):
            if bp._code is not None:
                if frame_locals is None:
                    frame_locals = self._hit_namespace(hit)
                try:
                    ok = bool(eval(bp._code, frame_locals[1], frame_locals[0]))
                except Exception as exc:
                    why = f"{type(exc).__name__}: {exc}"
                    notes.append(f"condition {bp.condition!r} of the breakpoint at line {bp.line} raised {why}")
                    ok = True  # stop, and say why: a silently skipped breakpoint is worse
            else:
                ok = True
            if not ok:
                continue
            bp.hits += 1
            if bp._hit_test is not None and not bp._hit_test(bp.hits):
                continue
            stop_ids.append(bp.id)
        if stop_ids:
            return "breakpoint", stop_ids, "; ".join(notes) or None
        return None, [], None

    def _hit_namespace(self, hit: Hit) -> tuple[dict, dict]:
        values = CValues(hit.module.types, References())
        return locals_namespace(values, hit), module_globals(hit.module)

    def _step_ends(self, hit: Hit) -> bool:
        step = self._step
        if step is None or step["thread"] != hit.thread:
            return False
        kind = step["kind"]
        if kind == STEP_IN:
            return True
        func = hit.module.sites[hit.site][1]
        same_module = hit.module is step["module"]
        if hit.sp > step["sp"]:
            return True
        if hit.sp < step["sp"]:
            return False
        # Same physical frame: the same function, or a function inlined into it (or it
        # into that one). A callee of the step's function is stepped over; its caller is
        # where a return lands.
        if same_module and func == step["func"]:
            return kind == STEP_OVER
        if same_module and func in hit.module.callees(step["func"]):
            return False
        return True

    # -- stopping --------------------------------------------------------------------
    def _stop(self, hit: Hit, reason: str, ids: list, note: str | None) -> int:
        try:
            self._slot.acquire()  # releases the GIL while another thread is stopped
        except KeyboardInterrupt:
            self._abort()
            raise
        try:
            if self._aborting:
                if hit.thread != threading.main_thread().ident:
                    raise KeyboardInterrupt
                return 0
            with self._lock:
                self._step = None
                runtime.end_step()
            tid = self.thread_id(hit.thread)
            start = sys._getframe(1)  # stack.python_frames() drops cyscope's own frames
            stop = Stop(tid, hit, reason, ids, start)
            try:
                return self._announce_and_park(stop, hit, note)
            except KeyboardInterrupt:
                # An interrupt can land anywhere between registering the stop and
                # parking (on a loaded machine, after JupyterLab already saw
                # "stopped"): leave as parking would, or the stop stays listed and
                # no "continued" ever follows.
                if not stop.resumed:
                    self._leave(stop, "interrupt")
                raise
        finally:
            self._slot.release()

    def _announce_and_park(self, stop: Stop, hit: Hit, note: str | None) -> int:
        tid, reason, ids = stop.thread, stop.reason, stop.breakpoint_ids
        with self._lock:
            self.stops[tid] = stop
        body = {
            "reason": reason,
            "threadId": tid,
            "allThreadsStopped": False,
            "preserveFocusHint": False,
            "description": f"Paused on {reason} in compiled code, line {hit.line}",
        }
        if ids:
            body["hitBreakpointIds"] = ids
        if note:
            body["text"] = note
            self.emit_event("output", {"category": "stderr", "output": f"cyscope: {note}\n"})
        self.emit_event("stopped", body)
        self.last_stop_latency = time.perf_counter() - hit.time
        # CLOCK_MONOTONIC is one clock for the whole machine: the benchmark compares
        # it with the moment the event reaches the frontend's process.
        self.last_hit_monotonic = time.monotonic() - self.last_stop_latency
        return self._park(stop)

    def _park(self, stop: Stop) -> int:
        action = None
        try:
            while action is None:
                item = stop.tasks.get()
                if isinstance(item, _Resume):
                    action = item.kind
                    break
                fn, future = item
                if not future.set_running_or_notify_cancel():
                    continue
                self._busy.on = True
                try:
                    future.set_result(fn())
                except BaseException as exc:  # reported to the requester
                    future.set_exception(exc)
                    if isinstance(exc, KeyboardInterrupt):
                        action = "interrupt"
                finally:
                    self._busy.on = False
        except KeyboardInterrupt:
            action = "interrupt"
        finally:
            self._leave(stop, action or "interrupt")
        if action == "interrupt":
            raise KeyboardInterrupt
        return 0

    def _leave(self, stop: Stop, action: str) -> None:
        with self._lock:
            self.stops.pop(stop.thread, None)
            stop.resumed = True
            hit = stop.hit
            if action in ("next", "stepIn", "stepOut"):
                kind = {"next": STEP_OVER, "stepIn": STEP_IN, "stepOut": STEP_OUT}[action]
                func = hit.module.sites[hit.site][1]
                self._step = {"kind": kind, "thread": hit.thread, "sp": hit.sp, "module": hit.module, "func": func}
                runtime.start_step(kind, hit.thread, hit.sp, hit.module, func)
            elif action == "interrupt":
                self._aborting = True
        # Answer whatever is still queued, so no requester waits for ever.
        while True:
            try:
                item = stop.tasks.get_nowait()
            except queue.Empty:
                break
            if not isinstance(item, _Resume):
                item[1].cancel()
        stop.refs.clear()
        stop.frames = None
        stop.frames_by_id.clear()
        stop.python_start = None
        self.emit_event("continued", {"threadId": stop.thread, "allThreadsContinued": False})
        if action == "interrupt":
            self._abort()

    def _abort(self) -> None:
        """An interrupt: every stopped or waiting thread leaves too, until the cell ends."""
        self._aborting = True
        for other in list(self.stops.values()):
            other.tasks.put(_Resume("interrupt"))

    def cell_finished(self) -> None:
        """The cell ended (post_run_cell): no step survives it."""
        with self._lock:
            self._step = None
            self._aborting = False
            runtime.end_step()

    # -- requests about a stop (from the control thread) ----------------------------------
    def stop_of_thread(self, tid) -> Stop | None:
        return self.stops.get(tid)

    def latest_stop_thread(self):
        """The DAP thread of the most recent stop still waiting, else of the most recent
        stop (already told to go), else None."""
        with self._lock:
            live = [s for s in self.stops.values() if not s.resume_claimed] or list(self.stops.values())
            return live[-1].thread if live else None

    def resume(self, tid, kind: str) -> bool:
        stop = self.stops.get(tid)
        if stop is None or not self.claim_resume(stop):
            return False
        self.resume_stop(stop, kind)
        return True

    def claim_resume(self, stop: Stop) -> bool:
        """Take the one resume a stop gets (a second continue or step for it is refused)."""
        with self._lock:
            if stop.resumed or stop.resume_claimed:
                return False
            stop.resume_claimed = True
            return True

    def resume_stop(self, stop: Stop, kind: str) -> None:
        stop.tasks.put(_Resume(kind))

    def resume_all(self, kind: str) -> None:
        """Every stopped thread goes (a shutdown, a disconnect): even one already told to."""
        for stop in list(self.stops.values()):
            stop.resume_claimed = True
            self.resume_stop(stop, kind)

    def run_on_stopped_thread(self, stop: Stop, fn) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        if stop.resumed:
            future.set_exception(RuntimeError("the thread is no longer stopped"))
        else:
            stop.tasks.put((fn, future))
        return future

    def find_frame(self, frame_id):
        for stop in list(self.stops.values()):
            frame = stop.frames_by_id.get(frame_id)
            if frame is not None:
                return stop, frame
        return None, None

    def find_reference(self, ref):
        for stop in list(self.stops.values()):
            children = stop.refs.get(ref)
            if children is not None:
                return stop, children
        return None, None

    # Executed on the stopped thread ---------------------------------------------------
    def frames_of(self, stop: Stop) -> list[stack.Frame]:
        if stop.frames is not None:
            return stop.frames
        hit = stop.hit
        fn = hit.function
        path = hit.module.source_path or hit.module.pyx_path
        frames = [stack.Frame(new_id(), _frame_name(fn), path, hit.line, "cython", hit.module, fn)]
        pyframes = stack.python_frames(stop.python_start)
        segments = stack.compiled_segments(hit, runtime.modules())
        for k, (evals, callers) in enumerate(segments):
            if k > 0:
                for _ in range(evals):
                    if pyframes:
                        frames.append(_python_frame(pyframes.pop(0)))
            for pm, index, line in callers:
                caller = pm.functions[index]
                frames.append(
                    stack.Frame(
                        new_id(), _frame_name(caller), pm.source_path or pm.pyx_path, line, "cython-caller", pm, caller
                    )
                )
        frames += [_python_frame(f) for f in pyframes]
        stop.frames = frames
        stop.frames_by_id = {f.id: f for f in frames}
        return frames

    def scopes_of(self, stop: Stop, frame: stack.Frame) -> list[dict]:
        refs = stop.refs
        if frame.kind == "python":
            f = frame.python_frame
            loc = refs.add(lambda f=f: [python_variable(refs, k, v) for k, v in _visible(f.f_locals)])
            glo = refs.add(lambda f=f: [python_variable(refs, k, v) for k, v in _visible(f.f_globals)])
            return [_scope("Locals", loc), _scope("Globals", glo, expensive=True)]
        pm = frame.module
        values = CValues(pm.types, refs)
        if frame.kind == "cython":
            loc = refs.add(lambda: locals_variables(values, stop.hit))
        else:
            loc = refs.add(
                lambda: [
                    {
                        "name": "(not captured)",
                        "value": "cyscope captures the locals of the frame that stopped; this frame called it",
                        "type": "",
                        "variablesReference": 0,
                    }
                ]
            )
        glo = refs.add(lambda: globals_variables(values, pm))
        return [_scope("Locals", loc), _scope("Globals", glo, expensive=True)]

    def evaluate_in(self, stop: Stop, frame: stack.Frame | None, expression: str):
        if frame is None or frame.kind == "cython-caller":
            frame = self.frames_of(stop)[0] if frame is None else frame
        if frame.kind == "python":
            f = frame.python_frame
            namespace, globals_ = dict(f.f_locals), f.f_globals
        elif frame.kind == "cython":
            values = CValues(frame.module.types, stop.refs)
            namespace, globals_ = locals_namespace(values, stop.hit), module_globals(frame.module)
        else:
            namespace, globals_ = {}, module_globals(frame.module)
        try:
            code = compile(expression, "<debugger>", "eval")
        except SyntaxError:
            code = compile(expression, "<debugger>", "exec")
            exec(code, globals_, namespace)
            return None
        return eval(code, globals_, namespace)


# -- helpers ---------------------------------------------------------------------------


def _scope(name: str, ref: int, expensive: bool = False) -> dict:
    return {"name": name, "variablesReference": ref, "expensive": expensive}


def _frame_name(fn) -> str:
    return "<module>" if fn.kind == "module" else fn.name


def _python_frame(f) -> stack.Frame:
    return stack.Frame(new_id(), f.f_code.co_name, f.f_code.co_filename, f.f_lineno or 0, "python", python_frame=f)


_HIDDEN_GLOBALS = {
    "__builtins__",
    "__loader__",
    "__spec__",
    "__test__",
    "__cyscope_build__",
    "In",
    "Out",
    "exit",
    "quit",
}


def _visible(mapping) -> list:
    return [
        (k, v)
        for k, v in list(mapping.items())
        if isinstance(k, str)
        and k not in _HIDDEN_GLOBALS
        and not k.startswith(("_i", "__pyx", "_oh", "_dh"))
        and not (k.startswith("_") and k[1:].isdigit())
    ]


def _local_entries(values: CValues, hit: Hit):
    """(name, CType, address, size) of the stopped frame's locals, closure variables included."""
    pm = hit.module
    fn = hit.function
    layout = pm.layouts[fn.snapshot_layout] if fn.snapshot_layout < len(pm.layouts) else []
    bints = pm.bint_names(fn.index)
    out = []
    for k, local in enumerate(fn.locals):
        if 2 + 2 * k >= len(layout):
            break
        address, size = hit.snapshot + layout[1 + 2 * k], layout[2 + 2 * k]
        if local["role"] == "scope":
            raw = memory.read(address, 8)
            scope = int.from_bytes(raw, "little") if raw else 0
            key = local["type"].replace("*", "").strip()
            rec = pm.types.records.get(key)
            rlayout = pm.types.record_layout(key)
            if scope and rec and rlayout:
                for j, fld in enumerate(rec["fields"]):
                    if not fld["name"].startswith("__pyx_v_"):
                        continue
                    name = fld["name"][len("__pyx_v_") :]
                    t = pm.types.resolve(fld["type"], fld.get("array", ""), bint=name in bints)
                    out.append((name, t, scope + rlayout[1 + 2 * j], rlayout[2 + 2 * j]))
            continue
        t = pm.types.resolve(local["type"], local.get("array", ""), bint=local["name"] in bints)
        out.append((local["name"], t, address, size))
    return out


def locals_variables(values: CValues, hit: Hit) -> list[dict]:
    return [values.variable(name, t, address, size) for name, t, address, size in _local_entries(values, hit)]


def locals_namespace(values: CValues, hit: Hit) -> dict:
    return {name: values.to_python(t, address, size) for name, t, address, size in _local_entries(values, hit)}


def module_globals(pm: ProbeModule) -> dict:
    mod = sys.modules.get(pm.name)
    if mod is not None:
        return mod.__dict__
    return getattr(pm.module, "__dict__", {}) if pm.module is not None else {}


def globals_variables(values: CValues, pm: ProbeModule) -> list[dict]:
    out = []
    for k, g in enumerate(pm.map.get("globals", [])):
        if k < len(pm.globals_addr) and pm.globals_addr[k]:
            t = pm.types.resolve(g["type"], g.get("array", ""))
            out.append(values.variable(g["name"], t, pm.globals_addr[k]))
    out += [python_variable(values.refs, k, v) for k, v in _visible(module_globals(pm)) if not k.startswith("__")]
    return out
