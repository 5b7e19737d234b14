"""The delivery state machine against a brute-force reference (no event loop).

A hypothesis state machine drives connections (``gateway.core.delivery.Delivery``), the
real subscription index and the shared replay (``gateway.core.replay``) through random
interleavings of: appends (with unusable entries), a reader that lags and dispatches live
batches, subscribes with ``since`` in the past, at the present, ahead of the reader,
trimmed or never held, unsubscribes, replay reads that start and finish with other
inputs in between, trims of the log, full outboxes that drain later, and closes.

What each connection received is compared with the reference: ids strictly increasing
(once, in stream order); every event delivered is one a subscription it held was owed;
and once everything is dispatched and replayed, each subscription that still stands got
every usable matching event after the cursor it was answered ``recovered: true`` for (or
after the position, for ``recovered: false`` or no ``since``).

Partitioned streams (:class:`PartitionedModel`, P = 3): events spread over the
partitions by execution id, the reader dispatches the partitions in an arbitrary
interleaving, positions and cursors are vectors, and order is checked per partition.
Every frame's ``cursor`` is checked too: it names the frame's own id in its partition,
and no event the connection received before it lies after it (a resume from it repeats
nothing); a subscribe from the last cursor received (``client``) is then owed
everything after it, which the final check proves (a resume from it skips nothing).

Version 2 connections (``b``, and ``lane`` with a small outbox) have the priority lane and
may conflate (``gateway.core.lanes``): approvals may overtake the other events (each
kind stays in stream order per partition); each frame's cursor is a low-water mark and
the events ahead of it, checked the same way (a resume from it repeats nothing and
skips only what was received; the "client" subscribe resumes from it); a conflating
subscription may miss an event only when a later event of its execution was received.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from gateway.core.delivery import Delivery, Frame, LogAnswer, Phase, plan_subscribe
from gateway.core.filters import compile_filters
from gateway.core.index import Subscription, SubscriptionIndex
from gateway.core.replay import (
    Item,
    Read,
    ReplayQueue,
    continuing,
    empty_parts,
    fan_out,
    in_id_order,
    member_index,
    served,
)
from schemas.channels import Channel, parse_channel
from schemas.codec import ZERO_ID, StreamId, parse_id
from schemas.control import Filters
from schemas.lanes import Ahead, parse_resume
from schemas.partition import Vector, format_cursor, partition_of, zero
from schemas.stream import StreamEvent

EXECS = ("e1", "e2", "e3", "e4")  # partitions 2, 0, 2, 1 of 3
WORKFLOWS = ("w1", "w2")
STATUSES = ("running", "failed")
CHANNELS = ("executions", "approvals", "executions:e1", "executions:e2", "workflows:w1", "workflows:w2")
BATCH = 4
NOW = 1e9  # the queue's clock: every replay is eligible


class Conn(Delivery):
    """A connection in the model: a Delivery with a name (hashable by identity); one of
    them speaks msgpack (``flowwire.v2.msgpack``): the same guarantees in either format.
    Version 2 connections (``lanes``) have the priority lane and may conflate."""

    __slots__ = ("name",)

    def __init__(
        self, name: str, send_buffer: int, partitions: int = 1, *, msgpack: bool = False, lanes: bool = False
    ) -> None:
        super().__init__(
            send_buffer, 1 << 20, direct=False, msgpack=msgpack, partitions=partitions, lanes=lanes
        )
        self.name = name

    def __repr__(self) -> str:
        return f"Conn({self.name})"


@dataclass
class Record:
    """The reference's view of one connection."""

    #: (partition, id, the frame's cursor: its mark and the events ahead) of each
    #: frame, in the order received
    received: list[tuple[int, StreamId, Vector, Ahead]] = field(default_factory=list)
    #: the ``position`` of the last ``subscribed``
    position: Vector | None = None
    #: channel -> (compiled filter, owed after) for what it holds now
    subs: dict[str, tuple[Filters, Vector]] = field(default_factory=dict)
    #: the channels it holds now that conflate
    conflating: set[str] = field(default_factory=set)
    #: every (channel, filters, owed after) it ever held: what may be delivered
    ever: list[tuple[str, Filters, Vector]] = field(default_factory=list)


