"""``/ws`` served by flowwire's own ``asyncio.Protocol``: the default WebSocket path.

Theory of operation
-------------------
uvicorn owns the listening socket and HTTP; when a request asks for an upgrade it hands
the transport to this protocol (uvicorn's ``ws`` protocol class, bound to the gateway by
:func:`protocol_factory`). From then on there is no ASGI, no task and no queue per
connection (DESIGN §9: the hot path is one ``transport.write`` per connection per batch):

- the handshake is parsed here (``gateway.core.handshake``), admitted by the gateway
  (draining, origin, authentication: the one async step, in a short-lived task), and
  answered with ``101`` or an HTTP error with a JSON body;
- inbound frames are parsed in ``data_received`` (``gateway.core.frames``) and each
  message goes to the session at once; a subscribe that must ask the log first (``since``)
  runs in a task, and messages after it wait behind it, in order;
- outbound, :class:`gateway.connection.Connection` writes to ``transport`` directly while
  :attr:`blocked` is false; ``pause_writing``/``resume_writing`` (the transport's high and
  low water marks) set it. A transport paused for ``SERVER_WRITE_TIMEOUT`` closes the
  connection with 4008 (slow consumer) and is aborted, whether what the client is owed
  waits in the outbox or already in the transport's buffer;
- one timer per connection sends the heartbeat: a ping every ``WS_PING_INTERVAL``, and a
  close (1011) when no pong came within ``pong_wait`` of it.

Close handshake: whoever closes first sends a close frame; the server closes TCP once
both have been sent (RFC 6455 §7.1.1), or aborts after ``SERVER_WRITE_TIMEOUT`` if the
client never answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, cast

from gateway.auth import Denial
from gateway.core.frames import (
    CloseFrame,
    FrameParser,
    Message,
    Ping,
    Pong,
    Violation,
    close_frame,
    ping_frame,
    pong_frame,
)
from gateway.core.handshake import (
    HandshakeError,
    Headers,
    Request,
    check_upgrade,
    http_response,
    parse_request,
    switching_protocols,
)
from gateway.core.session import Action
from schemas.control import CloseCode

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.connection import Connection

__all__ = ["WebSocketProtocol", "protocol_factory"]

logger = logging.getLogger("flowwire.websocket")

#: Inbound messages waiting behind a subscribe that asks the log: above this, stop reading.
_PENDING_LIMIT: Final = 32


def protocol_factory(gateway: Gateway) -> Callable[..., WebSocketProtocol]:
    """uvicorn's ``ws`` setting: called with ``config``, ``server_state``, ``app_state``."""

    def factory(**kwargs: Any) -> WebSocketProtocol:
        state = kwargs.get("server_state")
        return WebSocketProtocol(gateway, state.connections if state is not None else None)

    return factory


