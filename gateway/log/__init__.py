"""The event log: the stream the gateway reads (DESIGN §4), behind a small Protocol.

``RedisLog`` (``gateway.log.redis``) is the production log; ``MemoryLog``
(``gateway.log.memory``) is its in-process twin with the same semantics, for a single
node without Redis, for the demo and for tests.

Exceptions::

    LogError
    └── LogUnavailable   the log cannot be reached now; retry with backoff
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from schemas.codec import StreamId

__all__ = ["Entry", "EventLog", "LogError", "LogInfo", "LogUnavailable"]

#: ``(entry id, fields)`` exactly as ``XREAD`` returns them.
Entry = tuple[bytes, dict[bytes, bytes]]


class LogError(Exception):
    pass


class LogUnavailable(LogError):
    """The log could not be reached (connection refused, timed out, lost)."""


@dataclass(frozen=True, slots=True)
class LogInfo:
    last: StreamId  # the last id ever generated (0-0 for a new stream)
    #: The oldest cursor that can be resumed: every entry after it is still held.
    floor: StreamId
    length: int


class EventLog(Protocol):
    async def append(self, fields: dict[str, bytes]) -> bytes:
        """Append an entry (the demo executor, tests); returns its id."""
        ...

    async def read(self, after: StreamId, count: int, block_ms: int) -> list[Entry]:
        """Entries after ``after``, waiting up to ``block_ms`` for the first one."""
        ...

    async def range(self, after: StreamId, count: int) -> list[Entry]:
        """At most ``count`` entries after ``after``, without waiting."""
        ...

    async def info(self) -> LogInfo: ...

    async def contains(self, sid: StreamId) -> bool:
        """Whether the entry ``sid`` is in the log (a cursor the log still knows)."""
        ...

    async def ping(self) -> None: ...

    async def aclose(self) -> None: ...