def _event(sid: StreamId, kind: str, ex: str, wf: str, status: str, part: int = 0) -> StreamEvent:
    etype = {"e": "execution.started", "s": "step.started", "a": "approval.required"}[kind]
    return StreamEvent(
        id=f"{sid[0]}-{sid[1]}".encode(),
        sid=sid,
        type=etype,
        data=b"{}",
        timestamp=b"2026-01-01T00:00:00Z",
        execution_id=ex,
        workflow_id=wf,
        status=status,
        part=part,
    )


class ModelFrame(Frame):
    """The model's frame: a JSON string ``<partition>:<id>:<cursor>`` (the cursor as on
    the wire), so that a msgpack connection can pack it."""

    __slots__ = ()

    def with_cursor(self, cursor: str) -> Frame:
        event = self.event
        assert event is not None
        return ModelFrame(
            msgspec.json.encode(f"{event.part}:{event.id.decode()}:{cursor}"), event, self.cursor
        )


def _frame(event: StreamEvent, cursor: Vector) -> Frame:
    return ModelFrame(
        msgspec.json.encode(f"{event.part}:{event.id.decode()}:{format_cursor(cursor)}"), event, cursor
    )


def _matches(name: str, flt: Filters, event: StreamEvent) -> bool:
    channel: Channel = parse_channel(name)
    return Subscription(None, None, channel, compile_filters(flt)).matches(event)


filters_st = st.builds(
    Filters,
    workflow_ids=st.none() | st.lists(st.sampled_from(WORKFLOWS), max_size=2),
    execution_ids=st.none() | st.lists(st.sampled_from(EXECS), max_size=2),
    statuses=st.none() | st.lists(st.sampled_from(STATUSES), max_size=1),
)
since_st = st.sampled_from(("none", "zero", "client", "past", "present", "ahead", "trimmed", "never"))


