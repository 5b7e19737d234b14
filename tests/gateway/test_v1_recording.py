"""An original client's session, recorded off the wire and compared with a golden one.

A client that offers no subprotocol gets exactly the original protocol, byte for byte
(docs/protocol.md, "Protocol versions"). This test speaks raw RFC 6455 over a TCP socket
(a fixed ``Sec-WebSocket-Key``, so the ``101`` is deterministic), runs a whole session
(connect, subscribe, events, ping/pong, errors, messages only version 2 knows,
unsubscribe, a binary frame and its 1003 close) on both upgrade paths, and compares every
byte the server sent with ``golden/v1_session_<path>.txt``. Only what differs between
runs is normalised: timestamps, stream ids and the ASGI server's ``date`` header.

The golden files were recorded from the gateway before protocol version 2 existed.
Set ``FLOWWIRE_RECORD_GOLDEN=1`` to record them again (only when the v1 protocol is
meant to change, which it is not).
"""

from __future__ import annotations

import asyncio
import os
import re
import struct
from pathlib import Path

import pytest

from tests.support.clients import token
from tests.support.inproc import serve

GOLDEN = Path(__file__).parent / "golden"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's sample key: the 101 is deterministic

_NORMALISE = (
    (re.compile(rb'"timestamp":"[^"]*"'), b'"timestamp":"<T>"'),
    (re.compile(rb'"(id|position)":"\d+-\d+"'), rb'"\1":"<ID>"'),
    (re.compile(rb"(?im)^date: .*$"), b"date: <DATE>"),
)


def normalise(data: bytes) -> bytes:
    for pattern, repl in _NORMALISE:
        data = pattern.sub(repl, data)
    return data


def masked(opcode: int, payload: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    head = bytes([0x80 | opcode])
    n = len(payload)
    head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.record: list[bytes] = []

    @classmethod
    async def connect(cls, port: int, tok: str) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            (
                f"GET /ws?token={tok} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        client = cls(reader, writer)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        client.record.append(b"HTTP " + normalise(head))
        return client

    def send(self, text: bytes, opcode: int = 1) -> None:
        self.writer.write(masked(opcode, text))

    async def frame(self) -> tuple[int, bytes]:
        """One server frame, recorded as its header byte, its length and its payload."""
        async with asyncio.timeout(5):
            b0, b1 = await self.reader.readexactly(2)
            n = b1 & 0x7F
            ext = b""
            if n == 126:
                ext = await self.reader.readexactly(2)
                n = struct.unpack("!H", ext)[0]
            elif n == 127:
                ext = await self.reader.readexactly(8)
                n = struct.unpack("!Q", ext)[0]
            payload = await self.reader.readexactly(n)
        assert not b1 & 0x80, "server frames are unmasked"
        self.record.append(b"FRAME %02x %s" % (b0, normalise(payload)))
        return b0 & 0x0F, payload

    async def until(self, needle: bytes) -> bytes:
        while True:
            _, payload = await self.frame()
            if needle in payload:
                return payload


async def session(path: str) -> bytes:
    async with serve("memory", compression=(path == "asgi")) as gw:
        c = await RawClient.connect(gw.port, token("alice"))
        c.send(b'{"type":"subscribe","data":{"channel":"executions","filters":{"statuses":["running"]}}}')
        await c.until(b'"subscribed"')
        events = (("e1", "wf-1", "running"), ("e1", "wf-1", "failed"), ("e2", "wf-2", "running"))
        for eid, wf, status in events:
            kind = "execution.started" if status == "running" else "execution.failed"
            await gw.append(kind, {"execution_id": eid, "workflow_id": wf, "status": status})
        await c.until(b'"e2"')
        for message in (
            b'{"type":"ping","timestamp":"not a time"}',
            b"not json",
            b'{"type":"subscribe","data":{"channel":"nope"}}',
            b'{"type":"hello","data":{"features":["token_refresh"]}}',
            b'{"type":"refresh","data":{"token":"x"}}',
            b'{"type":"unsubscribe","data":{"channel":"executions"}}',
            b'{"type":"ping"}',
        ):
            c.send(message)
            await c.frame()
        c.send(b"\x81\xa4type\xa4ping", opcode=2)  # binary (msgpack): not part of version 1
        opcode, payload = await c.frame()
        assert opcode == 8 and payload[:2] == struct.pack("!H", 1003)
        c.writer.close()
        return b"\n".join(c.record) + b"\n"


@pytest.mark.parametrize("path", ["direct", "asgi"])
async def test_an_original_clients_session_is_byte_for_byte_todays(path: str) -> None:
    recorded = await session(path)
    golden = GOLDEN / f"v1_session_{path}.txt"
    if os.environ.get("FLOWWIRE_RECORD_GOLDEN") == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_bytes(recorded)
    assert recorded == golden.read_bytes()
