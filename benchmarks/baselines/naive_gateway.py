"""Baseline 2, the naive gateway: the original hub's design in Python.

Starlette on uvicorn with uvicorn's defaults (``ws="auto"``, which is
``websockets-sansio`` when websockets is installed; permessage-deflate is offered by
uvicorn but the benchmark's clients do not ask for it). Events arrive on Redis pub/sub
``ws:broadcast:all`` in the original's legacy format, one message per target channel
(``{"Channel", "Message", "WorkflowID", "ExecutionID", "Status", "UserID"}``); for each
message the hub loops over every client and every subscription, checks the channel and
the filters, and awaits one ``send_text`` per client per matching channel. The message
is encoded once per pub/sub message, not per client (the kinder variant). JWT checked
at the upgrade, like the original.

    python -m benchmarks.baselines.naive_gateway --port P --redis URL --secret S
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from benchmarks.baselines import serve_uvicorn_baseline

CHANNEL = "ws:broadcast:all"


@dataclass
class Filters:
    workflow_ids: list[str] = field(default_factory=list)
    execution_ids: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)

    def matches(self, doc: dict[str, Any]) -> bool:
        if self.workflow_ids and doc.get("WorkflowID") not in self.workflow_ids:
            return False
        if self.execution_ids and doc.get("ExecutionID") not in self.execution_ids:
            return False
        return not (self.statuses and doc.get("Status") not in self.statuses)


@dataclass(eq=False)
class Client:
    ws: WebSocket
    user: str
    subscriptions: dict[str, Filters] = field(default_factory=dict)


class Hub:
    def __init__(self, url: str, secret: str) -> None:
        self.url = url
        self.secret = secret
        self.clients: dict[Client, None] = {}

    async def run(self) -> None:
        client: Any = aioredis.Redis.from_url(self.url)
        pubsub = client.pubsub()
        await pubsub.subscribe(CHANNEL)
        async for message in pubsub.listen():
            if message["type"] == "message":
                await self.broadcast(message["data"])

    async def broadcast(self, raw: bytes) -> None:
        doc = json.loads(raw)
        channel = doc["Channel"]
        text = json.dumps(doc["Message"], separators=(",", ":"))
        for client in list(self.clients):
            for name, filters in list(client.subscriptions.items()):
                if name == channel and filters.matches(doc):
                    try:
                        await client.ws.send_text(text)
                    except Exception:  # a client gone mid-broadcast: its handler cleans up
                        self.clients.pop(client, None)

    async def endpoint(self, ws: WebSocket) -> None:
        try:
            claims = jwt.decode(ws.query_params.get("token", ""), self.secret, algorithms=["HS256"])
        except jwt.InvalidTokenError:
            await ws.close(1008)
            return
        await ws.accept()
        client = Client(ws, str(claims.get("user_id") or claims.get("sub")))
        self.clients[client] = None
        try:
            while True:
                msg = json.loads(await ws.receive_text())
                kind, data = msg.get("type"), msg.get("data") or {}
                if kind == "subscribe":
                    flt = data.get("filters") or {}
                    client.subscriptions[data["channel"]] = Filters(
                        flt.get("workflow_ids") or [],
                        flt.get("execution_ids") or [],
                        flt.get("statuses") or [],
                    )
                    await ws.send_text(
                        json.dumps({"type": "subscribed", "data": {"channel": data["channel"]}})
                    )
                elif kind == "unsubscribe":
                    client.subscriptions.pop(data.get("channel", ""), None)
                elif kind == "ping":
                    await ws.send_text('{"type":"pong"}')
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.clients.pop(client, None)


def create_app(url: str, secret: str) -> Starlette:
    hub = Hub(url, secret)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(hub.run())
        yield
        task.cancel()

    return Starlette(routes=[WebSocketRoute("/ws", hub.endpoint)], lifespan=lifespan)


def main(argv: Sequence[str] | None = None) -> int:
    return serve_uvicorn_baseline(__doc__, create_app, argv)


if __name__ == "__main__":
    raise SystemExit(main())