class DeliveryModel(RuleBasedStateMachine):
    PARTITIONS = 1

    @initialize()
    def setup(self) -> None:
        parts = self.PARTITIONS
        #: what the log holds (trims remove from it), and everything ever appended
        self.log: list[Item] = []
        self.appended: list[Item] = []
        self.floor: Vector = zero(parts)  # highest trimmed id, per partition
        self.ms = 1000
        self.dispatched = [0] * parts  # entries of each partition dispatched
        self.position: Vector = zero(parts)
        self.index: SubscriptionIndex[Conn] = SubscriptionIndex()
        self.queue: ReplayQueue[Conn] = ReplayQueue(connection_rate=0)
        self.read: Read[Conn] | None = None
        #: a read fanned out in steps: where the next step starts, and its entries
        self.rest: tuple[Vector, list[Item]] | None = None
        self.read_empty: frozenset[int] = frozenset()
        self.read_index: SubscriptionIndex[Conn] = self.index
        self.read_size = 0
        self.read_floor: Vector = zero(parts)
        #: the log's answer to the read, not fanned out yet, and the reader's position
        #: when the log was asked
        self.fetched: list[Item] | None = None
        self.read_position: Vector = zero(parts)
        self.conns = [
            Conn("a", 1000, parts),
            Conn("b", 1000, parts, msgpack=True, lanes=True),
            Conn("small", 2, parts),
            Conn("lane", 3, parts, lanes=True),
        ]
        self.records = {c: Record() for c in self.conns}
        # The version 2 connections start with approvals and bulk (the priority lane's
        # case; `lane` conflates its bulk); the rules may change that.
        for c in (1, 3):
            self.subscribe(c, "approvals", Filters(), "none", 0)
            self.subscribe(c, "workflows:w1", Filters(), "none", 0, conflate=c == 3)

    def _of(self, part: int, items: list[Item]) -> list[Item]:
        return [item for item in items if item[0] == part]

    # -- the log and the reader ----------------------------------------------------------

    @rule(
        items=st.lists(
            st.tuples(
                st.booleans(),
                st.sampled_from("esa"),
                st.sampled_from(EXECS),
                st.sampled_from(WORKFLOWS),
                st.sampled_from(STATUSES),
            ),
            min_size=1,
            max_size=6,
        ),
        same_ms=st.booleans(),
    )
    def append(self, items: list[tuple[bool, str, str, str, str]], same_ms: bool) -> None:
        for usable, kind, ex, wf, status in items:
            part = partition_of(ex, self.PARTITIONS)
            mine = self._of(part, self.appended)
            last = mine[-1][1] if mine else ZERO_ID
            # Each partition makes its own ids: equal ids in two partitions happen.
            sid = (last[0], last[1] + 1) if same_ms and last != ZERO_ID else (max(self.ms, last[0] + 1), 0)
            self.ms = sid[0] + (0 if same_ms else 1)
            entry = (part, sid, _event(sid, kind, ex, wf, status, part) if usable else None)
            self.log.append(entry)
            self.appended.append(entry)

    @rule(n=st.integers(1, 8), pick=st.integers(0, 7))
    def dispatch(self, n: int, pick: int) -> None:
        """The reader: the next ``n`` entries of one partition, live (it may lag far
        behind the log, and interleaves the partitions arbitrarily)."""
        part = pick % self.PARTITIONS
        mine = self._of(part, self.appended)
        done = self.dispatched[part]
        for _, sid, event in mine[done : done + n]:
            self.position = (*self.position[:part], sid, *self.position[part + 1 :])
            if event is None:
                continue
            frame = _frame(event, self.position)
            for conn in self.index.match(event):
                conn.offer_live(event, frame)
        self.dispatched[part] = min(len(mine), done + n)

    def dispatch_all(self) -> None:
        for part in range(self.PARTITIONS):
            self.dispatch(len(self.appended) + 1, part)

    @rule(n=st.integers(1, 3), pick=st.integers(0, 7))
    def trim(self, n: int, pick: int) -> None:
        part = pick % self.PARTITIONS
        removed = self._of(part, self.log)[:n]
        self.log = [item for item in self.log if item not in removed]
        if removed:
            self.floor = (*self.floor[:part], removed[-1][1], *self.floor[part + 1 :])

    # -- the clients ---------------------------------------------------------------------

    def _since(self, conn: Conn, choice: str, pick: int) -> Vector | None:
        parts = self.PARTITIONS
        q = pick % parts
        position = self.position

        def with_q(sid: StreamId) -> Vector:
            return (*position[:q], sid, *position[q + 1 :])

        mine = [sid for _, sid, _ in self._of(q, self.appended)]
        match choice:
            case "none":
                return None
            case "zero":
                return zero(parts)
            case "client":
                rec = self.records[conn]
                if rec.received:
                    conn.resume_skip(rec.received[-1][3])
                    return rec.received[-1][2]
                return rec.position or position
            case "past":
                dispatched = mine[: self.dispatched[q]]
                return with_q(dispatched[pick % len(dispatched)]) if dispatched else zero(parts)
            case "present":
                return position
            case "ahead" if parts == 1:
                # With P > 1 the shell waits for its reader to reach a cursor (never ahead).
                ahead = mine[self.dispatched[q] :]
                return with_q(ahead[pick % len(ahead)]) if ahead else position
            case "trimmed":
                gone = [sid for sid in mine if sid <= self.floor[q]]
                return with_q(gone[pick % len(gone)]) if gone else zero(parts)
            case _:
                return with_q((position[q][0], 999))  # an id this stream never had

    def _held(self, since: Vector) -> bool:
        for part, sid in enumerate(since):
            if sid == ZERO_ID:
                continue
            if sid <= self.floor[part] or not any(p == part and s == sid for p, s, _ in self.log):
                return False
        return True

    @rule(
        c=st.integers(0, 3),
        name=st.sampled_from(CHANNELS),
        flt=filters_st,
        choice=since_st,
        pick=st.integers(0, 50),
        conflate=st.booleans(),
    )
    def subscribe(
        self, c: int, name: str, flt: Filters, choice: str, pick: int, conflate: bool = False
    ) -> None:
        conn = self.conns[c]
        if conn.phase in (Phase.CLOSING, Phase.CLOSED):
            return
        since = self._since(conn, choice, pick)
        answer = None
        if since is not None:
            answer = LogAnswer(held=self._held(since), floor=self.floor)
        channel = parse_channel(name)
        compiled = compile_filters(flt)
        plan = plan_subscribe(since, self.position, conn.last, answer)
        from_sid, recovered = plan.from_sid, plan.recovered
        if plan.probe:
            assert since is not None
            probe = Subscription(conn, None, channel, compiled, since)
            events = [e for p, sid, e in self.log if e is not None and sid > since[p]]
            if conn.missed(probe, events):
                from_sid, recovered = self.position, False
        sub = Subscription(conn, None, channel, compiled, from_sid)
        self.index.add(sub)
        conn.conflate(channel, conflate)
        if conn.add(channel, sub, self.position):
            self.queue.add(conn, 0.0)
        rec = self.records[conn]
        rec.position = self.position
        # The reference: recovered true means owed everything after since; otherwise
        # everything after the position at the time of subscribing.
        owed_after = since if recovered and since is not None else self.position
        assert from_sid == owed_after
        rec.subs[name] = (flt, owed_after)
        rec.ever.append((name, flt, owed_after))
        if conflate and conn.lanes:
            rec.conflating.add(name)
        else:
            rec.conflating.discard(name)

    @rule(c=st.integers(0, 3), name=st.sampled_from(CHANNELS))
    def unsubscribe(self, c: int, name: str) -> None:
        conn = self.conns[c]
        channel = parse_channel(name)
        self.index.remove(conn, channel)
        conn.remove(channel)
        self.records[conn].subs.pop(name, None)
        self.records[conn].conflating.discard(name)

    @rule(c=st.integers(0, 3), then_stall=st.booleans())
    def drain(self, c: int, then_stall: bool = False) -> None:
        """The socket took what was queued (and then stopped taking data)."""
        conn = self.conns[c]
        for payload in conn.outbox.take():
            text: str = msgspec.msgpack.decode(payload) if conn.msgpack else msgspec.json.decode(payload)
            part, sid_text, cursor_text = text.split(":")
            cursor, ahead = parse_resume(cursor_text, self.PARTITIONS)
            assert cursor is not None
            assert not ahead or conn.lanes, "only version 2 writes out of stream order"
            self.records[conn].received.append((int(part), parse_id(sid_text), cursor, ahead))
        conn.drained()
        if then_stall:
            conn.stall()

    @rule(c=st.integers(0, 3))
    def stall(self, c: int) -> None:
        """The socket does not take what is queued (until the next drain)."""
        self.conns[c].stall()

    @rule(c=st.integers(0, 3))
    def close(self, c: int) -> None:
        conn = self.conns[c]
        conn.close(1000, "bye")
        self.index.remove_owner(conn)

    # -- the shared replay -----------------------------------------------------------------

    @precondition(lambda self: self.read is None)
    @rule()
    def start_read(self) -> None:
        read = self.queue.next_read(NOW)
        if isinstance(read, Read):
            self.read = read

    @precondition(lambda self: self.read is not None and self.fetched is None and self.rest is None)
    @rule(order=st.permutations(range(3)), merged=st.booleans())
    def fetch_read(self, order: list[int], merged: bool = False) -> None:
        """The log answers the read: each partition's entries after the read's start in
        it, at most BATCH of them, partitions in any ``order``, or ``merged`` by id as
        the shell hands them (``in_id_order``). The reader may dispatch more before the
        answer is fanned out (the shell awaits the log meanwhile)."""
        read = self.read
        assert read is not None
        entries: list[Item] = []
        for part in (p for p in order if p < self.PARTITIONS):
            entries += [item for item in self._of(part, self.log) if item[1] > read.start[part]][:BATCH]
        self.fetched = in_id_order(entries) if merged else entries
        self.read_size, self.read_floor = len(entries), self.floor
        self.read_empty = empty_parts(read.start, entries)
        self.read_position = self.position

    @precondition(lambda self: self.read is not None and (self.fetched is not None or self.rest is not None))
    @rule(members_only=st.booleans(), max_offers=st.sampled_from((0, 1, 2, 4)))
    def finish_read(self, members_only: bool, max_offers: int) -> None:
        """The read's entries fanned out, all at once or in steps (``max_offers``) with
        other inputs in between: a step leaves the rest for the next call, as the shell
        does when it lets live delivery run between steps."""
        read = self.read
        assert read is not None
        if self.rest is None:
            assert self.fetched is not None
            entries: list[Item] = self.fetched
            self.fetched = None
            part_read = served(read, entries)
            # The shell matches through the process's index or one of the read's members,
            # kept for all the read's steps.
            self.read_index = member_index(part_read.members) if members_only else self.index
        else:
            start, entries = self.rest
            part_read = served(Read(read.round, start, continuing(read)), entries)
        _, _, handled, end = fan_out(
            part_read,
            entries,
            self.read_index.match,
            _frame,
            self.position,
            floor=self.read_floor,
            max_offers=max_offers,
            empty=self.read_empty,
            read_position=self.read_position,
        )
        if handled < len(entries) and part_read.members:
            self.rest = (end, entries[handled:])
            return
        self.read, self.rest = None, None
        self.queue.served(read, self.read_size, NOW)
        for conn in read.members:
            if conn.phase is Phase.CLOSING:
                self.index.remove_owner(conn)

    # -- the reference ---------------------------------------------------------------------

    @invariant()
    def once_in_order_and_owed(self) -> None:
        events = {(p, sid): e for p, sid, e in self.appended}
        for conn, rec in self.records.items():
            # Once; in stream order per partition, approvals and the rest each (on a
            # version 2 connection approvals may overtake the rest: the priority lane).
            last: dict[tuple[int, bool], StreamId] = {}
            got: set[tuple[int, StreamId]] = set()
            for part, sid, cursor, ahead in rec.received:
                event = events[part, sid]
                assert event is not None, "an unusable entry was delivered"
                lane = conn.lanes and event.type.startswith("approval.")
                assert (part, sid) not in got, (conn, rec.received)
                assert sid > last.get((part, lane), ZERO_ID), (conn, rec.received)
                if not conn.lanes:
                    assert all(sid > s for (p, _), s in last.items() if p == part), (conn, rec.received)
                last[part, lane] = sid
                got.add((part, sid))
                assert cursor[part] == sid or (part, sid) in ahead, (conn, part, sid, cursor, ahead)
                assert any(
                    sid > after[part] and _matches(name, flt, event) for name, flt, after in rec.ever
                ), (conn, part, sid)
                # A resume from this cursor (its mark, skipping the events ahead) repeats
                # nothing received so far, and skips only what was received.
                assert all(s <= cursor[p] or (p, s) in ahead for p, s in got), (conn, cursor, ahead, got)
                assert ahead <= got, (conn, ahead, got)

    def teardown(self) -> None:
        """Quiescence: everything dispatched, every replay done, every socket drained;
        then every standing subscription has all it was owed."""
        if not hasattr(self, "conns"):
            return
        self.dispatch_all()
        for _ in range(10_000):
            for c in range(len(self.conns)):
                self.drain(c)
            if self.read is not None and self.fetched is None and self.rest is None:
                self.fetch_read(order=[0, 1, 2], merged=True)  # as the shell does
            if self.read is not None:
                self.finish_read(members_only=False, max_offers=0)
            self.start_read()
            if self.read is None and not any(c.outbox.frames for c in self.conns):
                break
        for c in range(len(self.conns)):
            self.drain(c)
        self.once_in_order_and_owed()
        for conn, rec in self.records.items():
            assert not conn.outbox.frames
            if conn.phase is not Phase.LIVE:
                continue  # closed (e.g. a trimmed replay): a prefix, checked above
            got = {(p, sid) for p, sid, _, _ in rec.received}
            for name, (flt, after) in rec.subs.items():
                owed = [
                    (p, sid, e)
                    for p, sid, e in self.appended
                    if e is not None and sid > after[p] and _matches(name, flt, e)
                ]
                missing = [
                    (p, sid) for p, sid, e in owed if (p, sid) not in got and not self._newer(rec, name, e)
                ]
                assert not missing, (conn, name, after, missing)

    def _newer(self, rec: Record, name: str, event: StreamEvent) -> bool:
        """A conflating subscription may miss an event when a later one of its
        execution was received (the latest state per execution)."""
        if name not in rec.conflating:
            return False
        return any(
            p == event.part and sid > event.sid and (e := self._event(p, sid)) is not None
            and e.execution_id == event.execution_id
            for p, sid, _, _ in rec.received
        )  # fmt: skip

    def _event(self, part: int, sid: StreamId) -> StreamEvent | None:
        return next(e for p, s, e in self.appended if p == part and s == sid)


