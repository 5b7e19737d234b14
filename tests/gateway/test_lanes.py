"""Priority and conflation end to end (docs/protocol.md "Priority and conflation"): a
real gateway under uvicorn, real ``websockets`` clients that stop reading (``max_queue=1``
stops the client reading its socket, so the gateway's outbox fills) while events flood.

On both upgrade paths (the direct one, and the ASGI one, which the gateway takes with
``WS_COMPRESSION=on``: permessage-deflate), and priority + resume also with
``STREAM_PARTITIONS=3`` (a real redis-server: partitioned streams need Redis).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from gateway.connection import Connection
from schemas.codec import parse_id
from schemas.partition import partition_of
from tests.support.clients import token
from tests.support.inproc import Served, serve
from tests.support.redis_server import RedisServer

JSON2 = Subprotocol("flowwire.v2.json")
PACK = Subprotocol("flowwire.v2.msgpack")


def step(eid: str, n: int = 0) -> dict[str, Any]:
    return {
        "execution_id": eid,
        "workflow_id": "wf-1",
        "step_id": f"s{n}",
        "step_type": "task",
        "status": "running",
    }


APPROVAL = {"approval_id": "ap-1", "execution_id": "e1", "workflow_id": "wf-1", "status": "pending"}
#: flooded executions: with 3 partitions, one in each (e2 in 0, e4 in 1, e1 in 2)
SPREAD = ("e1", "e2", "e4")


@asynccontextmanager
async def gateway(
    request: pytest.FixtureRequest, path: str, partitions: int = 1, **settings: Any
) -> AsyncIterator[Served]:
    """The embedded log with one partition; a private redis-server with more. The ASGI
    upgrade path is the one the gateway takes with compression on."""
    compression = path == "asgi"
    if partitions == 1:
        async with serve("memory", compression=compression, **settings) as gw:
            yield gw
        return
    redis: RedisServer = request.getfixturevalue("redis_server")
    async with serve(
        "redis", redis.url, compression=compression, stream_partitions=partitions, **settings
    ) as gw:
        assert gw.log.partitions == partitions
        yield gw


async def open_ws(
    gw: Served, *, v2: bool, max_queue: int | None = 16, protocol: Subprotocol = JSON2
) -> ClientConnection:
    protocols = [protocol] if v2 else None
    return await connect(f"{gw.url}?token={token()}", subprotocols=protocols, max_queue=max_queue)


def decode(ws: ClientConnection, frame: str | bytes) -> dict[str, Any]:
    """A frame in the connection's format (binary frames only on msgpack, text on JSON)."""
    if ws.subprotocol == PACK:
        assert isinstance(frame, bytes)
        packed: dict[str, Any] = msgspec.msgpack.decode(frame)
        return packed
    assert isinstance(frame, str)
    doc: dict[str, Any] = json.loads(frame)
    return doc


async def subscribe(ws: ClientConnection, channel: str, **data: Any) -> dict[str, Any]:
    message = {"type": "subscribe", "data": {"channel": channel, **data}}
    await ws.send(msgspec.msgpack.encode(message) if ws.subprotocol == PACK else json.dumps(message))
    reply: dict[str, Any] = decode(ws, await asyncio.wait_for(ws.recv(), 5))
    assert reply["type"] == "subscribed", reply
    return reply


def connection(gw: Served, v2: bool) -> Connection:
    return next(c for c in gw.app.gateway.hub.connections.values() if c.lanes == v2)


async def flood_until(
    gw: Served, done: Any, eids: tuple[str, ...] = ("e1",), *, incompressible: bool = False
) -> list[str]:
    """Step events until ``done()`` (bounded: never an endless test). ``incompressible``:
    each its own 1 kB of random output, so that permessage-deflate does not shrink the
    flood to a few bytes an event (the kernel's buffers would take it all)."""
    ids: list[str] = []
    for _ in range(400):
        for eid in eids:
            if incompressible:
                noise = [{**step(eid), "output": {"noise": secrets.token_hex(512)}} for _ in range(200)]
                ids += await gw.append_each("step.started", noise)
            else:
                ids += await gw.append_burst("step.started", step(eid), 200)
        await asyncio.sleep(0.02)
        if done():
            return ids
    raise AssertionError("the outbox never filled")


async def events(ws: ClientConnection, until: Any, timeout: float = 90) -> list[dict[str, Any]]:
    # Generous: the client reads what the kernel buffered during the flood (megabytes),
    # on a machine other tests load too.
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while not until(got):
            frame = decode(ws, await ws.recv())
            if "id" in frame:
                got.append(frame)
    return got


def key(frame: dict[str, Any]) -> tuple[str, str]:
    """An event frame's identity: ids are unique per partition, and an execution's
    events are in one partition."""
    return frame["data"]["execution_id"], frame["id"]


