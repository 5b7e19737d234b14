"""Shared, bounded replay, sans I/O (docs/protocol.md "Resume").

Theory of operation
-------------------
Connections that resume (``subscribe`` with a ``since`` before the reader's position)
wait in one :class:`ReplayQueue` per process. The shell's one replay task asks it for the
next read (:meth:`ReplayQueue.next_read`), reads that range of the log once, and hands the
entries to :func:`fan_out`, which matches each usable entry through the *same index* as
live delivery, builds its frame once and offers it to every connection the read serves.

A read starts at the cursor of the connection that has waited longest (its *head*) and
serves every waiting connection whose cursor is at or after that start: the entries it
returns are, for each of them, exactly the next ones after its own cursor. So after a
pod died and 10,000 clients resume from nearby cursors, each range of the stream is read
once, not once per client; and one connection replaying from far back (``since=0-0``)
is served in turn with the others (the head rotates), not ahead of them.

Partitioned streams: a read covers every partition after the head's cursor vector (the
entries of each partition in order; partitions in any order), and each event's frame
carries the read's progress vector as its ``cursor``. It serves every connection whose
cursor is at or after the head's in every partition (vectors are partially ordered: one
ahead in some partition and behind in another waits for a read of its own). For a member
whose cursor is ahead of the read's progress in some partition, that progress is not
where it stands: its frames are re-encoded with the componentwise maximum of the two
(``Delivery.offer_replay``), so a resume from any frame neither skips nor repeats. Only
those frames are built per connection, until the read passes its cursor; the rest are
shared. The shell hands a read's entries in id order across partitions
(:func:`in_id_order`): the read's progress then passes a cursor taken from a live frame
(the reader's position at one moment) in every partition at once, and no frame needs
re-encoding (``benchmarks/bench_replay_share.py``: 1,000 connections resuming from 200
distinct cursors after 1,000 events, P = 3, take 21 reads instead of 796 and no frame of
their own; partition by partition, 18 % of the frames would be). A read delivers
nothing past the reader's position (the connection's next live frames carry that
position: it is never ahead of them).

Budget: every read costs its entries against a per-process rate
(``REPLAY_RATE`` entries/s, a token bucket: the shell sleeps when it is spent, so live
delivery keeps its latency) and against the head connection's own rate
(``REPLAY_CONNECTION_RATE``): past its budget a replay goes on, at that bounded rate. A
connection whose outbox filled stops before the event that did not fit and waits until
its socket drained (``Delivery.drained``); it is never closed for being slow to replay.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Final, Generic, Protocol, TypeVar

from gateway.core.delivery import Delivery, Frame, Phase, covers
from gateway.core.index import SubscriptionIndex
from schemas.codec import StreamId
from schemas.partition import Vector
from schemas.stream import StreamEvent

__all__ = [
    "Item",
    "Read",
    "ReplayBudget",
    "ReplayQueue",
    "continuing",
    "empty_parts",
    "fan_out",
    "in_id_order",
    "member_index",
    "served",
]

#: One entry of a read: its partition, its id, the event (``None``: unusable).
Item = tuple[int, StreamId, StreamEvent | None]

#: A subscribe with ``since`` waits this long before its connection's first read, so that
#: the subscriptions a client sends together after a reconnect resume together.
GATHER: Final = 0.05


class _Replaying(Protocol):
    """What the queue needs of a connection (a :class:`Delivery`)."""

    cursor: Vector | None
    phase: Phase
    replay_round: int
    waiting_room: bool


C = TypeVar("C", bound=_Replaying)


@dataclass(frozen=True, slots=True)
class Read(Generic[C]):
    """Read the log after ``start`` (at most the queue's batch); serves ``members``."""

    round: int
    start: Vector
    members: list[C]


class ReplayQueue(Generic[C]):
    """The connections waiting for replay reads, in the order they have waited."""

    def __init__(self, *, connection_rate: float) -> None:
        self.connection_rate = connection_rate
        #: connection -> earliest time it may head a read (FIFO by insertion order)
        self._waiting: dict[C, float] = {}
        self._round = 0

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, conn: object) -> bool:
        return conn in self._waiting

    def add(self, conn: C, now: float) -> None:
        """``conn`` started or rewound a replay (``Delivery.add`` returned ``True``)."""
        self._waiting[conn] = max(self._waiting.get(conn, 0.0), now + GATHER)

    def discard(self, conn: C) -> None:
        self._waiting.pop(conn, None)

    def next_read(self, now: float) -> Read[C] | float | None:
        """The next read, or when one may be due (a time), or ``None`` when nobody
        waits. Connections that are no longer replaying leave the queue here."""
        head: C | None = None
        wake: float | None = None
        for conn, eligible_at in list(self._waiting.items()):
            if conn.phase is not Phase.REPLAYING:
                del self._waiting[conn]
            elif conn.waiting_room:
                continue
            elif eligible_at > now:
                wake = eligible_at if wake is None else min(wake, eligible_at)
            elif head is None:
                head = conn
        if head is None:
            return wake
        assert head.cursor is not None
        start = head.cursor
        self._round += 1
        one = len(start) == 1  # one stream: a comparison, not a loop over partitions
        members = [
            c
            for c, eligible_at in self._waiting.items()
            if eligible_at <= now
            and not c.waiting_room
            and c.cursor is not None
            and (c.cursor >= start if one else covers(c.cursor, start))
        ]
        for conn in members:
            conn.replay_round = self._round
        return Read(self._round, start, members)

    def served(self, read: Read[C], entries: int, now: float) -> None:
        """After a read of ``entries``: its head goes to the back, charged for them."""
        if not read.members:
            return
        head = read.members[0]
        if head in self._waiting:
            eligible_at = self._waiting.pop(head)
            cost = entries / self.connection_rate if self.connection_rate > 0 else 0.0
            self._waiting[head] = max(eligible_at, now) + cost


