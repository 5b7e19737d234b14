"""The event log: the stream the gateway reads (docs/protocol.md, "Publishing (the
stream contract)"), behind a small Protocol.

``RedisLog`` (``gateway.log.redis``) is the production log; ``MemoryLog``
(``gateway.log.memory``) is its in-process twin with the same semantics, for a single
node without Redis, for the demo and for tests.

A log is ``partitions`` streams (``STREAM_PARTITIONS``, ``schemas.partition``; the
embedded log has one): reads take a position vector and return ``(partition, entry)``
pairs, each partition's entries in order; per-partition questions name the partition.

Exceptions::

    LogError
    ├── LogUnavailable     the log cannot be reached now; retry with backoff
    └── PartitionMismatch  STREAM_PARTITIONS is not the stream's (the gateway refuses to start)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from schemas.codec import StreamId
from schemas.partition import Vector

__all__ = ["Entry", "EventLog", "LogError", "LogInfo", "LogUnavailable", "PartEntry", "PartitionMismatch"]

#: ``(entry id, fields)`` exactly as ``XREAD`` returns them.
Entry = tuple[bytes, dict[bytes, bytes]]
#: An entry and the partition it was read from.
PartEntry = tuple[int, Entry]


class LogError(Exception):
    pass


class LogUnavailable(LogError):
    """The log could not be reached (connection refused, timed out, lost)."""


class PartitionMismatch(LogError):
    """``STREAM_PARTITIONS`` differs from the value recorded for this stream."""


@dataclass(frozen=True, slots=True)
class LogInfo:
    """One partition's state."""

    last: StreamId  # the last id ever generated (0-0 for a new stream)
    #: The oldest cursor that can be resumed: every entry after it is still held.
    floor: StreamId
    length: int
    #: entries ever appended (Redis ``entries-added``): with the count read, the lag
    added: int = 0


class EventLog(Protocol):
    #: how many streams (``STREAM_PARTITIONS``)
    partitions: int

    def lanes(self) -> list[tuple[int, ...]]:
        """The partitions one read may cover together (one command): all of them, or,
        on a Redis Cluster, one each (their keys live on different slots)."""
        ...

    async def check_partitions(self) -> None:
        """Record ``partitions`` for this stream, or check it against the value recorded
        (:class:`PartitionMismatch`); warn about streams of the other layout."""
        ...

    async def append(self, fields: dict[str, bytes]) -> bytes:
        """Append an entry to its execution's partition (the demo executor, tests);
        returns its id."""
        ...

    async def read(
        self, after: Vector, count: int, block_ms: int, parts: tuple[int, ...] | None = None
    ) -> list[PartEntry]:
        """Entries after ``after`` in ``parts`` (default: all), at most ``count`` per
        partition, waiting up to ``block_ms`` for the first one."""
        ...

    async def range(self, after: StreamId, count: int, part: int = 0) -> list[Entry]:
        """At most ``count`` entries of partition ``part`` after ``after``, without waiting."""
        ...

    async def replay_range(self, after: Vector, count: int) -> tuple[Vector, list[PartEntry]]:
        """For a replay read: the log's ``floor`` (see :class:`LogInfo`) and at most
        ``count`` entries after ``after``, per partition, in one round trip. The floor
        tells whether entries after ``after`` were trimmed meanwhile."""
        ...

    async def info(self, part: int = 0) -> LogInfo: ...

    async def contains(self, sid: StreamId, part: int = 0) -> bool:
        """Whether the entry ``sid`` is in partition ``part`` (a cursor the log still knows)."""
        ...

    async def aclose(self) -> None: ...
