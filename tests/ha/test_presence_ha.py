"""Presence on a Redis Cluster and through Sentinel: two gateways see each other's users
(Cluster: the pipelines span slots, the PUBLISH goes after them, the pub/sub
subscription is on one node and reaches every node's publishes), changes travel as
pub/sub batches (not reloads), and a SIGKILLed gateway's users leave."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from tests.gateway.test_presence import PRESENCE_ENV, Watcher, until
from tests.ha.topology import ClusterTopology, SentinelTopology
from tests.support.clients import open_ws, subscribe, token
from tests.support.gateway import GatewayProcess

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(params=["cluster", "sentinel"])
def topology(request: pytest.FixtureRequest) -> Iterator[ClusterTopology | SentinelTopology]:
    with ClusterTopology() if request.param == "cluster" else SentinelTopology() as t:
        yield t


def reloads(gw: GatewayProcess) -> float:
    text = gw.get("/metrics")[1].decode()
    return float(
        next(
            line.split()[1]
            for line in text.splitlines()
            if line.startswith("flowwire_presence_reloads_total ")
        )
    )


async def test_presence_across_gateways(topology: ClusterTopology | SentinelTopology) -> None:
    a, b = (GatewayProcess(env={**topology.env, "CLIENT_RATE_LIMIT": "0", **PRESENCE_ENV}) for _ in range(2))
    a.start()
    b.start()
    try:
        alice = await open_ws(a.url, token("alice", "acme"))
        bob = await open_ws(b.url, token("bob", "acme"))
        await subscribe(bob, "executions:e1")
        await until(alice, None, {"alice": 1, "bob": 1})
        await until(bob, None, {"alice": 1, "bob": 1})
        watch = Watcher(alice, "executions:e1")
        await watch.start()
        assert watch.members == {"bob": 1}
        for i in range(5):  # changes on B reach A as pub/sub batches, not as reloads
            carol = await open_ws(b.url, token(f"carol{i}", "acme"))
            await subscribe(carol, "executions:e1")
            await watch.until({"bob": 1, f"carol{i}": 1}, 10)
            await carol.close()
            await watch.until({"bob": 1}, 10)
        print(f"\nreloads on A: {reloads(a)}")
        assert reloads(a) <= 3, a.get("/metrics")
        b.signal(signal.SIGKILL)
        await watch.until({}, 15)
        await alice.close()
    finally:
        a.stop()
        b.stop()
