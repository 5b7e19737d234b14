"""The priority lane, the resume cursor and conflation of version 2 connections
(``gateway.core.lanes``, ``schemas.lanes``), without an event loop."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from gateway.core.delivery import Delivery, Frame, Phase
from gateway.core.filters import compile_filters
from gateway.core.index import Subscription
from gateway.core.session import Session, SubscribeChannel, subscribed_frame
from schemas.channels import parse_channel
from schemas.codec import StreamId
from schemas.control import Filters, SubscribeData
from schemas.lanes import MAX_AHEAD, format_resume, parse_resume
from schemas.stream import StreamEvent

WORKFLOW = parse_channel("workflows:w1")
APPROVALS = parse_channel("approvals")


def _event(n: int, kind: str = "step.started", ex: str = "e1") -> StreamEvent:
    return StreamEvent(
        id=f"{n}-0".encode(),
        sid=(n, 0),
        type=kind,
        data=b'{"n":%d}' % n,
        timestamp=b"2026-01-01T00:00:00Z",
        execution_id=ex,
        workflow_id="w1",
        status="running",
    )


def _conn(limit: int = 100, *, lanes: bool = True, msgpack: bool = False, conflate: bool = False) -> Delivery:
    conn = Delivery(limit, 1 << 20, direct=False, msgpack=msgpack, lanes=lanes)
    for channel in (WORKFLOW, APPROVALS):
        conn.conflate(channel, conflate and channel is WORKFLOW)
        conn.add(channel, Subscription(conn, None, channel, compile_filters(Filters()), ((0, 0),)), ((0, 0),))
    return conn


def _live(conn: Delivery, n: int, kind: str = "step.started", ex: str = "e1") -> bool:
    event = _event(n, kind, ex)
    return conn.offer_live(event, Frame.of(event))


def _frames(conn: Delivery) -> list[dict[str, Any]]:
    decode = msgspec.msgpack.decode if conn.msgpack else json.loads
    return [decode(payload) for payload in conn.outbox.take()]


def test_version_1_keeps_stream_order() -> None:
    conn = _conn(lanes=False)
    for n in (1, 2):
        _live(conn, n)
    _frames(conn)
    _live(conn, 3)
    _live(conn, 4, "approval.required")
    conn.offer_control(b'{"type":"pong"}')
    assert [f.get("id") for f in _frames(conn)] == ["3-0", "4-0", None]


def test_an_approval_overtakes_queued_bulk_and_every_cursor_stays_exact() -> None:
    conn = _conn()
    _live(conn, 1)
    assert _frames(conn) == [{"type": "step.started", "timestamp": "2026-01-01T00:00:00Z", "id": "1-0",
                              "data": {"n": 1}}]  # fmt: skip
    conn.stall()  # the socket stops taking data: what is queued from now on is a backlog
    for n in (2, 3):
        _live(conn, n)
    _live(conn, 4, "approval.required")
    conn.offer_control(b'{"type":"pong"}')
    _live(conn, 5)
    frames = _frames(conn)
    assert [f.get("id") for f in frames] == ["4-0", None, "2-0", "3-0", "5-0"]
    # The approval: the mark is the last event written in order, the approval ahead.
    assert [f.get("cursor") for f in frames] == [
        "v1.1-0~0.4-0",
        None,
        "v1.2-0~0.4-0",
        "v1.3-0~0.4-0",
        None,
    ]  # 5-0 is past the approval: its own id is a resume point again
    assert parse_resume("v1.3-0~0.4-0", 1) == (((3, 0),), frozenset({(0, (4, 0))}))


def test_a_batch_queued_for_one_write_goes_out_in_order() -> None:
    conn = _conn()
    _live(conn, 1)
    _frames(conn)
    _live(conn, 2)
    _live(conn, 3, "approval.required")
    assert [f["id"] for f in _frames(conn)] == ["2-0", "3-0"]
    conn.stall()
    conn.drained()  # the socket took everything: not backlogged any more
    _live(conn, 4)
    _live(conn, 5, "approval.required")
    assert [f["id"] for f in _frames(conn)] == ["4-0", "5-0"]


def test_no_overtaking_before_anything_was_written_in_order() -> None:
    conn = _conn()
    conn.stall()
    _live(conn, 1)
    _live(conn, 2, "approval.required")
    assert [f["id"] for f in _frames(conn)] == ["1-0", "2-0"]


def test_approvals_keep_their_order_among_themselves() -> None:
    conn = _conn()
    _live(conn, 1)
    _frames(conn)
    conn.stall()
    _live(conn, 2)
    for n in range(3, 3 + MAX_AHEAD + 2):
        _live(conn, n, "approval.required")
    _live(conn, 40, "approval.required")
    ids = [f["id"] for f in _frames(conn)]
    # MAX_AHEAD overtake; the rest queue in order, and a later approval waits behind them.
    assert ids == [f"{n}-0" for n in range(3, 3 + MAX_AHEAD)] + ["2-0", "19-0", "20-0", "40-0"]


def test_a_resume_cursor_skips_the_events_ahead() -> None:
    conn = _conn()
    vector, ahead = parse_resume(format_resume(((2, 0),), {(0, (4, 0))}), 1)
    assert vector == ((2, 0),)
    conn.resume_skip(ahead)
    assert conn.gate == ((4, 0),)
    kinds = ((3, "step.started"), (4, "approval.required"), (5, "step.started"))
    assert [_live(conn, n, k) for n, k in kinds] == [True, False, True]


@pytest.mark.parametrize(
    "text",
    ["v1.1-0~", "v1.1-0~x.1-0", "v1.1-0~0.zz", "v1.1-0" + "~0.2-0" * (MAX_AHEAD + 1), "v1.1-0~123.1-0"],
)
def test_malformed_resume_cursors_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"stream id|event ahead|events ahead"):
        parse_resume(text, 1)


def test_a_cursor_of_another_deployment_names_no_position() -> None:
    assert parse_resume("v1.1-0.2-0~1.2-0", 1) == (None, frozenset())
    assert parse_resume("v1.1-0~3.2-0", 2) == (None, frozenset())


def test_conflation_keeps_the_latest_event_per_execution() -> None:
    conn = _conn(limit=2, conflate=True)
    assert _live(conn, 1, ex="e1") and _live(conn, 2, ex="e2")
    assert _live(conn, 3, ex="e1")  # full: replaces 1-0, appended after 2-0
    assert _live(conn, 4, ex="e1")
    assert conn.phase is Phase.LIVE and conn.conflated == 2 and conn.dropped == ((3, 0),)
    assert [f["id"] for f in _frames(conn)] == ["2-0", "4-0"]
    # A resume from before a conflated event is not exact for an exactly-once channel.
    probe = Subscription(conn, None, APPROVALS, compile_filters(Filters()), ((2, 0),))
    assert conn.missed(probe, [])


def test_a_full_outbox_without_an_event_of_the_execution_closes_4008() -> None:
    conn = _conn(limit=2, conflate=True)
    assert _live(conn, 1, ex="e1") and _live(conn, 2, ex="e2")
    assert not _live(conn, 3, ex="e3")
    assert (conn.phase, conn.close_code) == (Phase.CLOSING, 4008)


def test_a_new_execution_replaces_an_event_superseded_by_a_later_one_of_its_own() -> None:
    """A burst of one execution filled the outbox: an event of another execution makes
    room by dropping the oldest queued event that a later queued one of its execution
    supersedes (not 4008: every execution's latest event still goes out)."""
    conn = _conn(limit=3, conflate=True)
    assert _live(conn, 1, ex="e1") and _live(conn, 2, ex="e2") and _live(conn, 3, ex="e1")
    assert _live(conn, 4, ex="e3")  # drops 1-0 (3-0 is a later e1)
    # Queued: 2-0 (e2), 3-0 (e1), 4-0 (e3), each its execution's latest: 4008.
    assert not _live(conn, 5, ex="e4")
    assert (conn.phase, conn.close_code) == (Phase.CLOSING, 4008)
    assert conn.conflated == 1 and conn.dropped == ((1, 0),)

    conn = _conn(limit=3, conflate=True)
    for n in (1, 2, 3):
        assert _live(conn, n, ex="e1")
    assert _live(conn, 4, ex="e2") and _live(conn, 5, ex="e3")
    assert conn.phase is Phase.LIVE and conn.conflated == 2
    assert [f["id"] for f in _frames(conn)] == ["3-0", "4-0", "5-0"]


def test_events_owed_to_an_exactly_once_subscription_are_never_conflated() -> None:
    conn = _conn(limit=2, conflate=True)
    channel = parse_channel("executions:e1")
    conn.add(channel, Subscription(conn, None, channel, compile_filters(Filters()), ((0, 0),)), ((0, 0),))
    assert _live(conn, 1) and _live(conn, 2)
    assert not _live(conn, 3)
    assert conn.close_code == 4008 and conn.conflated == 0


def test_conflation_is_version_2_only() -> None:
    conn = _conn(limit=1, lanes=False, conflate=True)
    assert not conn.conflating
    assert _live(conn, 1) and not _live(conn, 2)
    assert conn.close_code == 4008


def test_a_msgpack_connection_gets_its_reencoded_frames_packed() -> None:
    conn = _conn(msgpack=True)
    _live(conn, 1)
    _frames(conn)
    conn.stall()
    _live(conn, 2)
    _live(conn, 3, "approval.required")
    assert [(f["id"], f.get("cursor")) for f in _frames(conn)] == [
        ("3-0", "v1.1-0~0.3-0"),
        ("2-0", "v1.2-0~0.3-0"),
    ]


def test_frame_with_cursor_is_the_same_event() -> None:
    event = _event(7)
    frame = Frame.of(event).with_cursor("v1.6-0~0.7-0")
    assert json.loads(frame.payload) == {"type": "step.started", "timestamp": "2026-01-01T00:00:00Z",
                                         "id": "7-0", "cursor": "v1.6-0~0.7-0", "data": {"n": 7}}  # fmt: skip
    sid: StreamId = (7, 0)
    assert Frame.of(event).in_order() == (sid,)


@pytest.mark.parametrize(("protocol", "asked"), [("flowwire.v2.json", True), (None, None)])
def test_conflate_is_asked_per_subscription_on_version_2_only(
    protocol: str | None, asked: bool | None
) -> None:
    session = Session("alice", max_subscriptions=10, rate_limit=0, now=0.0, protocol=protocol)
    message = b'{"type":"subscribe","data":{"channel":"workflows:w1","conflate":true}}'
    [action] = session.receive(message, 0.0, "t")
    assert isinstance(action, SubscribeChannel) and action.conflate is asked
    reply = json.loads(subscribed_frame("t", "workflows:w1", Filters(), "0-0", None, conflate=asked))
    assert reply["data"].get("conflate") is asked


def test_a_resume_cursor_is_a_valid_since() -> None:
    since = format_resume(((1, 0), (2, 0)), {(1, (3, 0))})
    assert msgspec.convert({"channel": "approvals", "since": since}, SubscribeData).since == since
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"channel": "approvals", "since": "v1.1-0~0.99999999999999999999-0"}, SubscribeData)


def test_an_approval_at_a_full_conflating_outbox_takes_a_superseded_events_place() -> None:
    """A dashboard's flood filled the outbox: an approval (never conflated itself) takes
    the place of the oldest queued event that a later one of its execution supersedes,
    instead of closing 4008; with none superseded, 4008 as before."""
    conn = _conn(limit=3, conflate=True)
    _live(conn, 1)
    _frames(conn)  # something written in order: the approval may overtake
    conn.stall()
    assert _live(conn, 2, ex="e1") and _live(conn, 3, ex="e2") and _live(conn, 4, ex="e1")
    assert _live(conn, 5, "approval.required", ex="e9")  # drops 2-0 (4-0 is a later e1)
    assert conn.phase is Phase.LIVE and conn.conflated == 1 and conn.dropped == ((2, 0),)
    assert [f["id"] for f in _frames(conn)] == ["5-0", "3-0", "4-0"]  # the approval first

    conn = _conn(limit=2, conflate=True)
    assert _live(conn, 1, ex="e1") and _live(conn, 2, ex="e2")  # each its execution's latest
    assert not _live(conn, 3, "approval.required", ex="e9")
    assert (conn.phase, conn.close_code) == (Phase.CLOSING, 4008)
