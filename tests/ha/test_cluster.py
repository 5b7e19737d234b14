"""Redis Cluster (issue 14): a six-node cluster (three primaries, three replicas) from
``redis-cli --cluster create``; gateways, publishers, the mirror, API keys and the CLI on
``REDIS_CLUSTER_NODES``; the stream's primary killed with SIGKILL under load."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from gateway.mirror import BROADCAST_CHANNEL
from publisher import BlockingPublisher, Publication, Publisher, RedisSettings, make_event
from publisher.connect import companion_key
from schemas.partition import partition_keys, partition_of
from tests.ha.load import failover_under_load
from tests.ha.topology import CLI_DATA as DATA
from tests.ha.topology import ClusterTopology, Node, cli, wait_until
from tests.support.clients import open_ws, recv_until, subscribe
from tests.support.gateway import GatewayProcess

pytestmark = pytest.mark.timeout(180)

STREAM = "ws:events"


@pytest.fixture
def cluster() -> Iterator[ClusterTopology]:
    with ClusterTopology() as topology:
        yield topology


async def test_failover_under_load(cluster: ClusterTopology, record_property: Any) -> None:
    """The Sentinel run's checks on a Cluster (one stream, P = 1), the primary that
    serves the stream's slot SIGKILLed; its replica takes over."""
    created = cli(cluster.env, "api-key", "create", "--user", "keyed")
    assert created.returncode == 0, created.stderr
    old = cluster.owner(STREAM)
    new: list[Node] = []

    def kill() -> tuple[float, Callable[[], list[tuple[str, dict[bytes, bytes]]]]]:
        old.kill()
        dead_at = time.monotonic()
        new.append(cluster.wait_failover(STREAM, old))
        return dead_at, lambda: new[0].entries()

    def restart() -> None:
        old.start()  # its nodes.conf makes it rejoin as a replica of the new primary

    figures = await failover_under_load(
        cluster.env, cluster.url, kill, restart, api_key=created.stdout.strip(), record=record_property
    )
    print(f"\ncluster failover: {figures}")


async def test_partitioned_failover_under_load(cluster: ClusterTopology, record_property: Any) -> None:
    """The same checks with STREAM_PARTITIONS=3 (docs/operations.md "Partitioned
    streams"): the partitions spread over the three primaries; the primary of partition
    0 is SIGKILLed. Each client resumes from its last frame's cursor; per client, per
    partition: no duplicate, no disorder, every event of the surviving streams delivered
    or a `recovered: false` told; strict publishes none lost, none twice."""
    created = cli(cluster.env, "api-key", "create", "--user", "keyed")
    assert created.returncode == 0, created.stderr
    keys = partition_keys(STREAM, 3)
    owners = {cluster.owner(key).port for key in keys}
    assert len(owners) == 3, "the partitions' hash tags name slots of three different primaries"
    old = cluster.owner(keys[0])

    def entries() -> list[tuple[str, dict[bytes, bytes]]]:
        return [entry for key in keys for entry in cluster.owner(key).entries(key)]

    def kill() -> tuple[float, Callable[[], list[tuple[str, dict[bytes, bytes]]]]]:
        old.kill()
        dead_at = time.monotonic()
        cluster.wait_failover(keys[0], old)
        return dead_at, entries

    figures = await failover_under_load(
        cluster.env,
        cluster.url,
        kill,
        old.start,
        api_key=created.stdout.strip(),
        record=record_property,
        partitions=3,
    )
    print(f"\ncluster failover, 3 partitions: {figures}")


async def test_one_partitions_failover_leaves_the_others_flowing(cluster: ClusterTopology) -> None:
    """A gateway reads each partition on its own primary (a lane each): while partition
    0's primary is dead and not replaced, the events of partitions 1 and 2 still reach
    clients, and their lanes never fail. No failover may happen meanwhile (else the test
    would show nothing): the replicas are told not to fail over and the cluster to serve
    the slots it still covers (otherwise every node answers CLUSTERDOWN), so the outcome
    does not depend on how fast a loaded machine runs the steps."""
    keys = partition_keys(STREAM, 3)
    old = cluster.owner(keys[0])
    for node in cluster.nodes:
        with contextlib.closing(node.client()) as c:
            c.config_set("cluster-require-full-coverage", "no")
            c.config_set("cluster-replica-no-failover", "yes")
    gateway = GatewayProcess(env={**cluster.env, "STREAM_PARTITIONS": "3", "MIRROR_ENABLED": "off"})
    gateway.start()
    try:
        ws = await open_ws(gateway.url)
        await subscribe(ws, "executions")
        healthy = [e for e in (f"exec_f{i}" for i in range(50)) if partition_of(e, 3) != 0]
        settings = RedisSettings(url=cluster.url, partitions=3, timeout=10)
        async with Publisher(settings) as pub:

            def event(execution: str) -> Any:
                return make_event(
                    "execution.started", {"execution_id": execution, "workflow_id": "wf", "status": "running"}
                )

            await pub.publish(event(healthy[0]))
            await recv_until(ws, 1)
            old.kill()
            await asyncio.sleep(0.5)  # the gateway's lane of partition 0 has failed by now
            await pub.publish(event(healthy[1]))
            [frame] = await recv_until(ws, 1, timeout=20)
            assert cluster.owner(keys[0]) is old and not old.alive, "partition 0 must still be down"
            assert frame["data"]["execution_id"] == healthy[1]
        await ws.close()
    finally:
        gateway.stop()
        print(gateway.output())  # shown when the test fails
    # Not just eventually: the other lanes' reads were never broken (each lane has a
    # cluster client of its own; a shared one recycled every node's connections). That
    # SIGTERM stopped it with a primary down, the autouse fixture in tests/conftest.py
    # checks (it once had to be killed).
    log = gateway.output()
    assert "event log unavailable (partition 0)" in log
    assert "unavailable (partition 1)" not in log and "unavailable (partition 2)" not in log


