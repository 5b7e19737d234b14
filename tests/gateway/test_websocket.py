"""flowwire's own WebSocket protocol (``gateway.websocket``) under real uvicorn, spoken to
by raw sockets where the test needs to send what a well-behaved client library would not,
and by the ``websockets`` library otherwise."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from gateway.websocket import WebSocketProtocol
from tests.support.clients import open_ws, recv_json, subscribe, token
from tests.support.inproc import Served, serve

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def upgrade_request(path: str = "/ws", *, tok: str | None = None, version: str = "13") -> bytes:
    return (
        f"GET {path}?token={tok or token()} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: {version}\r\n\r\n"
    ).encode()


def client_frame(opcode: Opcode, data: bytes) -> bytes:
    return Frame(opcode, data).serialize(mask=True)


async def read_head(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return int(head.split(b" ", 2)[1]), head


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One server frame (unmasked, as servers send them): ``(opcode, payload)``."""
    b0, b1 = await asyncio.wait_for(reader.readexactly(2), 5)
    assert not b1 & 0x80, "server frames are never masked"
    length = b1 & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    return b0 & 0x0F, await reader.readexactly(length)


async def raw_open(port: int, request: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    return reader, writer


async def test_refused_upgrades_get_http_errors_with_json() -> None:
    async with serve("memory") as gw:
        for request, status in [
            (upgrade_request("/nope"), 404),
            (upgrade_request(version="8"), 426),
            (upgrade_request(tok="not-a-token"), 401),
        ]:
            reader, writer = await raw_open(gw.port, request)
            code, head = await read_head(reader)
            body = json.loads(await asyncio.wait_for(reader.read(), 5))  # then the server closes
            writer.close()
            await writer.wait_closed()
            assert code == status, head
            assert set(body) == {"error", "code"}
            if status == 426:
                assert b"sec-websocket-version: 13" in head.lower()
        assert not gw.app.gateway.hub.connections


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (Frame(Opcode.TEXT, b'{"type":"ping"}').serialize(mask=False), 1002),  # unmasked
        (client_frame(Opcode.TEXT, b"\xff\xfe"), 1007),  # not UTF-8
        (client_frame(Opcode.TEXT, b"x" * 5000), 1009),  # over MAX_MESSAGE_SIZE
    ],
)
async def test_protocol_violations_close_with_their_code(frame: bytes, code: int) -> None:
    async with serve("memory", max_message_size=4096) as gw:
        reader, writer = await raw_open(gw.port, upgrade_request())
        assert (await read_head(reader))[0] == 101
        writer.write(frame)
        opcode, payload = await read_frame(reader)
        assert opcode == Opcode.CLOSE and int.from_bytes(payload[:2], "big") == code
        assert await asyncio.wait_for(reader.read(), 5) == b""  # and TCP is closed, no wait
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.05)
        assert not gw.app.gateway.hub.connections


async def test_fragments_pings_and_a_client_close() -> None:
    async with serve("memory") as gw, await open_ws(gw.url) as ws:
        await ws.send(iter(['{"type":', '"ping"}']))  # one message in two frames
        assert (await recv_json(ws))["type"] == "pong"
        pong = await ws.ping(b"heartbeat")
        await asyncio.wait_for(pong, 5)  # answered with the same payload
        await subscribe(ws, "executions")
        await asyncio.wait_for(ws.close(4000, "bye"), 5)  # the server answers the close
        assert ws.close_code == 4000
        await asyncio.sleep(0.05)
        assert not gw.app.gateway.hub.connections


async def test_server_heartbeat_keeps_an_answering_client() -> None:
    async with serve("memory", ping_interval=0.2, pong_timeout=0.4) as gw:
        reader, writer = await raw_open(gw.port, upgrade_request())
        assert (await read_head(reader))[0] == 101
        pings = 0
        while pings < 5:  # about a second: well past pong_wait (0.2 s) five times
            opcode, payload = await read_frame(reader)
            assert opcode == Opcode.PING
            pings += 1
            writer.write(client_frame(Opcode.PONG, payload))
        writer.write(client_frame(Opcode.TEXT, b'{"type":"ping"}'))
        assert json.loads((await read_frame(reader))[1])["type"] == "pong"
        assert len(gw.app.gateway.hub.connections) == 1
        writer.close()
        await writer.wait_closed()


