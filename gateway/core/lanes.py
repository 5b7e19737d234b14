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

The cost: queueing appends the frame beside its bytes. A connection with a conflating
subscription (:meth:`LaneOutbox.index`) also keeps each bulk event in its execution's
list in ``queued`` (the bulk lane by execution, in queue order, with a sequence number
each), so that conflation finds the event to replace without scanning the outbox: the
queued event of an execution is the head of its list, and the oldest superseded event is
looked for only among executions with two or more events queued (``multi``); its place
in the outbox is then found by identity (``list.index``, in C). A write with nothing in
the front lane and nothing ahead only remembers its last frame (the mark, computed when
needed).
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

    __slots__ = (
        "_seq",
        "ahead",
        "front",
        "held",
        "indexed",
        "last",
        "metas",
        "multi",
        "queued",
        "reframe",
        "stalled",
    )

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
        #: ``queued`` and ``multi`` are kept (a subscription conflates: ``index``)
        self.indexed = False
        #: the bulk lane by execution id, in queue order: (sequence number, frame)
        self.queued: dict[str, list[tuple[int, Frame]]] = {}
        #: executions with two or more bulk events queued
        self.multi: set[str] = set()
        self._seq = 0

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
            self._append(data, frame)
        self.size += n
        self._events += 1
        return True

    def index(self, on: bool) -> None:
        """Keep the bulk lane by execution (``on``: the connection conflates), or stop."""
        self.queued.clear()
        self.multi.clear()
        self.indexed = on
        if on:
            for frame in self.metas[self.front :]:
                assert frame is not None
                self._track(frame)

    def _append(self, data: bytes, frame: Frame) -> None:
        """Queue an event at the end of the bulk lane."""
        self.held += frame.urgent
        self.frames.append(data)
        self.metas.append(frame)
        if self.indexed:
            self._track(frame)

    def _track(self, frame: Frame) -> None:
        assert frame.event is not None
        execution = frame.event.execution_id
        self._seq += 1
        queued = self.queued.get(execution)
        if queued is None:
            self.queued[execution] = [(self._seq, frame)]
        else:
            queued.append((self._seq, frame))
            self.multi.add(execution)

    def _remove(self, i: int, frame: Frame) -> None:
        """Remove the bulk event ``frame``, at index ``i``."""
        del self.frames[i], self.metas[i]
        self.held -= frame.urgent
        if not self.indexed:
            return
        assert frame.event is not None
        execution = frame.event.execution_id
        queued = self.queued[execution]
        for k, (_, queued_frame) in enumerate(queued):
            if queued_frame is frame:
                del queued[k]
                break
        if not queued:
            del self.queued[execution]
        elif len(queued) == 1:
            self.multi.discard(execution)

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
        self._remove(i, old)
        self._append(data, frame)
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
        self._remove(i, old)
        self.size -= removed
        self._events -= 1
        return old

    def _queued_of(self, execution: str, conflatable: Callable[[StreamEvent], bool]) -> int | None:
        """The index of the oldest queued bulk event of ``execution`` if it is
        ``conflatable`` (``None`` if there is none, or if it must still go out).
        Conflation only: the outbox is ``indexed``."""
        assert self.indexed
        queued = self.queued.get(execution)
        if queued is None:
            return None
        old = queued[0][1]
        assert old.event is not None
        return self.metas.index(old, self.front) if conflatable(old.event) else None

    def _superseded(self, conflatable: Callable[[StreamEvent], bool]) -> int | None:
        """The index of the oldest queued ``conflatable`` bulk event with a later event
        of its execution queued after it (which goes out instead: the latest state per
        execution is kept); ``None`` when there is none. Conflation only: the outbox is
        ``indexed``."""
        assert self.indexed
        best: tuple[int, Frame] | None = None
        for execution in self.multi:
            if not execution:
                continue  # events without an execution supersede nothing
            queued = self.queued[execution]
            for k in range(len(queued) - 1):  # the last one is the latest state
                seq, frame = queued[k]
                if best is not None and seq > best[0]:
                    break
                assert frame.event is not None
                if conflatable(frame.event):
                    best = (seq, frame)
                    break
        return None if best is None else self.metas.index(best[1], self.front)

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
        self.queued.clear()
        self.multi.clear()
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
