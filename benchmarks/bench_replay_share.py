"""Partitioned resume storms (``STREAM_PARTITIONS`` > 1), through the real replay core
(``gateway.core.replay``, ``gateway.core.delivery``), in one process, deterministic.

``clients`` connections were live, each subscribed to ``executions``; each one's last
frame was a different recent event (its cursor: the reader's position vector right
after that event; ``cursors`` distinct ones among the last events before the storm).
``missed`` events were appended meanwhile; they all resume at once. Counted: the log
reads (``XINFO`` + ``XRANGE`` per partition each) and entries read until every one is
live, and the frames built for one connection alone (re-encoded with its own cursor)
against the frames delivered. Baselines, in the same run: the same clients resuming
from *one* cursor (the best case: one read per ``REPLAY_BATCH``), and the same storm
with one partition. Also shown: the entries handed out partition after partition
rather than merged by id (``in_id_order``), what it would cost in frames built per
connection.

    python -m benchmarks.bench_replay_share [--clients 1000] [--cursors 200] [--missed 1000]
"""

from __future__ import annotations

import argparse
import json
import random
from typing import Any

from gateway.core.delivery import Delivery, Frame, Phase
from gateway.core.filters import compile_filters
from gateway.core.index import Subscription, SubscriptionIndex
from gateway.core.replay import Item, Read, ReplayQueue, empty_parts, fan_out, in_id_order, served
from schemas.channels import parse_channel
from schemas.control import Filters
from schemas.partition import Vector, zero
from schemas.stream import StreamEvent

__all__ = ["measure", "storm"]

BATCH = 100  # REPLAY_BATCH (the default)
BEFORE = 2_000  # events before the storm
CHANNEL = parse_channel("executions")


class _Counting(Frame):
    """Counts the frames built for one connection alone (``Frame.at``)."""

    __slots__ = ()
    built = 0

    def at(self, position: Vector) -> Frame:
        _Counting.built += 1
        return super().at(position)


def _events(partitions: int, count: int) -> list[StreamEvent]:
    def event(n: int) -> StreamEvent:
        return StreamEvent(id=f"{n}-0".encode(), sid=(n, 0), type="execution.started", data=b"{}",
                           timestamp=b"2026-01-01T00:00:00Z", execution_id=f"exec_{n}", workflow_id="wf",
                           status="running", part=n % partitions)  # fmt: skip

    return [event(n) for n in range(1, count + 1)]


def storm(partitions: int, clients: int, cursors: int, missed: int, *, merged: bool = True) -> dict[str, int]:
    """One storm (module docstring); ``cursors=1``: every client from the same cursor."""
    events = _events(partitions, BEFORE + missed)
    log: list[list[Item]] = [[] for _ in range(partitions)]
    after: list[Vector] = []  # the reader's position right after each event
    position = list(zero(partitions))
    for event in events:
        log[event.part].append((event.part, event.sid, event))
        position[event.part] = event.sid
        after.append(tuple(position))
    now = after[-1]
    rng = random.Random(7)
    points = [BEFORE - 1 - rng.randrange(0, 200) for _ in range(cursors)]
    index: SubscriptionIndex[Delivery] = SubscriptionIndex()
    queue: ReplayQueue[Delivery] = ReplayQueue(connection_rate=0)
    conns = []
    for n in range(clients):
        conn = Delivery(1 << 20, 1 << 40, partitions=partitions)
        sub = Subscription(conn, None, CHANNEL, compile_filters(Filters()), after[points[n % cursors]])
        index.add(sub)
        if conn.add(CHANNEL, sub, now):
            queue.add(conn, 0.0)
        conns.append(conn)
    reads = entries_read = 0
    _Counting.built = 0
    while isinstance(read := queue.next_read(1.0), Read):
        entries = [item for part in range(partitions)
                   for item in [i for i in log[part] if i[1] > read.start[part]][:BATCH]]  # fmt: skip
        if merged:
            in_id_order(entries)
        reads += 1
        entries_read += len(entries)
        empty = empty_parts(read.start, entries)
        fan_out(served(read, entries), entries, index.match, _Counting.of, now, empty=empty)
        queue.served(read, len(entries), 1.0)
    delivered = sum(len(conn.outbox.take()) for conn in conns)
    assert all(conn.phase is Phase.LIVE for conn in conns)
    return {"reads": reads, "entries_read": entries_read, "frames_delivered": delivered,
            "frames_per_connection": _Counting.built}  # fmt: skip


def measure(
    *, clients: int = 1_000, cursors: int = 200, missed: int = 1_000, partitions: int = 3
) -> dict[str, Any]:
    runs = {
        "partitioned": storm(partitions, clients, cursors, missed),
        "partitioned_one_cursor": storm(partitions, clients, 1, missed),
        "one_partition": storm(1, clients, cursors, missed),
        "partitioned_unmerged": storm(partitions, clients, cursors, missed, merged=False),
    }
    p = runs["partitioned"]
    return {
        "clients": clients, "cursors": cursors, "missed": missed, "partitions": partitions, **runs,
        "reads_over_one_cursor": p["reads"] / runs["partitioned_one_cursor"]["reads"],
        "reads_over_one_partition": p["reads"] / runs["one_partition"]["reads"],
        "own_frames_over_delivered": p["frames_per_connection"] / p["frames_delivered"],
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1_000)
    parser.add_argument("--cursors", type=int, default=200)
    parser.add_argument("--missed", type=int, default=1_000)
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(measure(clients=args.clients, cursors=args.cursors, missed=args.missed,
                             partitions=args.partitions), indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
