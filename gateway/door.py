"""The door: sockets between their accept and a complete request head.

uvicorn parses HTTP (httptools) before it hands a WebSocket upgrade to
``gateway.websocket``; until the request head is complete, only this module watches the
socket. uvicorn's own keep-alive timer starts after a response, so without it a client
could send its upgrade request one byte a second, or nothing at all, for as long as it
likes (slowloris), each such socket holding a file descriptor.

- Every request head must be complete within ``SERVER_READ_TIMEOUT``: from the accept
  for the first request, from its first byte for a later one on the same connection.
  Past it the client gets ``408`` with the JSON body of the other refusals, and the
  socket is closed (``flowwire_request_head_timeouts_total``).
- At most ``MAX_PENDING_SOCKETS`` sockets may wait at the door at once: past it a new
  socket gets ``503`` and is closed at once (``flowwire_pending_sockets_refused_total``),
  so slow or silent clients cannot use up the process's file descriptors.

Once its head is complete, a socket is no longer at the door: an upgrade is admitted by
the gateway (authentication: the server's own work, which a client cannot stretch; a
client that sends anything before the ``101`` is dropped), a plain request is answered.

:func:`raise_open_files_limit` raises ``RLIMIT_NOFILE``'s soft limit to the hard limit
at start-up: every connection is a file descriptor, and the usual soft limit (1024) is
far below ``MAX_CONNECTIONS``.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.auth import Denial
from gateway.core.handshake import http_response
from gateway.metrics import Stats

__all__ = ["Door", "DoorProtocol", "http_protocol_factory", "raise_open_files_limit"]

logger = logging.getLogger("flowwire.door")


@dataclass(slots=True)
class Door:
    """The door's settings and the sockets waiting at it (one per process)."""

    timeout: float  # SERVER_READ_TIMEOUT
    limit: int  # MAX_PENDING_SOCKETS; 0: unlimited
    stats: Stats
    waiting: int = 0

    def full(self) -> bool:
        return bool(self.limit) and self.waiting >= self.limit


_TOO_SLOW = Denial(408, "the request head did not arrive within SERVER_READ_TIMEOUT", "REQUEST_TIMEOUT")
_FULL = Denial(503, "too many connections waiting to send their request; retry", "TOO_MANY_PENDING")


def http_protocol_factory(door: Door) -> Callable[..., asyncio.Protocol]:
    """uvicorn's ``http`` setting: called with ``config``, ``server_state``, ``app_state``."""

    def factory(**kwargs: Any) -> DoorProtocol:
        return DoorProtocol(door, **kwargs)

    return factory


class DoorProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on each request head and a limit on
    the sockets waiting for theirs."""

    def __init__(self, door: Door, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.door = door
        self._head_timer: asyncio.TimerHandle | None = None
        self._turned_away = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        door = self.door
        if door.full():
            # Neither registered with uvicorn nor parsed: answered and closed at once.
            self._turned_away = True
            door.stats.pending_sockets_refused += 1
            transport.write(http_response(_FULL.status, _FULL.body(), headers=(("retry-after", "1"),)))
            transport.close()
            return
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if not self._turned_away:
            super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._turned_away:
            return
        self._disarm()
        super().connection_lost(exc)

    # -- httptools callbacks -----------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:  # a later request on a kept-alive connection
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    # -- the deadline ------------------------------------------------------------------

    def _arm(self) -> None:
        self.door.waiting += 1
        self._head_timer = self.loop.call_later(self.door.timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
            self.door.waiting -= 1

    def _too_slow(self) -> None:
        self._head_timer = None
        self.door.waiting -= 1
        self.door.stats.request_head_timeouts += 1
        peer = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
        logger.info("client %s: no complete request within %.1fs: closing", peer, self.door.timeout)
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.abort()  # a response to an earlier request is still going out
            return
        self.transport.write(http_response(_TOO_SLOW.status, _TOO_SLOW.body()))
        self.transport.close()


def raise_open_files_limit() -> tuple[int, int]:
    """Raise ``RLIMIT_NOFILE``'s soft limit to its hard limit and log it; (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:  # Linux refuses more than fs.nr_open
        try:
            target = int(Path("/proc/sys/fs/nr_open").read_text())
        except (OSError, ValueError):
            target = soft
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError) as exc:
            logger.warning("open files (RLIMIT_NOFILE): could not raise %d to %d: %s", soft, target, exc)
            return soft, soft
        logger.info(
            "open files (RLIMIT_NOFILE): soft limit raised from %d to the hard limit %d", soft, target
        )
        return soft, target
    logger.info("open files (RLIMIT_NOFILE): soft limit %d, already the hard limit", soft)
    return soft, soft
