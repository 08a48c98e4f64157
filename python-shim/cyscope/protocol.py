"""The kernel side of the cyscope comm protocol.

The protocol is defined once, in protocol/cyscope.schema.json at the top of
the repository; this module builds the messages the kernel sends and checks
the ones it receives. test/python/test_protocol.py validates both directions
against the schema and its fixtures, as the frontend's tests do.

Checks here are hand-written (no jsonschema at run time) because the kernel
may be Debian's python3, which must not need extra packages.
"""

from __future__ import annotations

from typing import Any

PROTOCOL_VERSION = 1
COMM_TARGET = "cyscope"

MIN_INTERVAL_MS = 10
MAX_INTERVAL_MS = 60_000


class ProtocolError(ValueError):
    """A message from the frontend that the kernel cannot act on."""


def hello(*, cyscope_version: str, python: str, pid: int, interval_ms: int, native: dict) -> dict:
    return {
        "v": PROTOCOL_VERSION,
        "type": "hello",
        "cyscope_version": cyscope_version,
        "python": python,
        "pid": pid,
        "interval_ms": interval_ms,
        "native": native,
    }


def sample(*, t_ms: float, rss_bytes: int, running: bool, execution_count: int | None, native: dict | None) -> dict:
    return {
        "v": PROTOCOL_VERSION,
        "type": "sample",
        "t_ms": t_ms,
        "rss_bytes": rss_bytes,
        "running": running,
        "execution_count": execution_count,
        "native": native,
    }


def cell(record: dict) -> dict:
    return {"v": PROTOCOL_VERSION, "type": "cell", "record": record}


def history(records: list[dict]) -> dict:
    return {"v": PROTOCOL_VERSION, "type": "history", "records": records}


def error(message: str) -> dict:
    return {"v": PROTOCOL_VERSION, "type": "error", "message": message}


# Frontend-to-kernel messages: type -> (required fields, optional fields).
_INBOUND_FIELDS: dict[str, set[str]] = {
    "configure": {"interval_ms"},
    "request_history": set(),
}


def parse_inbound(data: Any) -> dict:
    """Return `data` if it is a valid frontend message, else raise ProtocolError."""
    if not isinstance(data, dict):
        raise ProtocolError(f"expected a JSON object, got {type(data).__name__}")
    if data.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported protocol version {data.get('v')!r}; this kernel speaks {PROTOCOL_VERSION}")
    kind = data.get("type")
    if kind not in _INBOUND_FIELDS:
        raise ProtocolError(f"unknown message type {kind!r}")
    expected = _INBOUND_FIELDS[kind] | {"v", "type"}
    extra = set(data) - expected
    missing = expected - set(data)
    if missing:
        raise ProtocolError(f"{kind}: missing field(s) {', '.join(sorted(missing))}")
    if extra:
        raise ProtocolError(f"{kind}: unknown field(s) {', '.join(sorted(extra))}")
    if kind == "configure":
        interval = data["interval_ms"]
        if type(interval) is not int or not MIN_INTERVAL_MS <= interval <= MAX_INTERVAL_MS:
            bounds = f"{MIN_INTERVAL_MS} to {MAX_INTERVAL_MS}"
            raise ProtocolError(f"configure: interval_ms must be an integer from {bounds}, got {interval!r}")
    return data
