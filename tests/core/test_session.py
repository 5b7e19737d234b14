"""The session state machine over every (state, input) pair, without an event loop."""

from __future__ import annotations

import json

import pytest

from gateway.core.session import (
    Close,
    Reply,
    Session,
    State,
    SubscribeChannel,
    UnsubscribeChannel,
)
from schemas.control import CloseCode

TS = "2026-01-01T00:00:00Z"

INPUTS: dict[str, bytes] = {
    "ping": b'{"type":"ping"}',
    "subscribe": b'{"type":"subscribe","data":{"channel":"executions"}}',
    "subscribe_since": b'{"type":"subscribe","data":{"channel":"approvals","since":"5-1"}}',
    "unsubscribe": b'{"type":"unsubscribe","data":{"channel":"executions"}}',
    "own_user": b'{"type":"subscribe","data":{"channel":"users:u1"}}',
    "other_user": b'{"type":"subscribe","data":{"channel":"users:u2"}}',
    "bad_channel": b'{"type":"subscribe","data":{"channel":"nope"}}',
    "unknown": b'{"type":"hello"}',
    "garbage": b"\x00\xff",
}


def _session(state: State, **kw: float) -> Session:
    s = Session("u1", max_subscriptions=int(kw.get("max_subs", 5)), rate_limit=kw.get("rate", 0.0), now=0.0)
    if state is State.CLOSING:
        s.close(CloseCode.NORMAL, "bye")
    elif state is State.CLOSED:
        s.closed()
    return s


def _reply(action: object) -> dict[str, object]:
    assert isinstance(action, Reply)
    doc: dict[str, object] = json.loads(action.frame)
    return doc


EXPECTED_OPEN = {
    "ping": ("pong", None),
    "subscribe": (SubscribeChannel, None),
    "subscribe_since": (SubscribeChannel, None),
    "unsubscribe": ("unsubscribed", None),
    "own_user": (SubscribeChannel, None),
    "other_user": ("error", "FORBIDDEN"),
    "bad_channel": ("error", "INVALID_SUBSCRIPTION"),
    "unknown": ("error", "UNKNOWN_TYPE"),
    "garbage": ("error", "PARSE_ERROR"),
}


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("name", list(INPUTS))
def test_every_state_and_input(state: State, name: str) -> None:
    session = _session(state)
    actions = session.receive(INPUTS[name], 1.0, TS)
    if state is not State.OPEN:
        assert actions == []  # nothing is processed after the decision to close
        return
    kind, code = EXPECTED_OPEN[name]
    assert len(actions) == 1
    if kind is SubscribeChannel:
        assert isinstance(actions[0], SubscribeChannel)
    else:
        doc = _reply(actions[0])
        assert doc["type"] == kind
        if code:
            assert doc["data"]["code"] == code  # type: ignore[index]
    assert session.state is State.OPEN  # a bad frame never closes the connection


@pytest.mark.parametrize("state", list(State))
def test_expire_and_close_in_every_state(state: State) -> None:
    session = _session(state)
    expired = session.expire()
    if state is State.OPEN:
        assert expired == [Close(CloseCode.TOKEN_EXPIRED, "token expired")]
        assert session.state is State.CLOSING
    else:
        assert expired == []
    assert session.close(CloseCode.SLOW_CONSUMER, "slow") == []


def test_subscribe_since_is_parsed() -> None:
    [action] = _session(State.OPEN).receive(INPUTS["subscribe_since"], 0, TS)
    assert isinstance(action, SubscribeChannel) and action.since == "5-1"


def test_unsubscribe_after_subscribe_changes_the_index() -> None:
    s = _session(State.OPEN)
    s.receive(INPUTS["subscribe"], 0, TS)
    actions = s.receive(INPUTS["unsubscribe"], 0, TS)
    assert isinstance(actions[0], UnsubscribeChannel)
    assert _reply(actions[1])["type"] == "unsubscribed"
    assert s.channels == {}


def test_subscription_limit_and_replacing_does_not_count() -> None:
    s = _session(State.OPEN, max_subs=1)
    assert isinstance(s.receive(INPUTS["subscribe"], 0, TS)[0], SubscribeChannel)
    assert isinstance(s.receive(INPUTS["subscribe"], 0, TS)[0], SubscribeChannel)  # same channel
    doc = _reply(s.receive(INPUTS["subscribe_since"], 0, TS)[0])
    assert doc["data"]["code"] == "TOO_MANY_SUBSCRIPTIONS"  # type: ignore[index]
    assert list(s.channels) == ["executions"]


