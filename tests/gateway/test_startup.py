"""Issue 11 §2 / issue 12 §3: start-up and supervision, against real processes.

``flowwire serve`` with a ``REDIS_URL`` where no Redis listens opens its port at once
(``/healthz`` 200, ``/readyz`` 503 naming the cause, upgrades refused with 503), logs the
URL it tries without the password, keeps retrying, becomes ready when a Redis appears,
and stops promptly on SIGTERM whichever the state.
"""

from __future__ import annotations

import json
import signal
import time

import pytest
from websockets.exceptions import InvalidStatus

from gateway.log import PartEntry
from tests.support.clients import open_ws, subscribe, token
from tests.support.gateway import GatewayProcess
from tests.support.redis_server import RedisServer, free_port


def _wait_listening(gw: GatewayProcess, timeout: float = 10.0) -> tuple[int, bytes]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return gw.get("/healthz")
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


async def test_serve_without_redis_opens_its_port_reports_not_ready_and_recovers() -> None:
    port = free_port()
    gw = GatewayProcess(env={"REDIS_URL": f"redis://:hunter2@127.0.0.1:{port}/0"})
    gw.start(wait_ready=False)
    try:
        assert _wait_listening(gw)[0] == 200
        status, body = gw.get("/readyz")
        assert status == 503
        assert "event log unreachable" in json.loads(body)["status"]
        assert f"127.0.0.1:{port}" in json.loads(body)["status"]
        with pytest.raises(InvalidStatus) as info:
            await open_ws(gw.url, token())
        assert info.value.response.status_code == 503
        assert json.loads(info.value.response.body or b"{}")["code"] == "NOT_READY"

        redis = RedisServer(port)
        redis.start()
        try:
            gw.wait_ready(timeout=20)
            ws = await open_ws(gw.url, token())
            await subscribe(ws, "executions")
            await ws.close()
        finally:
            redis.close()
        out = gw.output()
        assert f"redis://:***@127.0.0.1:{port}/0" in out
        assert "hunter2" not in out
    finally:
        gw.stop()


def test_serve_without_redis_stops_promptly_on_sigterm() -> None:
    gw = GatewayProcess(env={"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    gw.start(wait_ready=False)
    try:
        _wait_listening(gw)
        gw.signal(signal.SIGTERM)
        assert gw.wait(timeout=10) == 0
    finally:
        gw.stop()


async def test_reader_lag_is_true_during_a_backlog(redis_server: RedisServer) -> None:
    """``reader_lag_entries`` / ``reader_lag_seconds`` are above 0 while the reader works
    through a backlog, and back to 0 once it caught up (issue 12 §3)."""
    import asyncio

    import httpx

    from gateway.log.redis import RedisLog
    from tests.support.inproc import serve

    def gauge(text: str, name: str) -> float:
        [line] = [ln for ln in text.splitlines() if ln.startswith(name + " ")]
        return float(line.split()[1])

    async with serve("redis", redis_server.url, reader_batch=10) as gw:
        assert isinstance(gw.log, RedisLog)
        hub = gw.app.gateway.hub
        dispatch = hub.dispatch

        def slow(entries: list[PartEntry]) -> None:
            time.sleep(0.01)  # a pod short of CPU
            dispatch(entries)

        hub.dispatch = slow  # type: ignore[method-assign]
        pipe = gw.log.client.pipeline(transaction=False)
        for i in range(2_000):
            data = json.dumps({"execution_id": f"e{i}", "workflow_id": "wf-1", "status": "running"})
            pipe.xadd(gw.log.stream_key, {"type": "execution.started", "data": data})
        await pipe.execute()
        seen_entries = seen_seconds = 0.0
        async with httpx.AsyncClient() as http:
            for _ in range(300):
                text = (await http.get(f"http://127.0.0.1:{gw.port}/metrics")).text
                seen_entries = max(seen_entries, gauge(text, "flowwire_reader_lag_entries"))
                seen_seconds = max(seen_seconds, gauge(text, "flowwire_reader_lag_seconds"))
                if gw.app.gateway.stats.events_read >= 2_000:
                    break
                await asyncio.sleep(0.05)
            assert gw.app.gateway.stats.events_read == 2_000
            assert seen_entries > 100 and seen_seconds > 0
            await asyncio.sleep(0.2)
            text = (await http.get(f"http://127.0.0.1:{gw.port}/metrics")).text
        assert gauge(text, "flowwire_reader_lag_entries") == 0
        assert gauge(text, "flowwire_reader_lag_seconds") == 0
