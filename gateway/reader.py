"""The one stream-reading task per process (docs/operations.md, "Several pods").

It reads the stream after the hub's position with ``XREAD BLOCK`` in batches and hands
each batch to :meth:`Hub.dispatch`. When the log fails it reports not ready, retries
with jittered, capped backoff, and resumes from its last id, so that connected clients
receive what was appended while the pod was cut off.

Partitioned streams: it reads every partition, all in one ``XREAD`` (one lane), or, on
a Redis Cluster, one blocking ``XREAD`` per partition (a lane each, concurrently:
``EventLog.lanes``); the hub's position is then a vector, each lane moving its own
partitions. A lane whose primary fails retries and checks its own partitions' positions;
the other lanes read on (the reader is reported not connected meanwhile).

If the log comes back *behind* the position (a Redis that lost its data), the reader
does not feed clients a rewound stream: it closes every connection with 1012, and each
client's resume then answers ``recovered: false`` (its cursor is beyond the stream), so
it reloads its state.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from gateway.core.backoff import Backoff
from gateway.hub import Hub
from gateway.log import EventLog, LogInfo, LogUnavailable
from publisher.connect import raise_if_cancelled, retry_pause
from schemas.codec import ZERO_ID
from schemas.control import CloseCode
from schemas.partition import format_cursor

__all__ = ["StreamReader"]

logger = logging.getLogger("flowwire.reader")

_BLOCK_MS = 5000
#: How often the lag in entries is measured during a backlog (seconds).
_LAG_PROBE = 1.0


class StreamReader:
    def __init__(
        self, hub: Hub, log: EventLog, *, batch: int, backoff: Backoff | None = None, where: str = ""
    ) -> None:
        self.hub = hub
        #: the event log's address for logs (no password)
        self.where = where or "the event log"
        #: the hub's position was set from the stream (start-up done)
        self.positioned = False
        self.log = log
        self.batch = batch
        self.backoff = backoff or Backoff(base=0.1, cap=5.0)
        self.connected = False
        self.last_read_at = time.monotonic()
        self.failures = 0
        self.resets = 0
        #: the last read returned a full batch: the stream holds more (a backlog)
        self.behind = False
        #: entries appended but not yet read (refreshed at most once a second while
        #: behind; 0 once a read returns less than a batch)
        self.lag_entries = 0
        self._base = 0  # entries-added minus entries read, at the position
        self._probed_at = 0.0
        #: lanes whose last read failed, and each lane's failures in a row
        self._down: set[int] = set()
        self._failures: dict[int, int] = {}

    async def _infos(self) -> list[LogInfo]:
        return [await self.log.info(p) for p in range(self.log.partitions)]

    async def start(self) -> None:
        """Position the hub at the end of the stream (events appended from now on),
        once ``STREAM_PARTITIONS`` is found to be the stream's (``PartitionMismatch``:
        the gateway refuses to start)."""
        await self.log.check_partitions()
        infos = await self._infos()
        self.hub.position = tuple(info.last for info in infos)
        self._base = sum(info.added for info in infos)
        self.connected = self.positioned = True
        self._down.clear()
        self._failures.clear()
        self.failures = 0
        self.last_read_at = time.monotonic()
        logger.info("reading the stream at %s from %s", self.where, format_cursor(self.hub.position))

    async def run(self) -> None:
        """Read for ever (supervised: an unexpected exception ends it, to be restarted)."""
        while not self.positioned:
            try:
                await self.start()
            except LogUnavailable as exc:
                if not self.failures:
                    logger.error("event log %s unreachable at start-up, retrying: %s", self.where, exc)
                await self._failed(exc)
        lanes = self.log.lanes()
        if len(lanes) == 1:
            await self._lane(0, None)
        else:
            async with asyncio.TaskGroup() as group:
                for i, lane in enumerate(lanes):
                    group.create_task(self._lane(i, lane))

    async def _lane(self, lane: int, parts: tuple[int, ...] | None) -> None:
        """Read ``parts`` (``None``: every partition) for ever."""
        while True:
            raise_if_cancelled()
            try:
                entries = await self.log.read(self.hub.position, self.batch, _BLOCK_MS, parts)
            except LogUnavailable as exc:
                await self._failed(exc, lane, parts)
                continue
            except Exception as exc:  # e.g. WRONGTYPE: reported, retried, never fatal
                logger.exception("stream read failed")
                await self._failed(exc, lane, parts)
                continue
            if lane in self._down:
                await self._reconnected(lane, parts)
                continue
            self.last_read_at = now = time.monotonic()
            if entries:
                self.hub.dispatch(entries)
            self._base += len(entries)
            self.behind = len(entries) >= self.batch
            if not self.behind:
                self.lag_entries = 0
            elif now - self._probed_at >= _LAG_PROBE:
                await self._probe_lag(now)

    async def _probe_lag(self, now: float) -> None:
        """During a backlog: how many entries the stream holds after the position."""
        self._probed_at = now
        try:
            infos = await self._infos()
        except LogUnavailable:
            return  # the next read reports it
        self.lag_entries = max(0, sum(info.added for info in infos) - self._base)

    def lag_seconds(self) -> float:
        """How far behind the stream the reader is, by the time of its position (the
        newest of its partitions'): 0 when its last read found no backlog."""
        newest = max(sid[0] for sid in self.hub.position)
        if not self.behind or not newest:
            return 0.0
        return max(0.0, time.time() - newest / 1000)

    def _naming(self, parts: tuple[int, ...] | None) -> str:
        """`` (partition 2)`` in a lane's log lines when a lane reads only some partitions."""
        if parts is None or len(parts) == self.log.partitions:
            return ""
        return f" (partition{'s' if len(parts) > 1 else ''} {', '.join(map(str, parts))})"

    async def _failed(self, exc: Exception, lane: int = 0, parts: tuple[int, ...] | None = None) -> None:
        if lane not in self._down:
            logger.error("event log unavailable%s, reconnecting: %s", self._naming(parts), exc)
        self._down.add(lane)
        self.connected = False
        self.hub.stats.reader_errors += 1
        failures = self._failures.get(lane, 0)
        self._failures[lane] = failures + 1
        self.failures = max(self._failures.values())
        await retry_pause(self.backoff.delay(failures, random.random()))

    async def _reconnected(self, lane: int, parts: tuple[int, ...] | None) -> None:
        """A read of ``lane`` succeeded after failures: are its partitions' positions
        still in the stream?"""
        mine = range(self.log.partitions) if parts is None else parts
        position = self.hub.position
        try:
            infos = {p: await self.log.info(p) for p in mine}
            lost = False
            for part in mine:
                sid = position[part]
                lost = lost or (sid != ZERO_ID and not await self.log.contains(sid, part))
        except LogUnavailable as exc:
            await self._failed(exc, lane, parts)
            return
        if lost:
            # Our position is no longer in the stream: Redis came back without its data
            # (or trimmed past us while we were away). Clients' cursors are gone too.
            self.resets += 1
            last = tuple(infos[p].last if p in infos else sid for p, sid in enumerate(self.hub.position))
            logger.error(
                "the stream no longer holds our position %s (last id now %s): its data was lost; "
                "closing every connection so that clients reload",
                format_cursor(position),
                format_cursor(last),
            )
            self.hub.close_all(CloseCode.SERVICE_RESTART, "stream reset; reconnect after 1s and reload")
            self.hub.position = last
            if parts is None:  # every partition (one lane): the lag's base anew
                self._base = sum(info.added for info in infos.values())
        logger.info(
            "event log back%s after %d failures; resuming after %s",
            self._naming(parts),
            self._failures.get(lane, 0),
            format_cursor(self.hub.position),
        )
        self._down.discard(lane)
        self._failures.pop(lane, None)
        self.failures = max(self._failures.values(), default=0)
        self.connected = not self._down
        self.last_read_at = time.monotonic()

    def stalled(self, timeout: float) -> bool:
        return time.monotonic() - self.last_read_at > timeout
