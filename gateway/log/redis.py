"""The event log on a Redis Stream: ``XREAD BLOCK`` for the reader, ``XRANGE`` for
replays, ``XINFO STREAM`` for positions and retention (the stream's layout:
docs/protocol.md, "Publishing (the stream contract)").

Every Redis failure surfaces as :class:`LogUnavailable`; the callers own the retry
policy (``gateway.core.backoff``).

Partitioned (``STREAM_PARTITIONS=P``, keys from ``schemas.partition.partition_keys``):
one ``XREAD`` names every partition's key, except on a Redis Cluster, where keys of
different slots cannot share a command: there each partition is its own lane (its own
blocking ``XREAD``, through a cluster client of its own, so that one primary's failure
leaves the other lanes' connections alone). A replay read is one
pipeline of ``XINFO STREAM`` + ``XRANGE`` per partition (on a Cluster, split by node).
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from gateway.log import Entry, LogInfo, LogUnavailable, PartEntry, PartitionMismatch
from publisher.connect import UNAVAILABLE, async_client
from schemas.codec import ZERO_ID, StreamId, format_id, parse_id
from schemas.partition import Vector, partition_keys, partition_of, partitions_key
from schemas.stream import entry_execution_id

__all__ = ["RedisLog"]

logger = logging.getLogger("flowwire.log")

_FAILURES = UNAVAILABLE


def _sid(value: Any) -> StreamId:
    if value is None:
        return ZERO_ID
    return parse_id(value.decode() if isinstance(value, bytes) else str(value))


class RedisLog:
    def __init__(self, url: str, stream_key: str, *, maxlen: int = 1_000_000, partitions: int = 1) -> None:
        self.url = url
        self.stream_key = stream_key
        self.maxlen = maxlen
        self.partitions = partitions
        self.keys = partition_keys(stream_key, partitions)
        self._part_of = {key.encode(): p for p, key in enumerate(self.keys)}
        options: dict[str, Any] = {
            "socket_connect_timeout": 2.0,
            "health_check_interval": 0,
            "retry": None,
        }
        # Two clients: the reader's blocking XREAD must not hold up replays and probes.
        # ``url`` may name a Sentinel primary or a Cluster (``publisher.connect``): each
        # connection is made to the primary of the moment, so after a failover the
        # caller's next attempt (the reader's backoff) reads the new primary. (Typed as
        # Redis: a RedisCluster has the same commands.)
        # The reader's socket times out well after its XREAD BLOCK (5 s) would have been
        # answered: a primary that vanished without closing the connection (a host lost
        # in a failover) is noticed, and the next attempt asks for the new one.
        self._reader: aioredis.Redis = async_client(url, socket_timeout=20.0, **options)
        self.client: aioredis.Redis = async_client(url, socket_timeout=5.0, **options)
        # On a Cluster each lane has a client of its own: a cluster client that meets a
        # dead node refreshes its topology and recycles the connections to every node,
        # which broke the other lanes' blocking reads while one primary was down (and,
        # retried in step with that lane's backoff, could hold them off for good).
        self._lane_readers: list[aioredis.Redis] = []
        if self.partitions > 1 and isinstance(self.client, aioredis.RedisCluster):
            self._lane_readers = [self._reader] + [
                async_client(url, socket_timeout=20.0, **options) for _ in range(1, self.partitions)
            ]

    def lanes(self) -> list[tuple[int, ...]]:
        if self._lane_readers:
            return [(p,) for p in range(self.partitions)]
        return [tuple(range(self.partitions))]

    async def check_partitions(self) -> None:
        key = partitions_key(self.stream_key)
        other = partition_keys(self.stream_key, 1 if self.partitions > 1 else 2)[0]
        try:
            await self.client.set(key, self.partitions, nx=True)
            recorded: Any = await self.client.get(key)
            stray = await self.client.exists(other)
        except _FAILURES as exc:
            raise LogUnavailable(repr(exc)) from exc
        if recorded is not None and int(recorded) != self.partitions:
            raise PartitionMismatch(
                f"STREAM_PARTITIONS is {self.partitions}, but this stream's gateways and publishers use "
                f"{int(recorded)} (recorded in {key}): set STREAM_PARTITIONS={int(recorded)}, or, to change "
                f"the partition count of the deployment, see docs/operations.md (Partitioned streams)"
            )
        if stray:
            logger.warning(
                "the stream %s of another STREAM_PARTITIONS layout exists: a publisher configured with "
                "a different STREAM_PARTITIONS than %d may be writing to streams no gateway reads",
                other,
                self.partitions,
            )

    async def append(self, fields: dict[str, bytes]) -> bytes:
        key = self.keys[partition_of(entry_execution_id(fields), self.partitions)]
        try:
            entry_id: Any = await self.client.xadd(
                key,
                fields,  # type: ignore[arg-type]
                maxlen=self.maxlen or None,
                approximate=True,
            )
        except _FAILURES as exc:
            raise LogUnavailable(repr(exc)) from exc
        return bytes(entry_id)

    async def read(
        self, after: Vector, count: int, block_ms: int, parts: tuple[int, ...] | None = None
    ) -> list[PartEntry]:
        keys = self.keys
        streams = {keys[p]: format_id(after[p]) for p in (range(self.partitions) if parts is None else parts)}
        reader = self._lane_readers[parts[0]] if self._lane_readers and parts is not None else self._reader
        try:
            reply: Any = await reader.xread(streams, count=count, block=block_ms or None)  # type: ignore[arg-type]
        except _FAILURES as exc:
            raise LogUnavailable(repr(exc)) from exc
        if not reply:
            return []
        if self.partitions == 1:
            return [(0, entry) for entry in reply[0][1]]
        if isinstance(reply, dict):  # RESP3
            reply = list(reply.items())
        part_of = self._part_of
        return [(part_of[bytes(key)], entry) for key, entries in reply for entry in entries]

    async def range(self, after: StreamId, count: int, part: int = 0) -> list[Entry]:
        try:
            reply: Any = await self.client.xrange(self.keys[part], min="(" + format_id(after), count=count)
        except _FAILURES as exc:
            raise LogUnavailable(repr(exc)) from exc
        return list(reply)

    async def replay_range(self, after: Vector, count: int) -> tuple[Vector, list[PartEntry]]:
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for p, key in enumerate(self.keys):
                    pipe.execute_command("XINFO", "STREAM", key)
                    pipe.xrange(key, min="(" + format_id(after[p]), count=count)
                replies = await pipe.execute(raise_on_error=False)
        except _FAILURES as exc:
            raise LogUnavailable(repr(exc)) from exc
        floors: list[StreamId] = []
        out: list[PartEntry] = []
        for p in range(self.partitions):
            info, entries = replies[2 * p], replies[2 * p + 1]
            if isinstance(info, redis.exceptions.ResponseError):
                if "no such key" not in str(info).lower():
                    raise info
                floors.append(ZERO_ID)
                continue
            if isinstance(info, Exception):
                raise LogUnavailable(repr(info)) from info
            if isinstance(entries, Exception):
                raise entries
            fields = _pairs(info)
            last = _sid(fields.get("last-generated-id"))
            floors.append(_floor(fields, last, int(fields.get("length", 0))))
            out += [(p, entry) for entry in entries]
        return tuple(floors), out

    async def contains(self, sid: StreamId, part: int = 0) -> bool:
        entry = format_id(sid)
        try:
            reply: Any = await self.client.xrange(self.keys[part], min=entry, max=entry, count=1)
        except _FAILURES as exc:
            raise LogUnavailable(repr(exc)) from exc
        return bool(reply)

    async def info(self, part: int = 0) -> LogInfo:
        try:
            raw: Any = await self.client.execute_command("XINFO", "STREAM", self.keys[part])  # type: ignore[no-untyped-call]
        except redis.exceptions.ResponseError as exc:
            if "no such key" in str(exc).lower():
                return LogInfo(last=ZERO_ID, floor=ZERO_ID, length=0, added=0)
            raise
        except _FAILURES as exc:
            raise LogUnavailable(repr(exc)) from exc
        fields = _pairs(raw)
        last = _sid(fields.get("last-generated-id"))
        length = int(fields.get("length", 0))
        added = int(fields.get("entries-added", length))
        return LogInfo(last=last, floor=_floor(fields, last, length), length=length, added=added)

    async def aclose(self) -> None:
        for reader in self._lane_readers[1:]:
            await reader.aclose()
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
