"""The WebSocket server side of a socket uvicorn upgraded, knowing nothing of the
gateway (the part the Autobahn|Testsuite run in ``tests/autobahn/`` serves an echo
handler on): the opening handshake, frames in and out through the sans-I/O
:class:`gateway.core.wsprotocol.ServerProtocol`, pongs, the close handshake and flow
control. Subclasses handle admission, messages and closes (:mod:`gateway.websocket`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar, Final, cast

from gateway.auth import Denial
from gateway.core.frames import CloseFrame, Message, Pong, Violation
from gateway.core.handshake import (
    HandshakeError,
    Headers,
    Request,
    check_upgrade,
    http_response,
    parse_request,
    switching_protocols,
)
from gateway.core.wsprotocol import Event, ServerProtocol, State

__all__ = ["WebSocketShell"]

logger = logging.getLogger("flowwire.websocket")

#: The states in which the server may still write (its close frame not sent yet).
_WRITING: Final = (State.OPEN, State.CLOSE_RECEIVED)


class WebSocketShell(asyncio.Protocol):
    """One client socket, from the upgrade request to ``connection_lost``: the handshake,
    frames in and control frames out, the close handshake and flow control. What to do
    with a connection is the subclass's (:meth:`admit`, :meth:`opened`,
    :meth:`message_received`, :meth:`closing`, ...)."""

    #: the one path upgraded (anything else: 404)
    path: ClassVar[str] = "/ws"

    __slots__ = (
        "_admission",
        "_close_timer",
        "_paused",
        "_registry",
        "_request",
        "_stall",
        "_writable",
        "blocked",
        "lost",
        "max_size",
        "peer",
        "transport",
        "write_timeout",
        "ws",
    )

    def __init__(self, *, max_size: int, write_timeout: float, registry: set[Any] | None = None) -> None:
        self.max_size = max_size
        self.write_timeout = write_timeout
        self._registry = registry  # uvicorn's open connections (its shutdown closes them)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.ws: ServerProtocol | None = None  # from the 101 on
        self.peer = "?"
        #: the hot path's one check: do not write (paused, closing, or gone)
        self.blocked = True
        self.lost = False
        self._paused = False
        self._request = b""
        self._admission: asyncio.Task[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._stall: asyncio.TimerHandle | None = None  # SERVER_WRITE_TIMEOUT while paused

    # -- what a subclass decides -------------------------------------------------------

    async def admit(self, request: Request) -> object:
        """Whether the upgrade goes ahead: a :class:`Denial`, or what :meth:`opened` gets."""
        return None

    def subprotocol(self, admitted: object) -> str | None:
        """The subprotocol the ``101`` names (``None``: none)."""
        return None

    def opened(self, admitted: object) -> None:
        """The ``101`` is sent: the connection is open."""

    def message_received(self, message: Message) -> None:
        """A whole data message (text already UTF-8 checked)."""

    def pong_received(self) -> None:
        """A pong (an answer to our ping, or unsolicited)."""

    def closing(self, code: int, reason: str, *, by_peer: bool) -> None:
        """The peer is done (``by_peer``: its close frame, ``code`` echoed; or a protocol
        violation, ``code`` the one to fail with): send what is owed, then
        :meth:`send_close`."""
        self.send_close(code, reason)

    def stalled(self) -> None:
        """The transport stayed paused for ``write_timeout``: it is aborted next."""

    def lost_connection(self) -> None:
        """The socket is gone."""

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.peer = f"{peer[0]}:{peer[1]}"
        if self._registry is not None:
            self._registry.add(self)

    def data_received(self, data: bytes) -> None:
        ws = self.ws
        if ws is not None:
            events = ws.receive_data(data)
            if not self._paused:
                owed = ws.data_to_send()
                if owed:
                    self.transport.write(owed)
            if events:
                self._events(ws, events)
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
        ws = self.ws
        if ws is not None and ws.state in _WRITING and self._stall is None:
            self._stall = asyncio.get_running_loop().call_later(self.write_timeout, self._stalled)

    def resume_writing(self) -> None:
        self._paused = False
        self._update_blocked()
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        if self.ws is not None and not self.lost:
            owed = self.ws.data_to_send()  # pongs held while paused
            if owed:
                self.transport.write(owed)
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = self.blocked = True
        for timer in (self._close_timer, self._stall):
            if timer is not None:
                timer.cancel()
        if self._admission is not None:
            self._admission.cancel()
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._registry is not None:
            self._registry.discard(self)
        self.lost_connection()

    def _update_blocked(self) -> None:
        ws = self.ws
        self.blocked = self._paused or self.lost or ws is None or ws.state not in _WRITING

    def _stalled(self) -> None:
        self._stall = None
        self.stalled()
        self.transport.abort()

    # -- uvicorn's server shutdown -----------------------------------------------------

    def shutdown(self) -> None:
        if self.ws is not None:
            self.send_close(1001, "server shutting down")
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
        ws = self.ws
        if self.lost or ws is None or ws.state not in _WRITING:
            raise ConnectionResetError("the WebSocket is closing")

    def send_close(self, code: int, reason: str) -> None:
        """Send the close frame (once); TCP closes when the client's close arrives (at
        once if it came already, or if the connection failed)."""
        ws = self.ws
        if ws is None or self.lost:
            return
        data = ws.send_close(code, reason)
        if not data:
            return
        self.blocked = True
        self.transport.write(data)
        if ws.state is State.CLOSED:
            self.transport.close()
        else:
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(self.write_timeout, self.transport.abort)

    # -- the opening handshake ---------------------------------------------------------

    def _handshake(self, data: bytes) -> None:
        self._request += data
        request = parse_request(self._request)
        if request is None:
            return
        self._request = b""
        if isinstance(request, Request) and request.path != self.path:
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
            admitted = await self.admit(request)
            if self.lost or self.transport.is_closing():  # gone, or shut down meanwhile
                return
            if isinstance(admitted, Denial):
                self._refuse(admitted)
                return
            self.transport.write(switching_protocols(accept, self.subprotocol(admitted)))
            self.ws = ServerProtocol(self.max_size)
            self._update_blocked()
            self.opened(admitted)
            self._admission = None
        except Exception:
            logger.exception("client %s: the upgrade failed", self.peer)
            self.transport.abort()

    # -- inbound -----------------------------------------------------------------------

    def _events(self, ws: ServerProtocol, events: list[Event]) -> None:
        for event in events:
            if type(event) is Message:
                self.message_received(event)
            elif type(event) is Pong:
                self.pong_received()
            elif ws.state is State.CLOSED:  # the reply to our close: the handshake is done
                if self._close_timer is not None:
                    self._close_timer.cancel()
                self.transport.close()
            elif type(event) is CloseFrame:  # echo the peer's code (RFC 6455 §5.5.1)
                self.closing(1000 if event.code == 1005 else event.code, "", by_peer=True)
            elif type(event) is Violation:  # the stream is unreadable now (§7.1.7)
                logger.info("client %s protocol violation: %s", self.peer, event.reason)
                self.closing(event.code, event.reason, by_peer=False)
