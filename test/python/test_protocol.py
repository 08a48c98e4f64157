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
        ({"v": 1, "type": "request_history", "extra": 1}, "unknown field(s) 'extra'"),
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


# -- hostile input: refused with a protocol error, quoted briefly -------------------------

HUGE = 10 * 1024 * 1024


@pytest.mark.parametrize(
    "message, problem",
    [
        ({"v": True, "type": "request_history"}, "unsupported protocol version True"),
        ({"v": False, "type": "request_history"}, "unsupported protocol version False"),
        ({"v": [1], "type": "request_history"}, "unsupported protocol version a list of 1 item(s)"),
        ({"v": 1, "type": ["configure"]}, "unknown message type a list of 1 item(s)"),
        ({"v": 1, "type": {"a": 1}}, "unknown message type an object with 1 field(s)"),
        ({"v": 1, "type": None}, "unknown message type None"),
        ({"v": 1, "type": 7}, "unknown message type 7"),
    ],
)
def test_inbound_refuses_wrongly_typed_v_and_type(message, problem, validate_message):
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.parse_inbound(message)
    assert str(info.value).startswith(problem)
    # The schema refuses them too: the kernel is no more lenient than it.
    with pytest.raises(jsonschema.ValidationError):
        validate_message(message)


def test_v_as_the_number_one_point_zero_is_version_one(validate_message):
    # JSON Schema compares numbers by value: 1.0 is the const 1.
    message = {"v": 1.0, "type": "request_history"}
    validate_message(message)
    assert protocol.parse_inbound(message) is message


@pytest.mark.parametrize(
    "message, starts",
    [
        ({"v": 1, "type": "x" * HUGE}, "unknown message type 'xxxx"),
        ({"v": "1" * HUGE, "type": "configure"}, "unsupported protocol version '1111"),
        ({"v": 10**5000, "type": "configure"}, "unsupported protocol version an integer of 16,610 bits"),
        ({"v": 1, "type": "configure", "interval_ms": "9" * HUGE}, "configure: interval_ms must be"),
        ({"v": 1, "type": "configure", "interval_ms": list(range(10**6))}, "configure: interval_ms must be"),
    ],
)
def test_errors_quote_at_most_a_little_of_a_huge_value(message, starts):
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.parse_inbound(message)
    text = str(info.value)
    assert text.startswith(starts)
    assert len(text) < 200, text


def test_fifty_thousand_unknown_fields_give_a_short_error():
    message = {"v": 1, "type": "request_history"}
    message.update((f"field_{i:05d}_" + "y" * 30, i) for i in range(50_000))
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.parse_inbound(message)
    text = str(info.value)
    assert "and 49,995 more" in text
    assert len(text) < 400, text


def test_an_error_message_is_capped_whatever_built_it(validate_message):
    message = protocol.error("z" * HUGE)
    validate_message(message)
    assert len(message["message"]) <= protocol.MAX_ERROR_CHARS
    assert message["message"].endswith(f"({HUGE:,} characters)")


def test_brief_never_builds_the_whole_repr():
    assert protocol.brief("abc") == "'abc'"
    assert protocol.brief("a" * 100) == repr("a" * 60) + "... (100 characters)"
    assert protocol.brief([1, 2]) == "a list of 2 item(s)"
    assert protocol.brief({}) == "an object with 0 field(s)"
    assert protocol.brief(True) == "True"
    assert protocol.brief(-(2**200)) == "an integer of 201 bits"
    assert protocol.brief(object()) == "a value of type object"
