"""One connection's delivery state machine, sans I/O (docs/protocol.md "Resume").

Theory of operation
-------------------
A connection promises its client: every event its subscriptions match, **once, in stream
order**, and after a reconnect (on any instance) resumption from the client's cursor with
no gap. Everything that decides what the connection receives lives here; the shell
(``gateway.hub``, ``gateway.replay``, ``gateway.connection``) feeds inputs and carries out
outputs: it writes the frames this machine queued, reads the log where it asks, closes
with the code it names.

Partitioned streams (``STREAM_PARTITIONS=P``, ``schemas.partition``): stream order is
per partition, so ``last``, ``gate``, ``cursor`` and the positions are vectors of P ids,
each compared only with ids of its own partition (``event.part``); with P = 1 they hold
one id and everything below reads as for one stream.

State::

    last     the id of the last event queued: the order guard. Nothing at or below it is
             ever queued again, so no duplicate and stream order, however live delivery,
             replays and subscriptions interleave.
    gate     the highest ``from_sid`` of the subscriptions. A subscription is owed the
             events *after* its ``from_sid``; live events above ``gate`` are owed to
             every matching subscription (the one comparison of the hot path), those at
             or below it get the full check (only while a client resumed *ahead* of this
             instance's reader: its cursor came from a faster instance).
    cursor   while replaying: the log has been scanned up to here for this connection.
             A replayed range always advances it, usable entries or not.

Phases::

    LIVE --subscribe(since < position)--> REPLAYING --caught up with position--> LIVE
    LIVE | REPLAYING --close()--> CLOSING --closed()--> CLOSED

While REPLAYING, live dispatch skips the connection entirely: the replay reads the log
from ``cursor`` and flips the connection back to LIVE in the same synchronous step in
which its cursor reaches the reader's position, so the live events dispatched meanwhile
come from the log, in order. In CLOSING and CLOSED every input is ignored.

The outbox is bounded in events (``CLIENT_SEND_BUFFER``) and in bytes
(``CLIENT_SEND_BUFFER_BYTES``), control replies included: a live event that finds it
full, or a control reply past the byte bound, closes the connection with 4008 (the
client resumes from its last id; nothing is dropped silently). A replay never overflows:
it stops at the first event that does not fit and goes on when the socket drained.

Version 2 connections (``lanes``; docs/protocol.md "Priority and conflation") queue into
a :class:`~gateway.core.lanes.LaneOutbox`: ``approval.*`` events and control replies
overtake queued bulk events, frames carry a resume cursor that stays exact (a low-water
mark and the events ahead of it: ``schemas.lanes``), and a live event owed only to
conflating subscriptions replaces the queued one of its execution instead of closing
4008. A resume from such a cursor names the events ahead: ``skip`` (never queued again).
Version 1 connections keep the plain :class:`~gateway.core.flow.Outbox`, in stream order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from gateway.core.flow import Outbox
from gateway.core.frames import binary_frame, text_frame
from gateway.core.index import Subscription
from gateway.core.lanes import LaneOutbox
from schemas.codec import ZERO_ID, StreamId
from schemas.envelope import event_frame, msgpack_of_json
from schemas.lanes import Ahead
from schemas.partition import Vector, format_cursor, zero
from schemas.stream import StreamEvent

__all__ = [
    "Delivery",
    "Frame",
    "LogAnswer",
    "Phase",
    "SubscribePlan",
    "covers",
    "is_recoverable",
    "plan_subscribe",
    "vmax",
]

#: ``CloseCode.SLOW_CONSUMER``, here to keep the core free of the shell's imports.
SLOW_CONSUMER: Final = 4008
SLOW_CONSUMER_REASON: Final = "slow consumer; resume from your last id"
SERVICE_RESTART: Final = 1012


class Frame:
    """One outgoing message, encoded once per format and shared by every connection it
    goes to: the JSON ``payload`` (for an ASGI ``send``) and its WebSocket frame ``wire``
    (server frames are unmasked, so the same bytes go to every direct connection); and,
    computed the first time a ``flowwire.v2.msgpack`` connection needs them (a JSON-only
    deployment pays nothing), the msgpack message and its binary frame."""

    __slots__ = ("_packed", "_packed_wire", "cursor", "event", "payload", "urgent", "wire")

    def __init__(
        self, payload: bytes, event: StreamEvent | None = None, cursor: Vector | None = None
    ) -> None:
        self.payload = payload
        self.wire = text_frame(payload)
        self._packed: bytes | None = None
        self._packed_wire: bytes | None = None
        #: the event and the position vector it was built with (None: one partition),
        #: for a version 2 connection that re-encodes it with another cursor
        self.event = event
        self.cursor = cursor
        #: an ``approval.*`` event: the priority lane's (version 2)
        self.urgent = event is not None and event.type.startswith("approval.")

    def packed(self) -> bytes:
        """The msgpack message: the JSON decoded once, encoded once (per event)."""
        packed = self._packed
        if packed is None:
            packed = self._packed = msgpack_of_json(self.payload)
        return packed

    def packed_wire(self) -> bytes:
        """The msgpack message's binary WebSocket frame (per event)."""
        wire = self._packed_wire
        if wire is None:
            wire = self._packed_wire = binary_frame(self.packed())
        return wire

    @classmethod
    def of(cls, event: StreamEvent, cursor: Vector | None = None) -> Frame:
        """An event's frame: the publisher's payload bytes spliced into the envelope;
        with partitioned streams, ``cursor`` (a position vector) rides along as the
        frame's ``cursor`` (one partition: no cursor, today's bytes)."""
        text = format_cursor(cursor).encode() if cursor is not None and len(cursor) > 1 else b""
        return cls(
            event_frame(event.type.encode(), event.timestamp, event.id, event.data, text), event, cursor
        )

    def in_order(self) -> Vector:
        """The resume point right after this event in stream order: its position vector,
        or with one partition its own id."""
        if self.cursor is not None:
            return self.cursor
        assert self.event is not None
        return (self.event.sid,)

    def with_cursor(self, cursor: str) -> Frame:
        """The same event with another ``cursor`` (``schemas.lanes``)."""
        event = self.event
        assert event is not None
        payload = event_frame(event.type.encode(), event.timestamp, event.id, event.data, cursor.encode())
        return Frame(payload, event, self.cursor)

    def at(self, position: Vector) -> Frame:
        """The same event at another position vector (partitioned streams: a replay
        member whose cursor is ahead of the read's progress somewhere)."""
        moved = self.with_cursor(format_cursor(position))
        moved.cursor = position
        return moved


