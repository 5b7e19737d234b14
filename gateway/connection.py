"""One WebSocket connection: its outbox and how its frames reach the socket.

The hub offers each matching event to :meth:`Connection.deliver` and, once per batch,
calls :meth:`Connection.flush`; neither awaits (never await a client in the
reader). Two ways to the socket:

- **direct** (flowwire's own protocol, ``gateway.websocket``, the default): server frames
  are unmasked, so an event's WebSocket frame is built once and the same bytes go to
  every client; the frames a connection is owed are written together with one
  ``transport.write`` (the cost is per write, not per message:
  benchmarks/README.md, "How it measures"). Control replies take the same path, so everything stays in order.
- **ASGI** (``WS_COMPRESSION=on``, or any other ASGI server): a drain task sends the
  outbox with ``send``.

When the socket stops accepting data (the transport pauses writing), frames wait in the
bounded outbox (events and bytes); an event that finds it full, a reply past its byte
bound, or a socket paused for longer than ``SERVER_WRITE_TIMEOUT``, closes the connection
with 4008 (slow consumer). Nothing is dropped silently: the client resumes from its last
id. What a connection is owed is decided by its delivery state machine
(``gateway.core.delivery``), which this class extends with the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from gateway.core.delivery import SLOW_CONSUMER_REASON, Delivery, Frame, Phase
from gateway.core.session import Session
from schemas.control import CloseCode
from schemas.stream import StreamEvent

if TYPE_CHECKING:
    from gateway.auth import Identity
    from gateway.metrics import Stats

__all__ = ["Connection", "Wire"]

logger = logging.getLogger("flowwire.connection")


class Wire(Protocol):
    """The direct path's socket (``gateway.websocket.WebSocketProtocol``)."""

    #: true while a write must wait: paused by the transport, closing, or gone
    blocked: bool
    transport: asyncio.Transport

    async def wait_writable(self) -> None:
        """Until the transport takes data again; raises ``ConnectionError`` once closing
        or gone. (A socket that stays paused for ``SERVER_WRITE_TIMEOUT`` is closed
        with 4008 by the wire itself, whether or not anything waits here.)"""

    def send_close(self, code: int, reason: str) -> None: ...


