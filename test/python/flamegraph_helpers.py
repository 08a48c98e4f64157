"""Helpers for the flamegraph tests: a real IPython shell with cyscope
loaded that records what cells display, and readers of the payload."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MIME = "application/vnd.cyscope.flamegraph.v1+json"


@pytest.fixture
def fg_shell(shell, tmp_path, monkeypatch):
    """conftest's shell (cyscope loaded), a private %%cython cache, and
    `fg_shell.shown`: every MIME bundle displayed since the test began."""
    monkeypatch.setenv("CYSCOPE_CACHE_DIR", str(tmp_path / "cache"))
    shown: list[dict] = []
    monkeypatch.setattr(shell.display_pub, "publish", lambda data, *a, **k: shown.append(dict(data)))
    shell.shown = shown
    from cyscope import memory

    assert memory.available(), memory.unavailable_reason()
    yield shell
    del shell.shown


def run(shell, source: str):
    """Run a cell as a notebook would (it gets an execution count); the cell must succeed."""
    result = shell.run_cell(source, store_history=True)
    if not result.success:
        raise AssertionError(f"cell failed: {result.error_before_exec or result.error_in_exec!r}\n{source}")
    return result


def payloads(shell) -> list[dict]:
    return [b[MIME] for b in shell.shown if MIME in b]


def schema() -> dict:
    return json.loads((ROOT / "protocol" / "flamegraph.schema.json").read_text())


_validator = None


def _schema_validator():
    global _validator
    if _validator is None:
        import jsonschema

        jsonschema.Draft202012Validator.check_schema(schema())
        _validator = jsonschema.Draft202012Validator(schema())
    return _validator


def validate(data: dict) -> dict:
    """The payload against the schema and the rules it cannot express.

    jsonschema needs seconds for 100,000 entries: it sees the first 500 of
    each column, and payload.check (which also checks every entry is a
    whole number >= 0) sees them all.
    """
    from cyscope.flamegraph import payload

    sample = data
    if isinstance(data, dict) and isinstance(data.get("nodes"), dict) and isinstance(data.get("frames"), dict):
        sample = dict(data)
        for table in ("nodes", "frames"):
            sample[table] = {k: v[:500] if isinstance(v, list) else v for k, v in data[table].items()}
    _schema_validator().validate(sample)
    payload.check(data)
    return data


def label(data: dict, node: int) -> str:
    return data["strings"][data["frames"]["label"][data["nodes"]["frame"][node]]]


def kind(data: dict, node: int) -> str:
    return data["kinds"][data["frames"]["kind"][data["nodes"]["frame"][node]]]


def children(data: dict, node: int) -> list[int]:
    level = data["nodes"]["level"]
    out = []
    for i in range(node + 1, len(level)):
        if level[i] <= level[node]:
            break
        if level[i] == level[node] + 1:
            out.append(i)
    return out


def widest_path(data: dict) -> list[str]:
    """Labels from the root's widest child down, always the widest child."""
    value = data["nodes"]["value"]
    node, path = 0, []
    while True:
        kids = children(data, node)
        if not kids:
            return path
        node = max(kids, key=lambda i: value[i])
        path.append(label(data, node))