def check_exact(got: list[dict[str, Any]], every: list[tuple[str, str]]) -> None:
    """Each appended event once, none other; per execution, the non-approval events in
    stream order."""
    keys = [key(f) for f in got]
    assert len(set(keys)) == len(keys), "a duplicate"
    assert set(keys) == set(every), f"missing {set(every) - set(keys)}, extra {set(keys) - set(every)}"
    steps: dict[str, list[tuple[int, int]]] = {}
    for frame in got:
        if not frame["type"].startswith("approval."):
            steps.setdefault(frame["data"]["execution_id"], []).append(parse_id(frame["id"]))
    for execution, ids in steps.items():
        assert ids == sorted(ids), execution


@pytest.mark.parametrize(
    ("path", "partitions", "protocol"),
    [
        ("direct", 1, JSON2),
        ("direct", 1, PACK),
        ("asgi", 1, JSON2),
        ("asgi", 1, PACK),
        ("direct", 3, JSON2),
        ("asgi", 3, PACK),
    ],
)
async def test_an_approval_overtakes_the_backlog_and_a_resume_from_its_cursor_is_exact(
    request: pytest.FixtureRequest, path: str, partitions: int, protocol: Subprotocol
) -> None:
    async with gateway(request, path, partitions, send_buffer=100_000) as gw:
        ws = await open_ws(gw, v2=True, max_queue=1, protocol=protocol)
        await subscribe(ws, "workflows:wf-1")
        await subscribe(ws, "approvals")
        conn = connection(gw, True)
        bulk = await flood_until(gw, lambda: conn.outbox.events >= 500, SPREAD, incompressible=True)
        approval = await gw.append("approval.required", APPROVAL)
        after = await gw.append_burst("step.started", step("e1"), 5)
        every = [(a.data["execution_id"], a.id) for a in gw.appended]
        assert len(every) == len(bulk) + 1 + len(after)
        await asyncio.sleep(0.2)
        if path == "direct":  # (the ASGI path's drain holds what it took outside the outbox)
            assert b"approval.required" in conn.outbox.frames[0]  # the front of the backlog

        # The client reads: the approval comes before the bulk events queued before it.
        first = await events(ws, lambda got: any(f["type"] == "approval.required" for f in got[:-3]))
        ids = [f["id"] for f in first]
        assert ids.index(approval) < len(ids) - 1 and ("e4", bulk[-1]) not in set(map(key, first))
        cursor = first[-1]["cursor"]  # written while the approval is ahead of the mark
        assert f"~{partition_of('e1', partitions)}.{approval}" in cursor, cursor
        ws.transport.abort()

        # A new connection resumes from that cursor: no duplicate, no gap.
        ws = await open_ws(gw, v2=True, max_queue=None, protocol=protocol)
        for channel in ("workflows:wf-1", "approvals"):
            assert (await subscribe(ws, channel, since=cursor))["data"]["recovered"] is True
        rest = await events(ws, lambda got: len(got) >= len(every) - len(first))
        check_exact(first + rest, every)
        await ws.close()


@pytest.mark.parametrize("path", ["direct", "asgi"])
async def test_a_conflating_client_gets_the_latest_per_execution_where_version_1_gets_4008(
    request: pytest.FixtureRequest, path: str
) -> None:
    async with gateway(request, path, send_buffer=64) as gw:
        slow = await open_ws(gw, v2=True, max_queue=1)
        reply = await subscribe(slow, "workflows:wf-1", conflate=True)
        assert reply["data"]["conflate"] is True
        v1 = await open_ws(gw, v2=False, max_queue=1)
        assert "conflate" not in (await subscribe(v1, "workflows:wf-1", conflate=True))["data"]
        conn, stats = connection(gw, True), gw.app.gateway.stats
        eids = ("e1", "e2", "e3", "e4", "e5")
        await flood_until(gw, lambda: stats.slow_consumer_closes and conn.conflated > 1000, eids)
        last = {eid: await gw.append("step.completed", step(eid, 99)) for eid in eids}
        await asyncio.sleep(0.2)
        assert not conn.closing
        metrics = gw.app.gateway.metrics.render().decode()
        assert f"flowwire_events_conflated_total {float(stats.events_conflated)}" in metrics
        assert "flowwire_conflating_connections 1.0" in metrics

        got = await events(slow, lambda got: set(last.values()) <= {f["id"] for f in got}, timeout=60)
        ids = [f["id"] for f in got]
        assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))  # stream order
        assert len(ids) < len(gw.appended) // 2  # the latest states, not every event

        code = None
        try:
            async with asyncio.timeout(60):
                while True:
                    await v1.recv()
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
        assert code == 4008
        await slow.close()