class ReplayBudget:
    """Entries scanned per second for the whole process (a token bucket, one second of
    burst); ``0`` is unlimited."""

    __slots__ = ("_last", "_tokens", "rate")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self._tokens = rate
        self._last = now

    def charge(self, entries: int, now: float) -> float:
        """Spend ``entries``; returns how long to wait before the next read."""
        if self.rate <= 0:
            return 0.0
        self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= entries
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


D = TypeVar("D", bound=Delivery)


def served(read: Read[D], entries: Sequence[Item]) -> Read[D]:
    """``read`` restricted to the members its ``entries`` advance: those whose cursor is
    before its last entry in some partition (every member, for a read that found
    nothing: it catches them up). The others took no part in it and wait for a later
    read."""
    if not entries:
        return read
    ends: dict[int, StreamId] = {}
    for part, sid, _ in entries:
        ends[part] = sid
    members = [
        c for c in read.members if c.cursor is not None and any(c.cursor[p] < end for p, end in ends.items())
    ]
    return read if len(members) == len(read.members) else Read(read.round, read.start, members)


def continuing(read: Read[D]) -> list[D]:
    """The members a read fanned out in steps goes on with after a step: those still in
    it. A member that stopped at a full outbox left the read then
    (:meth:`Delivery.offer_replay`), even if its socket drained between the steps: a
    later read serves it from its cursor (going on would skip the event it could not
    take); so did one whose subscriptions changed (:meth:`Delivery.add`, ``remove``)."""
    return [c for c in read.members if c.replay_round == read.round and c.phase is Phase.REPLAYING]


def in_id_order(entries: list[Item]) -> list[Item]:
    """A read's entries, partition after partition as the log returns them, merged by id
    (sorted in place: each partition's ids already increase, so its order is kept). The
    ids of every partition are Redis stream ids (milliseconds, sequence): in this order a
    read advances all partitions together (module docstring)."""
    if entries and entries[0][0] != entries[-1][0]:  # more than one partition
        entries.sort(key=itemgetter(1))
    return entries


def empty_parts(start: Vector, entries: Sequence[Item]) -> frozenset[int]:
    """The partitions in which a read found nothing after ``start``."""
    return frozenset(range(len(start))) - {part for part, _, _ in entries}


