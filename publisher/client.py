"""Append typed events to the stream: :class:`Publisher` (asyncio) and
:class:`BlockingPublisher` (threads, or executors not on asyncio).

Exceptions::

    PublishError              Redis refused the append (e.g. the key is not a stream)
    ├── InvalidEvent          the event is not valid; nothing was written
    └── PublisherUnavailable  Redis could not be reached within ``timeout``; retryable

A publish never blocks its caller longer than ``RedisSettings.timeout`` (defect 11: the
original's synchronous Redis publish stalled workflow execution when Redis was slow).
Within that bound, connection failures are retried with jittered exponential backoff.
A retry after an ambiguous failure (the command sent, the reply lost) may append an
event twice; an id returned by ``publish`` is always an appended entry.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Self

import redis
import redis.asyncio as aioredis
import redis.exceptions

from publisher.settings import RedisSettings
from schemas.events import Event, make_event
from schemas.stream import encode_entry

__all__ = [
    "BlockingPublisher",
    "InvalidEvent",
    "Publication",
    "PublishError",
    "Publisher",
    "PublisherUnavailable",
]

_RETRYABLE: Final = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class PublishError(Exception):
    """Base of the publisher's errors."""

    retryable: bool = False


class InvalidEvent(PublishError, ValueError):
    """The event failed validation; nothing was written."""


class PublisherUnavailable(PublishError):
    """Redis did not accept the event within the configured time. Safe to retry."""

    retryable = True


@dataclass(frozen=True, slots=True)
class Publication:
    """An event with its optional routing envelope, for ``publish_many``."""

    event: Event
    org: str | None = None
    user: str | None = None


def _fields(event: Event, org: str | None, user: str | None) -> dict[str, bytes]:
    if not isinstance(event, Event):
        raise InvalidEvent(f"expected an Event, got {type(event).__name__}")
    try:
        checked = make_event(event.type, event.data)
        return encode_entry(checked, org=org, user=user)
    except ValueError as exc:
        raise InvalidEvent(str(exc)) from None


def _batch(items: Iterable[Event | Publication]) -> list[dict[str, bytes]]:
    out = []
    for item in items:
        if isinstance(item, Publication):
            out.append(_fields(item.event, item.org, item.user))
        else:
            out.append(_fields(item, None, None))
    return out


def _retry_delay(attempt: int) -> float:
    # Full jitter, 20 ms doubling, capped at 500 ms.
    return random.uniform(0, min(0.5, 0.02 * 2**attempt))


def _attempt_timeout(settings: RedisSettings) -> float:
    # Sockets time out after a quarter of the budget, and an attempt starts only when a
    # whole one fits before the deadline: the caller is never blocked past ``timeout``.
    return settings.timeout / 4


def _client_options(settings: RedisSettings) -> dict[str, Any]:
    return {
        "socket_connect_timeout": _attempt_timeout(settings),
        "socket_timeout": _attempt_timeout(settings),
        "retry_on_timeout": False,
        "retry": None,
        "health_check_interval": 0,
    }


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def pack_xadd(key: bytes, maxlen: int, fields: dict[str, bytes]) -> bytes:
    """One ``XADD key [MAXLEN ~ n] * field value ...`` in RESP: the asyncio publisher
    packs its batch itself, once, instead of through redis-py's per-command Python
    packer (the publisher benchmark's largest cost)."""
    parts = [b"XADD", key]
    if maxlen:
        parts += [b"MAXLEN", b"~", str(maxlen).encode()]
    parts.append(b"*")
    for name, value in fields.items():
        parts += [name.encode(), value]
    return b"*%d\r\n" % len(parts) + b"".join(map(_bulk, parts))


def _ids(replies: Sequence[Any]) -> list[str]:
    return [r.decode() if isinstance(r, bytes) else str(r) for r in replies]


