"""Route JupyterLab's debugger requests: compiled ``%%cython`` code to cyscope, the rest to debugpy.

ipykernel's ``Debugger`` object (``kernel.debugger``) receives every ``debug_request``
of the control channel through its ``process_request`` coroutine; :class:`Bridge`
replaces that coroutine on the instance and decides per request:

* about a ``%%cython`` cell's source path (``setBreakpoints``), or carrying a thread,
  frame or variables reference that cyscope handed out (``stackTrace``, ``scopes``,
  ``variables``, ``evaluate``, ``continue``, ``next``, ``stepIn``, ``stepOut``, ...):
  answered by the :class:`~.session.DebugSession`;
* anything else: passed to ipykernel's own handler unchanged, so Python cells keep
  debugpy's breakpoints and stepping. ``debugInfo`` replies are completed with
  cyscope's stopped threads, and ``attach`` keeps debugpy out of cyscope's own code.

The numbers cyscope hands out start at 2**50 (see :mod:`.variables`): far above
debugpy's small thread ids and its frame and variable ids (CPython object addresses).
A malformed request, or one naming a frame or thread that is gone, is answered with
``success: false`` and a message: the frontend never waits for a reply that will not
come.
"""

from __future__ import annotations

import asyncio
import logging
import os

from .session import DebugSession
from .variables import is_ours, python_summary, python_type_name, python_variable

log = logging.getLogger("cyscope")

REQUEST_TIMEOUT_S = 30
RESUME_AFTER_REPLY_S = 0.002
_STOP_COMMANDS = {"continue": "continue", "next": "next", "stepIn": "stepIn", "stepOut": "stepOut"}


def _response(request: dict, success: bool = True, body: dict | None = None, message: str | None = None) -> dict:
    out = {
        "type": "response",
        "seq": 0,
        "request_seq": request.get("seq", 0) if isinstance(request, dict) else 0,
        "success": success,
        "command": request.get("command", "") if isinstance(request, dict) else "",
        "body": body if body is not None else {},
    }
    if message:
        out["message"] = message
    return out


def _arguments(request: dict) -> dict:
    args = request.get("arguments")
    return args if isinstance(args, dict) else {}


