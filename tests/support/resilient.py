"""A client that behaves like the TypeScript client: on any disconnect it reconnects, to
the next gateway in its list, and resumes every subscription with ``since``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.support.checker import Want
from tests.support.clients import open_ws, token

__all__ = ["ResumingClient"]


class ResumingClient:
    def __init__(self, name: str, urls: list[str], wants: list[Want], org: str | None = None) -> None:
        self.name = name
        self.urls = urls
        self.wants = wants
        self.tok = token(name, org)
        self.received: list[str] = []
        self.closes: list[int | None] = []
        self.connects = 0
        self.cursor: str | None = None
        self.subscribed = asyncio.Event()
        self.recovered_false = 0
        self.errors: list[dict[str, object]] = []
        self._pod = random.randrange(len(urls))
        self._task: asyncio.Task[None] | None = None
        self._stop = False
        self._ws: ClientConnection | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._stop:
            url = self.urls[self._pod % len(self.urls)]
            with contextlib.suppress(OSError, InvalidHandshake, ConnectionClosed, TimeoutError):
                await self._session(url)
            self._pod += 1
            await asyncio.sleep(random.uniform(0.05, 0.2))

    async def _session(self, url: str) -> None:
        ws = await open_ws(url, self.tok, open_timeout=5)
        self._ws = ws
        self.connects += 1
        try:
            for want in self.wants:
                data: dict[str, object] = {"channel": want.channel, "filters": want.filters}
                if self.cursor is not None:
                    data["since"] = self.cursor
                await ws.send(json.dumps({"type": "subscribe", "data": data}))
            async for frame in ws:
                doc = json.loads(frame)
                if "id" in doc:
                    self.received.append(doc["id"])
                    self.cursor = doc["id"]
                elif doc["type"] == "error":
                    # A subscribe refused for a moment (the log unreachable): as the
                    # clients do, start over on a new connection and resume.
                    self.errors.append(doc["data"])
                    break
                elif doc["type"] == "subscribed":
                    if self.cursor is None:
                        self.cursor = doc["data"]["position"]
                    if doc["data"].get("recovered") is False:
                        self.recovered_false += 1
                    self.subscribed.set()
        finally:
            self.closes.append(ws.close_code)
            await ws.close()

    def drop(self) -> None:
        """Break the connection as a network would (no close handshake)."""
        if self._ws is not None and self._ws.transport is not None:
            self._ws.transport.abort()

    async def wait_for(self, count: int, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._stop = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
