"""Issue 11 §4: nothing a publisher writes to the stream stops the reader or reaches a
client in a form it must refuse. Each unusable entry is skipped (live and in replays),
counted and logged with its id; the events around it are delivered.

Real redis-server, a real gateway under uvicorn, real WebSocket clients (the
``websockets`` library fails a text frame that is not UTF-8 with 1007, as browsers do).
"""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest

from gateway.log import PartEntry
from gateway.log.redis import RedisLog
from tests.support.clients import open_ws, recv_until, subscribe, token
from tests.support.inproc import serve
from tests.support.redis_server import RedisServer


def ex(eid: str) -> dict[str, str]:
    return {"execution_id": eid, "workflow_id": "wf-1", "status": "running"}


HEAD = b'{"execution_id":"e-bad","workflow_id":"wf-1","status":"running"'

#: What publishers wrote that the gateway must survive, with the reason it is skipped.
BAD = {
    "nested 2,000 levels": HEAD + b',"context":' + b"[" * 2000 + b"]" * 2000 + b"}",
    "invalid UTF-8": HEAD + b',"result":"\xff\xfe"}',
    "above MAX_EVENT_SIZE": HEAD + b',"output":"' + b"x" * 70_000 + b'"}',
}


async def test_unusable_entries_are_skipped_counted_and_logged_and_delivery_goes_on(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "flowwire.hub")
    async with serve("redis", redis_server.url, max_event_size=64 * 1024) as gw:
        assert isinstance(gw.log, RedisLog)
        ws = await open_ws(gw.url, token())
        await subscribe(ws, "executions")
        before = await gw.append("execution.started", ex("e0"))
        bad_ids = []
        for data in BAD.values():
            fields = {"type": b"execution.started", "data": data}
            bad_ids.append((await gw.log.append(fields)).decode())
        after = await gw.append("execution.completed", ex("e1"))

        got = await recv_until(ws, 2)
        assert [e["id"] for e in got] == [before, after]
        # The reader is alive and reports ready; every bad entry counted once.
        stats = gw.app.gateway.stats
        assert stats.entries_skipped == len(BAD)
        assert stats.reader_errors == 0
        async with httpx.AsyncClient() as http:
            ready = await http.get(f"http://127.0.0.1:{gw.port}/readyz")
        assert ready.status_code == 200, ready.text
        logged = caplog.text
        for entry_id in bad_ids:
            assert entry_id in logged

        # A client resuming from before them replays past them, and goes on live.
        again = await open_ws(gw.url, token("u2"))
        reply = await subscribe(again, "executions", since=before)
        assert reply["data"]["recovered"] is True
        assert [e["id"] for e in await recv_until(again, 1)] == [after]
        last = await gw.append("execution.failed", ex("e2"))
        assert [e["id"] for e in await recv_until(again, 1)] == [last]
        assert [e["id"] for e in await recv_until(ws, 1)] == [last]
        assert stats.entries_skipped == len(BAD)  # a replay skips without counting again
        await ws.close()
        await again.close()


async def test_a_flood_of_unusable_entries_is_logged_in_bounded_lines(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "flowwire.hub")
    async with serve("redis", redis_server.url) as gw:
        assert isinstance(gw.log, RedisLog)
        ws = await open_ws(gw.url, token())
        await subscribe(ws, "executions")
        pipe = gw.log.client.pipeline(transaction=False)
        for _ in range(500):
            pipe.xadd(gw.log.stream_key, {"type": "execution.started", "data": "{not json"})
        await pipe.execute()
        good = await gw.append("execution.started", ex("e1"))
        assert [e["id"] for e in await recv_until(ws, 1)] == [good]
        assert gw.app.gateway.stats.entries_skipped == 500
        lines = [r for r in caplog.records if r.name == "flowwire.hub"]
        assert 1 <= len(lines) <= 20, len(lines)
        await ws.close()


def test_skip_log_summarises_past_its_rate() -> None:
    from gateway.hub import SkipLog

    records: list[str] = []

    class Sink(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    log = logging.getLogger("test.skiplog")
    log.addHandler(Sink())
    log.propagate = False
    skips = SkipLog(log, per_second=3)
    for i in range(10):
        skips.skipped(f"{i}-0".encode(), "bad", now=100.0)
    skips.skipped(b"11-0", "bad", now=101.5)
    assert records[:3] == [f"skipping stream entry {i}-0: bad" for i in range(3)]
    assert records[3] == "skipped 7 more unusable stream entries"
    assert records[4] == "skipping stream entry 11-0: bad"
    assert len(records) == 5
    json.dumps(records)  # plain strings


async def test_the_reader_outlives_an_unexpected_error_in_dispatch(redis_server: RedisServer) -> None:
    """Supervision: a bug in dispatch (simulated) is logged, counted, and the reader is
    restarted; delivery goes on."""
    async with serve("redis", redis_server.url) as gw:
        hub = gw.app.gateway.hub
        ws = await open_ws(gw.url, token())
        await subscribe(ws, "executions")
        real = hub.dispatch
        calls = 0

        def broken(entries: list[PartEntry]) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("a bug")
            real(entries)

        hub.dispatch = broken  # type: ignore[method-assign]
        first = await gw.append("execution.started", ex("e1"))
        await asyncio.sleep(0.5)
        second = await gw.append("execution.started", ex("e2"))
        got = [e["id"] for e in await recv_until(ws, 1)]
        # The batch that failed is read again after the restart: nothing lost.
        if got == [first]:
            got += [e["id"] for e in await recv_until(ws, 1)]
        assert got == [first, second]
        assert gw.app.gateway.supervisor.restarts["reader"] >= 1
        await ws.close()
