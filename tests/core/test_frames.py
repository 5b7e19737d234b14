"""RFC 6455 framing, without an event loop: flowwire's parser against frames built by an
independent implementation (the ``websockets`` library's), split at every kind of
boundary; and flowwire's server frames read back by that library's parser."""

from __future__ import annotations

from collections.abc import Generator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode
from websockets.streams import StreamReader

from gateway.core.frames import (
    CloseFrame,
    FrameParser,
    Message,
    Ping,
    Pong,
    Violation,
    binary_frame,
    close_frame,
    ping_frame,
    pong_frame,
    text_frame,
)


def masked(opcode: Opcode, data: bytes, *, fin: bool = True) -> bytes:
    return WsFrame(opcode, data, fin=fin).serialize(mask=True)


def forged(first: int, data: bytes) -> bytes:
    """A frame ``websockets`` refuses to build: first byte as given, masked with zeros."""
    assert len(data) < 65536
    length = bytes((0x80 | len(data),)) if len(data) < 126 else b"\xfe" + len(data).to_bytes(2, "big")
    return bytes((first,)) + length + b"\0\0\0\0" + data


def feed_in_pieces(parser: FrameParser, stream: bytes, cuts: list[int]) -> list[object]:
    out: list[object] = []
    last = 0
    for cut in [*sorted({c % (len(stream) + 1) for c in cuts}), len(stream)]:
        out += parser.feed(stream[last:cut])
        last = cut
    return out


# A message is a list of fragments (text or binary); pings and pongs may come between
# the fragments (RFC 6455 §5.4 allows control frames in the middle of a message).
messages = st.lists(
    st.tuples(
        st.booleans(),
        st.lists(st.text(max_size=300), min_size=1, max_size=4),
        st.lists(st.binary(max_size=125), max_size=2),
    ),
    max_size=6,
)


