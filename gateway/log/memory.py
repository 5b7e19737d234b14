"""The embedded, in-process event log: Redis Stream semantics without Redis.

Ids are ``<ms>-<seq>`` as Redis makes them (monotonic even when the clock steps back),
appends are ordered, reads after an id block until an entry arrives, and retention
trims the oldest entries past ``maxlen``, remembering the highest trimmed id so that a
resume from before it reports ``recovered: false``. One process only: a single node, one
partition (``STREAM_PARTITIONS`` above 1 is refused at start-up: it needs Redis).
"""

from __future__ import annotations

import asyncio
import bisect
import time

from gateway.log import Entry, LogInfo, PartEntry
from schemas.codec import ZERO_ID, StreamId, format_id
from schemas.partition import Vector

__all__ = ["MemoryLog"]


class MemoryLog:
    partitions = 1

    def lanes(self) -> list[tuple[int, ...]]:
        return [(0,)]

    def __init__(self, maxlen: int = 1_000_000) -> None:
        self.maxlen = maxlen
        self._sids: list[StreamId] = []
        self._entries: list[Entry] = []
        self._last: StreamId = ZERO_ID
        self._max_deleted: StreamId = ZERO_ID
        self._added = 0
        self._appended = asyncio.Event()

    def _next_id(self) -> StreamId:
        ms = int(time.time() * 1000)
        if ms > self._last[0]:
            return (ms, 0)
        return (self._last[0], self._last[1] + 1)

    def append_nowait(self, fields: dict[str, bytes]) -> bytes:
        sid = self._next_id()
        self._added += 1
        entry_id = format_id(sid).encode()
        self._sids.append(sid)
        self._entries.append((entry_id, {k.encode(): v for k, v in fields.items()}))
        self._last = sid
        excess = len(self._sids) - self.maxlen
        if self.maxlen and excess > 0:
            self._max_deleted = self._sids[excess - 1]
            del self._sids[:excess]
            del self._entries[:excess]
        # Wake every blocked reader, then arm the event for the next append.
        self._appended.set()
        self._appended = asyncio.Event()
        return entry_id

    async def check_partitions(self) -> None:
        return None  # one partition, one process

    async def append(self, fields: dict[str, bytes]) -> bytes:
        return self.append_nowait(fields)

    def _after(self, after: StreamId, count: int) -> list[Entry]:
        start = bisect.bisect_right(self._sids, after)
        return self._entries[start : start + count]

    async def read(
        self, after: Vector, count: int, block_ms: int, parts: tuple[int, ...] | None = None
    ) -> list[PartEntry]:
        entries = self._after(after[0], count)
        if not entries and block_ms > 0:
            waiter = self._appended
            try:
                await asyncio.wait_for(waiter.wait(), block_ms / 1000)
            except TimeoutError:
                return []
            entries = self._after(after[0], count)
        return [(0, entry) for entry in entries]

    async def range(self, after: StreamId, count: int, part: int = 0) -> list[Entry]:
        return self._after(after, count)

    async def replay_range(self, after: Vector, count: int) -> tuple[Vector, list[PartEntry]]:
        return (self._max_deleted,), [(0, entry) for entry in self._after(after[0], count)]

    async def contains(self, sid: StreamId, part: int = 0) -> bool:
        i = bisect.bisect_left(self._sids, sid)
        return i < len(self._sids) and self._sids[i] == sid

    async def info(self, part: int = 0) -> LogInfo:
        return LogInfo(last=self._last, floor=self._max_deleted, length=len(self._sids), added=self._added)

    async def aclose(self) -> None:
        return None
