"""High availability (issue 14): what Sentinel, Cluster and the strict publish cost.

1. Publisher events/s (asyncio :class:`publisher.Publisher`, the benchmark's ~300-byte
   events) against one primary (the Sentinel topology's primary, addressed directly),
   the same primary through Sentinel, with idempotency keys only
   (``PUBLISH_DEDUPE_WINDOW``), strict (``PUBLISH_WAIT_REPLICAS=1``: keys and ``WAIT``),
   and on a Cluster, default and strict: in batches of 100 (``publish_many``) and one
   awaited publish at a time. The publisher's CPU per event is reported beside the rate.
2. What one gateway instance asks of Redis per delivered event: commands and bytes read,
   from ``INFO commandstats`` and ``total_net_output_bytes`` deltas on a private server
   while a publisher appends at a steady rate and clients receive every event (the
   publisher's own share measured alone first and subtracted), mirror on and off (the
   reader alone).

Every process shares this machine's cores: the figures are ratios within one run.

    python -m benchmarks.bench_ha [--seconds 1.5] [--rate 500] [--out benchmarks/results/ha.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from benchmarks.common import RESULTS_DIR, sample_payload

__all__ = ["gateway_cost", "main", "measure"]


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _events(n: int, start: int = 0) -> list[Any]:
    from schemas.events import make_event

    return [make_event("execution.started", sample_payload(start + i)) for i in range(n)]


def _redis_cpu(node: Any) -> float:
    info: Any = node.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def _publish_rate(
    url: str, primary: Any, seconds: float, batch: int, **settings: Any
) -> dict[str, float]:
    """Events/s, the publisher's CPU and the primary's CPU per event (µs)."""
    from publisher import Publisher, RedisSettings

    events = _events(batch)
    async with Publisher(RedisSettings(url=url, timeout=10, **settings)) as pub:
        await pub.publish_many(events)  # connect, warm up
        server0 = _redis_cpu(primary)
        sent, cpu0, start = 0, _cpu(), time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            if batch == 1:
                await pub.publish(events[0])
                sent += 1
            else:
                sent += len(await pub.publish_many(events))
        cpu = _cpu() - cpu0
        server = _redis_cpu(primary) - server0
    return {
        "events_per_s": round(sent / elapsed),
        "cpu_us_per_event": round(cpu * 1e6 / sent, 1),
        "primary_cpu_us_per_event": round(server * 1e6 / sent, 1),
    }


async def _publisher_figures(seconds: float) -> dict[str, Any]:
    from tests.ha.topology import ClusterTopology, SentinelTopology

    modes: dict[str, tuple[str, dict[str, Any]]] = {}
    out: dict[str, Any] = {}
    with SentinelTopology() as sentinel:
        primary = f"redis://127.0.0.1:{sentinel.primary.port}/0"
        modes = {
            "one primary": (primary, {}),
            "sentinel": (sentinel.url, {}),
            "sentinel, idempotency keys": (sentinel.url, {"dedupe_window": 300.0}),
            "sentinel, strict (WAIT 1 + keys)": (sentinel.url, {"wait_replicas": 1}),
        }
        node = sentinel.primary.client()
        for name, (url, settings) in modes.items():
            out[name] = {
                "batch 100": await _publish_rate(url, node, seconds, 100, **settings),
                "one at a time": await _publish_rate(url, node, seconds, 1, **settings),
            }
        node.close()
    with ClusterTopology() as cluster:
        node = cluster.owner("ws:events").client()
        for name, settings in (("cluster", {}), ("cluster, strict (WAIT 1 + keys)", {"wait_replicas": 1})):
            out[name] = {
                "batch 100": await _publish_rate(cluster.url, node, seconds, 100, **settings),
                "one at a time": await _publish_rate(cluster.url, node, seconds, 1, **settings),
            }
        node.close()
    return out


def _counters(client: redis.Redis) -> tuple[dict[str, int], int]:
    stats: Any = client.info("commandstats")
    net: Any = client.info("stats")
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    return calls, int(net["total_net_output_bytes"])


def _delta(
    before: tuple[dict[str, int], int], after: tuple[dict[str, int], int]
) -> tuple[dict[str, int], int]:
    calls = {k: v - before[0].get(k, 0) for k, v in after[0].items() if v - before[0].get(k, 0) > 0}
    return calls, after[1] - before[1]


async def _paced(url: str, rate: float, seconds: float, start: int, stream: str, partitions: int) -> int:
    """Publish at ``rate`` events/s in 20 ms batches; the number appended."""
    from publisher import Publisher, RedisSettings

    per_tick = max(1, round(rate * 0.02))
    sent = 0
    async with Publisher(RedisSettings(url=url, stream_key=stream, partitions=partitions)) as pub:
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            sent += len(await pub.publish_many(_events(per_tick, start + sent)))
            await asyncio.sleep(max(0.0, t0 + sent / rate - time.monotonic()))
    return sent


async def gateway_cost(
    url: str,
    probe: redis.Redis,
    rate: float,
    seconds: float,
    *,
    mirror: bool,
    partitions: int = 1,
    clients: int = 10,
) -> dict[str, Any]:
    """One gateway (on a stream of its own, ``partitions`` streams) with ``clients``
    receiving every event: what it asks of the Redis at ``url`` per delivered event."""
    from tests.support.clients import open_ws, subscribe
    from tests.support.gateway import GatewayProcess

    stream = f"bench:{partitions}:{time.monotonic_ns()}"
    # The publisher alone: its commands, the bytes of its replies, Redis's CPU.
    before, cpu0 = _counters(probe), _redis_cpu(probe)
    alone = await _paced(url, rate, seconds, 0, stream, partitions)
    pub_calls, pub_bytes = _delta(before, _counters(probe))
    pub_cpu = _redis_cpu(probe) - cpu0
    env = {
        "REDIS_URL": url,
        "STREAM_KEY": stream,
        "STREAM_PARTITIONS": str(partitions),
        "MIRROR_ENABLED": "on" if mirror else "off",
    }
    gateway = GatewayProcess(env=env)
    gateway.start()
    sockets = []
    try:
        for _ in range(clients):
            ws = await open_ws(gateway.url)
            await subscribe(ws, "executions")
            sockets.append(ws)
        received = [0] * clients

        async def drain(i: int) -> None:
            async for frame in sockets[i]:
                if '"id"' in str(frame)[:400]:
                    received[i] += 1

        readers = [asyncio.create_task(drain(i)) for i in range(clients)]
        await asyncio.sleep(1.0)  # the gateway's idle polling is counted too: start level
        before, cpu0 = _counters(probe), _redis_cpu(probe)
        sent = await _paced(url, rate, seconds, alone, stream, partitions)
        deadline = time.monotonic() + 20
        while min(received) < sent and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        calls, total = _delta(before, _counters(probe))
        total_cpu = _redis_cpu(probe) - cpu0
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        for ws in sockets:
            await ws.close()
    finally:
        gateway.stop()
    scale = sent / alone
    gw_calls = {k: v - round(pub_calls.get(k, 0) * scale) for k, v in calls.items()}
    gw_calls = {k: v for k, v in gw_calls.items() if v > 0 and k not in ("info",)}
    gw_bytes = total - pub_bytes * scale
    return {
        "events": sent,
        "delivered_to_every_client": min(received) == sent,
        "rate": rate,
        "commands_per_event": round(sum(gw_calls.values()) / sent, 3),
        "bytes_read_per_event": round(gw_bytes / sent),
        "redis_cpu_us_per_event": round((total_cpu - pub_cpu * scale) * 1e6 / sent, 1),
        "publisher_redis_cpu_us_per_event": round(pub_cpu * 1e6 / alone, 1),
        "commands": gw_calls,
        "publisher_commands_per_event": round(sum(pub_calls.values()) / alone, 3),
    }


async def _gateway_figures(rate: float, seconds: float, *, mirror: bool) -> dict[str, Any]:
    from tests.support.redis_server import RedisServer

    server = RedisServer()
    server.start()
    probe = redis.Redis.from_url(server.url)
    try:
        return await gateway_cost(server.url, probe, rate, seconds, mirror=mirror)
    finally:
        probe.close()
        server.close()


def measure(seconds: float = 1.5, rate: float = 500.0) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        return {
            "publisher": await _publisher_figures(seconds),
            "gateway_per_instance": await _gateway_figures(rate, max(2.0, seconds * 2), mirror=True),
            "gateway_per_instance_mirror_off": await _gateway_figures(
                rate, max(2.0, seconds * 2), mirror=False
            ),
        }

    return asyncio.run(run())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=1.5, help="per publisher measurement")
    parser.add_argument("--rate", type=float, default=500.0, help="events/s for the gateway's cost")
    parser.add_argument("--out", default=str(RESULTS_DIR / "ha.json"))
    args = parser.parse_args(argv)
    started = time.monotonic()
    result = measure(args.seconds, args.rate)
    result["seconds"] = round(time.monotonic() - started, 1)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
