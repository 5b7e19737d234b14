"""The one stream-reading task per process (DESIGN §1).

It reads the stream after the hub's position with ``XREAD BLOCK`` in batches and hands
each batch to :meth:`Hub.dispatch`. When the log fails it reports not ready, retries
with jittered, capped backoff, and resumes from its last id, so that connected clients
receive what was appended while the pod was cut off.

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
from gateway.log import EventLog, LogUnavailable
from schemas.codec import ZERO_ID, format_id
from schemas.control import CloseCode

__all__ = ["StreamReader"]

logger = logging.getLogger("flowwire.reader")

_BLOCK_MS = 5000


class StreamReader:
    def __init__(self, hub: Hub, log: EventLog, *, batch: int, backoff: Backoff | None = None) -> None:
        self.hub = hub
        self.log = log
        self.batch = batch
        self.backoff = backoff or Backoff(base=0.1, cap=5.0)
        self.connected = False
        self.last_read_at = time.monotonic()
        self.failures = 0
        self.resets = 0

    async def start(self) -> None:
        """Position the hub at the end of the stream (events appended from now on)."""
        info = await self.log.info()
        self.hub.position = info.last
        self.connected = True
        logger.info("reading the stream from %s", format_id(info.last))

    async def run(self) -> None:
        while True:
            try:
                entries = await self.log.read(self.hub.position, self.batch, _BLOCK_MS)
            except LogUnavailable as exc:
                await self._failed(exc)
                continue
            except Exception as exc:  # e.g. WRONGTYPE: reported, retried, never fatal
                logger.exception("stream read failed")
                await self._failed(exc)
                continue
            if not self.connected:
                await self._reconnected()
                continue
            self.last_read_at = time.monotonic()
            if entries:
                self.hub.dispatch(entries)

    async def _failed(self, exc: Exception) -> None:
        if self.connected:
            logger.error("event log unavailable, reconnecting: %s", exc)
        self.connected = False
        self.hub.stats.reader_errors += 1
        delay = self.backoff.delay(self.failures, random.random())
        self.failures += 1
        await asyncio.sleep(delay)

    async def _reconnected(self) -> None:
        try:
            info = await self.log.info()
        except LogUnavailable as exc:
            await self._failed(exc)
            return
        position = self.hub.position
        try:
            lost = position != ZERO_ID and not await self.log.contains(position)
        except LogUnavailable as exc:
            await self._failed(exc)
            return
        if lost:
            # Our position is no longer in the stream: Redis came back without its data
            # (or trimmed past us while we were away). Clients' cursors are gone too.
            self.resets += 1
            logger.error(
                "the stream no longer holds our position %s (last id now %s): its data was lost; "
                "closing every connection so that clients reload",
                format_id(position),
                format_id(info.last),
            )
            self.hub.close_all(CloseCode.SERVICE_RESTART, "stream reset; reconnect after 1s and reload")
            self.hub.position = info.last
        logger.info(
            "event log back after %d failures; resuming after %s",
            self.failures,
            format_id(self.hub.position),
        )
        self.connected = True
        self.failures = 0
        self.last_read_at = time.monotonic()

    def stalled(self, timeout: float) -> bool:
        return time.monotonic() - self.last_read_at > timeout
