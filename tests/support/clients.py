"""Real WebSocket clients (the ``websockets`` library) for end-to-end tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from gateway.auth import mint_token
from tests.support.gateway import SECRET

__all__ = ["assert_nothing_more", "open_ws", "recv_json", "recv_until", "subscribe", "token"]


def token(user: str = "u1", org: str | None = None, ttl: float = 900, **claims: Any) -> str:
    return mint_token(SECRET, user, org_id=org, ttl=ttl, **claims)


async def open_ws(url: str, tok: str | None = None, **kw: Any) -> ClientConnection:
    tok = token() if tok is None else tok
    return await connect(f"{url}?token={tok}", **kw)


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    frame = await asyncio.wait_for(ws.recv(), timeout)
    doc: dict[str, Any] = json.loads(frame)
    return doc


async def subscribe(ws: ClientConnection, channel: str, **data: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "subscribe", "data": {"channel": channel, **data}}))
    reply = await recv_json(ws)
    assert reply["type"] == "subscribed", reply
    return reply


async def recv_until(ws: ClientConnection, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """``count`` event frames (frames with an id); control frames are skipped."""
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while len(events) < count:
            doc = json.loads(await ws.recv())
            if "id" in doc:
                events.append(doc)
    return events


async def assert_nothing_more(ws: ClientConnection) -> list[dict[str, Any]]:
    """Ping and read up to the pong: no event may arrive before it. Returns the control
    frames seen on the way."""
    await ws.send('{"type":"ping"}')
    seen = []
    while (doc := await recv_json(ws))["type"] != "pong":
        assert "id" not in doc, f"unexpected event {doc}"
        seen.append(doc)
    return seen
