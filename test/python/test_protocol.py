"""The kernel side of the protocol against the shared schema and fixtures."""

import json

import jsonschema
import pytest
from cyscope import protocol


def _fixture(repo_root, name):
    return json.loads((repo_root / "protocol" / "fixtures" / name).read_text())


def test_valid_fixtures_pass_the_schema(repo_root, validate_message):
    for message in _fixture(repo_root, "valid.json"):
        validate_message(message)


def test_invalid_fixtures_fail_the_schema(repo_root, validate_message):
    for message in _fixture(repo_root, "invalid.json"):
        with pytest.raises(jsonschema.ValidationError):
            validate_message(message)


def test_builders_produce_schema_valid_messages(validate_message):
    native = {"loaded": False, "abi": None, "path": None, "error": "missing"}
    validate_message(protocol.hello(cyscope_version="0.1.0", python="3.11", pid=3, interval_ms=100, native=native))
    validate_message(protocol.sample(t_ms=1.5, rss_bytes=10, running=True, execution_count=None, native=None))
    validate_message(
        protocol.sample(
            t_ms=1.5, rss_bytes=10, running=False, execution_count=2, native={"current_bytes": 1, "peak_bytes": 2}
        )
    )
    record = {
        "execution_count": 1,
        "cell_id": None,
        "started_ms": 0.0,
        "duration_ms": 1.0,
        "rss_before": 1,
        "rss_after": 2,
        "rss_peak": 2,
        "success": True,
        "memory": None,
    }
    validate_message(protocol.cell(record))
    validate_message(protocol.history([record, record]))
    validate_message(protocol.error("bad"))


def test_inbound_fixtures_parse(repo_root):
    frontend = [m for m in _fixture(repo_root, "valid.json") if m["type"] in ("configure", "request_history")]
    assert len(frontend) == 2
    for message in frontend:
        assert protocol.parse_inbound(message) == message


@pytest.mark.parametrize(
    "message, problem",
    [
        ("not an object", "expected a JSON object"),
        (None, "expected a JSON object"),
        ({"type": "configure"}, "unsupported protocol version"),
        ({"v": 2, "type": "request_history"}, "unsupported protocol version 2"),
        ({"v": 1, "type": "bogus"}, "unknown message type 'bogus'"),
        ({"v": 1, "type": "configure"}, "missing field(s) interval_ms"),
        ({"v": 1, "type": "configure", "interval_ms": "100"}, "interval_ms must be an integer"),
        ({"v": 1, "type": "configure", "interval_ms": 1}, "interval_ms must be an integer"),
        ({"v": 1, "type": "configure", "interval_ms": True}, "interval_ms must be an integer"),
        ({"v": 1, "type": "request_history", "extra": 1}, "unknown field(s) extra"),
    ],
)
def test_inbound_rejects_with_a_clear_reason(message, problem):
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.parse_inbound(message)
    assert problem in str(info.value)


def test_invalid_fixtures_are_rejected_inbound(repo_root):
    for message in _fixture(repo_root, "invalid.json"):
        with pytest.raises(protocol.ProtocolError):
            protocol.parse_inbound(message)
