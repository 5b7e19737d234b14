"""The shared replay task: one per process (the policy is ``gateway.core.replay``).

It asks the :class:`~gateway.core.replay.ReplayQueue` for the next read, reads that
range of the log once (``EventLog.replay_range``: the log's floor and the entries, one
round trip), decodes each entry once, and fans the usable ones out through the
subscription index to every connection the read serves. It sleeps when the process's
replay budget is spent, and yields between reads so that live delivery goes on.

The last few reads are kept, decoded, for a moment (:class:`_Chunks`): connections whose
outbox filled in the middle of a read, and clients of a storm that arrive a little
later, go on from memory instead of reading the same range again. So a storm costs
about one log read per ``REPLAY_BATCH`` entries, whatever the number of clients and
their ``CLIENT_SEND_BUFFER``. (With partitioned streams a read covers every partition,
``REPLAY_BATCH`` entries of each at most, and no read is kept: a kept read would serve
only a cursor equal to its start, see ``gateway.core.replay``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import TYPE_CHECKING, Final

from gateway.core.backoff import Backoff
from gateway.core.delivery import Frame
from gateway.core.replay import (
    Item,
    Read,
    ReplayBudget,
    ReplayQueue,
    continuing,
    empty_parts,
    fan_out,
    in_id_order,
    member_index,
    served,
)
from gateway.log import EventLog, LogUnavailable, PartEntry
from publisher.connect import raise_if_cancelled, retry_pause
from schemas.codec import parse_id
from schemas.partition import Vector
from schemas.stream import InvalidEntry, StreamEvent, decode_entry

if TYPE_CHECKING:
    from gateway.connection import Connection
    from gateway.hub import Hub

__all__ = ["Replayer"]

logger = logging.getLogger("flowwire.replay")

#: How often connections whose replay waits for room are looked at again.
_ROOM_POLL: Final = 0.01
#: Offers (entry x connection) a replay makes before it lets live delivery run.
STEP_OFFERS: Final = 2_000
#: Reads kept in memory, and for how long (seconds).
_CHUNKS: Final = 8
_CHUNK_TTL: Final = 2.0

Decoded = list[Item]


class _Chunk:
    __slots__ = ("at", "end", "entries", "floor", "start")

    def __init__(self, start: Vector, entries: Decoded, floor: Vector, at: float) -> None:
        self.start = start
        self.end: Vector = (entries[-1][1],)  # one stream only
        self.entries = entries
        self.floor = floor
        self.at = at


class _Chunks:
    """Recent reads, decoded: a chunk read after ``start`` holds every entry in
    ``(start, end]``, so it serves any cursor in ``[start, end)``."""

    def __init__(self) -> None:
        self._chunks: list[_Chunk] = []

    def get(self, cursor: Vector, now: float) -> tuple[Vector, Decoded] | None:
        self._chunks = [c for c in self._chunks if now - c.at < _CHUNK_TTL]
        for chunk in self._chunks:
            if chunk.start <= cursor < chunk.end:
                return chunk.floor, [e for e in chunk.entries if e[1] > cursor[0]]
        return None

    def put(self, start: Vector, entries: Decoded, floor: Vector, now: float) -> None:
        if entries and len(start) == 1:  # one stream only (module docstring)
            self._chunks.append(_Chunk(start, entries, floor, now))
            del self._chunks[:-_CHUNKS]


class Replayer:
    def __init__(self, hub: Hub, log: EventLog, *, batch: int, rate: float, connection_rate: float) -> None:
        self.hub = hub
        self.log = log
        self.batch = batch
        self.queue: ReplayQueue[Connection] = ReplayQueue(connection_rate=connection_rate)
        self.budget = ReplayBudget(rate, time.monotonic())
        self.reads = 0
        self._chunks = _Chunks()
        self._wake = asyncio.Event()
        self._backoff = Backoff(base=0.05, cap=2.0)

    def __len__(self) -> int:
        """Connections replaying (waiting for a read, or for room)."""
        return len(self.queue)

    def add(self, conn: Connection) -> None:
        self.queue.add(conn, time.monotonic())
        self._wake.set()

    def discard(self, conn: Connection) -> None:
        self.queue.discard(conn)

    async def run(self) -> None:
        failures = 0
        while True:
            raise_if_cancelled()
            now = time.monotonic()
            read = self.queue.next_read(now)
            if not isinstance(read, Read):
                await self._idle(read, now)
                continue
            cached = self._chunks.get(read.start, now)
            if cached is not None:
                floor, entries = cached
                await self._deliver(read, floor, entries)
                self.queue.served(read, len(entries), now)
                await asyncio.sleep(0)  # from memory: no log read, no budget spent
                continue
            asked = self.hub.position  # the reader's, when the log is asked (fan_out)
            try:
                floor, raw = await self.log.replay_range(read.start, self.batch)
            except LogUnavailable as exc:
                failures += 1
                if failures == 1:
                    logger.warning("replay read failed, retrying: %s", exc)
                await retry_pause(self._backoff.delay(failures, random.random()))
                continue
            failures = 0
            now = time.monotonic()
            entries = _decode(raw, self.hub.max_event_size)
            self._chunks.put(read.start, entries, floor, now)
            self.reads += 1
            self.hub.stats.replay_reads += 1
            await self._deliver(read, floor, entries, asked)
            self.queue.served(read, len(entries), now)
            # Yield to the reader and the sockets between reads; sleep past the budget.
            await asyncio.sleep(self.budget.charge(len(entries), now))

    async def _idle(self, wake_at: float | None, now: float) -> None:
        timeout = None if wake_at is None else max(0.0, wake_at - now)
        if len(self.queue):  # some wait for room: look again soon
            timeout = _ROOM_POLL if timeout is None else min(timeout, _ROOM_POLL)
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _deliver(
        self, read: Read[Connection], floor: Vector, entries: Decoded, asked: Vector | None = None
    ) -> None:
        """Fan one read out in steps of at most ``STEP_OFFERS`` offers, letting live
        delivery and the sockets run between steps (the replay's share of the loop is
        bounded, whatever the number of connections it serves)."""
        hub = self.hub
        read = served(read, entries)
        hub.stats.replay_served += len(read.members)
        # Through the process's index when the read serves most connections; else
        # through an index of its members only (cost follows what it serves). A member
        # whose subscriptions change between steps leaves the read (Delivery.add/remove).
        index = hub.index if 2 * len(read.members) >= hub.index.owners() else member_index(read.members)
        empty = empty_parts(read.start, entries)
        while True:
            touched, queued, handled, end = fan_out(
                read,
                entries,
                index.match,
                Frame.of,
                hub.position,
                floor=floor,
                max_offers=STEP_OFFERS,
                empty=empty,
                read_position=asked,
            )
            for conn in touched:
                conn.flush()
            hub.stats.replayed += queued
            if handled == len(entries):
                return
            entries = entries[handled:]
            await asyncio.sleep(0)
            members = continuing(read)
            if not members:
                return
            read = served(Read(read.round, end, members), entries)


def _decode(entries: list[PartEntry], max_size: int) -> Decoded:
    """Each entry once; ``None`` for an unusable one (it still advances cursors)."""
    decoded: Decoded = []
    for part, (entry_id, fields) in entries:
        try:
            event: StreamEvent | None = decode_entry(entry_id, fields, max_size=max_size, part=part)
        except InvalidEntry:
            event = None
        try:
            sid = event.sid if event is not None else parse_id(entry_id.decode())
        except (UnicodeDecodeError, ValueError):
            continue  # not an id: Redis never returns one
        decoded.append((part, sid, event))
    return in_id_order(decoded)