async def test_idle_connections_hold_no_task() -> None:
    """The memory budget per connection (issue 7): an open, subscribed, idle connection
    is a protocol object, its Connection and Session, and nothing running (the ASGI path,
    ``WS_COMPRESSION=on``, holds a task per connection: this fails there)."""
    async with serve("memory") as gw:
        before = len(asyncio.all_tasks())
        clients = [await connect(f"{gw.url}?token={token()}", ping_interval=None) for _ in range(30)]
        for ws in clients:
            await subscribe(ws, "executions")
        await asyncio.sleep(0.1)  # let the handshakes' tasks end
        assert len(gw.app.gateway.hub.connections) == 30
        assert len(asyncio.all_tasks()) - before < 5
        assert all(c.direct for c in gw.app.gateway.hub.connections.values())
        for ws in clients:
            await ws.close()


async def test_server_shutdown_closes_with_1012() -> None:
    async with serve("memory") as gw:
        ws = await open_ws(gw.url)
        await subscribe(ws, "executions")
        protocols = [p for p in gw.app.gateway.hub.connections.values()]
        assert protocols
    with pytest.raises(ConnectionClosed):
        await recv_json(ws)
    assert ws.close_code == 1012


async def test_a_socket_that_takes_nothing_is_closed_after_the_write_timeout() -> None:
    """Not a full outbox this time: the socket stops taking data and stays so for
    SERVER_WRITE_TIMEOUT: 4008, counted, the socket aborted (its peer reads nothing)."""
    async with serve("memory", write_timeout=1.0, send_buffer=100_000) as gw:
        reader, writer = await raw_open(gw.port, upgrade_request())
        assert (await read_head(reader))[0] == 101
        writer.write(client_frame(Opcode.TEXT, b'{"type":"subscribe","data":{"channel":"executions"}}'))
        assert json.loads((await read_frame(reader))[1])["type"] == "subscribed"
        transport = writer.transport
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # the client reads no more
        await _flood_until_closed(gw)
        async with asyncio.timeout(5):  # aborted: no close handshake with a client that reads nothing
            while gw.app.gateway.hub.connections:
                await asyncio.sleep(0.05)
        writer.close()
        await writer.wait_closed()


async def test_the_asgi_path_closes_a_stalled_client_instead_of_skipping_events() -> None:
    """WS_COMPRESSION=on: a send that waits SERVER_WRITE_TIMEOUT closes with 4008; what
    it held is never silently skipped while the connection stays open."""
    async with serve("memory", write_timeout=1.0, send_buffer=100_000, compression=True) as gw:
        ws = await open_ws(gw.url, max_queue=1, max_size=None)
        await subscribe(ws, "executions")
        ws.transport.pause_reading()
        await _flood_until_closed(gw, random_blob=True)  # random: deflate cannot shrink it
        ws.transport.resume_reading()
        with pytest.raises(ConnectionClosed):
            while True:
                await recv_json(ws)
        assert ws.close_code == 4008


async def _flood_until_closed(gw: Served, *, random_blob: bool = False) -> None:
    blob = os.urandom(60_000).hex() if random_blob else "x" * 120_000
    big = {"execution_id": "e1", "workflow_id": "w", "status": "running", "context": {"blob": blob}}
    for _ in range(150):  # ~18 MB: more than the socket buffers on both sides hold
        await gw.append("execution.started", big)
    async with asyncio.timeout(20):
        while gw.app.gateway.stats.slow_consumer_closes < 1:
            await asyncio.sleep(0.05)
    assert gw.app.gateway.stats.slow_consumer_closes == 1


async def test_messages_behind_a_subscribe_that_asks_the_log_keep_their_order() -> None:
    """A subscribe with ``since`` waits for the log; the messages after it wait behind it
    (the socket stops being read past 32 of them) and are answered in order."""
    async with serve("memory", max_subscriptions=200) as gw:
        first = await gw.append(
            "execution.started", {"execution_id": "e0", "workflow_id": "w", "status": "running"}
        )
        reader, writer = await raw_open(gw.port, upgrade_request())
        assert (await read_head(reader))[0] == 101
        burst = b"".join(
            client_frame(Opcode.TEXT, json.dumps(msg).encode())
            for i in range(100)
            for msg in (
                {"type": "subscribe", "data": {"channel": f"executions:e{i}", "since": first}},
                {"type": "ping"},
            )
        )
        writer.write(burst)
        replies = []
        for _ in range(200):
            doc = json.loads((await read_frame(reader))[1])
            replies.append((doc["type"], doc["data"]["channel"] if doc["type"] == "subscribed" else None))
        assert replies == [
            r for i in range(100) for r in (("subscribed", f"executions:e{i}"), ("pong", None))
        ]
        writer.close()
        await writer.wait_closed()


def test_the_protocol_keeps_no_instance_dict() -> None:
    """``__slots__`` all the way up: an instance dict would cost ~100 bytes a connection."""
    assert not hasattr(WebSocketProtocol.__new__(WebSocketProtocol), "__dict__")
