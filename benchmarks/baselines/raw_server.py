"""Baseline 1, the raw limit: the least a Python server can do per delivery.

uvloop, one ``asyncio.Protocol`` per connection, a minimal WebSocket handshake, no
authentication, no matching, no flow control. Events come the way flowwire gets them:
one ``XREAD BLOCK`` loop on the same Redis stream (``--count`` entries per read). Each
event's frame is built once; then, for every client, ``transport.write`` of that
pre-built frame: one write per client per event (``--per-write 1``), or one write per
client per 10 events (``--per-write 10``).

    python -m benchmarks.baselines.raw_server --port P --redis URL [--per-write 10] [--count 500]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import signal
from collections.abc import Sequence
from typing import Any, cast

import redis.asyncio as aioredis
import uvloop

from schemas.codec import rfc3339_from_ms

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


_SUBSCRIBED = ws_frame(b'{"type":"subscribed","data":{"channel":"executions"}}')


class Client(asyncio.Protocol):
    def __init__(self, clients: dict[Client, None]) -> None:
        self.clients = clients
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.upgraded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.clients.pop(self, None)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            key = b""
            for line in self.buf[:end].split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"sec-websocket-key":
                    key = value.strip()
            accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            self.upgraded = True
            self.buf = self.buf[end + 4 :]
        self._frames()

    def _frames(self) -> None:
        assert self.transport is not None
        buf = self.buf
        while len(buf) >= 2:
            opcode, n, head = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, head = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, head = int.from_bytes(buf[2:10], "big"), 10
            head += 4 if buf[1] & 0x80 else 0
            if len(buf) < head + n:
                break
            buf = buf[head + n :]
            if opcode == 0x1:  # any text message is taken as "subscribe executions"
                self.transport.write(_SUBSCRIBED)
                self.clients[self] = None
            elif opcode == 0x8:
                self.clients.pop(self, None)
                self.transport.close()
                return
        self.buf = buf


async def reader(clients: dict[Client, None], url: str, key: str, count: int, per_write: int) -> None:
    r: Any = aioredis.Redis.from_url(url)
    last = b"0-0"
    newest = await r.xrevrange(key, count=1)
    if newest:
        last = newest[0][0]
    while True:
        reply = await r.xread({key: last}, count=count, block=1000)
        if not reply:
            continue
        frames = []
        for entry_id, fields in reply[0][1]:
            ts = fields.get(b"ts") or rfc3339_from_ms(int(entry_id.split(b"-")[0])).encode()
            frames.append(
                ws_frame(
                    b'{"type":"'
                    + fields[b"type"]
                    + b'","timestamp":"'
                    + ts
                    + b'","id":"'
                    + entry_id
                    + b'","data":'
                    + fields[b"data"]
                    + b"}"
                )
            )
            last = entry_id
        targets = [c.transport for c in clients if c.transport is not None]
        if per_write == 1:
            for frame in frames:
                for transport in targets:
                    transport.write(frame)
        else:
            for i in range(0, len(frames), per_write):
                chunk = b"".join(frames[i : i + per_write])
                for transport in targets:
                    transport.write(chunk)


async def serve(port: int, url: str, key: str, count: int, per_write: int) -> None:
    loop = asyncio.get_running_loop()
    clients: dict[Client, None] = {}
    server = await loop.create_server(lambda: Client(clients), "127.0.0.1", port, backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(reader(clients, url, key, count, per_write))
    await stop.wait()
    task.cancel()
    server.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True, help="redis:// URL of the private server")
    parser.add_argument("--stream", default="ws:events")
    parser.add_argument("--count", type=int, default=500, help="entries per XREAD")
    parser.add_argument("--per-write", type=int, default=1, help="frames per transport.write")
    args = parser.parse_args(argv)
    uvloop.run(serve(args.port, args.redis, args.stream, args.count, args.per_write))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
