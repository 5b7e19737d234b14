"""The event log on a Redis Stream (DESIGN §4): ``XREAD BLOCK`` for the reader,
``XRANGE`` for replays, ``XINFO STREAM`` for positions and retention.

Every Redis failure surfaces as :class:`LogUnavailable`; the callers own the retry
policy (``gateway.core.backoff``).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from gateway.log import Entry, LogInfo, LogUnavailable
from schemas.codec import ZERO_ID, StreamId, format_id, parse_id

__all__ = ["RedisLog"]

_FAILURES = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def _sid(value: Any) -> StreamId:
    if value is None:
        return ZERO_ID
    return parse_id(value.decode() if isinstance(value, bytes) else str(value))


class RedisLog:
    def __init__(self, url: str, stream_key: str, *, maxlen: int = 1_000_000) -> None:
        self.url = url
        self.stream_key = stream_key
        self.maxlen = maxlen
        options: dict[str, Any] = {
            "socket_connect_timeout": 2.0,
            "health_check_interval": 0,
            "retry": None,
        }
        # Two clients: the reader's blocking XREAD must not hold up replays and probes.
        self._reader = aioredis.Redis.from_url(url, socket_timeout=None, **options)
        self.client = aioredis.Redis.from_url(url, socket_timeout=5.0, **options)

    async def append(self, fields: dict[str, bytes]) -> bytes:
        try:
            entry_id: Any = await self.client.xadd(
                self.stream_key,
                fields,  # type: ignore[arg-type]
                maxlen=self.maxlen or None,
                approximate=True,
            )
        except _FAILURES as exc:
            raise LogUnavailable(repr(exc)) from exc
        return bytes(entry_id)

    async def read(self, after: StreamId, count: int, block_ms: int) -> list[Entry]:
        try:
            reply: Any = await self._reader.xread(
                {self.stream_key: format_id(after)}, count=count, block=block_ms or None
            )
        except _FAILURES as exc:
            raise LogUnavailable(repr(exc)) from exc
        return list(reply[0][1]) if reply else []

    async def range(self, after: StreamId, count: int) -> list[Entry]:
        try:
            reply: Any = await self.client.xrange(self.stream_key, min="(" + format_id(after), count=count)
        except _FAILURES as exc:
            raise LogUnavailable(repr(exc)) from exc
        return list(reply)

    async def contains(self, sid: StreamId) -> bool:
        entry = format_id(sid)
        try:
            reply: Any = await self.client.xrange(self.stream_key, min=entry, max=entry, count=1)
        except _FAILURES as exc:
            raise LogUnavailable(repr(exc)) from exc
        return bool(reply)

    async def info(self) -> LogInfo:
        try:
            raw: Any = await self.client.execute_command("XINFO", "STREAM", self.stream_key)  # type: ignore[no-untyped-call]
        except redis.exceptions.ResponseError as exc:
            if "no such key" in str(exc).lower():
                return LogInfo(last=ZERO_ID, floor=ZERO_ID, length=0)
            raise
        except _FAILURES as exc:
            raise LogUnavailable(repr(exc)) from exc
        fields = _pairs(raw)
        last = _sid(fields.get("last-generated-id"))
        length = int(fields.get("length", 0))
        return LogInfo(last=last, floor=_floor(fields, last, length), length=length)

    async def ping(self) -> None:
        try:
            await self.client.ping()
        except _FAILURES as exc:
            raise LogUnavailable(repr(exc)) from exc

    async def aclose(self) -> None:
        await self._reader.aclose()
        await self.client.aclose()


def _floor(fields: dict[str, Any], last: StreamId, length: int) -> StreamId:
    """The oldest resumable cursor. Redis does not record which ids ``MAXLEN`` trimmed,
    so once anything was removed, only a cursor at or after the first entry still held
    is safe (one entry conservative: a client may be told to reload needlessly, never
    to trust a gap)."""
    added = int(fields.get("entries-added", length))
    if added <= length:
        return ZERO_ID  # nothing ever removed
    first = fields.get("first-entry")
    if not first:
        return last  # everything removed: only the newest cursor is whole
    return max(_sid(first[0]), _sid(fields.get("max-deleted-entry-id")))


def _pairs(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}
    it = iter(raw)
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in zip(it, it, strict=True)}
