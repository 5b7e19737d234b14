"""The WebSocket protocol object (``gateway.core.wsprotocol``), without an event loop:
every (state, input) pair against the transition table, random sequences against a
reference model, and the RFC 6455 rules Autobahn|Testsuite checks from outside."""

from __future__ import annotations

from collections.abc import Callable, Generator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode
from websockets.streams import StreamReader

from gateway.core.frames import CloseFrame, Message, Pong, Violation
from gateway.core.wsprotocol import MAX_PONGS_OWED, ServerProtocol, State


def masked(opcode: Opcode, data: bytes = b"", *, fin: bool = True) -> bytes:
    return WsFrame(opcode, data, fin=fin).serialize(mask=True)


CLOSE = masked(Opcode.CLOSE, (1000).to_bytes(2, "big"))
UNMASKED = WsFrame(Opcode.TEXT, b"x").serialize(mask=False)  # a violation (1002)


def server_frames(data: bytes) -> list[tuple[Opcode, bytes]]:
    """What the server wrote, read back by an independent parser."""
    reader = StreamReader()
    reader.feed_data(data)
    out: list[tuple[Opcode, bytes]] = []
    while reader.buffer:
        gen: Generator[None, None, WsFrame] = WsFrame.parse(reader.read_exact, mask=False)
        try:
            next(gen)
        except StopIteration as done:
            out.append((done.value.opcode, bytes(done.value.data)))
        else:
            raise AssertionError("incomplete frame")
    return out


def state_of(ws: ServerProtocol) -> State:
    return ws.state  # (read through a call: mypy keeps no narrowing across it)


def in_state(state: State) -> ServerProtocol:
    ws = ServerProtocol(1024)
    if state is State.CLOSE_RECEIVED:
        ws.receive_data(CLOSE)
    elif state is State.CLOSE_SENT:
        ws.send_close(1000)
    elif state is State.CLOSED:
        ws.send_close(1000)
        ws.receive_data(CLOSE)
    assert ws.state is state
    return ws


Input = Callable[[ServerProtocol], object]
INPUTS: dict[str, Input] = {
    "text": lambda ws: ws.receive_data(masked(Opcode.TEXT, b"t")),
    "ping": lambda ws: ws.receive_data(masked(Opcode.PING, b"p")),
    "pong": lambda ws: ws.receive_data(masked(Opcode.PONG, b"p")),
    "close": lambda ws: ws.receive_data(CLOSE),
    "violation": lambda ws: ws.receive_data(UNMASKED),
    "send_close": lambda ws: ws.send_close(1000),
    "fail": lambda ws: ws.fail(),
}
OP, CR, CS, CL = State.OPEN, State.CLOSE_RECEIVED, State.CLOSE_SENT, State.CLOSED
#: state -> input -> next state (the module docstring's diagram)
TRANSITIONS: dict[State, dict[str, State]] = {
    OP: {"text": OP, "ping": OP, "pong": OP, "close": CR, "violation": CR, "send_close": CS, "fail": CR},
    CR: {"text": CR, "ping": CR, "pong": CR, "close": CR, "violation": CR, "send_close": CL, "fail": CR},
    CS: {"text": CS, "ping": CS, "pong": CS, "close": CL, "violation": CL, "send_close": CS, "fail": CL},
    CL: {"text": CL, "ping": CL, "pong": CL, "close": CL, "violation": CL, "send_close": CL, "fail": CL},
}


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("name", list(INPUTS))
def test_every_state_and_input(state: State, name: str) -> None:
    ws = in_state(state)
    result = INPUTS[name](ws)
    assert ws.state is TRANSITIONS[state][name]
    if isinstance(result, list):  # what receive_data reports
        expected: dict[str, list[object]] = {
            "text": [Message(b"t", True)] if state is OP else [],
            "ping": [],  # answered, not reported
            "pong": [Pong(b"p")] if state is OP else [],
            "close": [CloseFrame(1000, "")] if state in (OP, CS) else [],
            "violation": [Violation(1002, "client frames must be masked")] if state in (OP, CS) else [],
        }
        assert result == expected[name]
    if name == "send_close":  # one close frame, the first time only
        assert result == (b"\x88\x02\x03\xe8" if state in (OP, CR) else b"")
    # A pong is owed only for a ping that came while open.
    assert ws.data_to_send() == (b"\x8a\x01p" if (state, name) == (OP, "ping") else b"")


