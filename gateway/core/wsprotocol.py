"""One WebSocket connection's protocol state (RFC 6455 §5-§7), the server's side, sans I/O.

Theory of operation
-------------------
:class:`ServerProtocol` is what the shell (``gateway.websocket``) asks about everything
but the opening handshake (``gateway.core.handshake``) and flow control: bytes in
(:meth:`~ServerProtocol.receive_data`), events out (the messages, pongs and the peer's
close or violation it returns), bytes to send out (:meth:`~ServerProtocol.data_to_send`:
the pongs owed; :meth:`~ServerProtocol.send_close`: our close frame). The data messages
the server sends do not pass through it: an event's frame is built once and written to
every connection by ``gateway.connection`` (one ``transport.write`` per connection per batch).

Its whole state is one :class:`State`; every transition is in this module::

    OPEN ──peer's close, a violation, fail()──▶ CLOSE_RECEIVED ──send_close()──▶ CLOSED
      │                                                                         ▲
      └──send_close()──▶ CLOSE_SENT ──peer's close, or a violation──────────────┘

- Nothing after the peer's close frame (or a violation) is processed, not even the rest of
  the bytes that came with it (RFC 6455 §5.5.1, §7.1.7): no message, no pong.
- Pings are answered only while ``OPEN`` (§5.5.2: not once the peer's close came; and not
  after ours: §5.5.1). Pongs owed wait here until the shell can write; at most
  :data:`MAX_PONGS_OWED` of them, the most recent (§5.5.3 allows answering only the most
  recent ping), so a client that pings and never reads costs a bounded amount.
- ``CLOSED`` means both close frames are sent or the peer cannot be heard any more: the
  shell closes TCP (the server closes it first, §7.1.1).
"""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import Final

from gateway.core.frames import (
    CloseFrame,
    FrameParser,
    Message,
    Ping,
    Pong,
    Violation,
    close_frame,
    pong_frame,
)

__all__ = ["MAX_PONGS_OWED", "Event", "ServerProtocol", "State"]

#: Pongs that wait for the shell to write (it does not while the transport is paused).
MAX_PONGS_OWED: Final = 16

Event = Message | Pong | CloseFrame | Violation


class State(Enum):
    #: messages both ways
    OPEN = 1
    #: the peer's close came, or the connection failed (its violation, no answer to our
    #: pings): input is discarded; our close, once the server sends it, ends the connection
    CLOSE_RECEIVED = 2
    #: our close is sent: input is read only for the peer's close (or a timeout)
    CLOSE_SENT = 3
    #: both close frames are sent, or the peer cannot be heard any more: close TCP
    CLOSED = 4


class ServerProtocol:
    """``receive_data(bytes) -> [Message | Pong | CloseFrame | Violation]``, answering pings
    on its own; ``data_to_send()`` and ``send_close()`` give the bytes to write."""

    __slots__ = ("_pongs", "parser", "state")

    def __init__(self, max_size: int) -> None:
        self.state = State.OPEN
        self.parser = FrameParser(max_size)
        self._pongs: deque[bytes] | None = None  # created by the first ping

    def receive_data(self, data: bytes) -> list[Event]:
        """What the peer's ``data`` holds, up to its close frame or first violation."""
        state = self.state
        if state is not State.OPEN and state is not State.CLOSE_SENT:
            return []  # CLOSE_RECEIVED, CLOSED: the peer is done; nothing more counts
        events: list[Event] = []
        for frame in self.parser.feed(data):
            if isinstance(frame, CloseFrame | Violation):
                self.state = State.CLOSE_RECEIVED if state is State.OPEN else State.CLOSED
                events.append(frame)
                return events  # the rest of `data` is not processed (§5.5.1)
            if state is not State.OPEN:
                continue  # our close is sent: only the peer's close matters now
            if isinstance(frame, Ping):
                self._owe_pong(frame.payload)
            else:
                events.append(frame)
        return events

    def _owe_pong(self, payload: bytes) -> None:
        if self._pongs is None:
            self._pongs = deque(maxlen=MAX_PONGS_OWED)
        self._pongs.append(payload)

    def data_to_send(self) -> bytes:
        """The pongs owed, as frames; ``b""`` if none."""
        pongs = self._pongs
        if not pongs:
            return b""
        self._pongs = None
        if self.state is not State.OPEN:  # owed, but the peer closed meanwhile (§5.5.2)
            return b""
        return b"".join(map(pong_frame, pongs))

    def fail(self) -> None:
        """Hear nothing more from the peer (it stopped answering pings, or the server
        refuses it): our close, once sent, ends the connection (§7.1.7)."""
        if self.state is State.OPEN:
            self.state = State.CLOSE_RECEIVED
        elif self.state is State.CLOSE_SENT:
            self.state = State.CLOSED

    def send_close(self, code: int, reason: str = "") -> bytes:
        """Our close frame, after the pongs still owed (once: ``b""`` if it was sent already)."""
        owed = self.data_to_send()
        if self.state is State.OPEN:
            self.state = State.CLOSE_SENT
        elif self.state is State.CLOSE_RECEIVED:
            self.state = State.CLOSED
        else:
            return b""
        return owed + close_frame(code, reason)