async def test_mirror_reaches_subscribers_on_every_node(cluster: ClusterTopology) -> None:
    """The legacy mirror on a Cluster: one message per target channel on
    ``ws:broadcast:all``, received by a subscriber connected to any node; the consumer
    group makes two gateways mirror each entry once."""
    gateways = [GatewayProcess(env=cluster.env) for _ in range(2)]
    subscribers = []
    try:
        for gw in gateways:
            gw.start()
        for node in cluster.nodes:
            sub = node.client().pubsub()  # type: ignore[no-untyped-call]
            sub.subscribe(BROADCAST_CHANNEL)
            assert sub.get_message(timeout=2) is not None  # the subscribe confirmation
            subscribers.append(sub)
        ws = await open_ws(gateways[0].url)
        await subscribe(ws, "executions")
        async with Publisher(RedisSettings(url=cluster.url)) as pub:
            ids = [
                await pub.publish(
                    make_event(
                        "execution.started",
                        {"execution_id": f"exec_m{i}", "workflow_id": "wf", "status": "running"},
                    )
                )
                for i in range(5)
            ]
        assert [e["id"] for e in await recv_until(ws, 5)] == ids
        await ws.close()
        for sub in subscribers:
            messages: list[dict[str, Any]] = []

            def drained(s: Any = sub, out: list[dict[str, Any]] = messages) -> bool:
                while (m := s.get_message(timeout=0.2)) is not None:
                    out.append(json.loads(m["data"]))
                return len(out) >= 15

            wait_until("mirrored messages", drained, timeout=20)
            # execution.* goes to executions, executions:{id}, workflows:{id}: 3 x 5, once each.
            assert sorted(m["Channel"] for m in messages) == sorted(
                ch for i in range(5) for ch in ("executions", f"executions:exec_m{i}", "workflows:wf")
            )
    finally:
        for sub in subscribers:
            sub.close()
        for gw in gateways:
            gw.stop()


async def test_strict_publish_and_keys_share_the_stream_slot(cluster: ClusterTopology) -> None:
    """The idempotency keys live in the stream's slot (one script touches both), WAIT
    runs on the stream's primary, and a retried key appends once, from either publisher;
    ``flowwire publish`` and ``api-key`` run on REDIS_CLUSTER_NODES."""
    settings = RedisSettings(url=cluster.url, wait_replicas=1)
    async with Publisher(settings) as pub:
        event = make_event(
            "execution.started", {"execution_id": "exec_k", "workflow_id": "wf", "status": "running"}
        )
        first = await pub.publish(event, idempotency_key="order-1")
        again = await pub.publish(event, idempotency_key="order-1")
        other = await pub.publish(event)
    with BlockingPublisher(settings) as blocking:
        assert blocking.publish(event, idempotency_key="order-1") == first
    published = cli(cluster.env, "publish", "execution.started", "--data", DATA)
    assert published.returncode == 0, published.stderr
    assert first == again != other
    owner = cluster.owner(STREAM)
    assert [eid for eid, _ in owner.entries()] == [first, other, published.stdout.strip()]
    key = companion_key(STREAM, "dedupe:") + "order-1"
    with contextlib.closing(owner.client()) as c:
        assert c.get(key) == first.encode()
    listed = cli(cluster.env, "api-key", "list")
    assert listed.returncode == 0, listed.stderr
    with contextlib.closing(redis.Redis(host="127.0.0.1", port=owner.port)) as c:
        slots = {int(c.execute_command("CLUSTER", "KEYSLOT", k)) for k in (key, STREAM)}  # type: ignore[no-untyped-call]
    assert len(slots) == 1


