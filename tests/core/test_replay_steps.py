"""A replay read fanned out in steps, through an index of its members built when it
began (gateway/replay.py does both to bound its share of the loop): a connection whose
subscriptions change between two steps leaves the read, so the stale index cannot make
it skip what the new subscription is owed. A scenario the model test reaches rarely,
pinned here (no event loop)."""

from __future__ import annotations

import json

from gateway.core.delivery import Phase
from gateway.core.filters import compile_filters
from gateway.core.index import Subscription, SubscriptionIndex
from gateway.core.replay import Item, Read, ReplayQueue, continuing, fan_out, member_index, served
from schemas.channels import parse_channel
from schemas.codec import StreamId
from schemas.control import Filters
from schemas.partition import Vector
from tests.core.test_delivery_model import Conn, _event, _frame


def _sub(conn: Conn, name: str, from_sid: Vector) -> Subscription[Conn]:
    return Subscription(conn, None, parse_channel(name), compile_filters(Filters()), from_sid)


def test_a_subscription_added_between_steps_gets_its_events() -> None:
    log: list[Item] = []
    for ms in range(1, 13):  # alternating execution and approval events of e1
        log.append((0, (ms, 0), _event((ms, 0), "e" if ms % 2 else "a", "e1", "w1", "running")))
    position = (log[-1][1],)
    index: SubscriptionIndex[Conn] = SubscriptionIndex()
    queue: ReplayQueue[Conn] = ReplayQueue(connection_rate=0)
    conn = Conn("a", 1000)
    executions = _sub(conn, "executions", ((0, 0),))
    index.add(executions)
    assert conn.add("executions", executions, position)
    queue.add(conn, 0.0)

    read = queue.next_read(1e9)
    assert isinstance(read, Read)
    entries = log[:8]
    part = served(read, entries)
    stale = member_index(part.members)  # built when the read began
    _, _, handled, end = fan_out(part, entries, stale.match, _frame, position, max_offers=1)
    assert 0 < handled < len(entries)

    # Between two steps: the client subscribes to approvals, live from its cursor.
    approvals = _sub(conn, "approvals", tuple(conn.last))
    index.add(approvals)
    assert conn.add("approvals", approvals, position)
    queue.add(conn, 0.0)

    # The shell's next step: only the members still in this read.
    rest = entries[handled:]
    members = continuing(read)
    if members:
        fan_out(served(Read(read.round, end, members), rest), rest, stale.match, _frame, position)

    # Later reads, through the current index, until the connection is live.
    for _ in range(20):
        nxt = queue.next_read(1e9)
        if not isinstance(nxt, Read):
            break
        chunk = [item for item in log if item[1] > nxt.start[0]][:4]
        fan_out(served(nxt, chunk), chunk, index.match, _frame, position)
        queue.served(nxt, len(chunk), 1e9)
    assert conn.phase is Phase.LIVE
    got = [json.loads(p).split(":")[1] for p in conn.outbox.take()]
    owed = [
        f"{sid[0]}-{sid[1]}"
        for _, sid, e in log
        if e is not None and (sid > conn_start(approvals) or e.type.startswith("execution."))
    ]
    assert got == owed


def conn_start(sub: Subscription[Conn]) -> StreamId:
    return sub.from_sid[0]


def test_a_member_stopped_at_a_full_outbox_leaves_the_later_steps() -> None:
    """Found by the model test: a member stops at a full outbox in one step (its cursor
    before the entry that did not fit), drains before the next step, which starts after
    that entry; served() must leave it out of that step, else the entry is never offered
    to it (a gap)."""
    log: list[Item] = [(0, (ms, 0), _event((ms, 0), "e", "e1", "w1", "running")) for ms in range(1, 5)]
    log.append((0, (5, 0), None))  # unusable: advances cursors, offers nothing
    position = (log[-1][1],)
    index: SubscriptionIndex[Conn] = SubscriptionIndex()
    queue: ReplayQueue[Conn] = ReplayQueue(connection_rate=0)
    small = Conn("small", 2)
    sub = _sub(small, "executions", ((0, 0),))
    index.add(sub)
    assert small.add("executions", sub, position)
    queue.add(small, 0.0)
    received: list[str] = []

    def drain() -> None:
        received.extend(json.loads(p).split(":")[1] for p in small.outbox.take())
        small.drained()

    for _ in range(20):
        read = queue.next_read(1e9)
        if not isinstance(read, Read):
            break
        entries = [item for item in log if item[1] > read.start[0]]
        part = served(read, entries)
        # The shell's steps: the first fills the outbox (two offers), the next stops at
        # the full outbox; the socket drains before the step after it.
        for max_offers in (2, 1, 1, 1, 1, 1):
            _, _, handled, end = fan_out(part, entries, index.match, _frame, position, max_offers=max_offers)
            if small.waiting_room:
                drain()
            entries = entries[handled:]
            members = continuing(part)
            if not entries or not members:
                break
            part = served(Read(read.round, end, members), entries)
        drain()
        queue.served(read, len(log), 1e9)
    drain()
    assert small.phase is Phase.LIVE
    assert received == ["1-0", "2-0", "3-0", "4-0"]
