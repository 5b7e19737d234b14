"""Sentinel (issue 14): gateways, publishers and the CLI follow a failover without a
restart; the publish guarantee across it, strict and not; resume across it, per client.

Topology: one primary, one replica, three sentinels on free loopback ports
(``tests/ha/topology.py``), the primary killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from publisher import Publisher, PublisherUnavailable, RedisSettings, make_event
from tests.ha.load import failover_under_load
from tests.ha.topology import CLI_DATA as DATA
from tests.ha.topology import Node, SentinelTopology, cli, wait_until
from tests.support.clients import open_ws, recv_json, recv_until, subscribe
from tests.support.gateway import GatewayProcess

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def sentinel() -> Iterator[SentinelTopology]:
    with SentinelTopology() as topology:
        yield topology


def _restart_as_replica(old: Node, new: Node) -> None:
    """The orchestrator brings the dead node back as a replica of the current primary
    (what a Sentinel-aware start script does), so that strict publishes have a replica
    to wait for again."""
    old.args = ["--replicaof", "127.0.0.1", str(new.port)]
    old.start()


async def test_failover_under_load(sentinel: SentinelTopology, record_property: Any) -> None:
    """Three gateways with 100 clients each, 500 events/s, the primary SIGKILLed
    (``tests.ha.load.failover_under_load`` for what is checked)."""
    created = cli(sentinel.env, "api-key", "create", "--user", "keyed")
    assert created.returncode == 0, created.stderr
    old = sentinel.primary
    new: list[Node] = []

    def kill() -> tuple[float, Callable[[], list[tuple[str, dict[bytes, bytes]]]]]:
        old.kill()
        dead_at = time.monotonic()
        new.append(sentinel.wait_failover(old))
        return dead_at, lambda: new[0].entries()

    def restart() -> None:
        _restart_as_replica(old, new[0])

    figures = await failover_under_load(
        sentinel.env, sentinel.url, kill, restart, api_key=created.stdout.strip(), record=record_property
    )
    print(f"\nsentinel failover: {figures}")


async def test_a_cursor_the_new_primary_never_had_resumes_unrecovered(sentinel: SentinelTopology) -> None:
    """The replica is stopped (SIGSTOP) behind a large write, so the entries after it
    never reach it; a client receives them; the primary dies and the replica is
    promoted. The acknowledged default publishes are lost (counted: exactly those), a
    strict publish meanwhile is never acknowledged, and the client, resuming from a
    cursor the new primary never held, gets ``recovered: false``: never a silent gap."""
    gateway = GatewayProcess(env={**sentinel.env, "MIRROR_ENABLED": "off"})
    gateway.start()
    try:
        ws = await open_ws(gateway.url)
        await subscribe(ws, "executions")
        async with Publisher(RedisSettings(url=sentinel.url)) as pub:
            kept = await pub.publish(_event("kept"))
            await recv_until(ws, 1)
            wait_until(
                "replica has it",
                lambda: sentinel.replica.entries()[-1:] and sentinel.replica.entries()[-1][0] == kept,
            )
            sentinel.replica.pause()
            try:
                # More than the kernel buffers between them hold: what follows stays in
                # the primary's replica output buffer, and dies with it.
                with contextlib.closing(sentinel.primary.client()) as c:
                    for i in range(8):
                        c.set(f"filler:{i}", b"x" * 8_000_000)
                lost = [await pub.publish(_event(f"lost{i}")) for i in range(3)]
                got = [e["id"] for e in await recv_until(ws, 3)]
                assert got == lost
                strict = Publisher(RedisSettings(url=sentinel.url, timeout=2.0, wait_replicas=1))
                with pytest.raises(PublisherUnavailable, match="0 of 1 replicas"):
                    await strict.publish(_event("strict"), idempotency_key="strict-1")
                await strict.aclose()
                old = sentinel.primary
                old.kill()
            finally:
                sentinel.replica.resume()
            await asyncio.to_thread(sentinel.wait_failover, old)
            held = {eid for eid, _ in sentinel.replica.entries()}
            assert kept in held
            assert [e for e in lost if e in held] == [], (
                "the replica received what was sent while it was stopped"
            )
            # The pod's reader finds its position gone: it closes its clients (1012)...
            async with asyncio.timeout(30):
                with contextlib.suppress(Exception):
                    while True:
                        await recv_json(ws, timeout=30)
            assert ws.close_code == 1012
            # ... and a resume from the lost cursor is answered recovered: false.
            await asyncio.to_thread(gateway.wait_ready)
            ws = await open_ws(gateway.url)
            reply = await subscribe(ws, "executions", since=lost[-1])
            assert reply["data"]["recovered"] is False
            # A cursor the new primary holds resumes whole.
            ws2 = await open_ws(gateway.url)
            reply = await subscribe(ws2, "executions", since=kept)
            assert reply["data"]["recovered"] is True
            after = await pub.publish(_event("after"))
            assert [e["id"] for e in await recv_until(ws, 1)] == [after]
            assert [e["id"] for e in await recv_until(ws2, 1)] == [after]
            await ws.close()
            await ws2.close()
    finally:
        gateway.stop()


def _event(tag: str) -> Any:
    return make_event(
        "execution.started", {"execution_id": f"exec_{tag}", "workflow_id": "wf", "status": "running"}
    )


def test_cli_and_publisher_follow_the_sentinels(sentinel: SentinelTopology) -> None:
    """``flowwire publish`` and ``api-key`` on REDIS_SENTINELS; REDIS_URL beside it is refused,
    naming both."""
    out = cli(sentinel.env, "publish", "execution.started", "--data", DATA)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == sentinel.primary.entries()[-1][0]
    both = cli(
        {**sentinel.env, "REDIS_URL": "redis://127.0.0.1:1/0"}, "publish", "execution.started", "--data", DATA
    )
    assert both.returncode == 2
    assert "REDIS_URL and REDIS_SENTINELS" in both.stderr
    listed = cli(sentinel.env, "api-key", "list")
    assert listed.returncode == 0 and listed.stdout == ""


async def test_strict_publish_waits_for_the_replica_and_its_retries_append_once(
    sentinel: SentinelTopology,
) -> None:
    """With the replica stopped, WAIT answers 0 of 1 (after 0.6 s: PUBLISH_TIMEOUT 3 s):
    the strict publish retries (the script runs again and finds its key); once the
    replica is back, it returns the id of the one entry its first attempt appended."""
    with contextlib.closing(sentinel.primary.client()) as c:
        evals_before = int(c.info("commandstats").get("cmdstat_eval", {}).get("calls", 0))
    async with Publisher(RedisSettings(url=sentinel.url, timeout=3, wait_replicas=1)) as pub:
        sentinel.replica.pause()
        try:
            task = asyncio.create_task(pub.publish(_event("once")))
            await asyncio.sleep(1.5)
            assert not task.done()
        finally:
            sentinel.replica.resume()
        eid = await task
    entries = sentinel.primary.entries()
    assert [e for e, f in entries if b"exec_once" in f[b"data"]] == [eid]
    with contextlib.closing(sentinel.primary.client()) as c:
        evals = int(c.info("commandstats")["cmdstat_eval"]["calls"]) - evals_before
    assert evals >= 2, "the publish was never retried: the test did not test anything"
