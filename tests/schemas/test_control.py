"""The client decoder: typed messages or typed protocol errors, never an exception."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.control import (
    ErrorCode,
    ErrorMessage,
    Filters,
    Ping,
    ProtocolError,
    Subscribe,
    Subscribed,
    SubscribeData,
    SubscribedData,
    Unsubscribe,
    decode_client,
)


def test_ping_without_timestamp() -> None:
    assert isinstance(decode_client(b'{"type":"ping"}'), Ping)


@pytest.mark.parametrize("timestamp", ['"not a time"', "12345", "null", '{"a":1}', "[1]"])
def test_client_timestamp_is_never_validated(timestamp: str) -> None:
    # Defect 13: a non-RFC 3339 timestamp made the original drop the whole message.
    frame = f'{{"type":"subscribe","timestamp":{timestamp},"data":{{"channel":"approvals"}}}}'
    msg = decode_client(frame)
    assert isinstance(msg, Subscribe)
    assert msg.data.channel == "approvals"


def test_subscribe_with_filters_and_since() -> None:
    msg = decode_client(
        b'{"type":"subscribe","data":{"channel":"executions","since":"1764152400123-7",'
        b'"filters":{"workflow_ids":["w1"],"execution_ids":null,"statuses":[]}}}'
    )
    assert isinstance(msg, Subscribe)
    assert msg.data.since == "1764152400123-7"
    assert msg.data.filters == Filters(workflow_ids=["w1"])


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"", ErrorCode.PARSE_ERROR),
        (b"not json", ErrorCode.PARSE_ERROR),
        (b"[1,2]", ErrorCode.PARSE_ERROR),
        (b'{"data":{}}', ErrorCode.PARSE_ERROR),
        (b'{"type":7}', ErrorCode.PARSE_ERROR),
        (b'{"type":"ping"}\n{"type":"ping"}', ErrorCode.PARSE_ERROR),
        (b'{"type":"publish","data":{}}', ErrorCode.UNKNOWN_TYPE),
        (b'{"type":"execution.started","data":{}}', ErrorCode.UNKNOWN_TYPE),
        (b'{"type":"subscribe"}', ErrorCode.INVALID_SUBSCRIPTION),
        (b'{"type":"subscribe","data":{"channel":"everything"}}', ErrorCode.INVALID_SUBSCRIPTION),
        (b'{"type":"subscribe","data":{"channel":"executions:"}}', ErrorCode.INVALID_SUBSCRIPTION),
        (b'{"type":"subscribe","data":{"channel":"users:a b"}}', ErrorCode.INVALID_SUBSCRIPTION),
        (
            b'{"type":"subscribe","data":{"channel":"executions","since":"yesterday"}}',
            ErrorCode.INVALID_SUBSCRIPTION,
        ),
        (
            b'{"type":"subscribe","data":{"channel":"executions","filters":{"colour":["red"]}}}',
            ErrorCode.INVALID_SUBSCRIPTION,
        ),
        (
            b'{"type":"subscribe","data":{"channel":"executions","filters":{"statuses":"x"}}}',
            ErrorCode.INVALID_SUBSCRIPTION,
        ),
        (b'{"type":"unsubscribe","data":{}}', ErrorCode.INVALID_SUBSCRIPTION),
    ],
)
def test_bad_frames_get_typed_errors(frame: bytes, code: ErrorCode) -> None:
    result = decode_client(frame)
    assert isinstance(result, ProtocolError)
    assert result.code is code
    assert result.message


def test_unknown_type_error_names_the_type() -> None:
    result = decode_client(b'{"type":"hello"}')
    assert isinstance(result, ProtocolError)
    assert result.type == "hello"


def test_subscribed_echo_always_has_filters() -> None:
    frame = msgspec.json.encode(
        Subscribed(
            timestamp="2026-01-01T00:00:00Z",
            data=SubscribedData(channel="executions", filters=Filters(), position="5-0"),
        )
    )
    assert json.loads(frame) == {
        "type": "subscribed",
        "timestamp": "2026-01-01T00:00:00Z",
        "data": {"channel": "executions", "filters": {}, "position": "5-0"},
    }


_str = st.text(st.characters(exclude_categories=["Cs"]))  # JSON has no lone surrogates
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _str,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
_client_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["ping", "subscribe", "unsubscribe", "x"]) | st.text(max_size=5)},
    optional={"data": _json, "timestamp": _json},
)


@settings(max_examples=400)
@given(st.binary(max_size=256))
def test_arbitrary_bytes_never_raise(frame: bytes) -> None:
    assert isinstance(decode_client(frame), Ping | Subscribe | Unsubscribe | ProtocolError)


@settings(max_examples=400)
@given(_json | _client_like)
def test_arbitrary_json_never_raises(value: object) -> None:
    result = decode_client(json.dumps(value))
    assert isinstance(result, Ping | Subscribe | Unsubscribe | ProtocolError)
    if isinstance(value, dict) and value.get("type") == "ping":
        assert isinstance(result, Ping)


_ids = st.lists(st.text("abc_-0123456789", min_size=1, max_size=10), max_size=3)
_channels = st.sampled_from(["executions", "approvals"]) | st.builds(
    lambda k, i: f"{k}:{i}",
    st.sampled_from(["executions", "workflows", "users"]),
    st.text("abcdef0123456789_-", min_size=1, max_size=12),
)


@given(_channels, _ids, _ids, _ids, st.none() | st.integers(0, 2**48).map(lambda n: f"{n}-0"))
def test_subscribe_round_trips(
    channel: str, wf: list[str], ex: list[str], statuses: list[str], since: str | None
) -> None:
    msg = Subscribe(
        data=SubscribeData(
            channel=channel,
            filters=Filters(workflow_ids=wf, execution_ids=ex, statuses=statuses),
            since=since,
        )
    )
    assert decode_client(msgspec.json.encode(msg)) == msg


@given(st.text(max_size=40), st.text(max_size=80))
def test_error_messages_round_trip(code: str, message: str) -> None:
    from schemas.control import ErrorData
    from schemas.envelope import server_decoder

    msg = ErrorMessage(timestamp="2026-01-01T00:00:00Z", data=ErrorData(code=code, message=message))
    assert server_decoder.decode(msgspec.json.encode(msg)) == msg


_ts = st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.123456789+02:00"])


@given(_ts, _channels, _ids, st.integers(0, 2**40), st.none() | st.booleans())
def test_server_control_messages_round_trip(
    ts: str, channel: str, statuses: list[str], ms: int, recovered: bool | None
) -> None:
    from schemas.control import ChannelData, Pong, Unsubscribed
    from schemas.envelope import server_decoder

    for msg in (
        Pong(timestamp=ts),
        Unsubscribed(timestamp=ts, data=ChannelData(channel)),
        Subscribed(
            timestamp=ts,
            data=SubscribedData(
                channel=channel, filters=Filters(statuses=statuses), position=f"{ms}-0", recovered=recovered
            ),
        ),
    ):
        assert server_decoder.decode(msgspec.json.encode(msg)) == msg


@given(_channels, st.none() | _json)
def test_client_control_messages_round_trip(channel: str, data: object) -> None:
    from schemas.control import UnsubscribeData

    for msg in (Ping(data=data), Unsubscribe(data=UnsubscribeData(channel))):
        assert decode_client(msgspec.json.encode(msg)) == msg


# -- hostile frames (issue 11 §5): deep nesting, huge ids ------------------------------


@pytest.mark.parametrize("depth", [100, 1_000, 10_000, 100_000])
@pytest.mark.parametrize(
    ("prefix", "suffix"),
    [
        ('{"type":"ping","data":', "}"),
        ('{"type":"subscribe","data":{"channel":"executions","x":', "}}"),
        ('{"type":"unsubscribe","junk":', ',"data":{"channel":"executions"}}'),
        ('{"type":"nope","data":', "}"),
        ("", ""),
    ],
)
def test_deep_nesting_is_an_error_reply_not_an_exception(prefix: str, suffix: str, depth: int) -> None:
    for inner in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
        result = decode_client(prefix + inner + suffix)
        assert isinstance(result, Ping | Subscribe | Unsubscribe | ProtocolError)
        if depth >= 1_000 and not isinstance(result, Ping):
            assert isinstance(result, ProtocolError)


def test_nesting_too_deep_is_a_parse_error() -> None:
    result = decode_client('{"type":"ping","data":' + "[" * 5000 + "]" * 5000 + "}")
    assert isinstance(result, ProtocolError)
    assert result.code is ErrorCode.PARSE_ERROR
    assert "deep" in result.message


@pytest.mark.parametrize(
    "since", [str(2**64), f"{2**64}-0", f"0-{2**64}", "99999999999999999999-99999999999999999999"]
)
def test_since_above_redis_range_is_invalid(since: str) -> None:
    result = decode_client(f'{{"type":"subscribe","data":{{"channel":"executions","since":"{since}"}}}}')
    assert isinstance(result, ProtocolError)
    assert result.code is ErrorCode.INVALID_SUBSCRIPTION


def test_since_at_redis_maximum_is_valid() -> None:
    top = 2**64 - 1
    result = decode_client(f'{{"type":"subscribe","data":{{"channel":"executions","since":"{top}-{top}"}}}}')
    assert isinstance(result, Subscribe)


def test_parse_id_refuses_parts_above_64_bits() -> None:
    from schemas.codec import parse_id

    assert parse_id(f"{2**64 - 1}-{2**64 - 1}") == (2**64 - 1, 2**64 - 1)
    for text in (str(2**64), f"1-{2**64}", f"{2**64}-1"):
        with pytest.raises(ValueError, match="stream id"):
            parse_id(text)


@settings(max_examples=60, deadline=None)
@given(st.integers(500, 5000), st.sampled_from(["[", '{"k":']), _client_like)
def test_fuzz_deep_nesting_never_raises(depth: int, opener: str, frame: dict[str, object]) -> None:
    closer = "]" if opener == "[" else "}"
    nested = opener * depth + ("1" if opener != "[" else "") + closer * depth
    for key in ("data", "timestamp", "extra"):
        doc = json.dumps({**frame, key: None}).replace("null", nested, 1)
        assert isinstance(decode_client(doc), Ping | Subscribe | Unsubscribe | ProtocolError)
    # Truncated (invalid JSON) deep frames too.
    assert isinstance(decode_client(nested[: len(nested) // 2]), ProtocolError)
