"""Protocol version 2 in the sans-I/O core: subprotocol selection, the session's hello,
refresh and expiry notices, and per-format frames (no event loop)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.delivery import Delivery, Frame
from gateway.core.frames import binary_frame, text_frame
from gateway.core.handshake import HandshakeError, select_subprotocol
from gateway.core.session import RefreshToken, Reply, Session, SubscribeChannel, WatchExpiry
from schemas.control import SUBPROTOCOLS, V2_JSON, V2_MSGPACK
from schemas.envelope import event_frame
from schemas.events import make_event
from schemas.stream import StreamEvent, decode_entry, encode_entry

TS = "2026-12-05T10:00:00.000000Z"


@pytest.mark.parametrize(
    ("offered", "selected"),
    [
        (None, None),
        ("", None),
        (" , ", None),
        (V2_MSGPACK, V2_MSGPACK),
        (f"{V2_JSON}, {V2_MSGPACK}", V2_JSON),
        (f"{V2_MSGPACK},{V2_JSON}", V2_MSGPACK),
        (f"chat, {V2_MSGPACK}", V2_MSGPACK),
    ],
)
def test_the_first_supported_subprotocol_offered_is_selected(
    offered: str | None, selected: str | None
) -> None:
    assert select_subprotocol(offered, SUBPROTOCOLS) == selected


def test_offering_only_unsupported_subprotocols_is_a_400() -> None:
    refused = select_subprotocol("chat, flowwire.v1", SUBPROTOCOLS)
    assert isinstance(refused, HandshakeError) and refused.status == 400
    assert "chat" in refused.message


def session(
    protocol: str | None = V2_JSON, expires_at: float | None = 1000.0, *, presence: bool = False
) -> Session:
    return Session(
        "alice",
        max_subscriptions=10,
        rate_limit=0,
        now=0.0,
        presence=presence,
        protocol=protocol,
        org_id="acme",
        expires_at=expires_at,
    )


def replies(actions: list[Any], protocol: str | None = V2_JSON) -> list[dict[str, Any]]:
    decode = msgspec.msgpack.decode if protocol == V2_MSGPACK else json.loads
    return [decode(a.frame) for a in actions if isinstance(a, Reply)]


def encode(message: dict[str, Any], protocol: str | None = V2_JSON) -> bytes:
    return msgspec.msgpack.encode(message) if protocol == V2_MSGPACK else json.dumps(message).encode()


@pytest.mark.parametrize("protocol", [V2_JSON, V2_MSGPACK])
@pytest.mark.parametrize("presence", [False, True])
def test_hello_grants_the_features_it_can_and_only_first(protocol: str, presence: bool) -> None:
    s = session(protocol, presence=presence)
    hello = encode({"type": "hello", "data": {"features": ["presence", "token_refresh", "x"]}}, protocol)
    actions = s.receive(hello, 0.0, TS)
    granted = ["token_refresh", "presence"] if presence else ["token_refresh"]  # PRESENCE on or off
    assert replies(actions, protocol)[0]["data"] == {
        "protocol": protocol,
        "granted": granted,
        "features": ["token_refresh", "presence"],
    }
    assert actions[1:] == [WatchExpiry(1000.0, notice=True)]
    again = replies(s.receive(hello, 0.0, TS), protocol)
    assert again[0]["data"]["code"] == "INVALID_HELLO"
    assert s.granted == tuple(granted)


def test_hello_after_another_message_is_refused_and_grants_nothing() -> None:
    s = session()
    s.receive(b'{"type":"ping"}', 0.0, TS)
    assert (
        replies(s.receive(b'{"type":"hello","data":{"features":["token_refresh"]}}', 0.0, TS))[0]["data"][
            "code"
        ]
        == "INVALID_HELLO"
    )
    assert s.granted == ()
    assert s.expiring(TS) == []


def test_api_key_connections_are_not_granted_token_refresh_and_cannot_refresh() -> None:
    s = session(expires_at=None)
    actions = s.receive(b'{"type":"hello","data":{"features":["token_refresh"]}}', 0.0, TS)
    assert replies(actions)[0]["data"]["granted"] == [] and len(actions) == 1
    refused = replies(s.receive(b'{"type":"refresh","data":{"token":"t"}}', 0.0, TS))
    assert refused[0]["data"]["code"] == "REFRESH_NOT_SUPPORTED"


def test_refresh_asks_the_shell_to_verify_and_the_session_judges_the_identity() -> None:
    s = session()
    s.receive(b'{"type":"hello","data":{"features":["token_refresh"]}}', 0.0, TS)
    assert s.receive(b'{"type":"refresh","data":{"token":"tok"}}', 0.0, TS) == [RefreshToken("tok")]
    notice = replies(s.expiring(TS))
    assert notice == [
        {"type": "token_expiring", "timestamp": TS, "data": {"expires_at": "1970-01-01T00:16:40.000Z"}}
    ]
    assert s.expiring(TS) == []  # once per token
    for user, org in (("bob", "acme"), ("alice", "other"), ("alice", None)):
        refused = replies(s.refreshed(user, org, 2000.0, TS))
        assert refused[0]["data"]["code"] == "TOKEN_MISMATCH"
        assert s.expires_at == 1000.0
    assert replies(s.refresh_refused("token expired", TS))[0]["data"]["code"] == "INVALID_TOKEN"
    actions = s.refreshed("alice", "acme", 2000.0, TS)
    assert replies(actions)[0]["type"] == "refreshed"
    assert actions[1] == WatchExpiry(2000.0, notice=True)
    assert s.expires_at == 2000.0
    assert len(s.expiring(TS)) == 1  # the new token gets its own notice


def test_bad_v2_messages_are_errors_that_change_nothing() -> None:
    s = session(V2_MSGPACK)
    for frame, code in (
        (b"\xc1", "PARSE_ERROR"),
        (msgspec.msgpack.encode("ping"), "PARSE_ERROR"),
        (msgspec.msgpack.encode({"type": 3}), "PARSE_ERROR"),
        (msgspec.msgpack.encode({"type": "nope"}), "UNKNOWN_TYPE"),
        (msgspec.msgpack.encode({"type": "refresh", "data": {}}), "INVALID_TOKEN"),
        (msgspec.msgpack.encode({"type": "hello", "data": {"features": "x"}}), "INVALID_HELLO"),
        (msgspec.msgpack.encode({"type": "subscribe", "data": {"channel": "no"}}), "INVALID_SUBSCRIPTION"),
    ):
        assert replies(s.receive(frame, 0.0, TS), V2_MSGPACK)[0]["data"]["code"] == code, frame
    assert s.errors == 7 and s.channels == {} and s.granted == ()
    actions = s.receive(
        msgspec.msgpack.encode({"type": "subscribe", "data": {"channel": "executions"}}), 0.0, TS
    )
    assert isinstance(actions[0], SubscribeChannel)


def test_version_1_knows_no_version_2_message() -> None:
    s = session(None)
    for kind in ("hello", "refresh"):
        error = replies(s.receive(json.dumps({"type": kind, "data": {"token": "t"}}).encode(), 0.0, TS))[0]
        assert error["data"]["code"] == "UNKNOWN_TYPE"
        assert error["data"]["message"].endswith("expected ping, subscribe or unsubscribe")
    assert s.expiring(TS) == []


def event(n: int = 1) -> StreamEvent:
    fields = encode_entry(
        make_event("execution.started", {"execution_id": "e1", "workflow_id": "w", "status": "running"})
    )
    return decode_entry(f"{n}-0".encode(), {k.encode(): v for k, v in fields.items()})


def test_a_frame_is_packed_once_per_event_and_only_when_asked() -> None:
    ev = event()
    frame = Frame.of(ev)
    assert frame._packed is None and frame._packed_wire is None  # JSON-only pays nothing
    packed = frame.packed()
    assert frame.packed() is packed and frame.packed_wire() is frame.packed_wire()
    assert msgspec.msgpack.decode(packed) == json.loads(
        event_frame(b"execution.started", ev.timestamp, ev.id, ev.data)
    )
    assert frame.packed_wire() == binary_frame(packed)


@pytest.mark.parametrize("direct", [True, False])
def test_a_msgpack_delivery_queues_binary_frames_events_and_replies(direct: bool) -> None:
    ev = event()
    frame = Frame.of(ev)
    for msgpack, want in ((False, frame.wire if direct else frame.payload), (True, None)):
        d = Delivery(10, 1 << 20, direct=direct, msgpack=msgpack)
        assert d.offer_live(ev, frame)
        assert d.offer_control(b"\x81\xa4type\xa4pong" if msgpack else b'{"type":"pong"}')
        queued = d.outbox.take()
        if msgpack:
            assert queued == ([frame.packed_wire(), binary_frame(b"\x81\xa4type\xa4pong")] if direct
                              else [frame.packed(), b"\x81\xa4type\xa4pong"])  # fmt: skip
        else:
            assert queued == [want, text_frame(b'{"type":"pong"}') if direct else b'{"type":"pong"}']


_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8) | st.integers(-5, 5), inner, max_size=4),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=200)
    | _values.map(msgspec.msgpack.encode)
    | st.dictionaries(st.sampled_from(["type", "data", "timestamp"]), _values).map(msgspec.msgpack.encode)
    | st.builds(dict, type=st.sampled_from(["ping", "subscribe", "hello", "refresh"]), data=_values).map(
        msgspec.msgpack.encode
    )
)
def test_the_msgpack_decoder_never_raises_and_bad_frames_change_nothing(frame: bytes) -> None:
    s = session(V2_MSGPACK)
    s.received = 1  # not the first message: a hello is refused, nothing is granted
    actions = s.receive(frame, 0.0, TS)
    assert s.channels == {} or isinstance(actions[0], SubscribeChannel)
    assert s.granted == () and s.expires_at == 1000.0
    for action in actions:
        if isinstance(action, Reply):
            assert msgspec.msgpack.decode(action.frame)["type"] in ("error", "pong", "welcome")
