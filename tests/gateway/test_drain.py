"""A drain ends when the last connection is gone, not when ``DRAIN_WINDOW`` runs out
(issue 11): a real ``flowwire serve`` process, real WebSocket clients, SIGTERM."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tests.support.clients import open_ws, recv_json, token
from tests.support.gateway import GatewayProcess
from tests.test_docs_selfcontained import RESTART_REASON

#: Long enough that a drain waiting for its window could never finish inside EXIT_BOUND.
WINDOW = "120s"
EXIT_BOUND = 30.0


def _exit_code(gw: GatewayProcess) -> int:
    try:
        return gw.wait(EXIT_BOUND)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still draining after {EXIT_BOUND}s of a {WINDOW} window:\n{gw.output()[-2000:]}")


async def test_a_drain_without_connections_exits_at_once() -> None:
    gw = GatewayProcess({"DRAIN_WINDOW": WINDOW})
    gw.start()
    try:
        gw.signal(signal.SIGTERM)
        assert await asyncio.to_thread(_exit_code, gw) == 0
        assert "draining 0 connections" in gw.output()
    finally:
        gw.stop()


async def test_a_drain_ends_when_the_clients_have_left() -> None:
    """Three connections: the drain closes one per batch, 40 s apart. Once the first is
    told 1012, the clients all leave (as they would to reconnect elsewhere): nothing is
    left to drain, and the process exits without waiting for the next batches."""
    gw = GatewayProcess({"DRAIN_WINDOW": WINDOW})
    gw.start()
    try:
        clients = [await open_ws(gw.url, token(f"user-{i}")) for i in range(3)]
        for ws in clients:  # each is registered: a ping is answered
            await ws.send('{"type":"ping"}')
            assert (await recv_json(ws))["type"] == "pong"
        gw.signal(signal.SIGTERM)
        first: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

        async def watch(ws: ClientConnection) -> None:
            try:
                await ws.recv()
            except ConnectionClosed as exc:
                if exc.rcvd is not None and not first.done():
                    first.set_result((exc.rcvd.code, exc.rcvd.reason))

        watchers = [asyncio.create_task(watch(ws)) for ws in clients]
        code, reason = await asyncio.wait_for(first, 10)
        assert code == 1012
        # the reason the docs quote (docs/protocol.md, web/README.md), its number aside
        assert re.sub(r"\d+(\.\d+)?", "N", reason) == RESTART_REASON
        for ws in clients:
            await ws.close()
        await asyncio.gather(*watchers)
        assert await asyncio.to_thread(_exit_code, gw) == 0
        assert "drained in" in gw.output()
    finally:
        gw.stop()
