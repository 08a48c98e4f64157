"""The kernel's end of the 'cyscope' comm: every open comm, one broadcast.

Several frontends (two notebooks on one kernel, a reloaded page) may each open
a comm; every message goes to all of them, except messages of a feature a
frontend did not announce in its connect message (see `broadcast(needs=)`).
Sending is safe from any thread: ipykernel routes IOPub traffic through its
IOPub thread.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from . import protocol

log = logging.getLogger("cyscope")

InboundHandler = Callable[[dict], "dict | None"]
# Called when a comm opens, with the frontend's connect message (None from
# an older frontend); returns the greeting to send on that comm.
OpenHandler = Callable[["dict | None"], "list[dict]"]


class _Peer:
    """One open comm and what its frontend said it understands."""

    def __init__(self, comm, capabilities: frozenset):
        self.comm = comm
        self.capabilities = capabilities


class CommHub:
    def __init__(self, on_open: OpenHandler, on_message: InboundHandler):
        self._peers: dict[str, _Peer] = {}
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

    def unregister(self, reason: str = "unloaded") -> None:
        """Stop accepting comms and close the open ones, saying why."""
        if self._manager is not None:
            try:
                self._manager.unregister_target(protocol.COMM_TARGET, self._accept)
            except Exception:  # already gone with the kernel
                pass
            self._manager = None
        with self._lock:
            peers = list(self._peers.values())
            self._peers.clear()
        for peer in peers:
            try:
                peer.comm.close(data=protocol.goodbye(reason))
            except Exception:
                pass

    @property
    def _comms(self) -> dict[str, Any]:
        """The open comms by id (tests and diagnostics)."""
        with self._lock:
            return {cid: peer.comm for cid, peer in self._peers.items()}

    # -- traffic ------------------------------------------------------------
    def broadcast(self, message: dict, needs: str | None = None) -> None:
        """Send to every open comm, or only to those whose frontend listed `needs`."""
        with self._lock:
            comms = [p.comm for p in self._peers.values() if needs is None or needs in p.capabilities]
        for comm in comms:
            self._send(comm, message)

    def _accept(self, comm, open_msg) -> None:
        problem = None
        try:
            data = (open_msg or {}).get("content", {}).get("data")
            connect = protocol.parse_connect(data)
        except protocol.ProtocolError as exc:
            connect, problem = None, str(exc)
        except Exception as exc:  # never let a bad open message break the kernel
            connect, problem = None, f"internal error: {type(exc).__name__}"
        capabilities = frozenset(connect["capabilities"]) if connect else frozenset()
        with self._lock:
            self._peers[comm.comm_id] = _Peer(comm, capabilities)
        comm.on_msg(lambda msg, comm=comm: self._receive(comm, msg))
        comm.on_close(lambda msg, comm=comm: self._forget(comm))
        try:
            greeting = self._on_open(connect)
        except Exception as exc:
            log.exception("cyscope: error greeting a new comm")
            greeting = [protocol.error(f"internal error: {type(exc).__name__}")]
        for message in greeting:
            if message.get("type") == "config" and "config" not in capabilities:
                continue  # an older frontend would not know it
            self._send(comm, message)
        if problem is not None:
            self._send(comm, protocol.error(problem))

    def _forget(self, comm) -> None:
        with self._lock:
            self._peers.pop(comm.comm_id, None)

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
