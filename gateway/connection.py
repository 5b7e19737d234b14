"""One WebSocket connection: its outbox and how its frames reach the socket.

The hub offers each matching event to :meth:`Connection.deliver` and, once per batch,
calls :meth:`Connection.flush`; neither awaits (DESIGN §5: never await a client in the
reader). Two ways to the socket:

- **direct** (flowwire's own protocol, ``gateway.websocket``, the default): server frames
  are unmasked, so an event's WebSocket frame is built once and the same bytes go to
  every client; the frames a connection is owed are written together with one
  ``transport.write`` (DESIGN §9: the cost is per write, not per message). Control
  replies take the same path, so everything stays in order.
- **ASGI** (``WS_COMPRESSION=on``, or any other ASGI server): a drain task sends the
  outbox with ``send``.

When the socket stops accepting data (the transport pauses writing), frames wait in the
bounded outbox; an event that finds it full, or a socket paused for longer than
``SERVER_WRITE_TIMEOUT``, closes the connection with 4008 (slow consumer). Nothing is
dropped silently: the client resumes from its last id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from gateway.core.flow import Outbox
from gateway.core.frames import text_frame
from gateway.core.session import Session
from schemas.codec import ZERO_ID, StreamId
from schemas.control import CloseCode

if TYPE_CHECKING:
    from gateway.auth import Identity

__all__ = ["Connection", "OutFrame", "Wire"]

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


class OutFrame:
    """One outgoing message, encoded once and shared by every connection it goes to:
    the JSON ``payload`` (for ``send``) and its WebSocket frame ``wire`` (for direct
    writes)."""

    __slots__ = ("payload", "wire")

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.wire = text_frame(payload)


class Connection:
    __slots__ = (
        "_close_reason",
        "_drain_task",
        "_on_closed",
        "_send",
        "_wire",
        "close_code",
        "closing",
        "direct",
        "id",
        "identity",
        "last_sid",
        "outbox",
        "replay_cursor",
        "session",
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
        write_timeout: float,
        on_closed: Callable[[Connection, int], None],
    ) -> None:
        if (wire is None) == (send is None):
            raise ValueError("a connection writes to a wire or through an ASGI send, one of the two")
        self.id = conn_id
        self.identity = identity
        self.session = session
        # What this connection writes: WebSocket frames (direct) or JSON payloads (ASGI).
        self.outbox: Outbox[bytes] = Outbox(send_buffer)
        self.last_sid: StreamId = ZERO_ID  # the last event queued: the order guard
        self.replay_cursor: StreamId | None = None  # not None while replaying
        self.subscribing = 0  # subscribes with `since` being processed
        self.closing = False
        self.close_code = 0
        self._close_reason = ""
        self.write_timeout = write_timeout
        self._wire = wire
        self._send = send
        self.direct = wire is not None
        self._drain_task: asyncio.Task[None] | None = None
        self._on_closed = on_closed

    # -- the hot path: called by the hub for every matching event, never awaits -------

    def deliver(self, frame: OutFrame, sid: StreamId) -> bool:
        """Queue a live event; ``False`` if not queued (replaying, seen, closing, full)."""
        if self.replay_cursor is not None or sid <= self.last_sid or self.closing:
            return False
        # queue_event(), inlined: this runs once per event per matching connection.
        if not self.outbox.offer_event(frame.wire if self.direct else frame.payload):
            return self._overflow(frame, sid)
        self.last_sid = sid
        return True

    def deliver_now(self, frame: OutFrame, sid: StreamId) -> bool:
        """A single event (not a batch): written at once when nothing waits before it,
        else queued and flushed. ``True`` if delivered or queued."""
        if self.replay_cursor is not None or sid <= self.last_sid or self.closing:
            return False
        wire = self._wire
        if wire is not None and not wire.blocked and not self.outbox.frames and self._drain_task is None:
            wire.transport.write(frame.wire)
            self.last_sid = sid
            return True
        if self.queue_event(frame, sid):
            self.flush()
            return True
        return False

    def _overflow(self, frame: OutFrame, sid: StreamId) -> bool:
        # The outbox is full in the middle of a batch: if the socket takes what is
        # queued, write it now and go on; only a socket that does not is a slow consumer.
        if self.direct:
            self.flush()
            if self.outbox.offer_event(frame.wire):
                self.last_sid = sid
                return True
        self.close(CloseCode.SLOW_CONSUMER, "slow consumer; resume from your last id")
        return False

    def queue_event(self, frame: OutFrame, sid: StreamId) -> bool:
        if not self.outbox.offer_event(frame.wire if self.direct else frame.payload):
            return self._overflow(frame, sid)
        self.last_sid = sid
        return True

    def reply(self, payload: bytes) -> None:
        """Queue a control reply: never dropped (defect 9)."""
        if not self.closing:
            self.outbox.put_control(text_frame(payload) if self.direct else payload)

    def flush(self) -> None:
        """Write what is queued, now if the socket takes it, else from a drain task."""
        if not self.outbox.frames:
            return
        wire = self._wire
        if wire is not None and not wire.blocked and self._drain_task is None:
            # Everything this connection is owed, in one write (DESIGN §9).
            wire.transport.write(b"".join(self.outbox.take()))
            return
        self._start_drain()

    # -- the slow path -----------------------------------------------------------------

    def _start_drain(self) -> None:
        if self._drain_task is None:
            self._drain_task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            if self._wire is not None:
                await self._drain_direct(self._wire)
            else:
                await self._drain_asgi()
            if self.closing:
                await self._send_close()
        except TimeoutError:
            # ASGI: a send waited SERVER_WRITE_TIMEOUT. What it held is not delivered:
            # close, so that the client resumes from its last id (never a silent gap).
            self.close(CloseCode.SLOW_CONSUMER, "slow consumer; resume from your last id")
            with contextlib.suppress(Exception):
                await self._send_close()
        except Exception:  # the socket went away under us: the handler cleans up
            logger.debug("conn=%d drain ended", self.id, exc_info=True)
        finally:
            self._drain_task = None

    async def _drain_direct(self, wire: Wire) -> None:
        while self.outbox:
            if wire.blocked:
                await wire.wait_writable()
            wire.transport.write(b"".join(self.outbox.take()))

    async def _drain_asgi(self) -> None:
        # What was taken is being sent; the outbox bounds what arrives meanwhile.
        while self.outbox:
            for payload in self.outbox.take():
                await asyncio.wait_for(
                    self._send({"type": "websocket.send", "text": payload.decode()}), self.write_timeout
                )

    async def wait_room(self) -> bool:
        """For replays: wait until the outbox has room; ``False`` if closing."""
        while not self.closing:
            self.flush()
            task = self._drain_task
            if task is None and not self.outbox.full:
                return True
            if task is None:
                self._start_drain()
                task = self._drain_task
            assert task is not None
            await asyncio.wait({task})
        return False

    # -- closing -----------------------------------------------------------------------

    def close(self, code: int, reason: str) -> None:
        """Close with ``code``: what is queued is sent first, then the close frame."""
        if self.closing:
            return
        self.closing = True
        self.close_code = code
        self._close_reason = reason
        self._on_closed(self, code)
        self._start_drain()

    async def _send_close(self) -> None:
        if self._wire is not None:
            self._wire.send_close(self.close_code, self._close_reason)
            return
        await asyncio.wait_for(
            self._send({"type": "websocket.close", "code": self.close_code, "reason": self._close_reason}),
            self.write_timeout,
        )