class WebSocketProtocol(asyncio.Protocol):
    """One client socket, from the upgrade request to ``connection_lost``."""

    __slots__ = (
        "_admission",
        "_applier",
        "_close_timer",
        "_heartbeat",
        "_no_wait",
        "_paused",
        "_pending",
        "_ping_sent",
        "_reading_paused",
        "_registry",
        "_request",
        "_stall",
        "_waiting_pong",
        "_writable",
        "blocked",
        "close_received",
        "close_sent",
        "conn",
        "gateway",
        "lost",
        "parser",
        "peer",
        "transport",
    )

    def __init__(self, gateway: Gateway, registry: set[Any] | None = None) -> None:
        self.gateway = gateway
        self._registry = registry  # uvicorn's open connections (its shutdown closes them)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.conn: Connection | None = None
        self.parser: FrameParser | None = None
        self.peer = "?"
        #: the hot path's one check: do not write (paused, closing, or gone)
        self.blocked = True
        self.close_sent = False
        self.close_received = False
        self.lost = False
        self._no_wait = False  # close TCP right after the close frame, without waiting
        self._paused = False
        self._request = b""
        self._admission: asyncio.Task[None] | None = None
        self._pending: deque[list[Action]] | None = None  # behind a subscribe asking the log
        self._applier: asyncio.Task[None] | None = None  # works through _pending
        self._reading_paused = False
        self._writable: asyncio.Future[None] | None = None
        self._heartbeat: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._stall: asyncio.TimerHandle | None = None  # SERVER_WRITE_TIMEOUT while paused
        self._ping_sent = 0.0
        self._waiting_pong = False

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.peer = f"{peer[0]}:{peer[1]}"
        if self._registry is not None:
            self._registry.add(self)

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if parser is not None:
            self._frames(parser.feed(data))
        elif self._admission is not None:
            # RFC 6455 §4.1: a client waits for the 101 before it sends anything.
            logger.info("client %s sent data before the handshake completed: closing", self.peer)
            self._admission.cancel()
            self.transport.abort()
        else:
            self._handshake(data)

    def pause_writing(self) -> None:
        self._paused = True
        self.blocked = True
        if self.conn is not None and self._stall is None and not self.close_sent:
            loop = asyncio.get_running_loop()
            self._stall = loop.call_later(self.gateway.config.write_timeout, self._stalled)

    def resume_writing(self) -> None:
        self._paused = False
        self.blocked = self.close_sent or self.lost
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = self.blocked = True
        for timer in (self._heartbeat, self._close_timer, self._stall):
            if timer is not None:
                timer.cancel()
        if self._admission is not None:
            self._admission.cancel()
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._registry is not None:
            self._registry.discard(self)
        conn = self.conn
        if conn is not None:
            self.gateway.disconnected(conn, conn.close_code or 1006)
            self.conn = None

    def _stalled(self) -> None:
        # SERVER_WRITE_TIMEOUT: the client took nothing for that long (what it is owed
        # waits in the transport or the outbox). It resumes from its last id.
        self._stall = None
        if self.conn is not None:
            self.conn.close(CloseCode.SLOW_CONSUMER, "slow consumer; resume from your last id")
        self.transport.abort()

    # -- uvicorn's server shutdown -----------------------------------------------------

    def shutdown(self) -> None:
        if self.conn is not None:
            self.conn.close(CloseCode.SERVICE_RESTART, "server shutting down")
        else:
            self.transport.close()

    # -- what Connection uses ----------------------------------------------------------

    async def wait_writable(self) -> None:
        """Wait until the transport takes data again; raises ``ConnectionError`` once
        the close frame is sent or the socket is gone."""
        if self._paused and not self.lost:
            if self._writable is None:
                self._writable = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._writable)
        if self.close_sent or self.lost:
            raise ConnectionResetError("the WebSocket is closing")

    def send_close(self, code: int, reason: str) -> None:
        """Send the close frame (once); TCP closes when the client's close arrives."""
        if self.close_sent or self.lost:
            return
        self.close_sent = self.blocked = True
        self.transport.write(close_frame(code, reason))
        if self.close_received or self._no_wait:
            self.transport.close()
        else:
            timeout = self.gateway.config.write_timeout
            self._close_timer = asyncio.get_running_loop().call_later(timeout, self.transport.abort)

    # -- the opening handshake ---------------------------------------------------------

    def _handshake(self, data: bytes) -> None:
        self._request += data
        request = parse_request(self._request)
        if request is None:
            return
        self._request = b""
        if isinstance(request, Request) and request.path != "/ws":
            request = HandshakeError(404, "no WebSocket endpoint at this path")
        if isinstance(request, Request):
            accept = check_upgrade(request)
            if isinstance(accept, str):
                self._admission = asyncio.get_running_loop().create_task(self._admit(request, accept))
                return
            request = accept
        self._refuse(Denial(request.status, request.message, "BAD_REQUEST"), request.headers)

    def _refuse(self, denial: Denial, headers: Headers = ()) -> None:
        self.transport.write(http_response(denial.status, denial.body(), headers=headers))
        self.transport.close()

    async def _admit(self, request: Request, accept: str) -> None:
        try:
            await self._open(request, accept)
        except Exception:
            logger.exception("client %s: the upgrade failed", self.peer)
            self.transport.abort()

    async def _open(self, request: Request, accept: str) -> None:
        gw = self.gateway
        identity = await gw.admit(request.headers, request.query)
        if self.lost or self.transport.is_closing():  # gone, or shut down meanwhile
            return
        if isinstance(identity, Denial):
            self._refuse(identity)
            return
        self.transport.write(switching_protocols(accept))
        if gw.at_capacity():
            self.blocked, self._no_wait = False, True
            self.send_close(CloseCode.TRY_AGAIN_LATER, "too many connections")
            return
        self.blocked = self._paused
        self.parser = FrameParser(gw.config.max_message_size)
        self.conn = gw.open(identity, self.peer, wire=self)
        self._ping_sent = asyncio.get_running_loop().time()
        self._schedule_ping(self._ping_sent + gw.config.ping_interval)
        self._admission = None

    # -- inbound -----------------------------------------------------------------------

    def _frames(self, frames: list[Any]) -> None:
        conn = self.conn
        if conn is None:
            return
        for frame in frames:
            if type(frame) is Message:
                self._message(conn, frame.payload)
            elif type(frame) is Ping:
                if not self.close_sent:
                    self.transport.write(pong_frame(frame.payload))
            elif type(frame) is Pong:
                self._waiting_pong = False
            elif type(frame) is CloseFrame:
                self.close_received = True
                if self.close_sent:
                    self.transport.close()
                else:  # echo the peer's code (RFC 6455 §5.5.1), after what is queued
                    conn.close(1000 if frame.code == 1005 else frame.code, "")
            elif type(frame) is Violation:
                logger.info("conn=%d protocol violation: %s", conn.id, frame.reason)
                self._no_wait = True  # the stream is unreadable now (RFC 6455 §7.1.7)
                conn.close(frame.code, frame.reason)

    def _message(self, conn: Connection, payload: bytes) -> None:
        actions = self.gateway.receive(conn, payload)
        if not actions:
            return
        if self._pending is not None:  # a subscribe ahead of it is still asking the log
            self._pending.append(actions)
            if len(self._pending) > _PENDING_LIMIT and not self._reading_paused:
                self._reading_paused = True
                self.transport.pause_reading()
            return
        rest = self.gateway.hub.apply_nowait(conn, actions)
        if rest:
            self._pending = deque([rest])
            self._applier = asyncio.get_running_loop().create_task(self._apply_pending(conn))

    async def _apply_pending(self, conn: Connection) -> None:
        pending = self._pending
        assert pending is not None
        try:
            while pending and not conn.closing:
                await self.gateway.hub.apply(conn, pending.popleft())
                if self._reading_paused and len(pending) <= _PENDING_LIMIT // 2 and not self.lost:
                    self._reading_paused = False
                    self.transport.resume_reading()
        except Exception:
            logger.exception("conn=%d failed to apply a message", conn.id)
            conn.close(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            self._pending = self._applier = None

    # -- heartbeat ---------------------------------------------------------------------

    def _schedule_ping(self, when: float) -> None:
        self._heartbeat = asyncio.get_running_loop().call_at(when, self._tick)

    def _tick(self) -> None:
        conn = self.conn
        if conn is None or self.close_sent:
            return
        config = self.gateway.config
        now = asyncio.get_running_loop().time()
        if self._waiting_pong:
            if now - self._ping_sent >= config.pong_wait:
                logger.info("conn=%d no pong within %.1fs: closing", conn.id, config.pong_wait)
                self._no_wait = True  # the peer is not answering: no close reply either
                conn.close(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
                return
        elif now - self._ping_sent >= config.ping_interval:
            # A socket that is not draining gets no ping (its pong could not come back in
            # time); SERVER_WRITE_TIMEOUT is what closes it if it stays stuck.
            self._ping_sent = now
            if not self.blocked:
                self.transport.write(ping_frame())
                self._waiting_pong = True
        next_at = self._ping_sent + config.ping_interval
        if self._waiting_pong:
            next_at = min(next_at, self._ping_sent + config.pong_wait)
        self._schedule_ping(next_at)