def vmax(a: Vector, b: Vector) -> Vector:
    """Elementwise max of two position vectors."""
    if len(a) == 1:  # one stream (the default): called per member per replay step
        return a if a[0] >= b[0] else b
    return tuple(map(max, a, b))


def covers(a: Sequence[StreamId], b: Sequence[StreamId]) -> bool:
    """Every partition of ``a`` is at or after ``b``'s (vectors are only partially
    ordered: never compare them with ``<``)."""
    if len(a) == 1:  # one stream (the default): called per member per replay step
        return a[0] >= b[0]
    return all(x >= y for x, y in zip(a, b, strict=True))


class Phase(Enum):
    LIVE = "live"
    REPLAYING = "replaying"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class LogAnswer:
    """What the log said about a ``since`` cursor."""

    #: the log still holds every entry ``since`` names (in each partition whose id is
    #: not ``0-0``; all later entries are then held too)
    held: bool
    #: the oldest cursor that can be resumed, per partition (``LogInfo.floor``)
    floor: Vector


def is_recoverable(since: Vector, answer: LogAnswer) -> bool:
    """``True`` when every entry after ``since`` is still in the log, in every partition
    (any partition's cursor no longer held: not recoverable).

    A cursor is always an entry id (an event's, or a ``position``) or ``0-0``; ``held``
    also refuses a cursor from a stream that was lost and began again (a Redis that came
    back empty, a failover to a replica that never received it). ``0-0`` is whole only
    while nothing was ever trimmed.
    """
    whole = True
    for sid, floor in zip(since, answer.floor, strict=True):
        if sid == ZERO_ID and floor != ZERO_ID:
            return False
        whole = whole and sid == ZERO_ID
    return whole or answer.held


