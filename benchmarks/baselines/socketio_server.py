"""Baseline 3: a gateway built on python-socketio, as its documentation recommends.

``socketio.AsyncServer`` (ASGI) with ``AsyncRedisManager`` on uvicorn (defaults). A
client connects over Engine.IO v4 (websocket transport), authenticates with its JWT in
the namespace connect packet, and emits ``subscribe`` with a channel; the server puts
it in the room of that name. Events are emitted to the room by the producer through a
write-only ``RedisManager`` (Redis pub/sub, python-socketio's way for a process that is
not a server): this server's manager receives them and emits to the room's members.

    python -m benchmarks.baselines.socketio_server --port P --redis URL --secret S
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jwt
import socketio  # type: ignore[import-untyped,import-not-found,unused-ignore]

from benchmarks.baselines import serve_uvicorn_baseline


def create_app(url: str, secret: str) -> Any:
    sio = socketio.AsyncServer(
        async_mode="asgi", client_manager=socketio.AsyncRedisManager(url), cors_allowed_origins="*"
    )

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: dict[str, Any] | None) -> bool:
        try:
            jwt.decode((auth or {}).get("token", ""), secret, algorithms=["HS256"])
        except jwt.InvalidTokenError:
            return False
        return True

    @sio.event
    async def subscribe(sid: str, data: dict[str, Any]) -> None:
        channel = str(data.get("channel", ""))
        await sio.enter_room(sid, channel)
        await sio.emit("subscribed", {"channel": channel}, to=sid, ignore_queue=True)

    return socketio.ASGIApp(sio)


def main(argv: Sequence[str] | None = None) -> int:
    return serve_uvicorn_baseline(__doc__, create_app, argv)


if __name__ == "__main__":
    raise SystemExit(main())