@given(messages, st.lists(st.integers(min_value=0, max_value=10_000), max_size=20))
def test_messages_survive_any_split(msgs: list[tuple[bool, list[str], list[bytes]]], cuts: list[int]) -> None:
    stream = b""
    expected: list[object] = []
    for text, parts, pings in msgs:
        chunks = [p.encode() for p in parts]
        if not text:  # binary: a text's bytes cut anywhere are fine
            chunks = [c[::-1] for c in chunks]
        message = Message(b"".join(chunks), text)
        for i, chunk in enumerate(chunks):
            opcode = (Opcode.TEXT if text else Opcode.BINARY) if i == 0 else Opcode.CONT
            stream += masked(opcode, chunk, fin=i == len(chunks) - 1)
            if i == len(chunks) - 1:
                expected.append(message)
            if i == 0:
                for ping in pings:
                    stream += masked(Opcode.PING, ping)
                    expected.append(Ping(ping))
    stream += masked(Opcode.PONG, b"p") + masked(Opcode.CLOSE, (4000).to_bytes(2, "big") + "bye ✓".encode())
    expected += [Pong(b"p"), CloseFrame(4000, "bye ✓")]
    parser = FrameParser(max_size=1 << 20)
    assert feed_in_pieces(parser, stream, cuts) == expected
    assert parser.done  # the close is the last frame


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 200_000])
def test_every_length_encoding(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert FrameParser(1 << 20).feed(masked(Opcode.BINARY, payload)) == [Message(payload, False)]


@pytest.mark.parametrize(
    ("stream", "code", "reason"),
    [
        (WsFrame(Opcode.TEXT, b"x").serialize(mask=False), 1002, "masked"),
        (forged(0x81 | 0x40, b"x"), 1002, "reserved"),
        (forged(0x83, b"x"), 1002, "unknown opcode"),
        (forged(0x8B, b"x"), 1002, "unknown opcode"),
        (forged(0x09, b"x"), 1002, "fragmented control"),
        (forged(0x89, b"x" * 126), 1002, "125"),
        (masked(Opcode.CONT, b"x"), 1002, "continuation"),
        (masked(Opcode.TEXT, b"a", fin=False) + masked(Opcode.TEXT, b"b"), 1002, "inside a fragmented"),
        (masked(Opcode.TEXT, b"\xff\xfe"), 1007, "UTF-8"),
        (masked(Opcode.TEXT, "é".encode()[:1], fin=False) + masked(Opcode.CONT, b"\x00"), 1007, "UTF-8"),
        (forged(0x88, b"\x03"), 1002, "one byte"),
        (forged(0x88, (1005).to_bytes(2, "big")), 1002, "invalid close code 1005"),
        (forged(0x88, (2999).to_bytes(2, "big")), 1002, "invalid close code"),
        (forged(0x88, (1000).to_bytes(2, "big") + b"\xff"), 1007, "UTF-8"),
    ],
)
def test_violations(stream: bytes, code: int, reason: str) -> None:
    parser = FrameParser(max_size=1024)
    frames = parser.feed(masked(Opcode.PING, b"before") + stream + masked(Opcode.PING, b"after"))
    assert frames[0] == Ping(b"before")  # what came before the violation is kept
    [violation] = frames[1:]
    assert isinstance(violation, Violation)
    assert violation.code == code and reason in violation.reason
    assert parser.done
    assert parser.feed(masked(Opcode.PING, b"more")) == []  # nothing after it


def test_a_message_too_large_is_refused_from_its_header() -> None:
    """1009 as soon as the length is known: none of the payload is waited for."""
    parser = FrameParser(max_size=1000)
    header = masked(Opcode.TEXT, b"x" * 2000)[:8]  # 2 + 2 (length) + 4 (mask)
    assert parser.feed(header[:4]) == [Violation(1009, "message larger than 1000 bytes")]
    # Fragments count together.
    parser = FrameParser(max_size=1000)
    frames = parser.feed(masked(Opcode.TEXT, b"x" * 600, fin=False) + masked(Opcode.CONT, b"x" * 600)[:4])
    assert frames == [Violation(1009, "message larger than 1000 bytes")]
    # At the limit exactly: fine.
    assert FrameParser(max_size=1000).feed(masked(Opcode.TEXT, b"x" * 1000)) == [Message(b"x" * 1000, True)]


def test_a_close_without_a_code_is_1005() -> None:
    assert FrameParser(10).feed(masked(Opcode.CLOSE, b"")) == [CloseFrame(1005, "")]


def test_nothing_after_a_close_frame_is_parsed() -> None:
    """RFC 6455 §5.5.1: the close is the peer's last frame. What follows it in the same
    bytes (a ping: Autobahn 7.1.3; a message: 7.1.4; a second close: 7.1.2) is not
    returned, and nothing fed later is."""
    close = masked(Opcode.CLOSE, (1000).to_bytes(2, "big"))
    parser = FrameParser(1024)
    after = masked(Opcode.PING, b"p") + masked(Opcode.TEXT, b"t") + close
    assert parser.feed(masked(Opcode.TEXT, b"before") + close + after) == [
        Message(b"before", True),
        CloseFrame(1000, ""),
    ]
    assert parser.done
    assert parser.feed(masked(Opcode.PING, b"later")) == []


def test_a_close_in_the_middle_of_a_fragmented_message_ends_it() -> None:
    """Autobahn 7.1.5: a fragment, a close, the last fragment: the message never completes."""
    parser = FrameParser(1024)
    stream = (
        masked(Opcode.TEXT, b"frag1", fin=False)
        + masked(Opcode.CLOSE, (1000).to_bytes(2, "big"))
        + masked(Opcode.CONT, b"frag2")
    )
    assert feed_in_pieces(parser, stream, [3, 12, 20]) == [CloseFrame(1000, "")]


def read_back(data: bytes) -> WsFrame:
    reader = StreamReader()
    reader.feed_data(data)
    gen: Generator[None, None, WsFrame] = WsFrame.parse(reader.read_exact, mask=False)
    try:
        next(gen)
    except StopIteration as done:
        frame: WsFrame = done.value
        assert not reader.buffer  # all of it, nothing more
        return frame
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536])
def test_server_frames_read_back(size: int) -> None:
    payload = b"a" * size
    frame = read_back(text_frame(payload))
    assert (frame.opcode, frame.data, frame.fin) == (Opcode.TEXT, payload, True)
    assert (read_back(binary_frame(payload)).opcode, read_back(binary_frame(payload)).data) == (
        Opcode.BINARY,
        payload,
    )
    assert read_back(ping_frame(b"hb")).opcode == Opcode.PING
    assert read_back(pong_frame(b"hb")).data == b"hb"


@given(st.integers(min_value=1000, max_value=4999), st.text(max_size=200))
def test_close_frames_fit_and_stay_utf8(code: int, reason: str) -> None:
    frame = read_back(close_frame(code, reason))
    assert frame.opcode == Opcode.CLOSE and len(frame.data) <= 125
    data = bytes(frame.data)
    assert int.from_bytes(data[:2], "big") == code
    assert reason.encode().startswith(data[2:])
    data[2:].decode()  # never cut inside a character