def test_rate_limit_replies_then_closes() -> None:
    s = _session(State.OPEN, rate=1.0)  # burst of 2
    now = 0.0
    assert _reply(s.receive(INPUTS["ping"], now, TS)[0])["type"] == "pong"
    assert _reply(s.receive(INPUTS["ping"], now, TS)[0])["type"] == "pong"
    limited = _reply(s.receive(INPUTS["ping"], now, TS)[0])
    assert limited["data"]["code"] == "RATE_LIMITED"  # type: ignore[index]
    assert limited["data"]["retry_after_ms"] > 0  # type: ignore[index]
    assert _reply(s.receive(INPUTS["ping"], now, TS)[0])["type"] == "error"
    assert s.receive(INPUTS["ping"], now, TS) == [Close(CloseCode.RATE_LIMITED, "rate limit exceeded")]
    assert s.state is State.CLOSING


def test_rate_limit_recovers_with_time() -> None:
    s = _session(State.OPEN, rate=1.0)
    for _ in range(3):
        s.receive(INPUTS["ping"], 0.0, TS)
    assert _reply(s.receive(INPUTS["ping"], 1.5, TS)[0])["type"] == "pong"


# -- issue 11 §5: reconnect bursts of subscribes; bounded filter values ---------------


def _sub(channel: str, **filters: list[str]) -> bytes:
    return json.dumps({"type": "subscribe", "data": {"channel": channel, "filters": filters}}).encode()


def test_a_reconnect_burst_of_max_subscriptions_passes_the_default_rate_limit() -> None:
    # The original client sends every subscribe at once after a reconnect: with the
    # default 20/s (bursts of 40), 100 of them must all be accepted.
    s = Session("u1", max_subscriptions=100, rate_limit=20.0, now=0.0)
    actions = [s.receive(_sub(f"executions:e{i}"), 0.0, TS) for i in range(100)]
    assert all(isinstance(a[0], SubscribeChannel) for a in actions)
    assert len(s.channels) == 100 and s.state is State.OPEN
    # Pings still have their own burst: the subscribes did not use it up.
    assert all(_reply(s.receive(INPUTS["ping"], 0.0, TS)[0])["type"] == "pong" for _ in range(40))


def test_subscribe_flood_is_still_limited_then_closed() -> None:
    s = Session("u1", max_subscriptions=100, rate_limit=20.0, now=0.0)
    results = [s.receive(_sub("executions:e1"), 0.0, TS) for _ in range(400)]
    kinds = [
        type(r[0]).__name__ if r and not isinstance(r[0], Reply) else _reply(r[0])["type"]
        for r in results
        if r
    ]
    assert kinds.count("SubscribeChannel") == 140  # MAX_SUBSCRIPTIONS + the ordinary burst
    assert "error" in kinds
    assert Close(CloseCode.RATE_LIMITED, "rate limit exceeded") in [a for r in results for a in r]
    assert s.state is State.CLOSING


def test_filter_values_are_bounded_per_connection() -> None:
    s = Session("u1", max_subscriptions=10, rate_limit=0.0, now=0.0, max_filter_values=5)
    assert isinstance(s.receive(_sub("executions", workflow_ids=["a", "b", "c"]), 0, TS)[0], SubscribeChannel)
    [refused] = s.receive(_sub("approvals", execution_ids=["x", "y"], statuses=["s"]), 0, TS)
    doc = _reply(refused)
    assert doc["data"] == {
        "code": "TOO_MANY_FILTER_VALUES",
        "message": "at most 5 filter values per connection (this subscribe would hold 6)",
        "type": "subscribe",
        "channel": "approvals",
    }
    assert list(s.channels) == ["executions"]  # nothing changed
    # Replacing a channel's filters counts the new ones instead of the old ones.
    assert isinstance(s.receive(_sub("executions", workflow_ids=["a"]), 0, TS)[0], SubscribeChannel)
    assert isinstance(s.receive(_sub("approvals", execution_ids=["x", "y"], statuses=["s"]), 0, TS)[0],
                      SubscribeChannel)  # fmt: skip
    assert s.filter_values == 4
    # Unsubscribing frees them.
    s.receive(b'{"type":"unsubscribe","data":{"channel":"approvals"}}', 0, TS)
    assert s.filter_values == 1
    assert isinstance(
        s.receive(_sub("workflows:w", statuses=["1", "2", "3", "4"]), 0, TS)[0], SubscribeChannel
    )
    assert s.filter_values == 5
