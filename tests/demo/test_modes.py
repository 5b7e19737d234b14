"""The embedded log as a single node, and the demo executor publishing to Redis."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.clients import open_ws, recv_until, subscribe, token
from tests.support.gateway import GatewayProcess
from tests.support.redis_server import RedisServer, free_port, read_stream


async def test_serve_without_redis_warns_single_node_and_serves() -> None:
    gw = GatewayProcess()  # no REDIS_* in its environment
    gw.start()
    try:
        assert "embedded event log, a single node" in gw.output()
        async with await open_ws(gw.url, token()) as ws:
            reply = await subscribe(ws, "executions")
            assert reply["data"]["position"] == "0-0"
    finally:
        gw.stop()


def _start_demo(env: dict[str, str], port: int) -> tuple[subprocess.Popen[bytes], Path]:
    log = Path(tempfile.mkstemp(prefix="flowwire-demo-", suffix=".log")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "demo", "--port", str(port), "--rate", "5", "--seed", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return proc, log


async def test_demo_publishes_through_the_publisher_to_redis(redis_server: RedisServer) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    env["REDIS_URL"] = redis_server.url
    proc, log = _start_demo(env, port)
    try:
        deadline = time.monotonic() + 20
        while not (match := re.search(r"token=(\S+)", log.read_text())):
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            await asyncio.sleep(0.05)
        tok = match[1]
        ready = GatewayProcess(port=port)  # only to poll /readyz of the demo
        ready.proc = None
        await asyncio.to_thread(ready.wait_ready)
        async with await open_ws(f"ws://127.0.0.1:{port}/ws", tok) as ws:
            await subscribe(ws, "workflows:wf-order-fulfilment")
            events = await recv_until(ws, 3, timeout=20)
        stream_ids = {eid for eid, _ in read_stream(redis_server.url)}
        assert {e["id"] for e in events} <= stream_ids  # they went through Redis
    finally:
        proc.terminate()
        proc.wait(15)
