"""The kernel side of the cyscope comm protocol.

The protocol is defined once, in protocol/cyscope.schema.json at the top of
the repository; this module builds the messages the kernel sends and checks
the ones it receives. test/python/test_protocol.py validates both directions
against the schema and its fixtures, as the frontend's tests do.

Checks here are hand-written (no jsonschema at run time) because the kernel
may be Debian's python3, which must not need extra packages. Like every
reader of the protocol, they accept fields they do not know.
"""

from __future__ import annotations

from typing import Any

PROTOCOL_VERSION = 1
COMM_TARGET = "cyscope"

MIN_INTERVAL_MS = 10
MAX_INTERVAL_MS = 60_000

TRACKING_MODES = ("off", "sampled", "exact", "native")
CYTHON_MAGICS = ("cyscope", "cython")

# What this kernel understands beyond version 1's base (schema: $defs/capabilities).
# A feature is used only when the frontend lists it too.
CAPABILITIES = ("config", "configure.cython_magic", "configure.tracking", "connect", "goodbye", "record.first_line")


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
        "capabilities": list(CAPABILITIES),
    }


def config(
    *, interval_ms: int, tracking: str, tracking_modes: list[str], cython_magic: str, problems: list[str]
) -> dict:
    return {
        "v": PROTOCOL_VERSION,
        "type": "config",
        "interval_ms": interval_ms,
        "tracking": tracking,
        "tracking_modes": tracking_modes,
        "cython_magic": cython_magic,
        "problems": [_cap(p) for p in problems],
    }


def goodbye(reason: str) -> dict:
    return {"v": PROTOCOL_VERSION, "type": "goodbye", "reason": reason}


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


def _cap(message: str) -> str:
    if len(message) > MAX_ERROR_CHARS:
        return f"{message[: MAX_ERROR_CHARS - 30]}... ({len(message):,} characters)"
    return message


def error(message: str) -> dict:
    return {"v": PROTOCOL_VERSION, "type": "error", "message": _cap(message)}


# Frontend-to-kernel messages: type -> required fields.
_INBOUND_FIELDS: dict[str, set[str]] = {
    "configure": {"interval_ms"},
    "request_history": set(),
}

# An error quotes at most this much of the value it complains about: a
# frontend (or anyone on the comm) may send megabytes, and the reply must not
# echo them back.
QUOTE_CHARS = 60
# The longest error message the kernel sends, whatever produced it.
MAX_ERROR_CHARS = 500


def brief(value: Any, limit: int = QUOTE_CHARS) -> str:
    """A short, safe quotation of `value` for an error message.

    Never builds the full repr of a large value: strings are cut before
    quoting, containers are described by type and size.
    """
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}... ({len(value):,} characters)"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value):,} item(s)"
    if isinstance(value, dict):
        return f"an object with {len(value):,} field(s)"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        # repr of a huge int is slow, and refused past 4300 digits.
        return f"an integer of {value.bit_length():,} bits"
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    return f"a value of type {type(value).__name__}"


def _version_ok(v: Any) -> bool:
    # bool is an int in Python (True == 1), but JSON's true is not the schema's
    # const 1; 1.0 is (JSON Schema compares numbers by value).
    return type(v) in (int, float) and v == PROTOCOL_VERSION


def parse_inbound(data: Any) -> dict:
    """Return `data` if it is a valid frontend message, else raise ProtocolError.

    Known fields are checked, unknown ones ignored. Error messages quote
    offending values through `brief`, so they stay short whatever was sent.
    """
    if not isinstance(data, dict):
        raise ProtocolError(f"expected a JSON object, got {type(data).__name__}")
    v = data.get("v")
    if not _version_ok(v):
        raise ProtocolError(f"unsupported protocol version {brief(v)}; this kernel speaks {PROTOCOL_VERSION}")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in _INBOUND_FIELDS:
        raise ProtocolError(f"unknown message type {brief(kind)}")
    missing = sorted(_INBOUND_FIELDS[kind].difference(data))
    if missing:
        raise ProtocolError(f"{kind}: missing field(s) {', '.join(missing)}")
    # Fields this kernel does not know are ignored: a newer frontend may send
    # them, and it tells from `hello` what this kernel understands.
    if kind == "configure":
        _check_settings(data, kind)
    return data


def _check_settings(data: dict, kind: str) -> None:
    """The setting fields shared by configure and connect, where present."""
    if "interval_ms" in data:
        interval = data["interval_ms"]
        if type(interval) is not int or not MIN_INTERVAL_MS <= interval <= MAX_INTERVAL_MS:
            bounds = f"{MIN_INTERVAL_MS} to {MAX_INTERVAL_MS}"
            raise ProtocolError(f"{kind}: interval_ms must be an integer from {bounds}, got {brief(interval)}")
    for name, allowed in (("tracking", TRACKING_MODES), ("cython_magic", CYTHON_MAGICS)):
        if name in data and (not isinstance(data[name], str) or data[name] not in allowed):
            raise ProtocolError(f"{kind}: {name} must be one of {', '.join(allowed)}, got {brief(data[name])}")


def parse_connect(data: Any) -> dict | None:
    """The frontend's connect message (the comm's open data), or None from an
    older frontend, which opens with an empty object. Raises ProtocolError
    for anything else that is not a valid connect message."""
    if data is None or data == {}:
        return None
    if not isinstance(data, dict):
        raise ProtocolError(f"connect: expected a JSON object, got {type(data).__name__}")
    v = data.get("v")
    if not _version_ok(v):
        raise ProtocolError(f"unsupported protocol version {brief(v)}; this kernel speaks {PROTOCOL_VERSION}")
    if data.get("type") != "connect":
        raise ProtocolError(f"the comm's open data must be a connect message, got type {brief(data.get('type'))}")
    missing = sorted({"cyscope_version", "capabilities"}.difference(data))
    if missing:
        raise ProtocolError(f"connect: missing field(s) {', '.join(missing)}")
    if not isinstance(data["cyscope_version"], str):
        raise ProtocolError(f"connect: cyscope_version must be a string, got {brief(data['cyscope_version'])}")
    caps = data["capabilities"]
    if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
        raise ProtocolError(f"connect: capabilities must be a list of strings, got {brief(caps)}")
    _check_settings(data, "connect")
    return data