def _offer(
    event: StreamEvent,
    targets: list[D],
    frame: Callable[[StreamEvent], Frame],
    prev: StreamId,
    round_: int,
    touched: dict[D, None],
    progress: Sequence[StreamId],
) -> tuple[int, int]:
    """Offer one replayed event to the read's members the index matched; its frame is
    built once, for the first of them. Returns the offers made and the frames queued."""
    built: Frame | None = None
    offers = queued = 0
    for conn in targets:
        if conn.replay_round != round_:
            continue
        if built is None:
            built = frame(event)
        offers += 1
        if conn.offer_replay(event, built, prev, round_, progress):
            touched[conn] = None
            queued += 1
    return offers, queued


def member_index(members: Iterable[D]) -> SubscriptionIndex[D]:
    """An index of just these connections' subscriptions. A read that serves a few of
    many connections matches its entries through it, so that its cost follows the
    connections it serves, not every subscription of the process (the entries matched
    are the same: :func:`fan_out` keeps only the read's members either way)."""
    index: SubscriptionIndex[D] = SubscriptionIndex()
    for conn in members:
        for sub in conn.subs.values():
            index.add(sub)
    return index


def fan_out(
    read: Read[D],
    entries: Sequence[Item],
    match: Callable[[StreamEvent], list[D]],
    frame: Callable[[StreamEvent, Vector], Frame],
    position: Vector,
    *,
    floor: Vector | None = None,
    max_offers: int = 0,
    empty: Collection[int] | None = None,
    read_position: Vector | None = None,
) -> tuple[list[D], int, int, Vector]:
    """Deliver one read: ``entries`` in log order within each partition, ``None`` for an
    unusable one (it still advances every cursor). Returns the connections that got
    frames (to flush) and the number of frames queued. Synchronous: the connections that
    caught up with ``position`` (in every partition) are LIVE again when it returns.
    ``floor``: the log's oldest resumable cursor when it was read (``LogInfo.floor``); a
    member whose cursor is below it lost entries to a trim while it replayed, and closes
    (``Delivery.history_lost``). ``frame`` builds an event's frame, given the read's
    progress vector (its ``cursor`` with partitioned streams).

    ``read_position``: the reader's position when the log was asked (default:
    ``position``). A partition the log had nothing of after the read's start is caught
    up to *it*, not to ``position``: entries the reader dispatched while the answer was
    on its way (this connection, replaying, skipped them live) came after the answer,
    and the next read brings them.

    ``max_offers`` (0: no bound) bounds the work of one synchronous step: the entries
    after the one at which that many offers were made are left (the members' cursors
    stand at the last entry handled), for the shell to hand in again as a read from
    there, after it let live delivery run; it then passes ``empty``, the partitions the
    whole read found empty (:func:`empty_parts`). Also returns how many entries were
    handled, and the read's progress vector (where the next step starts)."""
    if floor is not None and any(f > s for f, s in zip(floor, read.start, strict=True)):
        for conn in read.members:
            conn.history_lost(floor)
    touched: dict[D, None] = {}
    queued = offers = handled = 0
    progress = list(read.start)
    round_ = read.round
    cap = len(position) > 1  # partitioned: never past the reader (module docstring)
    for part, sid, event in entries:
        handled += 1
        if cap and sid > position[part]:
            # Every entry of this partition up to the position was before it: caught up.
            progress[part] = max(progress[part], position[part])
        else:
            prev = progress[part]
            progress[part] = sid
            if event is not None:
                made, got = _offer(
                    event, match(event), lambda e: frame(e, tuple(progress)), prev, round_, touched, progress
                )
                offers += made
                queued += got
        if max_offers and offers >= max_offers:
            break
    if handled == len(entries):
        # A partition the log held nothing more of after the start: caught up there, as
        # far as the reader had read when the log was asked.
        asked = position if read_position is None else read_position
        for part in empty_parts(read.start, entries) if empty is None else empty:
            progress[part] = max(progress[part], asked[part])
    end = tuple(progress)
    for conn in read.members:
        conn.replayed_to(end, position, round_)
    return list(touched), queued, handled, end