class PartitionedModel(DeliveryModel):
    PARTITIONS = 3


DeliveryModel.TestCase.settings = settings(max_examples=2000, stateful_step_count=40, deadline=None)
PartitionedModel.TestCase.settings = settings(max_examples=2000, stateful_step_count=40, deadline=None)
test_delivery_model = DeliveryModel.TestCase
test_partitioned_delivery_model = PartitionedModel.TestCase


def test_a_partitioned_replay_stops_at_the_reader() -> None:
    """Pinned (the model reaches it rarely): a replay that finds, in another partition,
    entries its reader has not dispatched yet leaves them to live delivery; had it
    delivered them, the next live frame's cursor (the reader's position) would lie
    before them, and a resume from it would repeat them."""
    model = PartitionedModel()
    model.setup()
    model.append([(True, "e", "e2", "w1", "running")], same_ms=False)  # partition 0
    model.append([(True, "e", "e4", "w1", "running")], same_ms=False)  # partition 1
    model.dispatch(1, pick=0)  # the reader: partition 0 only
    model.subscribe(0, "executions", Filters(), "zero", 0)
    model.start_read()
    model.fetch_read(order=[0, 1, 2])
    model.finish_read(members_only=False, max_offers=0)
    model.append([(True, "e", "e2", "w1", "running")], same_ms=False)
    model.dispatch(1, pick=0)
    model.drain(0)
    model.once_in_order_and_owed()
    model.teardown()