def test_nothing_after_the_peers_close_is_processed() -> None:
    """Autobahn 7.1.3 (a ping after the close is not answered), 7.1.4 (nor a message),
    7.1.2 (nor a second close), even when they come in the same bytes as the close."""
    ws = ServerProtocol(1024)
    events = ws.receive_data(
        masked(Opcode.TEXT, b"hi") + CLOSE + masked(Opcode.PING, b"p") + masked(Opcode.TEXT, b"t") + CLOSE
    )
    assert events == [Message(b"hi", True), CloseFrame(1000, "")]
    assert ws.state is State.CLOSE_RECEIVED
    assert ws.data_to_send() == b""  # no pong
    assert ws.receive_data(masked(Opcode.PING, b"later")) == []
    assert server_frames(ws.send_close(1000)) == [(Opcode.CLOSE, b"\x03\xe8")]
    assert state_of(ws) is State.CLOSED


def test_a_close_in_the_middle_of_a_fragmented_message() -> None:
    """Autobahn 7.1.5: fragment 1, close, fragment 2: the message is never delivered."""
    ws = ServerProtocol(1024)
    assert ws.receive_data(masked(Opcode.TEXT, b"frag1", fin=False)) == []
    assert ws.receive_data(CLOSE + masked(Opcode.CONT, b"frag2")) == [CloseFrame(1000, "")]
    assert ws.receive_data(masked(Opcode.CONT, b"frag3")) == []


def test_pings_are_answered_in_order() -> None:
    ws = ServerProtocol(1024)
    ws.receive_data(b"".join(masked(Opcode.PING, bytes([i])) for i in range(10)))  # Autobahn 2.10
    assert server_frames(ws.data_to_send()) == [(Opcode.PONG, bytes([i])) for i in range(10)]
    assert ws.data_to_send() == b""


def test_pongs_owed_are_bounded() -> None:
    """A client that pings while the server cannot write (its transport paused) is owed
    only the most recent pongs (RFC 6455 §5.5.3), not one per ping."""
    ws = ServerProtocol(1024)
    for i in range(1000):
        ws.receive_data(masked(Opcode.PING, i.to_bytes(2, "big")))
    pongs = server_frames(ws.data_to_send())
    assert pongs == [(Opcode.PONG, i.to_bytes(2, "big")) for i in range(1000 - MAX_PONGS_OWED, 1000)]


def test_our_close_goes_after_the_pongs_owed_and_ends_pongs() -> None:
    ws = ServerProtocol(1024)
    ws.receive_data(masked(Opcode.PING, b"a"))
    assert server_frames(ws.send_close(1001, "bye")) == [(Opcode.PONG, b"a"), (Opcode.CLOSE, b"\x03\xe9bye")]
    assert ws.receive_data(masked(Opcode.PING, b"b") + masked(Opcode.TEXT, b"t")) == []
    assert ws.data_to_send() == b""  # nothing is sent after our close
    assert ws.receive_data(CLOSE) == [CloseFrame(1000, "")]
    assert ws.state is State.CLOSED


# -- random sequences against a reference model ------------------------------------------


@given(st.lists(st.sampled_from(list(INPUTS)), max_size=12))
def test_random_sequences_follow_the_table(names: list[str]) -> None:
    ws = ServerProtocol(1024)
    state = State.OPEN
    for name in names:
        INPUTS[name](ws)
        state = TRANSITIONS[state][name]
        assert ws.state is state
