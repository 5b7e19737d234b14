"""The conflation index of a version 2 outbox (``LaneOutbox.queued`` / ``multi``) against
brute force: after any sequence of queueing, jumping, conflating, making room, writing
and turning conflation off and on, the event conflation replaces and the event that
makes room are those a scan of the whole outbox finds (the scans below are the
implementation the index replaced). No event loop."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.delivery import Frame
from gateway.core.lanes import LaneOutbox
from schemas.stream import StreamEvent
from tests.core.test_lanes import _event as lane_event

EXECUTIONS = ("", "e1", "e2", "e3")
KINDS = ("step.started", "approval.required", "execution.completed")
Conflatable = Callable[[StreamEvent], bool]
#: weighted: mostly queueing and conflating
OPS = ["offer"] * 4 + ["conflate"] * 2 + ["make_room", "control", "take", "stall", "reindex"]


def _event(n: int, ex: str, kind: str) -> StreamEvent:
    return lane_event(n, kind, ex)


def _scan_queued_of(box: LaneOutbox, execution: str, conflatable: Conflatable) -> int | None:
    for i in range(box.front, len(box.metas)):
        old = box.metas[i]
        if old is not None and old.event is not None and old.event.execution_id == execution:
            return i if conflatable(old.event) else None
    return None


def _scan_superseded(box: LaneOutbox, conflatable: Conflatable) -> int | None:
    last: dict[str, int] = {}
    for i in range(box.front, len(box.metas)):
        meta = box.metas[i]
        if meta is not None and meta.event is not None and meta.event.execution_id:
            last[meta.event.execution_id] = i
    for i in range(box.front, len(box.metas)):
        meta = box.metas[i]
        superseded = meta is not None and meta.event is not None and last.get(meta.event.execution_id, i) > i
        if superseded and meta is not None and meta.event is not None and conflatable(meta.event):
            return i
    return None


def _apply(box: LaneOutbox, op: str, frame: Frame, flag: bool, conflatable: Conflatable) -> None:
    """One operation; conflation and making room checked against the scans."""
    assert frame.event is not None
    if op == "offer":
        if flag and box.last is None and box.metas:
            box.take()  # a write in order: the mark is known, so approvals may jump
        box.offer(frame.payload, frame)
    elif op == "conflate" and box.full:
        i = _scan_queued_of(box, frame.event.execution_id, conflatable)
        i = _scan_superseded(box, conflatable) if i is None else i
        expected = None if i is None else box.metas[i]
        assert box.conflate(frame.payload, frame, conflatable) is expected
    elif op == "make_room" and box.full:
        i = _scan_superseded(box, conflatable)
        expected = None if i is None else box.metas[i]
        assert box.make_room(len(frame.payload), conflatable) is expected
    elif op == "control":
        box.put_control(b'{"type":"pong"}')
    elif op == "take":
        box.take()
    elif op == "stall":
        box.stalled = flag
    elif op == "reindex":  # conflation turned off and on: the index built from the queue
        box.index(False)
        box.index(True)


Op = tuple[str, str, str, bool]
_OPS = st.lists(
    st.tuples(
        st.sampled_from(OPS),
        st.sampled_from(EXECUTIONS),
        st.sampled_from(KINDS),
        st.booleans(),
    ),
    max_size=80,
)


@settings(max_examples=600, deadline=None)
@given(ops=_OPS, limit=st.integers(1, 8), odd=st.integers(0, 9))
def test_the_index_finds_what_a_scan_finds(ops: list[Op], limit: int, odd: int) -> None:
    box = LaneOutbox(limit, 1 << 20, lambda frame, cursor: frame.payload)
    box.index(True)

    def conflatable(event: StreamEvent) -> bool:  # some events are owed to exactly-once
        return event.sid[0] % 10 != odd

    for n, (op, execution, kind, flag) in enumerate(ops, 1):
        for ex in EXECUTIONS:
            assert box._queued_of(ex, conflatable) == _scan_queued_of(box, ex, conflatable)
        assert box._superseded(conflatable) == _scan_superseded(box, conflatable)
        _apply(box, op, Frame.of(_event(n, execution, kind)), flag, conflatable)
        queued = [m for m in box.metas[box.front :] if m is not None]
        assert sum(len(v) for v in box.queued.values()) == len(queued)
        assert box.multi == {ex for ex, v in box.queued.items() if len(v) > 1}


def test_the_index_is_kept_only_while_a_subscription_conflates() -> None:
    box = LaneOutbox(8, 1 << 20, lambda frame, cursor: frame.payload)
    for n in range(3):
        frame = Frame.of(_event(n + 1, "e1", "step.started"))
        box.offer(frame.payload, frame)
    assert not box.indexed and not box.queued  # exactly-once connections pay nothing
    box.index(True)
    assert [len(v) for v in box.queued.values()] == [3] and box.multi == {"e1"}
    box.index(False)
    assert not box.queued and not box.multi
