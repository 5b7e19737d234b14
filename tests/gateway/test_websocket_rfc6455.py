"""RFC 6455 rules of flowwire's own WebSocket code seen from a raw socket: the gateway's
``/ws`` (binary frames, frames after the client's close) and the shell under the echo
handler of the Autobahn run (pongs while the transport is paused). The whole of RFC 6455
is checked by Autobahn|Testsuite (``tests/autobahn/``); these pin the fixes in the shell."""

from __future__ import annotations

import asyncio

import pytest
from websockets.frames import Opcode

from gateway.core.wsprotocol import MAX_PONGS_OWED
from schemas.control import CloseCode
from tests.autobahn.echo_server import EchoProtocol
from tests.gateway.test_websocket import KEY, client_frame, raw_open, read_frame, read_head, upgrade_request
from tests.support.inproc import serve

CLOSE_1000 = client_frame(Opcode.CLOSE, (1000).to_bytes(2, "big"))


async def test_a_binary_frame_is_closed_with_1003_not_parsed_as_json() -> None:
    async with serve("memory") as gw:
        reader, writer = await raw_open(gw.port, upgrade_request())
        assert (await read_head(reader))[0] == 101
        writer.write(client_frame(Opcode.BINARY, b'{"type":"ping"}'))  # valid JSON, as binary
        opcode, payload = await read_frame(reader)
        assert opcode == Opcode.CLOSE, payload  # not a pong
        assert int.from_bytes(payload[:2], "big") == CloseCode.UNSUPPORTED_DATA
        assert b"JSON text" in payload[2:]
        writer.write(CLOSE_1000)  # the client answers; the server closes TCP
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.05)
        assert not gw.app.gateway.hub.connections


async def test_nothing_after_the_clients_close_is_answered() -> None:
    """Autobahn 7.1.3 and 7.1.4 against the gateway: a ping and a message in the same
    bytes as the close get no pong and no reply; the close is echoed and TCP closed."""
    async with serve("memory") as gw:
        reader, writer = await raw_open(gw.port, upgrade_request())
        assert (await read_head(reader))[0] == 101
        writer.write(
            client_frame(Opcode.CLOSE, (4000).to_bytes(2, "big"))
            + client_frame(Opcode.PING, b"after")
            + client_frame(Opcode.TEXT, b'{"type":"ping"}')
        )
        opcode, payload = await read_frame(reader)
        assert (opcode, payload) == (Opcode.CLOSE, (4000).to_bytes(2, "big"))
        assert await asyncio.wait_for(reader.read(), 5) == b""  # nothing else, then EOF
        writer.close()
        await writer.wait_closed()


async def test_pongs_wait_while_the_transport_is_paused() -> None:
    """A client that sends pings but reads nothing: while the server's transport is
    paused no pong is written; on resume, only the most recent ones (bounded)."""
    protocols: list[EchoProtocol] = []

    def factory() -> EchoProtocol:
        protocols.append(EchoProtocol())
        return protocols[-1]

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        request = (
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        reader, writer = await raw_open(port, request)
        assert (await read_head(reader))[0] == 101
        transport = writer.transport
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # the client reads nothing for now
        big = b"x" * (8 << 20)  # echoed: more than the kernel's buffers take (4 MiB here)
        writer.write(client_frame(Opcode.BINARY, big))
        await writer.drain()
        async with asyncio.timeout(10):
            while not protocols[0].blocked:
                await asyncio.sleep(0.01)  # the echo is written: the transport pauses
        pings = 200
        writer.write(b"".join(client_frame(Opcode.PING, i.to_bytes(2, "big")) for i in range(pings)))
        writer.write(client_frame(Opcode.TEXT, b"marker"))
        await writer.drain()
        await asyncio.sleep(0.2)  # the server reads them all while paused
        transport.resume_reading()
        assert await read_frame(reader) == (Opcode.BINARY, big)
        assert await read_frame(reader) == (Opcode.TEXT, b"marker")  # no pong came before it
        pongs = [await read_frame(reader) for _ in range(MAX_PONGS_OWED)]
        assert pongs == [(Opcode.PONG, i.to_bytes(2, "big")) for i in range(pings - MAX_PONGS_OWED, pings)]
        writer.write(CLOSE_1000)
        assert await read_frame(reader) == (Opcode.CLOSE, (1000).to_bytes(2, "big"))  # no more pongs
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()


async def test_a_binary_message_on_the_asgi_path_is_closed_with_1003() -> None:
    """WS_COMPRESSION=on (uvicorn's protocol, the ASGI path): the same rule."""
    from websockets.exceptions import ConnectionClosed

    from tests.support.clients import open_ws, token
    from tests.support.inproc import serve

    async with serve("memory", compression=True) as gw:
        ws = await open_ws(gw.url, token())
        await ws.send(b'{"type":"ping"}')
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1003