def read_cell_code(path: str) -> str | None:
    """The code JupyterLab dumped at ``path`` (``dumpCell``), if it is there."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(1 << 20)
    except (OSError, ValueError, TypeError):
        return None


def is_cython_cell(code: str | None) -> bool:
    return bool(code) and code.lstrip().startswith("%%cython")


class Bridge:
    """Wraps one ipykernel ``Debugger`` instance."""

    def __init__(self, debugger, session: DebugSession):
        self.debugger = debugger
        self.session = session
        self.original = debugger.process_request
        self.cython_paths: set[str] = set()
        self.python_conditions: dict[str, dict[int, dict]] = {}
        debugger.process_request = self.process_request

    def uninstall(self) -> None:
        if self.debugger.process_request == self.process_request:
            self.debugger.process_request = self.original

    @property
    def started(self) -> bool:
        return bool(getattr(self.debugger, "is_started", False))

    async def process_request(self, message):
        try:
            if not isinstance(message, dict) or not isinstance(message.get("command"), str):
                return _response(message if isinstance(message, dict) else {}, False, message="malformed debug request")
            handler = getattr(self, "_on_" + message["command"], None)
            if handler is not None:
                reply = await handler(message)
                if reply is not None:
                    return reply
            return await self._forward(message)
        except Exception as exc:
            log.warning(
                "cyscope: debug request %r failed",
                message.get("command") if isinstance(message, dict) else message,
                exc_info=True,
            )
            return _response(
                message if isinstance(message, dict) else {}, False, message=f"cyscope: {type(exc).__name__}: {exc}"
            )

    async def _forward(self, message):
        reply = await self.original(message)
        return reply

    # -- helpers ------------------------------------------------------------------------
    async def _on_stopped_thread(self, stop, fn):
        future = self.session.run_on_stopped_thread(stop, fn)
        return await asyncio.wait_for(asyncio.wrap_future(future), REQUEST_TIMEOUT_S)

    def _is_cython_path(self, path) -> bool:
        if not isinstance(path, str):
            return False
        if path in self.cython_paths or self.session.is_cython_path(path):
            return True
        if is_cython_cell(read_cell_code(path)):
            self.cython_paths.add(path)
            return True
        return False

    # -- requests ------------------------------------------------------------------------
    async def _on_dumpCell(self, message):
        reply = await self._forward(message)
        code = _arguments(message).get("code")
        path = (reply or {}).get("body", {}).get("sourcePath") if isinstance(reply, dict) else None
        if is_cython_cell(code) and isinstance(path, str):
            self.cython_paths.add(path)
        return reply

    async def _on_attach(self, message):
        args = message.setdefault("arguments", {}) if isinstance(message.get("arguments"), dict) else None
        if args is not None:
            # debugpy must not step into cyscope's runtime when a Python step reaches a probe.
            here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            rules = args.get("rules") if isinstance(args.get("rules"), list) else []
            args["rules"] = [*rules, {"path": here, "include": False}]
        return None

    async def _on_setBreakpoints(self, message):
        args = _arguments(message)
        source = args.get("source") if isinstance(args.get("source"), dict) else {}
        path = source.get("path")
        requested = args.get("breakpoints", [])
        if not isinstance(requested, list) or not all(isinstance(b, dict) for b in requested):
            return _response(message, False, message="setBreakpoints: 'breakpoints' must be a list of objects")
        if not isinstance(path, str):
            return _response(message, False, message="setBreakpoints: 'source.path' is missing")
        if not self._is_cython_path(path):
            return await self._python_breakpoints(message, path, requested)
        bps = self.session.set_breakpoints(path, requested)
        self._record(path, self.session.breakpoint_lines().get(path, []))
        return _response(message, body={"breakpoints": [bp.to_dap() for bp in bps]})

    async def _python_breakpoints(self, message, path: str, requested: list):
        """debugpy's breakpoints, with conditions kept across JupyterLab's bare-line re-sends
        (the same rule as for compiled cells, see DebugSession.set_breakpoints)."""
        explicit = any("condition" in bp or "hitCondition" in bp for bp in requested)
        kept = self.python_conditions.get(path, {})
        new: dict = {}
        for bp in requested:
            line = bp.get("line")
            if explicit:
                extra = {k: bp[k] for k in ("condition", "hitCondition") if bp.get(k)}
                for k in ("condition", "hitCondition"):
                    if k in bp and not bp[k]:
                        del bp[k]
            else:
                extra = dict(kept.get(line, {}))
                bp.update(extra)
            if extra:
                new[line] = extra
        self.python_conditions[path] = new
        reply = await self._forward(message)
        if isinstance(reply, dict) and reply.get("success"):
            entries = []
            for bp in reply.get("body", {}).get("breakpoints", []):
                entry = {"line": bp.get("line")}
                entry.update(new.get(bp.get("line"), {}))
                entries.append(entry)
            self._record(path, entries)
        return reply

    def _record(self, path: str, entries: list[dict]) -> None:
        """What ipykernel's debugInfo reports (JupyterLab rebuilds its breakpoint list from it)."""
        table = getattr(self.debugger, "breakpoint_list", None)
        if not isinstance(table, dict):
            return
        if entries:
            table[path] = entries
        else:
            table.pop(path, None)

    async def _on_debugInfo(self, message):
        reply = await self._forward(message)
        if isinstance(reply, dict) and isinstance(reply.get("body"), dict):
            stopped = reply["body"].setdefault("stoppedThreads", [])
            if isinstance(stopped, list):
                stopped += [t for t in self.session.stops if t not in stopped]
        return reply

    async def _on_disconnect(self, message):
        reply = await self._forward(message)
        self.session.clear()
        self.python_conditions.clear()
        return reply

    async def _on_stackTrace(self, message):
        args = _arguments(message)
        tid = args.get("threadId")
        if not is_ours(tid):
            return None
        stop = self.session.stop_of_thread(tid)
        if stop is None:
            return _response(message, False, message="cyscope: that thread is not stopped")
        frames = await self._on_stopped_thread(stop, lambda: self.session.frames_of(stop))
        start = args.get("startFrame") if isinstance(args.get("startFrame"), int) else 0
        levels = args.get("levels") if isinstance(args.get("levels"), int) and args.get("levels") > 0 else None
        shown = frames[start : start + levels if levels else None]
        return _response(message, body={"stackFrames": [f.to_dap() for f in shown], "totalFrames": len(frames)})

    async def _on_scopes(self, message):
        fid = _arguments(message).get("frameId")
        if not is_ours(fid):
            return None
        stop, frame = self.session.find_frame(fid)
        if frame is None:
            return _response(message, False, message="cyscope: unknown frame (the program has moved on)")
        scopes = await self._on_stopped_thread(stop, lambda: self.session.scopes_of(stop, frame))
        return _response(message, body={"scopes": scopes})

    async def _on_variables(self, message):
        args = _arguments(message)
        ref = args.get("variablesReference")
        if not is_ours(ref):
            return None
        stop, children = self.session.find_reference(ref)
        if children is None:
            return _response(message, False, message="cyscope: unknown variables reference (the program has moved on)")
        variables = await self._on_stopped_thread(stop, children)
        start = args.get("start") if isinstance(args.get("start"), int) else 0
        count = args.get("count") if isinstance(args.get("count"), int) and args.get("count") > 0 else None
        return _response(message, body={"variables": variables[start : start + count if count else None]})

    def _frame_for(self, fid):
        if is_ours(fid):
            return self.session.find_frame(fid)
        if fid is None and self.session.stops and not getattr(self.debugger, "stopped_threads", None):
            stop = next(iter(self.session.stops.values()))
            return stop, None
        return None, None

    async def _on_evaluate(self, message):
        args = _arguments(message)
        fid = args.get("frameId")
        stop, frame = self._frame_for(fid)
        if stop is None:
            return None if not is_ours(fid) else _response(message, False, message="cyscope: unknown frame")
        expression = args.get("expression")
        if not isinstance(expression, str):
            return _response(message, False, message="evaluate: 'expression' must be a string")

        def run():
            value = self.session.evaluate_in(stop, frame, expression)
            var = python_variable(stop.refs, "result", value)
            return {"result": var["value"], "type": var["type"], "variablesReference": var["variablesReference"]}

        try:
            body = await self._on_stopped_thread(stop, run)
        except asyncio.TimeoutError:
            return _response(message, False, message="cyscope: the expression did not finish")
        except Exception as exc:
            return _response(message, False, message=f"{type(exc).__name__}: {exc}")
        return _response(message, body=body)

    async def _on_richInspectVariables(self, message):
        args = _arguments(message)
        stop, frame = self._frame_for(args.get("frameId"))
        if stop is None:
            return None
        name = args.get("variableName")
        if not isinstance(name, str) or not name.isidentifier():
            return _response(message, body={"data": {}, "metadata": {}})

        def run():
            value = self.session.evaluate_in(stop, frame, name)
            return {"data": {"text/plain": python_summary(value)}, "metadata": {}}

        try:
            body = await self._on_stopped_thread(stop, run)
        except Exception as exc:
            return _response(message, False, message=f"{type(exc).__name__}: {exc}")
        return _response(message, body=body)

    async def _on_copyToGlobals(self, message):
        args = _arguments(message)
        fid = args.get("srcFrameId")
        if not is_ours(fid):
            return None
        stop, frame = self.session.find_frame(fid)
        src, dst = args.get("srcVariableName"), args.get("dstVariableName")
        if frame is None or not (
            isinstance(src, str) and src.isidentifier() and isinstance(dst, str) and dst.isidentifier()
        ):
            return _response(message, False, message="cyscope: unknown frame or invalid variable names")

        def run():
            from IPython import get_ipython

            value = self.session.evaluate_in(stop, frame, src)
            get_ipython().user_ns[dst] = value
            return {"type": python_type_name(value)}

        await self._on_stopped_thread(stop, run)
        return _response(message)

    def _our_thread(self, tid):
        """``tid`` if it is one of cyscope's threads; else cyscope's stopped thread when the
        request cannot be about a thread of debugpy. JupyterLab 4.6's ``continue`` takes
        the thread out of its list before it reads it back, and then asks for thread 1."""
        if is_ours(tid):
            return tid
        debugpy_stopped = getattr(self.debugger, "stopped_threads", None) or set()
        if self.session.stops and tid not in debugpy_stopped:
            return self.session.latest_stop_thread()
        return None

    async def _resume(self, message, kind: str):
        tid = self._our_thread(_arguments(message).get("threadId"))
        if tid is None:
            return None
        stop = self.session.stop_of_thread(tid)
        if stop is None or not self.session.claim_resume(stop):
            return _response(message, False, message="cyscope: that thread is not stopped")
        # Resume once this reply is on its way: the thread may stop again within a
        # millisecond, and JupyterLab clears its Callstack when the reply to `continue`
        # arrives; a `stopped` event overtaking the reply would leave the panels empty.
        asyncio.get_running_loop().call_later(RESUME_AFTER_REPLY_S, self.session.resume_stop, stop, kind)
        body = {"allThreadsContinued": False} if kind == "continue" else {}
        return _response(message, body=body)

    async def _on_continue(self, message):
        return await self._resume(message, "continue")

    async def _on_next(self, message):
        return await self._resume(message, "next")

    async def _on_stepIn(self, message):
        return await self._resume(message, "stepIn")

    async def _on_stepOut(self, message):
        return await self._resume(message, "stepOut")

    async def _on_pause(self, message):
        tid = _arguments(message).get("threadId")
        if not is_ours(tid):
            return None
        return _response(message, self.session.stop_of_thread(tid) is not None)

    async def _refuse_ours(self, message, key: str):
        if is_ours(_arguments(message).get(key)):
            return _response(message, False, message=f"cyscope: {message['command']} is not supported in compiled code")
        return None

    async def _on_setVariable(self, message):
        return await self._refuse_ours(message, "variablesReference")

    async def _on_setExpression(self, message):
        return await self._refuse_ours(message, "frameId")

    async def _on_exceptionInfo(self, message):
        return await self._refuse_ours(message, "threadId")

    async def _on_stepBack(self, message):
        return await self._refuse_ours(message, "threadId")

    async def _on_restartFrame(self, message):
        return await self._refuse_ours(message, "frameId")

    async def _on_goto(self, message):
        return await self._refuse_ours(message, "threadId")

    async def _on_threads(self, message):
        ours = [{"id": t, "name": self.session.thread_name(t)} for t in self.session.stops]
        reply = await self._forward(message) if self.started else None
        if isinstance(reply, dict) and isinstance(reply.get("body"), dict):
            reply["body"].setdefault("threads", []).extend(ours)
            return reply
        return _response(message, body={"threads": ours})

    async def _on_source(self, message):
        path = (
            (_arguments(message).get("source") or {}).get("path")
            if isinstance(_arguments(message).get("source"), dict)
            else None
        )
        if isinstance(path, str) and path in self.session.builds and not os.path.exists(path):
            code = self.session.cell_code(path)
            if code is not None:
                return _response(message, body={"content": code})
        return None