class Publisher:
    """Asyncio publisher. Use as ``async with Publisher(settings) as pub: ...``."""

    def __init__(
        self, settings: RedisSettings | None = None, *, client: aioredis.Redis | None = None
    ) -> None:
        self.settings = settings or RedisSettings.from_env()
        self._owns_client = client is None
        self._redis = client or aioredis.Redis.from_url(self.settings.url, **_client_options(self.settings))

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Publisher:
        return cls(RedisSettings(url=url, **options))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._redis.aclose()

    async def publish(self, event: Event, *, org: str | None = None, user: str | None = None) -> str:
        """Append one event; returns its stream entry id."""
        return (await self._send([_fields(event, org, user)]))[0]

    async def publish_many(self, events: Iterable[Event | Publication]) -> list[str]:
        """Append several events in one round trip (a pipeline); their ids, in order."""
        batch = _batch(events)
        return await self._send(batch) if batch else []

    async def _append(self, batch: list[dict[str, bytes]]) -> list[str]:
        """The batch as one packed write, then its replies: one round trip."""
        s = self.settings
        key = s.stream_key.encode()
        packed = b"".join([pack_xadd(key, s.maxlen, fields) for fields in batch])
        pool = self._redis.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await conn.send_packed_command(packed, check_health=False)
            replies = [await conn.read_response() for _ in batch]
        except BaseException:
            # Replies may be left unread on it: never hand this connection out again.
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)
        return _ids(replies)

    async def _send(self, batch: list[dict[str, bytes]]) -> list[str]:
        s = self.settings
        deadline = time.monotonic() + s.timeout
        attempt = 0
        while True:
            try:
                async with asyncio.timeout(max(0.001, deadline - time.monotonic())):
                    return await self._append(batch)
            except redis.exceptions.ResponseError as exc:
                raise PublishError(f"Redis refused the append: {exc}") from exc
            except (*_RETRYABLE, TimeoutError) as exc:
                delay = _retry_delay(attempt)
                attempt += 1
                if time.monotonic() + delay + _attempt_timeout(s) > deadline:
                    raise PublisherUnavailable(
                        f"Redis unavailable for {s.timeout:g}s ({attempt} attempts): {exc!r}"
                    ) from exc
                await asyncio.sleep(delay)


class BlockingPublisher:
    """Thread-safe blocking publisher, same contract as :class:`Publisher`."""

    def __init__(self, settings: RedisSettings | None = None, *, client: redis.Redis | None = None) -> None:
        self.settings = settings or RedisSettings.from_env()
        self._owns_client = client is None
        self._redis = client or redis.Redis.from_url(self.settings.url, **_client_options(self.settings))

    @classmethod
    def from_url(cls, url: str, **options: Any) -> BlockingPublisher:
        return cls(RedisSettings(url=url, **options))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_client:
            self._redis.close()

    def publish(self, event: Event, *, org: str | None = None, user: str | None = None) -> str:
        return self._send([_fields(event, org, user)])[0]

    def publish_many(self, events: Iterable[Event | Publication]) -> list[str]:
        batch = _batch(events)
        return self._send(batch) if batch else []

    def _send(self, batch: list[dict[str, bytes]]) -> list[str]:
        s = self.settings
        deadline = time.monotonic() + s.timeout
        attempt = 0
        while True:
            try:
                pipe = self._redis.pipeline(transaction=False)
                for fields in batch:
                    pipe.xadd(s.stream_key, fields, maxlen=s.maxlen or None, approximate=True)  # type: ignore[arg-type]
                return _ids(pipe.execute())
            except redis.exceptions.ResponseError as exc:
                raise PublishError(f"Redis refused the append: {exc}") from exc
            except _RETRYABLE as exc:
                delay = _retry_delay(attempt)
                attempt += 1
                if time.monotonic() + delay + _attempt_timeout(s) > deadline:
                    raise PublisherUnavailable(
                        f"Redis unavailable for {s.timeout:g}s ({attempt} attempts): {exc!r}"
                    ) from exc
                time.sleep(delay)
