"""Issue 12's delivery defects, end to end against a real gateway and redis-server:
resume past unusable entries (no spin), a client resuming ahead of a lagging reader (no
duplicate), a resume storm sharing its log reads, and outboxes bounded in bytes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from websockets.exceptions import ConnectionClosed

from gateway.log.redis import RedisLog
from tests.support.clients import open_ws, recv_json, recv_until, subscribe, token
from tests.support.inproc import Served, serve
from tests.support.redis_server import RedisServer


def ex(eid: str, status: str = "running") -> dict[str, Any]:
    return {"execution_id": eid, "workflow_id": "wf-1", "status": status}


async def _xrange_calls(gw: Served) -> int:
    assert isinstance(gw.log, RedisLog)
    stats: Any = await gw.log.client.info("commandstats")
    return int(stats.get("cmdstat_xrange", {}).get("calls", 0))


async def test_resume_past_unusable_newest_entries_neither_spins_nor_starves(
    redis_server: RedisServer,
) -> None:
    async with serve("redis", redis_server.url) as gw:
        assert isinstance(gw.log, RedisLog)
        first = await gw.append("execution.started", ex("e1"))
        for i in range(250):  # unusable: an unknown type, then bad JSON
            await gw.log.append({"type": b"nope" if i % 2 else b"execution.started", "data": b"{not json"})
        await asyncio.sleep(0.3)  # the reader has passed them all
        ws = await open_ws(gw.url, token())
        reply = await subscribe(ws, "executions", since=first)
        assert reply["data"]["recovered"] is True
        await asyncio.sleep(0.3)  # the replay is done
        before = await _xrange_calls(gw)
        await asyncio.sleep(1.0)
        spun = await _xrange_calls(gw) - before
        assert spun <= 2, f"{spun} XRANGE calls in 1 s while idle: the replay spins"
        live = await gw.append("execution.completed", ex("e1", "completed"))
        [frame] = await recv_until(ws, 1)
        assert frame["id"] == live  # nothing was skipped, nothing repeated
        await ws.close()


async def test_a_client_resuming_ahead_of_a_lagging_reader_gets_no_duplicate(
    redis_server: RedisServer,
) -> None:
    async with serve("redis", redis_server.url) as gw:
        hub = gw.app.gateway.hub
        watcher = await open_ws(gw.url, token("w"))
        await subscribe(watcher, "executions")
        e1 = await gw.append("execution.started", ex("e1"))
        assert (await recv_json(watcher))["id"] == e1
        # The reader lags: what it reads is held back (a slow instance).
        held: list[Any] = []
        dispatch: Callable[[Any], None] = hub.dispatch
        hub.dispatch = held.append  # type: ignore[method-assign,assignment]
        await gw.append("execution.started", ex("e2"))
        e3 = await gw.append("execution.started", ex("e3"))
        e4 = await gw.append("execution.started", ex("e4"))
        await asyncio.sleep(0.2)
        # A client that saw e1..e3 on a faster instance resumes here.
        ws = await open_ws(gw.url, token())
        reply = await subscribe(ws, "executions", since=e3)
        assert reply["data"]["recovered"] is True
        hub.dispatch = dispatch  # type: ignore[method-assign,assignment]
        for entries in held:
            dispatch(entries)
        frames = await recv_until(ws, 1)
        await asyncio.sleep(0.3)
        more = []
        while True:
            try:
                more.append(json.loads(await asyncio.wait_for(ws.recv(), 0.2)))
            except TimeoutError:
                break
        assert [f["id"] for f in frames + more] == [e4]
        await ws.close()
        await watcher.close()


async def test_a_resume_storm_reads_each_range_once(redis_server: RedisServer) -> None:
    clients, missed = 100, 1_000
    async with serve("redis", redis_server.url, replay_batch=500) as gw:
        start = await gw.append("execution.started", ex("e0"))
        ids = await gw.append_burst("execution.started", ex("e1"), missed)
        await asyncio.sleep(0.5)
        stats = gw.app.gateway.stats
        reads_before, xrange_before = stats.replay_reads, await _xrange_calls(gw)
        served_before = stats.replay_served
        conns = [await open_ws(gw.url, token(f"u{i}"), max_queue=None) for i in range(clients)]
        for ws in conns:
            frame = {"type": "subscribe", "data": {"channel": "executions", "since": start}}
            await ws.send(json.dumps(frame))
        for ws in conns:
            reply = await recv_json(ws)
            assert reply["type"] == "subscribed" and reply["data"]["recovered"] is True
            assert [f["id"] for f in await recv_until(ws, missed, timeout=60)] == ids
        reads = stats.replay_reads - reads_before
        xranges = await _xrange_calls(gw) - xrange_before
        # Each range read once (ceil(1001 / 500) = 3 reads), not once per client (300);
        # Redis: those reads, and one XRANGE per client asking whether its cursor is held.
        assert reads <= 2 * -(-(missed + 1) // 500), reads
        assert xranges <= reads + clients, xranges
        # /metrics shows the sharing: connections served per read, well above one.
        assert stats.replay_served - served_before >= clients
        for ws in conns:
            await ws.close()


async def test_control_replies_are_bounded_in_bytes(redis_server: RedisServer) -> None:
    """A client that sends large subscribes (the reply echoes the filters) and reads
    nothing is closed with 4008 once its outbox holds CLIENT_SEND_BUFFER_BYTES."""
    async with serve(
        "redis", redis_server.url, send_buffer_bytes=256 * 1024, max_filter_values=100_000
    ) as gw:
        ws = await open_ws(gw.url, token(), max_queue=1, max_size=None)
        values = [f"wf-{i:05d}-" + "x" * 100 for i in range(200)]
        message = json.dumps(
            {"type": "subscribe", "data": {"channel": "executions", "filters": {"workflow_ids": values}}}
        )
        code = None
        try:
            for _ in range(2_000):  # ~50 MB of replies if nothing bounded them
                await ws.send(message)
            await asyncio.sleep(5)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
        conns = gw.app.gateway.hub.connections
        if code is None:
            # The client's own read queue is full: the close frame waits behind it.
            assert not conns or all(c.close_code == 4008 for c in conns.values())
        else:
            assert code == 4008
        assert gw.app.gateway.stats.slow_consumer_closes == 1
        ws.transport.abort()  # it reads nothing: no close handshake to wait for
        await ws.wait_closed()


async def test_a_client_closing_with_4008_or_4029_is_not_counted_as_our_close(
    redis_server: RedisServer,
) -> None:
    async with serve("redis", redis_server.url) as gw:
        for code in (4008, 4029):
            ws = await open_ws(gw.url, token())
            await subscribe(ws, "executions")
            await ws.close(code, "the client's own reason")
            assert ws.close_code == code  # echoed (RFC 6455 §5.5.1)
        stats = gw.app.gateway.stats
        assert (stats.slow_consumer_closes, stats.rate_limit_closes) == (0, 0)
