"""WebSocket framing (RFC 6455 §5), the server's side, sans I/O.

:class:`FrameParser` turns the bytes a client sends into whole messages and control
frames; the ``*_frame`` functions build what the server sends. Server frames are never
masked (§5.1), so an event's frame is built once and the same bytes are written to every
client that gets it (encoded once per event).

The parser enforces what a server must (§5.1-§5.5, §7.4, §8.1): client frames masked,
no reserved bits (flowwire negotiates no extension on this path), known opcodes, control
frames final and at most 125 bytes, continuation frames only inside a fragmented message,
text messages valid UTF-8, close codes valid, and a message size limit checked from the
frame header, before any of an oversized payload is buffered. A violation is reported
once, as :class:`Violation` with the close code to send (1002, 1007 or 1009). The parser
takes nothing after a violation or a close frame (RFC 6455 §5.5.1: the close is the last
frame a peer sends), not even the rest of the bytes that came with it.

The connection's state around the parser (open, closing, closed) is
``gateway.core.wsprotocol``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "CloseFrame",
    "FrameParser",
    "Message",
    "Ping",
    "Pong",
    "Violation",
    "binary_frame",
    "close_frame",
    "ping_frame",
    "pong_frame",
    "text_frame",
]

OP_CONTINUATION: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA

# Close codes a peer may send (RFC 6455 §7.4.1, IANA registry; 3000-4999 for
# libraries and applications). 1005, 1006 and 1015 are never sent on the wire.
_VALID_CLOSE_CODES: Final = frozenset(
    (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014)
)


@dataclass(frozen=True, slots=True)
class Message:
    """A whole data message (its fragments joined); ``text`` is already UTF-8 checked."""

    payload: bytes
    text: bool


@dataclass(frozen=True, slots=True)
class Ping:
    payload: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    payload: bytes


@dataclass(frozen=True, slots=True)
class CloseFrame:
    """The peer's close frame; ``code`` 1005 when it carried none."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Violation:
    """The peer broke the protocol: close with ``code`` (1002, 1007 or 1009)."""

    code: int
    reason: str


Frame = Message | Ping | Pong | CloseFrame | Violation


def _unmask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    if not n:
        return b""
    # XOR as one big integer: C speed, no per-byte Python loop.
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def _close_payload(payload: bytes) -> CloseFrame | Violation:
    if not payload:
        return CloseFrame(1005, "")
    if len(payload) == 1:
        return Violation(1002, "close frame payload of one byte")
    code = int.from_bytes(payload[:2], "big")
    if code not in _VALID_CLOSE_CODES and not 3000 <= code <= 4999:
        return Violation(1002, f"invalid close code {code}")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        return Violation(1007, "close reason is not valid UTF-8")
    return CloseFrame(code, reason)


class FrameParser:
    """Bytes in, frames out: ``feed(data) -> [Message | Ping | Pong | CloseFrame | Violation]``.

    Holds only an unfinished frame and an unfinished fragmented message between calls
    (nothing for an idle connection). ``done`` once a close frame or a violation came.
    """

    __slots__ = ("_buffer", "_fragments", "_fragments_size", "_text", "done", "max_size")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.done = False
        self._buffer = b""
        self._fragments: list[bytes] | None = None
        self._fragments_size = 0
        self._text = False

    def feed(self, data: bytes) -> list[Frame]:
        if self.done:
            return []
        if self._buffer:
            data = self._buffer + data
        frames: list[Frame] = []
        pos, end = 0, len(data)
        while end - pos >= 2:
            b0, b1 = data[pos], data[pos + 1]
            length = b1 & 0x7F
            header = 2
            if length == 126:
                if end - pos < 4:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
                header = 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                header = 10
            problem = self._check_header(b0, b1, length)
            if problem is not None:
                return self._end(frames, problem)
            if end - pos < header + 4 + length:
                break
            start = pos + header + 4
            payload = _unmask(data[start : start + length], data[pos + header : start])
            pos = start + length
            frame = self._frame(b0 & 0x0F, bool(b0 & 0x80), payload)
            if isinstance(frame, Violation | CloseFrame):
                return self._end(frames, frame)
            if frame is not None:
                frames.append(frame)
        self._buffer = data[pos:]
        return frames

    def _check_header(self, b0: int, b1: int, length: int) -> Violation | None:
        opcode = b0 & 0x0F
        if b0 & 0x70:
            return Violation(1002, "reserved bits set")
        if not b1 & 0x80:
            return Violation(1002, "client frames must be masked")
        if opcode >= OP_CLOSE:
            if opcode > OP_PONG:
                return Violation(1002, f"unknown opcode {opcode:#x}")
            if not b0 & 0x80:
                return Violation(1002, "fragmented control frame")
            if length > 125:
                return Violation(1002, "control frame longer than 125 bytes")
            return None
        if opcode > OP_BINARY:
            return Violation(1002, f"unknown opcode {opcode:#x}")
        if self._fragments_size + length > self.max_size:
            return Violation(1009, f"message larger than {self.max_size} bytes")
        return None

    def _frame(self, opcode: int, fin: bool, payload: bytes) -> Frame | None:
        if opcode == OP_PING:
            return Ping(payload)
        if opcode == OP_PONG:
            return Pong(payload)
        if opcode == OP_CLOSE:
            return _close_payload(payload)
        if opcode == OP_CONTINUATION:
            if self._fragments is None:
                return Violation(1002, "continuation frame without a message to continue")
            self._fragments.append(payload)
            self._fragments_size += len(payload)
            if not fin:
                return None
            payload = b"".join(self._fragments)
            self._fragments, self._fragments_size = None, 0
            return self._message(payload, self._text)
        if self._fragments is not None:
            return Violation(1002, "new message inside a fragmented one")
        if not fin:
            self._fragments, self._fragments_size, self._text = [payload], len(payload), opcode == OP_TEXT
            return None
        return self._message(payload, opcode == OP_TEXT)

    @staticmethod
    def _message(payload: bytes, text: bool) -> Message | Violation:
        if text:
            try:
                payload.decode()
            except UnicodeDecodeError:
                return Violation(1007, "text message is not valid UTF-8")
        return Message(payload, text)

    def _end(self, frames: list[Frame], last: Violation | CloseFrame) -> list[Frame]:
        self.done = True
        self._buffer = b""
        self._fragments = None
        frames.append(last)
        return frames


def _frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    first = 0x80 | opcode
    if n < 126:
        return bytes((first, n)) + payload
    if n < 65536:
        return bytes((first, 126)) + n.to_bytes(2, "big") + payload
    return bytes((first, 127)) + n.to_bytes(8, "big") + payload


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final text frame around ``payload`` (already UTF-8 JSON)."""
    return _frame(OP_TEXT, payload)


def binary_frame(payload: bytes) -> bytes:
    """An unmasked, final binary frame (flowwire's protocol sends none; the echo test does)."""
    return _frame(OP_BINARY, payload)


def ping_frame(payload: bytes = b"") -> bytes:
    return _frame(OP_PING, payload)


def pong_frame(payload: bytes) -> bytes:
    return _frame(OP_PONG, payload)


def close_frame(code: int, reason: str = "") -> bytes:
    """A close frame; the reason is cut to fit the 125-byte control frame limit."""
    encoded = reason.encode()[:123]
    while True:  # never cut a UTF-8 sequence in half
        try:
            encoded.decode()
            break
        except UnicodeDecodeError:
            encoded = encoded[:-1]
    return _frame(OP_CLOSE, code.to_bytes(2, "big") + encoded)
