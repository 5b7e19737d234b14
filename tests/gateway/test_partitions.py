"""Partitioned streams (``STREAM_PARTITIONS=3``) end to end on one Redis: real
``flowwire serve`` processes, the real publisher, real WebSocket clients
(docs/protocol.md "Partitioned streams: `cursor`", docs/operations.md "Partitioned
streams")."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
import redis

from client import Client, Event
from publisher import Publisher, PublishError, make_event
from publisher.settings import RedisSettings
from schemas.partition import parse_cursor, partition_keys, partition_of, partitions_key
from tests.support.clients import assert_nothing_more, open_ws, recv_json, recv_until, subscribe, token
from tests.support.gateway import GatewayProcess
from tests.support.redis_server import RedisServer

P = 3
EXECUTIONS = [f"exec-{i}" for i in range(9)]


def _stream() -> str:
    return f"parts:{time.monotonic_ns()}"


def _gateway(url: str, stream: str, partitions: int = P, **env: str) -> GatewayProcess:
    return GatewayProcess(
        {"REDIS_URL": url, "STREAM_KEY": stream, "STREAM_PARTITIONS": str(partitions), **env}
    )


@pytest.fixture
def stream() -> str:
    return _stream()


@pytest.fixture
def gateways(redis_server: RedisServer, stream: str) -> Iterator[list[GatewayProcess]]:
    procs = [_gateway(redis_server.url, stream), _gateway(redis_server.url, stream)]
    try:
        for proc in procs:
            proc.start()
        yield procs
    finally:
        for proc in procs:
            proc.stop()


async def _publish(url: str, stream: str, count: int, start: int = 0) -> list[str]:
    settings = RedisSettings(url=url, stream_key=stream, partitions=P)
    async with Publisher(settings) as pub:
        events = [
            make_event(
                "execution.started",
                {
                    "execution_id": EXECUTIONS[i % len(EXECUTIONS)],
                    "workflow_id": "wf-1",
                    "status": "running",
                    "duration_ms": i,  # the publish order
                },
            )
            for i in range(start, start + count)
        ]
        return await pub.publish_many(events)


def _check_order(frames: list[dict[str, Any]]) -> None:
    """Each event once; per execution, in publish order (``duration_ms``)."""
    ids = [(f["data"]["execution_id"], f["id"]) for f in frames]
    assert len(set(ids)) == len(ids), "a duplicate"
    by_execution: dict[str, list[int]] = {}
    for f in frames:
        by_execution.setdefault(f["data"]["execution_id"], []).append(f["data"]["duration_ms"])
    for execution, ns in by_execution.items():
        assert ns == sorted(ns), (execution, ns)


async def test_events_spread_over_partitions_and_resume_from_a_cursor_on_another_instance(
    redis_server: RedisServer, stream: str, gateways: list[GatewayProcess]
) -> None:
    first, second = gateways
    ws = await open_ws(first.url, token("u1"))
    reply = await subscribe(ws, "executions")
    position = reply["data"]["position"]
    assert parse_cursor(position, P) is not None, position

    await _publish(redis_server.url, stream, 30)
    frames = await recv_until(ws, 30)
    _check_order(frames)
    for frame in frames:
        cursor = parse_cursor(frame["cursor"], P)
        assert cursor is not None
        part = partition_of(frame["data"]["execution_id"], P)
        assert frame["id"] == "{}-{}".format(*cursor[part])  # the cursor names the frame's own id
    # The events are in P streams, by execution id.
    r = redis.Redis.from_url(redis_server.url)
    lengths = [r.xlen(key) for key in partition_keys(stream, P)]
    assert sum(lengths) == 30 and all(lengths), lengths
    assert not r.exists(stream)
    assert r.get(partitions_key(stream)) == b"3"

    # Resume from the 12th cursor, on the other instance, after more were published.
    cursor = frames[11]["cursor"]
    await ws.close()
    await _publish(redis_server.url, stream, 15, start=30)
    again = await open_ws(second.url, token("u1"))
    reply = await subscribe(again, "executions", since=cursor)
    assert reply["data"]["recovered"] is True
    rest = await recv_until(again, 30 - 12 + 15)
    _check_order(frames[:12] + rest)  # no duplicate, no disorder across the resume
    assert {f["data"]["duration_ms"] for f in frames[:12] + rest} == set(range(45))  # no gap
    assert await assert_nothing_more(again) == []
    # And from the last cursor: nothing is replayed twice; live from there.
    live = await open_ws(first.url, token("u1"))
    reply = await subscribe(live, "executions", since=rest[-1]["cursor"])
    assert reply["data"]["recovered"] is True
    assert await assert_nothing_more(live) == []
    await _publish(redis_server.url, stream, 3, start=45)
    assert sorted(f["data"]["duration_ms"] for f in await recv_until(live, 3)) == [45, 46, 47]
    await again.close()
    await live.close()


async def test_clients_resuming_from_different_cursors_at_once_each_get_exactly_the_rest(
    redis_server: RedisServer, stream: str, gateways: list[GatewayProcess]
) -> None:
    """A partitioned resume storm: 12 clients resume together on the other instance, each
    from a different frame's cursor. A read serves every client whose cursor is at or
    after its start in every partition (``gateway.core.replay``), so frames of one read
    reach clients that stand at different places: each gets exactly the events after
    its own cursor, once, in order per execution, and every frame's cursor is where
    that client stands (a resume from its last one repeats nothing)."""
    first, second = gateways
    ws = await open_ws(first.url, token("u1"))
    await subscribe(ws, "executions")
    await _publish(redis_server.url, stream, 30)
    frames = await recv_until(ws, 30)
    await ws.close()
    await _publish(redis_server.url, stream, 30, start=30)
    points = list(range(3, 27, 2))  # resume after frames[i]
    clients = [await open_ws(second.url, token("u1")) for _ in points]
    replies = await asyncio.gather(
        *(subscribe(c, "executions", since=frames[i]["cursor"]) for c, i in zip(clients, points, strict=True))
    )
    assert all(r["data"]["recovered"] is True for r in replies), replies
    for c, i in zip(clients, points, strict=True):
        had = frames[: i + 1]
        rest = await recv_until(c, 60 - (i + 1))
        _check_order(had + rest)  # no duplicate, no disorder
        assert {f["data"]["duration_ms"] for f in had + rest} == set(range(60))  # no gap
        assert await assert_nothing_more(c) == []
        # Each frame's cursor is where this client stands: a resume from it gets exactly
        # what followed (frames of a read shared with clients behind this one in some
        # partition are re-encoded for it when they run ahead of the read's progress).
        for k in (0, len(rest) // 3, len(rest) - 1):
            again = await open_ws(second.url, token("u1"))
            reply = await subscribe(again, "executions", since=rest[k]["cursor"])
            assert reply["data"]["recovered"] is True
            after = await recv_until(again, len(rest) - k - 1) if k < len(rest) - 1 else []
            assert sorted(f["id"] for f in after) == sorted(f["id"] for f in rest[k + 1 :]), (i, k)
            assert await assert_nothing_more(again) == []
            await again.close()
        await c.close()


async def test_since_forms_with_partitions(
    redis_server: RedisServer, stream: str, gateways: list[GatewayProcess]
) -> None:
    await _publish(redis_server.url, stream, 9)
    ws = await open_ws(gateways[0].url, token("u1"))
    # 0-0: the start of every partition (nothing trimmed: recovered).
    reply = await subscribe(ws, "executions", since="0-0")
    assert reply["data"]["recovered"] is True
    assert len(await recv_until(ws, 9)) == 9
    # A bare id names no position of a partitioned stream: recovered false, live.
    some_id = (await _publish(redis_server.url, stream, 1, start=9))[0]
    await recv_until(ws, 1)
    other = await open_ws(gateways[0].url, token("u2"))
    reply = await subscribe(other, "executions", since=some_id)
    assert reply["data"]["recovered"] is False
    assert parse_cursor(reply["data"]["position"], P) is not None
    # A cursor of another partition count: the same.
    reply = await subscribe(other, "approvals", since="v1.1-0.1-0")
    assert reply["data"]["recovered"] is False
    assert await assert_nothing_more(other) == []
    # A cursor one partition of which the stream never held: recovered false.
    held = parse_cursor(reply["data"]["position"], P)
    assert held is not None
    bogus = "v1." + ".".join(["99-7"] + ["{}-{}".format(*sid) for sid in held[1:]])
    reply = await subscribe(other, "executions:exec-0", since=bogus)
    assert reply["data"]["recovered"] is False
    # Not a cursor at all: an error reply, nothing else changes.
    await other.send(json.dumps({"type": "subscribe", "data": {"channel": "executions", "since": "v1.x"}}))
    assert (await recv_json(other))["type"] == "error"
    await ws.close()
    await other.close()


async def test_a_mismatched_partition_count_is_refused(redis_server: RedisServer, stream: str) -> None:
    gateway = _gateway(redis_server.url, stream)
    gateway.start()
    try:
        # A gateway with another count refuses to start, naming the setting.
        wrong = _gateway(redis_server.url, stream, partitions=1)
        wrong.start(wait_ready=False)
        assert await asyncio.to_thread(wrong.wait, 30) != 0
        assert "STREAM_PARTITIONS is 1, but this stream's gateways and publishers use 3" in wrong.output()
        # A publisher with another count refuses to publish: nothing is written.
        settings = RedisSettings(url=redis_server.url, stream_key=stream, partitions=1)
        async with Publisher(settings) as pub:
            with pytest.raises(PublishError, match="STREAM_PARTITIONS is 1"):
                await pub.publish(
                    make_event(
                        "execution.started", {"execution_id": "e", "workflow_id": "w", "status": "running"}
                    )
                )
        assert not redis.Redis.from_url(redis_server.url).exists(stream)
    finally:
        gateway.stop()


async def test_partitions_need_redis() -> None:
    gateway = GatewayProcess({"STREAM_PARTITIONS": "3"})
    gateway.start(wait_ready=False)
    assert await asyncio.to_thread(gateway.wait, 30) != 0
    assert "STREAM_PARTITIONS" in gateway.output() and "embedded event log" in gateway.output()


async def test_a_bad_partition_count_is_refused_at_start_up() -> None:
    gateway = GatewayProcess({"STREAM_PARTITIONS": "65", "REDIS_URL": "redis://127.0.0.1:1/0"})
    gateway.start(wait_ready=False)
    assert await asyncio.to_thread(gateway.wait, 30) != 0
    assert "STREAM_PARTITIONS='65' is invalid: expected an integer in 1..64" in gateway.output()


async def test_the_python_client_resumes_from_the_cursor_across_a_drain(
    redis_server: RedisServer, stream: str, gateways: list[GatewayProcess]
) -> None:
    """``client.Client`` (which ``flowwire tail`` is built on) keeps the frames' cursor and
    resumes from it on the other instance after a drain (1012): every event once, in
    order per execution, none missing."""
    client = Client([g.url for g in gateways], token=token("svc"), since="0-0")
    got: list[Event] = []
    async with client:
        await client.subscribe("executions")
        await _publish(redis_server.url, stream, 20)
        async for item in client:
            assert isinstance(item, Event), item
            got.append(item)
            if len(got) == 10:
                victim = next(g for g in gateways if g.url == client.url)
                victim.signal(signal.SIGTERM)  # drain: 1012, resume on the other
                await _publish(redis_server.url, stream, 10, start=20)
            if len(got) == 30:
                break
        assert client.connects >= 2
        assert client.cursor is not None and client.cursor == got[-1].cursor
        assert parse_cursor(client.cursor, P) is not None
    frames = [{"id": e.id, "data": msgspec.to_builtins(e.data)} for e in got]
    _check_order(frames)
    assert sorted(f["data"]["duration_ms"] for f in frames) == list(range(30))


async def test_tail_prints_the_cursor(
    redis_server: RedisServer, stream: str, gateways: list[GatewayProcess]
) -> None:
    await _publish(redis_server.url, stream, 4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    tail = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "tail", "executions", "--since", "0-0", "--count", "4",
        "--url", gateways[0].url, "--token", token("tailer"),
        stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(tail.communicate(), 30)
    assert tail.returncode == 0
    lines = [json.loads(line) for line in out.splitlines()]
    events = [line for line in lines if "id" in line]
    assert len(events) == 4
    assert all(parse_cursor(e["cursor"], P) is not None for e in events)
    assert list(events[0]) == ["type", "timestamp", "id", "cursor", "data"]  # the wire's order