class Connection(Delivery):
    """A :class:`~gateway.core.delivery.Delivery` with a socket: the state machine
    decides what is owed, this class writes it."""

    __slots__ = (
        "_drain_task",
        "_on_closed",
        "_send",
        "_wire",
        "id",
        "identity",
        "session",
        "stats",
        "subscribing",
        "write_timeout",
    )

    def __init__(
        self,
        conn_id: int,
        identity: Identity,
        session: Session,
        *,
        wire: Wire | None = None,
        send: Any = None,
        send_buffer: int,
        send_buffer_bytes: int = 1 << 62,
        write_timeout: float,
        on_closed: Callable[[Connection, int | None], None],
        msgpack: bool = False,
        partitions: int = 1,
        lanes: bool = False,
    ) -> None:
        if (wire is None) == (send is None):
            raise ValueError("a connection writes to a wire or through an ASGI send, one of the two")
        super().__init__(
            send_buffer,
            send_buffer_bytes,
            direct=wire is not None,
            msgpack=msgpack,
            partitions=partitions,
            lanes=lanes,
        )
        self.id = conn_id
        self.identity = identity
        self.session = session
        self.subscribing = 0  # subscribes with `since` asking the log
        self.stats: Stats | None = None  # set by the hub (conflation is counted)
        self.write_timeout = write_timeout
        self._wire = wire
        self._send = send
        self._drain_task: asyncio.Task[None] | None = None
        self._on_closed = on_closed

    @property
    def closing(self) -> bool:
        return self.phase is Phase.CLOSING or self.phase is Phase.CLOSED

    # -- the hot path: called by the hub for every matching event, never awaits -------

    def deliver(self, frame: Frame, event: StreamEvent) -> bool:
        """Queue a live event of a batch (flushed after it); ``True`` if queued."""
        return self.offer_live(event, frame)

    def deliver_now(self, frame: Frame, event: StreamEvent) -> bool:
        """A single event (not a batch): written at once when nothing waits before it,
        else queued and flushed. ``True`` if delivered or queued."""
        if not self.admit_live(event):
            return False
        wire = self._wire
        data = self.data(frame) if self.msgpack else frame.wire if wire is not None else frame.payload
        if wire is not None and not wire.blocked and not self.outbox.frames and self._drain_task is None:
            wire.transport.write(self.written(frame, data) if self.lanes else data)
            return True
        queued = self.queue(frame, live=True) if self.lanes else self.outbox.offer_event(data)
        if queued or self.overflowed(frame):
            self.flush()
            return True
        return False

    def overflowed(self, frame: Frame) -> bool:
        # The outbox is full in the middle of a batch: if the socket takes what is
        # queued, write it now and go on; only a socket that does not is a slow consumer.
        if self.direct:
            self.flush()
            if self.queue(frame, live=True):
                return True
        self.close(CloseCode.SLOW_CONSUMER, SLOW_CONSUMER_REASON)
        return False

    def count_conflated(self) -> None:
        super().count_conflated()
        if self.stats is not None:
            self.stats.events_conflated += 1

    def make_room(self) -> bool:
        # A replay read filled the outbox: a socket that takes data gets it now, and the
        # read goes on for this connection (instead of another round after the drain).
        wire = self._wire
        if wire is None or wire.blocked or self._drain_task is not None:
            return False
        self.flush()
        return not self.outbox.frames

    def reply(self, payload: bytes) -> None:
        """Queue a control reply: never dropped (defect 9); past the outbox's byte bound
        the connection closes with 4008 instead."""
        self.offer_control(payload)

    def flush(self) -> None:
        """Write what is queued, now if the socket takes it, else from a drain task."""
        if not self.outbox.frames:
            return
        wire = self._wire
        if wire is not None and not wire.blocked and self._drain_task is None:
            # Everything this connection is owed, in one write (one write per batch).
            wire.transport.write(b"".join(self.outbox.take()))
            self.drained()
            return
        self._start_drain()

    # -- the slow path -----------------------------------------------------------------

    def _start_drain(self) -> None:
        self.stall()
        if self._drain_task is None:
            self._drain_task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            if self._wire is not None:
                await self._drain_direct(self._wire)
            else:
                await self._drain_asgi()
            self.drained()
            if self.closing:
                await self._send_close()
        except TimeoutError:
            # ASGI: a send waited SERVER_WRITE_TIMEOUT. What it held is not delivered:
            # close, so that the client resumes from its last id (never a silent gap).
            self.close(CloseCode.SLOW_CONSUMER, SLOW_CONSUMER_REASON)
            with contextlib.suppress(Exception):
                await self._send_close()
        except Exception:  # the socket went away under us: the handler cleans up
            logger.debug("conn=%d drain ended", self.id, exc_info=True)
        finally:
            self._drain_task = None

    async def _drain_direct(self, wire: Wire) -> None:
        while self.outbox.frames:
            if wire.blocked:
                await wire.wait_writable()
            wire.transport.write(b"".join(self.outbox.take()))

    async def _drain_asgi(self) -> None:
        # What was taken is being sent; the outbox bounds what arrives meanwhile.
        while self.outbox.frames:
            for payload in self.outbox.take():
                message = {"type": "websocket.send", "bytes": payload} if self.msgpack else {
                    "type": "websocket.send", "text": payload.decode()}  # fmt: skip
                await asyncio.wait_for(self._send(message), self.write_timeout)

    # -- closing -----------------------------------------------------------------------

    def close(
        self,
        code: int = CloseCode.SLOW_CONSUMER,
        reason: str = SLOW_CONSUMER_REASON,
        *,
        by_peer: bool = False,
    ) -> bool:
        """Close with ``code``: what is queued is sent first, then the close frame.
        ``by_peer``: the client closed first and ``code`` is its own, echoed (RFC 6455
        §5.5.1): not a close of ours, not counted as one."""
        if not super().close(code, reason):
            return False
        self._on_closed(self, None if by_peer else code)
        self._start_drain()
        return True

    async def _send_close(self) -> None:
        if self._wire is not None:
            self._wire.send_close(self.close_code, self.close_reason)
            return
        await asyncio.wait_for(
            self._send({"type": "websocket.close", "code": self.close_code, "reason": self.close_reason}),
            self.write_timeout,
        )
