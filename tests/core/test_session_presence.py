"""``presence`` messages in the session state machine, without an event loop
(docs/protocol.md, "Presence")."""

from __future__ import annotations

import json

import pytest

from gateway.core.session import (
    Action,
    PresenceQuery,
    Reply,
    Session,
    presence_diff_frame,
    presence_state_frame,
)

TS = "2026-01-01T00:00:00Z"


def _session(presence: bool = True, max_subs: int = 2) -> Session:
    return Session("u1", max_subscriptions=max_subs, rate_limit=0.0, now=0.0, presence=presence)


def _error(actions: list[Action]) -> dict[str, object]:
    [reply] = actions
    assert isinstance(reply, Reply)
    doc: dict[str, object] = json.loads(reply.frame)
    assert doc["type"] == "error"
    data = doc["data"]
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize(
    ("frame", "want"),
    [
        ('{"type":"presence"}', PresenceQuery("", None)),
        ('{"type":"presence","data":null}', PresenceQuery("", None)),
        ('{"type":"presence","data":{}}', PresenceQuery("", None)),
        ('{"type":"presence","data":{"channel":null,"watch":true}}', PresenceQuery("", True)),
        ('{"type":"presence","data":{"channel":"executions:e1"}}', PresenceQuery("executions:e1", None)),
        ('{"type":"presence","data":{"channel":"users:u1","watch":false}}', PresenceQuery("users:u1", False)),
    ],
)
def test_a_presence_message_is_a_query(frame: str, want: PresenceQuery) -> None:
    assert _session().receive(frame, 0.0, TS) == [want]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"channel": "nope"}, "INVALID_SUBSCRIPTION"),
        ({"channel": ""}, "INVALID_SUBSCRIPTION"),
        ({"watch": 1}, "INVALID_SUBSCRIPTION"),
        ({"other": True}, "INVALID_SUBSCRIPTION"),
        ({"channel": "users:u2"}, "FORBIDDEN"),
    ],
)
def test_a_bad_presence_message_gets_an_error_and_changes_nothing(data: dict[str, object], code: str) -> None:
    s = _session()
    error = _error(s.receive(json.dumps({"type": "presence", "data": {"watch": True, **data}}), 0.0, TS))
    assert error["code"] == code and error["type"] == "presence"
    assert s.watching == set()


def test_watches_are_bounded_and_counted_once() -> None:
    s = _session(max_subs=2)
    watch = '{{"type":"presence","data":{{"channel":{},"watch":true}}}}'
    assert s.receive(watch.format('"executions"'), 0.0, TS) == [PresenceQuery("executions", True)]
    assert s.receive(watch.format('"executions"'), 0.0, TS) == [PresenceQuery("executions", True)]
    assert s.receive(watch.format("null"), 0.0, TS) == [PresenceQuery("", True)]
    error = _error(s.receive(watch.format('"approvals"'), 0.0, TS))
    assert error["code"] == "TOO_MANY_SUBSCRIPTIONS"
    s.receive('{"type":"presence","data":{"channel":"executions","watch":false}}', 0.0, TS)
    assert s.receive(watch.format('"approvals"'), 0.0, TS) == [PresenceQuery("approvals", True)]
    assert s.watching == {"", "approvals"}
    s.closed()
    assert s.watching == set()


def test_presence_off_answers_unknown_type() -> None:
    error = _error(_session(presence=False).receive('{"type":"presence"}', 0.0, TS))
    assert error["code"] == "UNKNOWN_TYPE"


def test_frames() -> None:
    state = json.loads(presence_state_frame(TS, "", [("u1", 2)], 3, True))
    members = [{"user_id": "u1", "connections": 2}]
    data = {"members": members, "count": 3, "watching": True}
    assert state == {"type": "presence.state", "timestamp": TS, "data": data}
    diff = json.loads(presence_diff_frame(TS, "executions", [("u1", 1)], ["u2"], 1, limit=10))
    assert diff["data"] == {"joined": [{"user_id": "u1", "connections": 1}], "left": ["u2"], "count": 1,
                            "channel": "executions"}  # fmt: skip
    resync = json.loads(presence_diff_frame(TS, "executions", [("u1", 1)], ["u2"], 1, limit=1))
    assert resync["data"] == {"joined": [], "left": [], "count": 1, "channel": "executions", "resync": True}
