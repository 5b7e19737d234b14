"""An echo endpoint on flowwire's own WebSocket code, for Autobahn|Testsuite (test-only).

It serves the same handshake, frame parser, protocol state and shell as the gateway's
``/ws`` (``gateway.websocket.WebSocketShell``), with an echo handler in place of the
gateway: a text message comes back as text, a binary one as binary. It lives under
``tests/``, so no gateway process ever serves it.

Run: ``python -m tests.autobahn.echo_server [PORT]``; it prints ``listening PORT`` once
it listens on 127.0.0.1 (port 0, the default, picks a free one), and serves until killed.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Final

from gateway.core.frames import Message, binary_frame, text_frame
from gateway.websocket import WebSocketShell

#: Case 9 sends messages of up to 16 MiB.
MAX_SIZE: Final = 32 * 1024 * 1024


class EchoProtocol(WebSocketShell):
    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(max_size=MAX_SIZE, write_timeout=30.0)

    def message_received(self, message: Message) -> None:
        # Messages come only while open; a paused transport buffers (a test server).
        if not self.lost:
            frame = text_frame if message.text else binary_frame
            self.transport.write(frame(message.payload))


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoProtocol, "127.0.0.1", port)
    print("listening", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop  # what uvicorn runs the gateway on, when installed
    except ImportError:  # pragma: no cover
        asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
    else:
        uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
