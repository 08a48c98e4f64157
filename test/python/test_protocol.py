"""The kernel side of the protocol against the shared schemas and fixtures.

Each schema is read in two views (protocol_views.py): as written, what a
reader accepts (unknown fields allowed), and strict, what a sender may send.
"""

import json

import jsonschema
import pytest
from cyscope import protocol


def _fixture(repo_root, name):
    return json.loads((repo_root / "protocol" / "fixtures" / name).read_text())


def test_valid_fixtures_pass_the_schema(repo_root, validate_message):
    for message in _fixture(repo_root, "valid.json"):
        validate_message(message)


def test_invalid_fixtures_fail_the_schema(repo_root, validate_reading):
    for message in _fixture(repo_root, "invalid.json"):
        with pytest.raises(jsonschema.ValidationError):
            validate_reading(message)


def test_an_older_frontends_empty_open_data_is_no_connect():
    assert protocol.parse_connect({}) is None
    assert protocol.parse_connect(None) is None


@pytest.mark.parametrize(
    "data, problem",
    [
        ([], "connect: expected a JSON object, got list"),
        ({"v": 2, "type": "connect"}, "unsupported protocol version 2"),
        (
            {"v": 1, "type": "configure", "interval_ms": 100},
            "the comm's open data must be a connect message, got type 'configure'",
        ),
        ({"v": 1, "type": "connect", "capabilities": []}, "connect: missing field(s) cyscope_version"),
        (
            {"v": 1, "type": "connect", "cyscope_version": "1", "capabilities": [1]},
            "connect: capabilities must be a list of str",
        ),
        (
            {"v": 1, "type": "connect", "cyscope_version": "1", "capabilities": [], "tracking": "x" * 10**6},
            "connect: tracking must be one of off, sampled, exact, native, got 'xxx",
        ),
    ],
)
def test_a_bad_connect_is_refused_by_name(data, problem):
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.parse_connect(data)
    assert str(info.value).startswith(problem)
    assert len(str(info.value)) < 200


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
    validate_message(protocol.goodbye("unloaded"))
    validate_message(
        protocol.config(
            interval_ms=100, tracking="off", tracking_modes=["off"], cython_magic="cython", problems=["p" * 10**4]
        )
    )


def test_inbound_fixtures_parse(repo_root):
    frontend = [m for m in _fixture(repo_root, "valid.json") if m["type"] in ("configure", "request_history")]
    assert len(frontend) == 3
    for message in frontend:
        assert protocol.parse_inbound(message) == message
    connects = [m for m in _fixture(repo_root, "valid.json") if m["type"] == "connect"]
    assert len(connects) == 2
    for message in connects:
        assert protocol.parse_connect(message) is message


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
def test_inbound_refuses_wrongly_typed_v_and_type(message, problem, validate_reading):
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.parse_inbound(message)
    assert str(info.value).startswith(problem)
    # The schema refuses them too: the kernel is no more lenient than it.
    with pytest.raises(jsonschema.ValidationError):
        validate_reading(message)


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


def test_fifty_thousand_unknown_fields_are_ignored_and_never_quoted():
    message = {"v": 1, "type": "request_history"}
    message.update((f"field_{i:05d}_" + "y" * 30, i) for i in range(50_000))
    assert protocol.parse_inbound(message) is message
    message.update(type="configure", interval_ms="soon")
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.parse_inbound(message)
    assert str(info.value) == "configure: interval_ms must be an integer from 10 to 60000, got 'soon'"


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


# -- forward compatibility: a newer peer's messages -----------------------------------------


def test_future_fixtures_are_read_but_would_not_be_sent(repo_root, validate_reading, validate_message):
    future = _fixture(repo_root, "future.json")
    assert {m["type"] for m in future} == {m["type"] for m in _fixture(repo_root, "valid.json")}
    for message in future:
        validate_reading(message)
        # Extra fields everywhere: the strict view, which senders are held to, refuses them.
        with pytest.raises(jsonschema.ValidationError):
            validate_message(message)


def test_the_kernel_accepts_a_newer_frontends_messages(repo_root):
    frontend = [m for m in _fixture(repo_root, "future.json") if m["type"] in ("configure", "request_history")]
    assert len(frontend) == 3
    for message in frontend:
        assert protocol.parse_inbound(message) is message
    for message in (m for m in _fixture(repo_root, "future.json") if m["type"] == "connect"):
        assert protocol.parse_connect(message) is message


def _schema_fixtures(repo_root):
    """(schema file, fixture prefix) of every protocol schema: cyscope's are valid.json..., others <name>-valid.json."""
    for path in sorted((repo_root / "protocol").glob("*.schema.json")):
        name = path.name[: -len(".schema.json")]
        yield path.name, "" if name == "cyscope" else f"{name}-"


def test_every_schema_has_valid_invalid_and_future_fixtures(repo_root):
    missing = [
        f"protocol/fixtures/{prefix}{kind}.json"
        for _, prefix in _schema_fixtures(repo_root)
        for kind in ("valid", "invalid", "future")
        if not (repo_root / "protocol" / "fixtures" / f"{prefix}{kind}.json").exists()
    ]
    assert missing == [], "see protocol/README.md: each schema comes with these fixtures"


def test_every_schema_reads_future_fixtures_and_its_strict_view_refuses_them(repo_root):
    from protocol_views import reader_schema, sender_schema

    for schema_file, prefix in _schema_fixtures(repo_root):
        reader = jsonschema.Draft202012Validator(reader_schema(schema_file))
        sender = jsonschema.Draft202012Validator(sender_schema(schema_file))
        for item in _fixture(repo_root, f"{prefix}valid.json"):
            assert sender.is_valid(item) and reader.is_valid(item), (schema_file, item)
        for item in _fixture(repo_root, f"{prefix}future.json"):
            assert reader.is_valid(item), (schema_file, next(reader.iter_errors(item)).message)
            assert not sender.is_valid(item), (schema_file, "a future fixture must carry fields no schema names")
        for item in _fixture(repo_root, f"{prefix}invalid.json"):
            assert not reader.is_valid(item), (schema_file, item)


def test_schemas_leave_unknown_fields_to_readers(repo_root):
    # additionalProperties: false would make every reader refuse a newer
    # peer's fields; senders are held to the strict view in tests instead.
    def walk(node, where):
        if isinstance(node, dict):
            if node.get("additionalProperties") is False:
                yield where
            for key, value in node.items():
                if key not in ("const", "enum"):
                    yield from walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from walk(value, f"{where}/{i}")

    closed = [
        f"{path.name}{where}"
        for path in sorted((repo_root / "protocol").glob("*.schema.json"))
        for where in walk(json.loads(path.read_text()), "")
    ]
    assert closed == []
