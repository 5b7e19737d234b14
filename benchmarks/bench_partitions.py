"""Partitioned streams (issue 14, ``STREAM_PARTITIONS``): what P = 3 costs and buys.

1. What one gateway instance asks of Redis per delivered event, P = 1 against P = 3:
   Redis commands and bytes read (``INFO commandstats`` and ``total_net_output_bytes``
   deltas on a private redis-server, the publisher's own share measured alone first and
   subtracted, as ``bench_ha``), with the legacy mirror off (the reader alone) and on,
   at two publish rates (the reader's commands are per call, so they fall per event as
   reads return more entries).
2. Publisher events/s against a three-primary Cluster (``tests/ha/topology.py``), P = 1
   against P = 3, batches of 100 (``publish_many``), from one process and from three
   concurrent ones; beside the rate, the CPU each primary spent per event: with P = 3
   the appends spread over the three primaries.

Every process shares this machine's cores: the figures are ratios within one run.

    python -m benchmarks.bench_partitions [--seconds 2] [--out benchmarks/results/partitions.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from benchmarks.bench_ha import _events, _redis_cpu, gateway_cost
from benchmarks.common import RESULTS_DIR

__all__ = ["main", "measure"]


async def _gateway_figures(seconds: float) -> dict[str, Any]:
    from tests.support.redis_server import RedisServer

    server = RedisServer()
    server.start()
    probe = redis.Redis.from_url(server.url)
    out: dict[str, Any] = {}
    try:
        for rate in (500.0, 2000.0):
            for mirror in (False, True):
                for partitions in (1, 3):
                    name = f"{rate:g}/s, P={partitions}, mirror {'on' if mirror else 'off'}"
                    out[name] = await gateway_cost(
                        server.url, probe, rate, seconds, mirror=mirror, partitions=partitions
                    )
    finally:
        probe.close()
        server.close()
    return out


def _publisher_process(url: str, partitions: int, seconds: float, start_at: float, queue: Any) -> None:
    """One publisher process: batches of 100 for ``seconds`` from ``start_at``."""

    async def run() -> tuple[int, float]:
        from publisher import Publisher, RedisSettings

        events = _events(100)
        async with Publisher(RedisSettings(url=url, timeout=10, partitions=partitions)) as pub:
            await pub.publish_many(events)  # connect, warm up
            await asyncio.sleep(max(0.0, start_at - time.time()))
            sent, start = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - start) < seconds:
                sent += len(await pub.publish_many(events))
        return sent, elapsed

    queue.put(asyncio.run(run()))


def _publish_rate(cluster: Any, partitions: int, seconds: float, processes: int) -> dict[str, Any]:
    from tests.ha.topology import ClusterTopology

    assert isinstance(cluster, ClusterTopology)
    primaries = [n for n in cluster.nodes if n.alive and n.info("replication").get("role") == "master"]
    clients = [n.client() for n in primaries]
    cpu0 = [_redis_cpu(c) for c in clients]
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    start_at = time.time() + 3.0  # every process connected and warmed up by then
    procs = [
        ctx.Process(target=_publisher_process, args=(cluster.url, partitions, seconds, start_at, queue))
        for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join()
    cpu = [_redis_cpu(c) - c0 for c, c0 in zip(clients, cpu0, strict=True)]
    for c in clients:
        c.close()
    sent = sum(s for s, _ in results)
    elapsed = max(e for _, e in results)
    return {
        "events_per_s": round(sent / elapsed),
        # the warm-up batches are a small share; the CPU spans the whole run
        "primary_cpu_us_per_event": [round(c * 1e6 / sent, 1) for c in sorted(cpu, reverse=True)],
    }


def _publisher_figures(seconds: float) -> dict[str, Any]:
    from tests.ha.topology import ClusterTopology

    out: dict[str, Any] = {}
    with ClusterTopology() as cluster:
        for processes in (1, 3):
            for partitions in (1, 3):
                name = f"{processes} process{'es' if processes > 1 else ''}, P={partitions}"
                out[name] = _publish_rate(cluster, partitions, seconds, processes)
    return out


def measure(seconds: float = 2.0) -> dict[str, Any]:
    return {
        "gateway_per_instance": asyncio.run(_gateway_figures(seconds)),
        "publisher_cluster_3_primaries": _publisher_figures(seconds),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--out", default=str(RESULTS_DIR / "partitions.json"))
    args = parser.parse_args(argv)
    started = time.monotonic()
    result = measure(args.seconds)
    result["seconds"] = round(time.monotonic() - started, 1)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
