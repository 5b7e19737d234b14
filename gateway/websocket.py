"""``/ws`` served by flowwire's own ``asyncio.Protocol``: the default WebSocket path.

Theory of operation
-------------------
uvicorn owns the listening socket and HTTP; when a request asks for an upgrade it hands
the transport to this protocol (uvicorn's ``ws`` protocol class, bound to the gateway by
:func:`protocol_factory`). From then on there is no ASGI, no task and no queue per
connection (the hot path is one ``transport.write`` per connection per batch):

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
client never answers. Nothing after the client's close frame is processed.

The protocol's state (open, close received, close sent, closed) is one enum in the
sans-I/O :class:`gateway.core.wsprotocol.ServerProtocol`; the shell only moves bytes and
runs timers. :class:`WebSocketShell` is the part that knows nothing of the gateway (the
handshake, frames, pongs, the close handshake, flow control); :class:`WebSocketProtocol`
adds the gateway (admission, the session, the heartbeat). The Autobahn|Testsuite run
(``tests/autobahn/``) serves an echo handler on the same shell.

Frame kinds: version 1 and ``flowwire.v2.json`` are JSON text, ``flowwire.v2.msgpack``
is msgpack binary; a frame of the other kind is answered with a close, 1003 (unsupported
data, RFC 6455 §7.4.1), never parsed. The subprotocol is selected by the gateway's
admission (``Gateway.admit``) and named in the ``101``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from gateway.auth import Admission
from gateway.core.frames import Message, ping_frame
from gateway.core.handshake import (
    Request,
)
from gateway.core.session import Action
from gateway.core.wsprotocol import State
from gateway.wsshell import WebSocketShell
from schemas.control import V2_MSGPACK, CloseCode

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.connection import Connection

__all__ = ["WebSocketProtocol", "WebSocketShell", "protocol_factory"]

# The shell knows nothing of the gateway (gateway.wsshell); the protocol adds it.

logger = logging.getLogger("flowwire.websocket")

#: Inbound messages waiting behind a subscribe that asks the log: above this, stop reading.
_PENDING_LIMIT: Final = 32
#: The states in which the server may still write (its close frame not sent yet).
_WRITING: Final = (State.OPEN, State.CLOSE_RECEIVED)


def protocol_factory(gateway: Gateway) -> Callable[..., WebSocketProtocol]:
    """uvicorn's ``ws`` setting: called with ``config``, ``server_state``, ``app_state``."""

    def factory(**kwargs: Any) -> WebSocketProtocol:
        state = kwargs.get("server_state")
        return WebSocketProtocol(gateway, state.connections if state is not None else None)

    return factory


class WebSocketProtocol(WebSocketShell):
    """The gateway's ``/ws``: a :class:`gateway.connection.Connection` per socket."""

    __slots__ = (
        "_applier",
        "_heartbeat",
        "_pending",
        "_ping_sent",
        "_reading_paused",
        "_waiting_pong",
        "conn",
        "gateway",
    )

    def __init__(self, gateway: Gateway, registry: set[Any] | None = None) -> None:
        config = gateway.config
        super().__init__(
            max_size=config.max_message_size, write_timeout=config.write_timeout, registry=registry
        )
        self.gateway = gateway
        self.conn: Connection | None = None
        self._pending: deque[list[Action]] | None = None  # behind a subscribe asking the log
        self._applier: asyncio.Task[None] | None = None  # works through _pending
        self._reading_paused = False
        self._heartbeat: asyncio.TimerHandle | None = None
        self._ping_sent = 0.0
        self._waiting_pong = False

    # -- the connection's life ---------------------------------------------------------

    async def admit(self, request: Request) -> object:
        return await self.gateway.admit(request.headers, request.query)

    def subprotocol(self, admitted: object) -> str | None:
        return admitted.protocol if isinstance(admitted, Admission) else None

    def opened(self, admitted: object) -> None:
        assert isinstance(admitted, Admission)
        gw = self.gateway
        if gw.at_capacity():
            assert self.ws is not None
            self.ws.fail()  # no close reply awaited
            self.send_close(CloseCode.TRY_AGAIN_LATER, "too many connections")
            return
        self.conn = gw.open(admitted, self.peer, wire=self)
        self._ping_sent = asyncio.get_running_loop().time()
        self._schedule_ping(self._ping_sent + gw.config.ping_interval)

    def closing(self, code: int, reason: str, *, by_peer: bool) -> None:
        if self.conn is not None:  # what is queued goes first, then the close frame
            self.conn.close(code, reason, by_peer=by_peer)

    def stalled(self) -> None:
        # SERVER_WRITE_TIMEOUT: the client took nothing for that long (what it is owed
        # waits in the transport or the outbox). It resumes from its last id.
        if self.conn is not None:
            self.conn.close(CloseCode.SLOW_CONSUMER, "slow consumer; resume from your last id")

    def lost_connection(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        conn = self.conn
        if conn is not None:
            self.gateway.disconnected(conn, conn.close_code or 1006)
            self.conn = None

    def shutdown(self) -> None:
        if self.conn is not None:
            self.conn.close(CloseCode.SERVICE_RESTART, "server shutting down")
        else:
            self.transport.close()

    # -- inbound -----------------------------------------------------------------------

    def pong_received(self) -> None:
        self._waiting_pong = False

    def message_received(self, message: Message) -> None:
        conn = self.conn
        if conn is None:
            return
        if message.text == (conn.session.protocol == V2_MSGPACK):  # the other kind: never parsed
            self.gateway.refused_frame(conn)
            return
        actions = self.gateway.receive(conn, message.payload)
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
        conn, ws = self.conn, self.ws
        if conn is None or ws is None or ws.state is not State.OPEN:
            return
        config = self.gateway.config
        now = asyncio.get_running_loop().time()
        if self._waiting_pong:
            if now - self._ping_sent >= config.pong_wait:
                logger.info("conn=%d no pong within %.1fs: closing", conn.id, config.pong_wait)
                ws.fail()  # the peer is not answering: no close reply awaited either
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