@dataclass(frozen=True, slots=True)
class SubscribePlan:
    """How a subscription starts: live from ``from_sid``; ``recovered`` as answered to
    the client (``None`` without ``since``); ``probe``: the log must first be scanned
    after ``since`` up to this connection's ``last`` for events of the new channel that
    can no longer come in order (see :meth:`Delivery.missed`)."""

    from_sid: Vector
    recovered: bool | None
    probe: bool = False


def plan_subscribe(
    since: Vector | None, position: Vector, last: Sequence[StreamId], answer: LogAnswer | None
) -> SubscribePlan:
    """The decision for ``subscribe``; ``answer`` is required when ``since`` is given."""
    if since is None:
        return SubscribePlan(position, None)
    assert answer is not None
    if not is_recoverable(since, answer):
        return SubscribePlan(position, False)
    if not covers(since, last):
        return SubscribePlan(since, True, probe=True)
    return SubscribePlan(since, True)


class Delivery:
    """The delivery state of one connection (see the module docstring)."""

    __slots__ = (
        "_lanes",
        "close_code",
        "close_reason",
        "conflated",
        "conflating",
        "cursor",
        "direct",
        "dropped",
        "gate",
        "lanes",
        "last",
        "msgpack",
        "outbox",
        "phase",
        "replay_round",
        "skip",
        "subs",
        "waiting_room",
    )

    def __init__(
        self,
        send_buffer: int,
        send_buffer_bytes: int,
        *,
        direct: bool = True,
        msgpack: bool = False,
        partitions: int = 1,
        lanes: bool = False,
    ) -> None:
        #: what the outbox holds: WebSocket frames (direct writes) or payloads (ASGI)
        self.direct = direct
        #: the connection's format: msgpack binary frames (``flowwire.v2.msgpack``), or
        #: JSON text frames (version 1 and ``flowwire.v2.json``)
        self.msgpack = msgpack
        self.phase = Phase.LIVE
        self.close_code = 0
        self.close_reason = ""
        #: per partition (mutable: the hot path sets one item); copy it to keep it
        self.last: list[StreamId] = [ZERO_ID] * partitions
        self.gate: Vector = zero(partitions)
        self.cursor: Vector | None = None
        #: the replay read this connection takes part in (``gateway.core.replay``)
        self.replay_round = 0
        #: a replay stopped at a full outbox: not served again until it drained
        self.waiting_room = False
        self.subs: dict[object, Subscription[Any]] = {}
        #: version 2: a priority lane and conflation (``gateway.core.lanes``)
        self.lanes = lanes
        self._lanes = LaneOutbox(send_buffer, send_buffer_bytes, self._reframe) if lanes else None
        self.outbox: Outbox = Outbox(send_buffer, send_buffer_bytes) if self._lanes is None else self._lanes
        #: events a resume cursor named as written ahead of its mark: never queued
        self.skip: Ahead = frozenset()
        #: the keys of the conflating subscriptions (version 2)
        self.conflating: set[object] = set()
        #: per partition, the highest id conflated away (``None``: none was)
        self.dropped: Vector | None = None
        #: events conflated away on this connection
        self.conflated = 0

    # -- subscriptions -----------------------------------------------------------------

    def add(self, key: object, sub: Subscription[Any], position: Vector) -> bool:
        """File ``sub`` (live from ``sub.from_sid``); ``True`` when the log must be read
        (a replay started or rewound: the shell schedules it)."""
        if self.phase is Phase.CLOSING or self.phase is Phase.CLOSED:
            return False
        self.subs[key] = sub
        self._regate()
        start = vmax(sub.from_sid, tuple(self.last))
        if self.phase is Phase.REPLAYING:
            assert self.cursor is not None
            # A read in flight was matched with the subscriptions it began with: it no
            # longer serves this connection, a later read does. Rewinding is safe:
            # nothing after `start` was queued (start >= last).
            self.cursor = tuple(map(min, self.cursor, start))
            self.replay_round = 0
            self.waiting_room = False
            return True
        if covers(start, position):
            return False  # live already: nothing between start and position is owed to it
        self.phase = Phase.REPLAYING
        self.cursor = start
        self.replay_round = 0
        self.waiting_room = False
        return True

    def remove(self, key: object) -> None:
        self.conflate(key, False)
        if self.subs.pop(key, None) is not None:
            self._regate()
            if self.phase is Phase.REPLAYING:
                self.replay_round = 0  # as in add(): a read in flight no longer serves it

    def _regate(self) -> None:
        gate = zero(len(self.last))
        for sub in self.subs.values():
            gate = vmax(gate, sub.from_sid)
        # The events to skip take the full check (:meth:`owed`): no cost above them.
        for part, sid in self.skip:
            if sid > gate[part]:
                gate = (*gate[:part], sid, *gate[part + 1 :])
        self.gate = gate

    def resume_skip(self, ahead: Ahead) -> None:
        """A subscribe resumed from a cursor naming events written ahead of its mark
        (``schemas.lanes``): the client has them, they are never queued again."""
        if ahead:
            self.skip = self.skip | ahead
            self._regate()

    def conflate(self, key: object, on: bool) -> None:
        """Subscription ``key`` conflates (``on``) or not (version 2 only)."""
        if on and self.lanes:
            self.conflating.add(key)
        else:
            self.conflating.discard(key)
        lanes = self._lanes
        if lanes is not None and lanes.indexed != bool(self.conflating):
            lanes.index(bool(self.conflating))  # conflation finds events by execution

    def missed(self, sub: Subscription[Any], events: list[StreamEvent]) -> bool:
        """The probe of a subscription added with a ``since`` below ``last``: does
        ``sub`` match one of ``events`` (read after ``since``) at or below ``last`` that
        no subscription of this connection was owed? Those can no longer come in order.
        Call it before adding ``sub``."""
        if self.dropped is not None and not covers(sub.from_sid, self.dropped):
            return True  # an event after the cursor was conflated away: not exact
        last = self.last
        return any(e.sid <= last[e.part] and sub.matches(e) and not self.owed(e) for e in events)

    def owed(self, event: StreamEvent) -> bool:
        """The full check: a subscription matches ``event`` and is live before it (and
        a resume cursor did not name it as the client's already)."""
        sid, part = event.sid, event.part
        if self.skip and (part, sid) in self.skip:
            return False
        return any(sub.from_sid[part] < sid and sub.matches(event) for sub in self.subs.values())

    # -- live dispatch: the hot path ---------------------------------------------------

    def admit_live(self, event: StreamEvent) -> bool:
        """A live event the index matched to this connection: is it owed now? Moves the
        order guard when it is (the caller then queues or writes it)."""
        sid, part = event.sid, event.part
        if self.phase is not Phase.LIVE or sid <= self.last[part]:
            return False
        if sid <= self.gate[part] and not self.owed(event):
            return False
        self.last[part] = sid
        return True

    def offer_live(self, event: StreamEvent, frame: Frame) -> bool:
        """Queue a live event; ``False`` when not owed, or when the outbox is full (the
        connection must then close with 4008: :meth:`overflowed`)."""
        if not self.admit_live(event):
            return False
        # Inline (the hot path): after the first connection, a msgpack frame is an
        # attribute read as the JSON one is (no call per delivery).
        if self.msgpack and self.direct:
            data = frame._packed_wire or frame.packed_wire()
        elif self.msgpack:
            data = frame._packed or frame.packed()
        else:
            data = frame.wire if self.direct else frame.payload
        lanes = self._lanes
        if lanes is not None:
            return lanes.offer(data, frame) or self._conflate(data, frame) or self.overflowed(frame)
        if self.outbox.offer_event(data):
            return True
        return self.overflowed(frame)

    def queue(self, frame: Frame, *, live: bool = False) -> bool:
        """Queue an admitted event; ``False`` when the outbox is full (a ``live`` event
        owed only to conflating subscriptions then replaces the queued one of its
        execution: ``gateway.core.lanes``)."""
        data = self.data(frame)
        lanes = self._lanes
        if lanes is None:
            return self.outbox.offer_event(data)
        return lanes.offer(data, frame) or (live and self._conflate(data, frame))

    def _conflate(self, data: bytes, frame: Frame) -> bool:
        """The lane outbox is full: conflate ``frame`` if its event allows it; else
        (an approval, an event an exactly-once subscription is owed) make room for it by
        removing a queued conflatable event that a later one of its execution supersedes."""
        lanes, event = self._lanes, frame.event
        if lanes is None or not self.conflating or event is None:
            return False
        if self.conflatable(event):
            old = lanes.conflate(data, frame, self.conflatable)
        else:  # an approval, or an event an exactly-once subscription is owed: make room
            old = lanes.make_room(len(data), self.conflatable)
            if old is not None and not lanes.offer(data, frame):  # pragma: no cover - it fits
                raise AssertionError("make_room() made room for the event")
        if old is None or old.event is None:
            return False
        part, sid = old.event.part, old.event.sid
        dropped = self.dropped or zero(len(self.last))
        if sid > dropped[part]:
            self.dropped = (*dropped[:part], sid, *dropped[part + 1 :])
        self.count_conflated()
        return True

    def count_conflated(self) -> None:
        """An event was conflated away (the shell counts it in ``/metrics`` too)."""
        self.conflated += 1

    def conflatable(self, event: StreamEvent) -> bool:
        """A bulk event with an execution owed only to conflating subscriptions."""
        if not self.conflating or not event.execution_id or event.type.startswith("approval."):
            return False
        sid, part = event.sid, event.part
        return not any(
            key not in self.conflating and sub.from_sid[part] < sid and sub.matches(event)
            for key, sub in self.subs.items()
        )

    def written(self, frame: Frame, data: bytes) -> bytes:
        """Version 2: an admitted event written at once (nothing queued); what to write."""
        assert self._lanes is not None
        return self._lanes.written(data, frame)

    def _reframe(self, frame: Frame, cursor: str) -> bytes:
        return self.data(frame.with_cursor(cursor))

    def data(self, frame: Frame) -> bytes:
        """What of ``frame`` this connection's outbox takes (its path and format)."""
        if self.msgpack:
            return frame.packed_wire() if self.direct else frame.packed()
        return frame.wire if self.direct else frame.payload

    def overflowed(self, frame: Frame) -> bool:
        """A live event found the outbox full: the shell may write what is queued and
        retry (``True`` if the frame was queued then); the base machine closes."""
        del frame
        self.close()
        return False

    # -- replay ------------------------------------------------------------------------

    def offer_replay(
        self,
        event: StreamEvent,
        frame: Frame,
        prev: StreamId,
        round_: int,
        progress: Sequence[StreamId] | None = None,
    ) -> bool:
        """A replayed event the index matched to this connection, in read ``round_``;
        ``prev`` is the id of the entry before it in that read, in its partition (or the
        read's start there); ``progress``, the read's progress in every partition (what
        it handled before this event, which this connection was offered).
        ``False`` when not owed; at a full outbox the replay stops *before* this event
        (``cursor`` = ``progress`` with ``prev`` in this event's partition: the other
        partitions' entries this read already handled, queued ones included, are not read
        for it again), leaves the read and waits for room."""
        if self.replay_round != round_ or self.phase is not Phase.REPLAYING:
            return False  # not in this read (or it left it at a full outbox)
        sid, part = event.sid, event.part
        cursor = self.cursor
        assert cursor is not None
        if sid <= cursor[part] or sid <= self.last[part]:
            return False
        # As for live events: above the gate every subscription is live before it, so
        # the index's match is the answer; at or below it, the full check.
        if sid <= self.gate[part] and not self.owed(event):
            return False
        at = frame.cursor
        if at is not None and len(at) > 1 and not covers(at, cursor):
            # A read shared with connections resuming from other cursors: this one is
            # ahead of its progress in some partition, which is then not where it stands.
            frame = frame.at(vmax(cursor, at))
        if self._lanes is None and not self.msgpack:  # version 1's JSON: inline (per member)
            queued = self.outbox.offer_event(frame.wire if self.direct else frame.payload)
        else:
            queued = self.queue(frame)
        if not queued and not (self.make_room() and self.queue(frame)):
            stop = list(cursor) if progress is None else list(map(max, cursor, progress))
            stop[part] = max(cursor[part], prev)
            self.cursor = tuple(stop)
            # It leaves this read: a later step of it starts after this entry, which
            # would then never be offered to it (a gap); a later read, from its cursor,
            # serves it once the socket drained.
            self.replay_round = 0
            self.waiting_room = True
            return False
        self.last[part] = sid
        return True

    def make_room(self) -> bool:
        """The outbox is full in the middle of a replay read: ``True`` if the shell
        emptied it into a socket that takes data now (the replay goes on in this read);
        the base machine cannot, and the replay waits for :meth:`drained`."""
        return False

    def replayed_to(self, end: Vector, position: Vector, round_: int) -> bool:
        """Read ``round_`` covered the log up to ``end`` (per partition: its last entry,
        usable or not; ``position`` when the log had nothing more). ``True`` when the
        connection caught up with the reader's ``position`` (in every partition) and is
        LIVE again, in this same step."""
        if self.phase is not Phase.REPLAYING or self.replay_round != round_:
            return False
        assert self.cursor is not None
        self.cursor = vmax(self.cursor, end)
        if covers(self.cursor, position):
            self.phase = Phase.LIVE
            self.cursor = None
            self.replay_round = 0
            self.waiting_room = False
            return True
        return False

    def history_lost(self, floor: Vector) -> bool:
        """A replay read found the log's ``floor`` (its oldest resumable cursor) above
        this connection's cursor (in some partition): entries it is owed were trimmed
        while it replayed. Closes (1012: the client reconnects, and its resume answers
        ``recovered: false``); ``True`` if it did."""
        if self.phase is not Phase.REPLAYING or self.cursor is None or covers(self.cursor, floor):
            return False
        return self.close(SERVICE_RESTART, "the stream no longer holds your cursor; reconnect and reload")

    def drained(self) -> None:
        """The socket took what was queued: a stopped replay may go on."""
        self.waiting_room = False
        if self._lanes is not None:
            self._lanes.stalled = False

    def stall(self) -> None:
        """The socket does not take data now: what is queued waits (version 2: approvals
        may overtake it from now until :meth:`drained`)."""
        if self._lanes is not None:
            self._lanes.stalled = True

    # -- control replies ---------------------------------------------------------------

    def offer_control(self, payload: bytes) -> bool:
        """Queue a control reply (never dropped); past the byte bound the connection
        must close with 4008 instead (``False``, and the machine is CLOSING)."""
        if self.phase is Phase.CLOSING or self.phase is Phase.CLOSED:
            return False
        if self.direct:
            payload = binary_frame(payload) if self.msgpack else text_frame(payload)
        if self.outbox.put_control(payload):
            return True
        self.close()
        return False

    # -- closing -----------------------------------------------------------------------

    def close(self, code: int = SLOW_CONSUMER, reason: str = SLOW_CONSUMER_REASON) -> bool:
        """Stop delivering, to close with ``code``; ``True`` the first time (the shell
        overrides it to send the close frame after what is queued)."""
        if self.phase is Phase.CLOSING or self.phase is Phase.CLOSED:
            return False
        self.phase = Phase.CLOSING
        self.cursor = None
        self.close_code = code
        self.close_reason = reason
        return True

    def closed(self) -> None:
        self.phase = Phase.CLOSED
        self.cursor = None
        self.subs.clear()