def _events_by_partition(tag: str, per_partition: int, partitions: int = 3) -> list[Any]:
    """``per_partition`` events of each partition, partition 0's first (so that its
    primary is the first of the batch's order, ``_by_node``)."""
    executions = (f"exec_{tag}{i}" for i in range(10_000))
    chosen: dict[int, list[str]] = {p: [] for p in range(partitions)}
    for execution in executions:
        share = chosen[partition_of(execution, partitions)]
        if len(share) < per_partition:
            share.append(execution)
        if all(len(s) == per_partition for s in chosen.values()):
            break
    return [
        make_event("execution.started", {"execution_id": e, "workflow_id": "wf", "status": "running"})
        for p in range(partitions)
        for e in chosen[p]
    ]


def _entries(cluster: ClusterTopology, key: str, prefix: str = "") -> list[tuple[str, str]]:
    """``key``'s entries on its primary: (id, execution id), those of ``prefix``."""
    entries = ((eid, json.loads(f[b"data"])["execution_id"]) for eid, f in cluster.owner(key).entries(key))
    return [(eid, e) for eid, e in entries if e.startswith(prefix)]


def _check_batch(cluster: ClusterTopology, prefix: str, events: list[Any], ids: list[str]) -> None:
    """A batch of ``_events_by_partition`` appended once, each entry where its id says."""
    keys = partition_keys(STREAM, 3)
    share = len(events) // 3
    for p, key in enumerate(keys):
        assert _entries(cluster, key, prefix) == [
            (eid, e.data.execution_id)
            for eid, e in zip(
                ids[share * p : share * (p + 1)], events[share * p : share * (p + 1)], strict=True
            )
        ]


def test_blocking_publisher_writes_the_primaries_concurrently(cluster: ClusterTopology) -> None:
    """A blocking ``publish_many`` spread over three primaries writes them concurrently:
    while the first primary of the batch holds its reply (``CLIENT PAUSE WRITE``), the
    other two have appended their shares (seen with XRANGE from other connections). The
    sequential writes waited for the first primary's reply before writing the next. Then
    threads publishing at once: every event appended once, the ids in batch order; and a
    strict batch (WAIT 1, idempotency keys) sent twice appends once."""
    keys = partition_keys(STREAM, 3)
    first = cluster.owner(keys[0])
    assert len({cluster.owner(key).port for key in keys}) == 3
    events = _events_by_partition("c", 5)
    with BlockingPublisher(RedisSettings(url=cluster.url, partitions=3, timeout=60)) as pub:
        pub.publish_many(_events_by_partition("w", 1))  # connect to each primary
        with contextlib.closing(first.client()) as paused:
            paused.execute_command("CLIENT", "PAUSE", 60_000, "WRITE")  # type: ignore[no-untyped-call]
            result: list[list[str]] = []
            thread = threading.Thread(target=lambda: result.append(pub.publish_many(events)))
            thread.start()
            try:
                # Not a time bound: the held reply is released only after this check
                # (with sequential writes it never passes: 10 s < the 15 s socket timeout).
                for key in keys[1:]:
                    wait_until(
                        f"{key} appended", lambda k=key: len(_entries(cluster, k, "exec_c")) == 5, timeout=10
                    )
                assert thread.is_alive() and not result, "the paused primary has not answered"
            finally:
                paused.execute_command("CLIENT", "UNPAUSE")  # type: ignore[no-untyped-call]
                thread.join(timeout=30)
        _check_batch(cluster, "exec_c", events, result[0])
        # Several threads at once: each batch whole, once, its ids in its own order.
        batches = [_events_by_partition(f"t{n}_", 4) for n in range(4)]
        got: dict[int, list[str]] = {}
        threads = [
            threading.Thread(target=lambda n=n: got.__setitem__(n, pub.publish_many(batches[n])))
            for n in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert sorted(got) == [0, 1, 2, 3]
    for n, batch in enumerate(batches):
        _check_batch(cluster, f"exec_t{n}_", batch, got[n])
    # Strict (WAIT 1 + keys) over the three primaries: a retried batch appends nothing.
    strict = [Publication(e, idempotency_key=f"k{i}") for i, e in enumerate(_events_by_partition("s", 2))]
    with BlockingPublisher(RedisSettings(url=cluster.url, partitions=3, wait_replicas=1)) as pub:
        ids = pub.publish_many(strict)
        assert pub.publish_many(strict) == ids
    _check_batch(cluster, "exec_s", [p.event for p in strict], ids)


def test_blocking_publisher_retries_only_the_failed_primarys_share(cluster: ClusterTopology) -> None:
    """One primary of a batch is dead (SIGKILL) until its replica takes over: its share
    is retried until then; the other primaries' shares were appended by the first attempt
    and are not sent again (plain XADD, no idempotency keys: a resend would duplicate)."""
    keys = partition_keys(STREAM, 3)
    old = cluster.owner(keys[0])
    events = _events_by_partition("r", 5)
    settings = RedisSettings(url=cluster.url, partitions=3, timeout=30)
    assert settings.dedupe == 0
    with BlockingPublisher(settings) as pub:
        pub.publish_many(_events_by_partition("w", 1))
        old.kill()
        ids = pub.publish_many(events)
    assert cluster.owner(keys[0]) is not old
    _check_batch(cluster, "exec_r", events, ids)
