"""Subscriptions, filters and resume, end to end against both event logs."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.support.checker import Want, check, expected_ids
from tests.support.clients import assert_nothing_more, open_ws, recv_json, recv_until, subscribe, token
from tests.support.inproc import serve
from tests.support.redis_server import RedisServer


@pytest.fixture(params=["memory", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def ex(eid: str, wf: str = "wf-1", status: str = "running") -> dict[str, Any]:
    return {"execution_id": eid, "workflow_id": wf, "status": status}


async def test_clients_get_exactly_their_events(kind: str, redis_server: RedisServer) -> None:
    async with serve(kind, redis_server.url) as gw:
        wants = {
            "all": [Want("executions")],
            "failed": [Want("executions", {"statuses": ["failed"]})],
            "wf2": [Want("workflows:wf-2")],
            "exec": [Want("executions:e3"), Want("approvals", {"workflow_ids": ["wf-1"]})],
            "acme": [Want("executions")],
        }
        clients = {
            name: await open_ws(gw.url, token(name, "acme" if name == "acme" else None)) for name in wants
        }
        for name, subs in wants.items():
            for w in subs:
                await subscribe(clients[name], w.channel, filters=w.filters)
        for i in range(40):
            eid, wf, status = f"e{i % 5}", f"wf-{i % 3}", ("running", "failed", "completed")[i % 3]
            await gw.append(
                "execution.started" if status == "running" else f"execution.{status}",
                ex(eid, wf, status),
                org="acme" if i % 7 == 0 else None,
            )
            if i % 4 == 0:
                await gw.append(
                    "approval.required",
                    {"approval_id": f"a{i}", "execution_id": eid, "workflow_id": wf, "status": "pending"},
                )
            if i % 6 == 0:
                await gw.append(
                    "step.completed",
                    {
                        "execution_id": eid,
                        "workflow_id": wf,
                        "step_id": "s",
                        "step_type": "http",
                        "status": "completed",
                    },
                )
        for name, ws in clients.items():
            org = "acme" if name == "acme" else None
            want = expected_ids(gw.appended, wants[name], org)
            got = [e["id"] for e in await recv_until(ws, len(want))]
            report = check(got, want)
            assert report.exact, f"{name}: {report}"
            await assert_nothing_more(ws)
            await ws.close()


async def test_since_replays_then_continues_live(kind: str, redis_server: RedisServer) -> None:
    async with serve(kind, redis_server.url) as gw:
        ids = [await gw.append("execution.started", ex("e1")) for _ in range(5)]
        async with await open_ws(gw.url) as ws:
            reply = await subscribe(ws, "executions:e1", since=ids[1])
            assert reply["data"]["recovered"] is True
            assert reply["data"]["position"] == ids[-1]
            live = [await gw.append("execution.completed", ex("e1", status="completed")) for _ in range(3)]
            got = [e["id"] for e in await recv_until(ws, 6)]
        assert got == ids[2:] + live


async def test_overlapping_subscriptions_resume_once_in_order(kind: str, redis_server: RedisServer) -> None:
    async with serve(kind, redis_server.url) as gw:
        ids = [await gw.append("execution.started", ex(f"e{i % 2}")) for i in range(10)]
        async with await open_ws(gw.url) as ws:
            for channel in ("executions", "executions:e0", "workflows:wf-1"):
                # Sent together, as a client does after a reconnect; the replay of the
                # first may interleave with the next replies.
                await ws.send(
                    json.dumps({"type": "subscribe", "data": {"channel": channel, "since": ids[3]}})
                )
            more = [await gw.append("execution.started", ex("e0")) for _ in range(3)]
            got = [e["id"] for e in await recv_until(ws, 9)]
            await assert_nothing_more(ws)
        assert check(got, ids[4:] + more).exact


async def test_trimmed_since_says_recovered_false(kind: str, redis_server: RedisServer) -> None:
    async with serve(kind, redis_server.url, stream_maxlen=50) as gw:
        first = await gw.append("execution.started", ex("e1"))
        for _ in range(400):
            await gw.append("execution.started", ex("e2"))
        async with await open_ws(gw.url) as ws:
            reply = await subscribe(ws, "executions", since=first)
            assert reply["data"]["recovered"] is False
            live = await gw.append("execution.started", ex("e3"))
            [event] = await recv_until(ws, 1)
            assert event["id"] == live  # live from position, no partial replay


async def test_large_backlog_replay_is_bounded_and_does_not_stall_others(
    kind: str, redis_server: RedisServer
) -> None:
    async with serve(kind, redis_server.url, send_buffer=16) as gw:
        start = (await gw.log.info()).last
        backlog = [await gw.append("execution.started", ex("big")) for _ in range(3000)]
        async with await open_ws(gw.url) as live_ws, await open_ws(gw.url) as resumer:
            await subscribe(live_ws, "executions:other")
            await subscribe(resumer, "executions", since=f"{start[0]}-{start[1]}")
            marker = await gw.append("execution.started", ex("other"))
            [seen] = await recv_until(live_ws, 1, timeout=5)
            assert seen["id"] == marker
            got = [e["id"] for e in await recv_until(resumer, 3001, timeout=60)]
        assert got == [*backlog, marker]  # no 4008: a replay waits for room instead
        assert gw.app.gateway.stats.slow_consumer_closes == 0


async def test_resubscribe_replaces_filters(kind: str, redis_server: RedisServer) -> None:
    async with serve(kind, redis_server.url) as gw, await open_ws(gw.url) as ws:
        await subscribe(ws, "executions", filters={"statuses": ["failed"]})
        reply = await subscribe(ws, "executions", filters={"statuses": ["completed"]})
        assert reply["data"]["filters"] == {"statuses": ["completed"]}
        await gw.append("execution.failed", ex("e", status="failed"))
        done = await gw.append("execution.completed", ex("e", status="completed"))
        [event] = await recv_until(ws, 1)
        assert event["id"] == done
        await ws.send(json.dumps({"type": "unsubscribe", "data": {"channel": "executions"}}))
        assert (await recv_json(ws))["type"] == "unsubscribed"
        await gw.append("execution.completed", ex("e", status="completed"))
        await asyncio.sleep(0.2)
        await assert_nothing_more(ws)


async def test_late_subscription_with_an_old_since(kind: str, redis_server: RedisServer) -> None:
    """A channel added with a `since` older than what the connection already delivered:
    its events in between cannot come in order, so `recovered` says whether any exist."""
    async with serve(kind, redis_server.url) as gw:
        start = await gw.append("execution.started", ex("e0"))
        async with await open_ws(gw.url) as ws:
            await subscribe(ws, "executions:e1", since=start)
            await gw.append("execution.started", ex("e2"))  # nobody's
            seen = await gw.append("execution.started", ex("e1"))
            assert (await recv_until(ws, 1))[0]["id"] == seen
            reply = await subscribe(ws, "executions:e3", since=start)  # e3 had no events: whole
            assert reply["data"]["recovered"] is True
            reply = await subscribe(ws, "executions:e2", since=start)  # e2's event was skipped
            assert reply["data"]["recovered"] is False
            live = await gw.append("execution.started", ex("e2"))
            assert (await recv_until(ws, 1))[0]["id"] == live
            await assert_nothing_more(ws)


async def test_since_from_a_lost_stream_is_not_recovered(kind: str, redis_server: RedisServer) -> None:
    async with serve(kind, redis_server.url) as gw:
        await gw.append("execution.started", ex("e0"))
        async with await open_ws(gw.url) as ws:
            # An id of the right shape that this stream never held (another stream's).
            reply = await subscribe(ws, "executions", since="1000-0")
            assert reply["data"]["recovered"] is False


async def test_compressed_connections_take_the_asgi_path(redis_server: RedisServer) -> None:
    """WS_COMPRESSION=on: frames must be compressed per client, so they go through ASGI
    `send` (the drain task) instead of the shared pre-built frames; same guarantees."""
    async with serve("memory", redis_server.url, compression=True) as gw:
        async with await open_ws(gw.url) as ws:
            assert ws.protocol.extensions, "permessage-deflate was not negotiated"
            await subscribe(ws, "executions")
            await subscribe(ws, "executions:e1")
            ids = [await gw.append("execution.started", ex("e1")) for _ in range(50)]
            got = [e["id"] for e in await recv_until(ws, 50)]
            [conn] = gw.app.gateway.hub.connections.values()
            assert not conn.direct
        assert got == ids


async def test_a_burst_larger_than_the_send_buffer_reaches_a_fast_client(
    kind: str, redis_server: RedisServer
) -> None:
    """The reader's batch (500) is larger than the outbox (16 here): a client whose socket
    keeps up must not be taken for a slow consumer (found by the benchmarks)."""
    async with serve(kind, redis_server.url, send_buffer=16, reader_batch=500) as gw:
        async with await open_ws(gw.url) as ws:
            await subscribe(ws, "executions")
            ids = await gw.append_burst("execution.started", ex("burst"), 400)
            got = [e["id"] for e in await recv_until(ws, 400)]
        assert got == ids
        assert gw.app.gateway.stats.slow_consumer_closes == 0
