"""Several gateway pods on one Redis, under faults (issue 4). Real processes throughout:
redis-server, ``flowwire serve`` pods, WebSocket clients that resume like the web
client; the delivery checker judges every client."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from publisher import Publication, Publisher, PublisherUnavailable, RedisSettings, make_event
from tests.support.checker import Appended, Want, check, expected_ids
from tests.support.gateway import GatewayProcess
from tests.support.redis_server import RedisServer
from tests.support.resilient import ResumingClient

WANTS: list[list[Want]] = [
    [Want("executions")],
    [Want("executions", {"statuses": ["failed"]})],
    [Want("workflows:wf-1")],
    [Want("workflows:wf-2"), Want("executions:e3")],
    [Want("approvals"), Want("executions", {"workflow_ids": ["wf-0"]})],
]


@pytest.fixture
def redis_srv() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.close()


def pods(redis_srv: RedisServer, n: int, **env: str) -> list[GatewayProcess]:
    out = []
    for _ in range(n):
        gw = GatewayProcess({"REDIS_URL": redis_srv.url, "CLIENT_RATE_LIMIT": "0", "DRAIN_WINDOW": "1s",
                             "MIRROR_CLAIM_IDLE": "1s", **env})  # fmt: skip
        gw.start(wait_ready=False)
        out.append(gw)
    for gw in out:
        gw.wait_ready()
    return out


def _event(i: int) -> tuple[str, dict[str, Any]]:
    eid, wf = f"e{i % 7}", f"wf-{i % 3}"
    if i % 5 == 4:
        return "approval.required", {
            "approval_id": f"a{i}",
            "execution_id": eid,
            "workflow_id": wf,
            "status": "pending",
        }
    status = ("running", "failed", "completed")[i % 3]
    etype = {
        "running": "execution.started",
        "failed": "execution.failed",
        "completed": "execution.completed",
    }[status]
    return etype, {"execution_id": eid, "workflow_id": wf, "status": status}


async def publish(
    url: str,
    count: int,
    *,
    batch: int = 50,
    pause: float = 0.01,
    start: int = 0,
    event: Callable[[int], tuple[str, dict[str, Any]]] = _event,
) -> list[Appended]:
    """Append ``count`` events in pipelined batches; retries what Redis refused (a failed
    batch was not reported as published, so it is sent again)."""
    out: list[Appended] = []
    async with Publisher(RedisSettings(url=url, timeout=1.0)) as pub:
        for first in range(start, start + count, batch):
            items = [event(i) for i in range(first, min(first + batch, start + count))]
            while True:
                try:
                    ids = await pub.publish_many([Publication(make_event(t, d)) for t, d in items])
                    break
                except PublisherUnavailable:
                    await asyncio.sleep(0.1)
            out += [Appended(i, t, d) for i, (t, d) in zip(ids, items, strict=True)]
            await asyncio.sleep(pause)
    return out


async def start_clients(urls: list[str], n: int, wants: list[list[Want]] = WANTS) -> list[ResumingClient]:
    clients = [ResumingClient(f"user{i}", urls, wants[i % len(wants)]) for i in range(n)]
    for c in clients:
        c.start()
    async with asyncio.timeout(20):
        for c in clients:
            await c.subscribed.wait()
    return clients


async def assert_exact(clients: list[ResumingClient], appended: list[Appended], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    for c in clients:
        want = expected_ids(appended, c.wants)
        try:
            await c.wait_for(len(want), max(1.0, deadline - time.monotonic()))
        except TimeoutError:
            pytest.fail(
                f"{c.name} timed out (connects={c.connects}, closes={c.closes}, errors={c.errors}): "
                f"{check(c.received, want)}"
            )
    await asyncio.sleep(0.3)  # anything extra (a duplicate) would arrive now
    for c in clients:
        report = check(c.received, expected_ids(appended, c.wants))
        assert report.exact, f"{c.name} (connects={c.connects}, closes={c.closes}): {report}"
        await c.stop()


def _stop(gws: list[GatewayProcess]) -> None:
    for gw in gws:
        gw.stop()


async def test_resume_on_another_pod(redis_srv: RedisServer) -> None:
    a, b = pods(redis_srv, 2)
    try:
        client = ResumingClient("roamer", [a.url, b.url], [Want("executions")])
        client._pod = 0
        client.start()
        await client.subscribed.wait()
        appended = await publish(redis_srv.url, 100)
        await client.wait_for(len(expected_ids(appended, client.wants)), 10)
        a.signal(signal.SIGKILL)  # the connection breaks; events keep coming meanwhile
        appended += await publish(redis_srv.url, 200, start=100)
        await assert_exact([client], appended)
        assert client.connects == 2
    finally:
        _stop([a, b])


async def test_three_pods_fifty_clients_two_thousand_events(redis_srv: RedisServer) -> None:
    gws = pods(redis_srv, 3)
    try:
        clients = await start_clients([g.url for g in gws], 50)
        appended = await publish(redis_srv.url, 2000, batch=100, pause=0.02)
        await assert_exact(clients, appended)
        assert all(c.connects == 1 for c in clients)
    finally:
        _stop(gws)


async def test_pod_killed_mid_stream(redis_srv: RedisServer) -> None:
    gws = pods(redis_srv, 3)
    try:
        clients = await start_clients([g.url for g in gws], 30)
        load = asyncio.create_task(publish(redis_srv.url, 1500, batch=50, pause=0.02))
        await asyncio.sleep(0.5)
        gws[0].signal(signal.SIGKILL)
        appended = await load
        await assert_exact(clients, appended)
        assert any(c.connects > 1 for c in clients)
    finally:
        _stop(gws)


async def test_sigterm_drains_to_other_pods(redis_srv: RedisServer) -> None:
    gws = pods(redis_srv, 3)
    try:
        clients = await start_clients([g.url for g in gws], 30)
        load = asyncio.create_task(publish(redis_srv.url, 1500, batch=50, pause=0.02))
        await asyncio.sleep(0.5)
        gws[1].signal(signal.SIGTERM)
        assert await asyncio.to_thread(gws[1].wait, 30) == 0
        appended = await load
        drained = [c for c in clients if 1012 in c.closes]
        assert drained, "no client was drained with 1012"
        await assert_exact(clients, appended)
    finally:
        _stop(gws)


async def test_redis_restart_mid_stream(redis_srv: RedisServer) -> None:
    gws = pods(redis_srv, 2)
    try:
        clients = await start_clients([g.url for g in gws], 20)
        appended = await publish(redis_srv.url, 300)
        await asyncio.to_thread(redis_srv.restart, keep_data=True, downtime=1.5)
        appended += await publish(redis_srv.url, 300, start=300)
        for g in gws:
            await asyncio.to_thread(g.wait_ready, 20)
        await assert_exact(clients, appended)
        assert all(c.connects == 1 for c in clients), "clients stay connected through a Redis restart"
        assert all("event log unavailable" in g.output() for g in gws)
    finally:
        _stop(gws)


async def test_readiness_follows_redis(redis_srv: RedisServer) -> None:
    [gw] = pods(redis_srv, 1)
    try:
        assert gw.get("/readyz")[0] == 200
        await asyncio.to_thread(redis_srv.stop, save=True)
        deadline = time.monotonic() + 15
        while gw.get("/readyz")[0] != 503:
            assert time.monotonic() < deadline, "readyz never reported the outage"
            await asyncio.sleep(0.1)
        assert json.loads(gw.get("/readyz")[1])["status"].startswith("event log unreachable (redis://")
        await asyncio.to_thread(redis_srv.start)
        await asyncio.to_thread(gw.wait_ready, 20)
    finally:
        gw.stop()


async def test_redis_back_empty_tells_clients_to_reload(redis_srv: RedisServer) -> None:
    [gw] = pods(redis_srv, 1)
    try:
        clients = await start_clients([gw.url], 3)
        await publish(redis_srv.url, 50)
        for c in clients:
            await c.wait_for(1, 10)
        await asyncio.to_thread(redis_srv.restart, keep_data=False, downtime=0.5)
        await publish(redis_srv.url, 5)
        async with asyncio.timeout(30):
            while not all(c.recovered_false for c in clients):
                await asyncio.sleep(0.1)
        for c in clients:
            assert 1012 in c.closes
            await c.stop()
        assert "its data was lost" in gw.output()
    finally:
        gw.stop()


async def test_mirror_exactly_once_per_channel_across_pods(redis_srv: RedisServer) -> None:
    gws = pods(redis_srv, 3)
    client = redis.asyncio.Redis.from_url(redis_srv.url)
    pubsub = client.pubsub()
    await pubsub.subscribe("ws:broadcast:all")
    try:
        await asyncio.sleep(1.0)  # the pods' consumer group exists
        appended = await publish(redis_srv.url, 300)
        want = {(a.id, ch) for a in appended for ch in _legacy_channels(a)}
        seen: list[tuple[str, str]] = []
        by_key: dict[str, dict[str, Any]] = {}
        async with asyncio.timeout(20):
            while len(seen) < len(want):
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is None:
                    continue
                doc = json.loads(msg["data"])
                assert set(doc) == {"Channel", "Message", "WorkflowID", "ExecutionID", "Status", "UserID"}
                assert set(doc["Message"]) == {"type", "timestamp", "data"}
                key = doc["Message"]["data"]
                match = next(a for a in appended if a.data == key and (a.id, doc["Channel"]) in want
                             and (a.id, doc["Channel"]) not in seen)  # fmt: skip
                seen.append((match.id, doc["Channel"]))
                by_key[match.id] = doc
        await asyncio.sleep(1.0)
        extra = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        assert extra is None, "an entry was mirrored twice"
        assert set(seen) == want and len(seen) == len(want)
        sample = by_key[appended[0].id]
        assert sample["ExecutionID"] == appended[0].data["execution_id"]
        assert sample["Message"]["type"] == appended[0].type
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()
        _stop(gws)


async def test_mirror_claims_a_dead_pods_entries(redis_srv: RedisServer) -> None:
    [gw] = pods(redis_srv, 1)
    client = redis.asyncio.Redis.from_url(redis_srv.url)
    pubsub = client.pubsub()
    await pubsub.subscribe("ws:broadcast:all")
    try:
        await asyncio.sleep(0.5)
        gw.signal(signal.SIGSTOP)  # the only pod stalls...
        appended = await publish(redis_srv.url, 20)
        # ...while a pod that is about to die reads the entries into its pending list.
        await client.xreadgroup("ws-mirror", "dead-pod", {"ws:events": ">"}, count=100)
        gw.signal(signal.SIGCONT)
        channels = sum(len(_legacy_channels(a)) for a in appended)
        got = 0
        async with asyncio.timeout(20):
            while got < channels:
                if await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0):
                    got += 1
        pending: Any = await client.xpending("ws:events", "ws-mirror")
        assert pending["pending"] == 0
        assert "claimed" in gw.output()
    finally:
        gw.signal(signal.SIGCONT)
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()
        gw.stop()


def _legacy_channels(a: Appended) -> list[str]:
    kind = a.type.split(".")[0]
    out = [f"executions:{a.data['execution_id']}"]
    if kind == "execution":
        out.append("executions")
    if kind == "approval":
        out.append("approvals")
    out.append(f"workflows:{a.data['workflow_id']}")
    return out


async def test_mirror_can_be_turned_off(redis_srv: RedisServer) -> None:
    [gw] = pods(redis_srv, 1, MIRROR_ENABLED="off")
    client = redis.asyncio.Redis.from_url(redis_srv.url)
    pubsub = client.pubsub()
    await pubsub.subscribe("ws:broadcast:all")
    try:
        await publish(redis_srv.url, 20)
        assert await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.5) is None
        groups: Any = await client.xinfo_groups("ws:events")
        assert groups == []
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()
        gw.stop()