def test_a_stepped_replay_leaves_behind_a_member_that_stopped_at_a_full_outbox() -> None:
    """Pinned (found by the model): a read fanned out in steps, whose member stopped at a
    full outbox in one step and drained before the next, must not carry that member on
    past the event it could not take (``continuing``): a later read serves it."""
    model = DeliveryModel()
    model.setup()
    model.append([(True, "e", "e1", "w1", "running")] * 3, same_ms=False)
    model.append([(False, "e", "e1", "w1", "running")] * 4, same_ms=False)
    model.dispatch(7, pick=0)
    model.subscribe(3, "executions", Filters(), "zero", 0)  # `lane`: its outbox of 3 is full
    model.start_read()
    model.append([(True, "e", "e1", "w1", "running"), (False, "e", "e1", "w1", "running")], same_ms=False)
    model.dispatch(1, pick=0)
    model.fetch_read(order=[0, 1, 2])
    model.finish_read(members_only=False, max_offers=0)
    model.start_read()
    model.fetch_read(order=[0, 1, 2])
    model.finish_read(members_only=False, max_offers=1)  # stops at the full outbox
    model.teardown()


def test_an_entry_dispatched_while_a_read_is_answered_is_replayed() -> None:
    """Pinned (the model reaches it rarely): a replay read finds nothing in partition 1
    (the connection is caught up there); before its answer is fanned out, the reader
    dispatches a new entry of partition 1, which the replaying connection skips live. It
    must come from the next read: the read catches partition 1 up only to where the
    reader was when the log was asked."""
    model = PartitionedModel()
    model.setup()
    model.append([(True, "e", "e2", "w1", "running")], same_ms=False)  # partition 0
    model.dispatch(1, pick=0)
    model.subscribe(0, "executions", Filters(), "zero", 0)  # replays partition 0
    model.start_read()
    model.fetch_read(order=[0, 1, 2])
    model.append([(True, "e", "e4", "w1", "running")], same_ms=False)  # partition 1
    model.dispatch(1, pick=1)
    model.finish_read(members_only=False, max_offers=0)
    model.teardown()


def test_a_partitioned_replay_stopped_at_a_full_outbox_keeps_what_it_queued() -> None:
    """Pinned (found by the model): a read queues events of two partitions, then stops at
    the full outbox in a third. The connection's cursor must keep the read's progress in
    the other partitions: the next read starting from the old cursor gave the next
    frame a cursor below an event already received there (a resume from it repeated
    that event)."""
    model = PartitionedModel()
    model.setup()
    e1 = (False, "e", "e1", "w1", "running")  # partition 2
    model.append([e1, e1, e1, (False, "e", "e2", "w1", "running"), (True, "e", "e1", "w1", "running")], False)
    model.dispatch(1, pick=0)
    model.subscribe(2, "executions", Filters(), "zero", 0)  # `small`: an outbox of 2
    model.start_read()
    more = [e1, e1, e1, e1, (True, "e", "e2", "w1", "running"), (True, "e", "e4", "w1", "running")]
    model.append(more, same_ms=False)
    model.fetch_read(order=[0, 2, 1])
    model.teardown()
