"""The outbox of a version 2 connection: a priority lane, conflation, and the cursor that
stays exact when events go out of stream order (docs/protocol.md "Priority and
conflation"). Pure and synchronous.

Theory of operation
-------------------
Two lanes in one list: the *front* (control replies and ``approval.*`` events) and the
*bulk* (every other event, in the order it was queued: stream order, per partition).
A frame for the front is inserted after the front's last frame, ahead of every queued
bulk frame; an empty outbox writes in order anyway (the lanes matter only to a
backlogged connection).

The cursor. Each queued event keeps its frame, and so its *in-order cursor* (its reader
position: the frame's cursor vector, or its own id with one partition,
``Frame.in_order``): the resume point had the events been written in queue order, which
the delivery machine guarantees (``gateway.core.delivery``). What has been written is
therefore a prefix of the queue order, whose last in-order cursor is the *low-water
mark* (``low``), plus the events written ahead of it (``ahead``). At
:meth:`LaneOutbox.take` (the write) each event frame gets the resume cursor of what will
have been written once it is: a bulk frame moves the mark to its in-order cursor and
drops from ``ahead`` what the mark now covers; an event from the front joins ``ahead``.
While ``ahead`` is empty a frame goes out as encoded for every connection; otherwise it
is re-encoded with ``schemas.lanes.format_resume`` (only frames of a backlogged
connection with an approval outstanding pay that). An approval jumps only when the shell
said the socket is not taking data (``stalled``: a batch queued for one write goes out
in order), the mark is known (an event was written in order before), fewer than
``MAX_AHEAD`` events are ahead, and no approval waits in the bulk lane (approvals keep
their order among themselves): otherwise it queues in order.

Conflation: when the outbox is full, a live event owed only to conflating subscriptions
replaces the queued bulk event of its execution that is also owed only to them (the
connection decides: ``conflatable``): that one is removed, the new one appended (the
bulk lane stays in stream order, so the in-order cursors stay exact; the replaced event
is deliberately never written). With no such event of its execution queued (a burst of
another execution filled the outbox), the oldest queued conflatable event with a later
event of its own execution queued makes room instead: every execution's latest event
still goes out. The same room is made for a live event that is not conflatable itself
(an approval, or one an exactly-once subscription is owed: :meth:`LaneOutbox.make_room`),
so that a conflating dashboard's flood does not close it when an approval arrives.

The cost: queueing appends the frame beside its bytes; a write with nothing in the front
lane and nothing ahead only remembers its last frame (the mark, computed when needed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.core.flow import Outbox
from schemas.codec import StreamId
from schemas.lanes import MAX_AHEAD, format_resume
from schemas.partition import Vector

if TYPE_CHECKING:
    from gateway.core.delivery import Frame
    from schemas.stream import StreamEvent

__all__ = ["LaneOutbox"]


class LaneOutbox(Outbox):
    """An :class:`~gateway.core.flow.Outbox` with two lanes (module docstring).
    ``reframe(frame, cursor)`` is what of ``frame`` re-encoded with that resume cursor
    the outbox holds (the connection's path and format)."""

    __slots__ = ("ahead", "front", "held", "last", "metas", "reframe", "stalled")

    def __init__(self, limit: int, max_bytes: int, reframe: Callable[[Frame, str], bytes]) -> None:
        super().__init__(limit, max_bytes)
        self.reframe = reframe
        #: aligned with ``frames``: the event's frame, ``None`` for a control reply
        self.metas: list[Frame | None] = []
        #: how many frames lead the outbox in the front lane
        self.front = 0
        #: approvals queued in the bulk lane (none may jump them: approvals keep their
        #: order among themselves)
        self.held = 0
        #: the last event written in order: the mark is its in-order cursor (``None``:
        #: nothing was written in order yet)
        self.last: Frame | None = None
        #: events written above the mark: (partition, id)
        self.ahead: set[tuple[int, StreamId]] = set()
        #: the socket does not take data now (the shell says so): what is queued is a
        #: backlog. Only then does an approval overtake (a batch queued for one write
        #: goes out in order).
        self.stalled = False

    @property
    def low(self) -> Vector | None:
        """The low-water mark of what was written."""
        return None if self.last is None else self.last.in_order()

    # -- queueing ----------------------------------------------------------------------

    def offer(self, data: bytes, frame: Frame) -> bool:
        """Queue an event in its lane; ``False`` (nothing queued) when full."""
        n = len(data)
        if self._events >= self.limit or (self.frames and self.size + n > self.max_bytes):
            return False
        if frame.urgent and self.stalled and self._may_jump():
            self._insert(data, frame)
        else:
            self.held += frame.urgent
            self.frames.append(data)
            self.metas.append(frame)
        self.size += n
        self._events += 1
        return True

    def _may_jump(self) -> bool:
        """Bulk is queued, the mark is known, no approval waits in order, and fewer than
        MAX_AHEAD events would be ahead of the mark after one more."""
        if self.front >= len(self.frames) or self.last is None or self.held:
            return False
        jumped = sum(1 for frame in self.metas[: self.front] if frame is not None)
        return len(self.ahead) + jumped < MAX_AHEAD

    def _insert(self, data: bytes, frame: Frame | None) -> None:
        self.frames.insert(self.front, data)
        self.metas.insert(self.front, frame)
        self.front += 1

    def offer_event(self, frame: bytes) -> bool:
        raise TypeError("a lane outbox queues events with offer()")

    def put_control(self, frame: bytes) -> bool:
        """A control reply goes in the front lane (ahead of queued bulk events)."""
        if not self._fits(len(frame)):
            return False
        self._insert(frame, None)
        self.size += len(frame)
        return True

    def conflate(self, data: bytes, frame: Frame, conflatable: Callable[[StreamEvent], bool]) -> Frame | None:
        """The outbox is full: replace the queued bulk event of ``frame``'s execution
        that is ``conflatable``, else one superseded by a later queued event of its own
        execution, by ``frame`` (appended: bulk stays in stream order). Returns the
        replaced frame, or ``None`` when there is none (or the new frame does not fit even
        then). The caller checked that ``frame``'s event is conflatable."""
        assert frame.event is not None
        i = self._queued_of(frame.event.execution_id, conflatable)
        if i is None:
            i = self._superseded(conflatable)
        if i is None:
            return None
        old = self.metas[i]
        assert old is not None
        size = self.size - len(self.frames[i]) + len(data)
        if size > self.max_bytes and len(self.frames) > 1:
            return None
        del self.frames[i], self.metas[i]
        self.held -= old.urgent
        self.frames.append(data)
        self.metas.append(frame)
        self.size = size
        return old

    def make_room(self, n: int, conflatable: Callable[[StreamEvent], bool]) -> Frame | None:
        """The outbox is full and an event of ``n`` bytes that is not itself conflatable
        (an approval, or one an exactly-once subscription is owed) arrives: remove the
        oldest queued ``conflatable`` bulk event that a later queued event of its own
        execution supersedes, if the new event then fits. Returns the removed frame
        (the caller then queues the new event with :meth:`offer`), or ``None``."""
        i = self._superseded(conflatable)
        if i is None:
            return None
        removed = len(self.frames[i])
        if self.size - removed + n > self.max_bytes and len(self.frames) > 1:
            return None
        old = self.metas[i]
        assert old is not None
        del self.frames[i], self.metas[i]
        self.held -= old.urgent
        self.size -= removed
        self._events -= 1
        return old

    def _queued_of(self, execution: str, conflatable: Callable[[StreamEvent], bool]) -> int | None:
        """The index of the oldest queued bulk event of ``execution`` if it is
        ``conflatable`` (``None`` if there is none, or if it must still go out)."""
        metas = self.metas
        for i in range(self.front, len(metas)):
            old = metas[i]
            if old is not None and old.event is not None and old.event.execution_id == execution:
                return i if conflatable(old.event) else None
        return None

    def _superseded(self, conflatable: Callable[[StreamEvent], bool]) -> int | None:
        """The index of the oldest queued ``conflatable`` bulk event with a later event
        of its execution queued after it (which goes out instead: the latest state per
        execution is kept); ``None`` when there is none."""
        metas = self.metas
        last: dict[str, int] = {}
        for i in range(self.front, len(metas)):
            meta = metas[i]
            if meta is not None and meta.event is not None and meta.event.execution_id:
                last[meta.event.execution_id] = i
        for i in range(self.front, len(metas)):
            meta = metas[i]
            if meta is None or meta.event is None:
                continue
            event = meta.event
            if last.get(event.execution_id, i) > i and conflatable(event):
                return i
        return None

    # -- writing -----------------------------------------------------------------------

    def written(self, data: bytes, frame: Frame) -> bytes:
        """An event written at once (the outbox is empty): the mark moves to it; the
        bytes to write (re-encoded while events are ahead of the mark)."""
        self.last = frame
        return self._recursor(data, frame) if self.ahead else data

    def _recursor(self, data: bytes, frame: Frame) -> bytes:
        """The mark moved to ``frame``: drop what it covers from ``ahead``; its bytes."""
        low = frame.in_order()
        ahead = self.ahead
        for item in [item for item in ahead if item[1] <= low[item[0]]]:
            ahead.discard(item)
        return self.reframe(frame, format_resume(low, ahead)) if ahead else data

    def take(self) -> list[bytes]:
        """Everything queued, in write order, each event with its resume cursor."""
        metas, front = self.metas, self.front
        self.metas = []
        self.front = self.held = 0
        out = super().take()
        if not front and not self.ahead:
            if metas:  # all bulk, in order: the mark is the last one's
                self.last = metas[-1]
            return out
        for i, frame in enumerate(metas):
            if frame is None:
                continue
            if i < front:  # written ahead of the mark
                event, low = frame.event, self.low
                assert event is not None and low is not None
                if event.sid > low[event.part]:
                    self.ahead.add((event.part, event.sid))
                if self.ahead:
                    out[i] = self.reframe(frame, format_resume(low, self.ahead))
            else:
                self.last = frame
                if self.ahead:
                    out[i] = self._recursor(out[i], frame)
        return out
