"""The kernel's end of the 'cyscope' comm: every open comm, one broadcast.

Several frontends (two notebooks on one kernel, a reloaded page) may each open
a comm; every message goes to all of them. Sending is safe from any thread:
ipykernel routes IOPub traffic through its IOPub thread.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from . import protocol

log = logging.getLogger("cyscope")

InboundHandler = Callable[[dict], "dict | None"]


class CommHub:
    def __init__(self, on_open: Callable[[], list[dict]], on_message: InboundHandler):
        self._comms: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._on_open = on_open
        self._on_message = on_message
        self._manager = None

    # -- registration -------------------------------------------------------
    def register(self, kernel) -> bool:
        """Register the comm target on an ipykernel kernel (6.x and 7.x)."""
        manager = getattr(kernel, "comm_manager", None)
        if manager is None:
            return False
        manager.register_target(protocol.COMM_TARGET, self._accept)
        self._manager = manager
        return True

    def unregister(self) -> None:
        if self._manager is not None:
            try:
                self._manager.unregister_target(protocol.COMM_TARGET, self._accept)
            except Exception:  # already gone with the kernel
                pass
            self._manager = None
        with self._lock:
            comms = list(self._comms.values())
            self._comms.clear()
        for comm in comms:
            try:
                comm.close()
            except Exception:
                pass

    # -- traffic ------------------------------------------------------------
    def broadcast(self, message: dict) -> None:
        with self._lock:
            comms = list(self._comms.values())
        for comm in comms:
            self._send(comm, message)

    def _accept(self, comm, open_msg) -> None:
        with self._lock:
            self._comms[comm.comm_id] = comm
        comm.on_msg(lambda msg, comm=comm: self._receive(comm, msg))
        comm.on_close(lambda msg, comm=comm: self._forget(comm))
        for message in self._on_open():
            self._send(comm, message)

    def _forget(self, comm) -> None:
        with self._lock:
            self._comms.pop(comm.comm_id, None)

    def _receive(self, comm, msg) -> None:
        # Nothing a frontend sends may raise into the kernel's message loop.
        try:
            data = msg.get("content", {}).get("data")
            reply = self._on_message(protocol.parse_inbound(data))
        except protocol.ProtocolError as exc:
            reply = protocol.error(str(exc))
        except Exception as exc:  # a bug of ours: report it, keep the kernel
            log.exception("cyscope: error handling a comm message")
            detail = protocol.brief(exc.args[0]) if exc.args else ""
            reply = protocol.error(f"internal error: {type(exc).__name__} {detail}".rstrip())
        if reply is not None:
            self._send(comm, reply)

    def _send(self, comm, message: dict) -> None:
        try:
            comm.send(message)
        except Exception:
            log.debug("cyscope: comm send failed", exc_info=True)
