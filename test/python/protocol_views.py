"""The two views of a protocol schema, as test/support/protocol-files.ts has them.

As written, a schema is the readers' contract: fields it does not name are
allowed (a newer peer may send them). Senders are held to its strict view:
every object carries only the fields the schema names.
"""

from __future__ import annotations

import json
from pathlib import Path

PROTOCOL = Path(__file__).resolve().parents[2] / "protocol"


def strict_view(schema):
    """`schema` with `additionalProperties: false` wherever it lists properties and says nothing about others."""
    if isinstance(schema, list):
        return [strict_view(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: (v if k in ("const", "enum") else strict_view(v)) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def reader_schema(name: str) -> dict:
    return json.loads((PROTOCOL / name).read_text())


def sender_schema(name: str) -> dict:
    return strict_view(reader_schema(name))
