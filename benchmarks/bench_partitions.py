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
3. ``BlockingPublisher`` batches of 100 with P = 3 on the same Cluster: events/s and
   the batch's latency (p50, p99), on loopback and through a proxy that holds every
   reply of the primaries ``--rtt-ms`` (an emulated network round trip: the shares of
   a batch are written concurrently, so a batch waits one round trip, not three).
   ``--against REV`` measures ``publisher/client.py`` as of REV too, alternating
   rounds with this tree's (e.g. ``--against HEAD~3``: before and after a change).

Every process shares this machine's cores: the figures are ratios within one run.

    python -m benchmarks.bench_partitions [--seconds 2] [--out FILE]
        [--rtt-ms 1] [--against REV] [--only blocking]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import multiprocessing
import statistics
import subprocess
import sys
import time
import types
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


def _delay_proxy(pairs: list[tuple[int, int]], delay: float) -> None:
    """A process: listens on each pair's first port, forwards to its second (a Redis
    node) and holds each reply ``delay`` seconds, in order: an emulated round trip."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: int) -> None:
        node_reader, node_writer = await asyncio.open_connection("127.0.0.1", target)
        replies: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def up() -> None:
            while data := await reader.read(1 << 16):
                node_writer.write(data)
            node_writer.close()

        async def down() -> None:
            while data := await node_reader.read(1 << 16):
                replies.put_nowait((time.monotonic() + delay, data))
            replies.put_nowait((0.0, b""))

        async def send() -> None:
            while (reply := await replies.get())[1]:
                await asyncio.sleep(reply[0] - time.monotonic())
                writer.write(reply[1])
            writer.close()

        await asyncio.gather(up(), down(), send(), return_exceptions=True)

    async def serve() -> None:
        for listen, target in pairs:
            await asyncio.start_server(functools.partial(handle, target=target), "127.0.0.1", listen)
        await asyncio.Event().wait()

    asyncio.run(serve())


def _blocking_class(rev: str | None, ports: dict[int, int]) -> Any:
    """``BlockingPublisher`` of ``publisher/client.py`` (this tree's, or as of ``rev``),
    loaded as a module of its own whose per-node clients connect to ``ports[port]``
    (the proxy) instead of the node's port."""
    import redis as real

    if rev is None:
        source = Path(__file__).parent.parent.joinpath("publisher", "client.py").read_text()
    else:
        git = ["git", "show", f"{rev}:publisher/client.py"]
        source = subprocess.run(git, capture_output=True, text=True, check=True).stdout
    name = f"_bench_client_{rev or 'tree'}_{len(ports)}".replace("~", "_").replace("^", "_")

    class Proxied(real.Redis):
        def __init__(self, *, host: str, port: int, **kw: Any) -> None:
            super().__init__(host=host, port=ports.get(port, port), **kw)

    module = types.ModuleType(name)
    sys.modules[name] = module  # dataclasses look their module up
    exec(compile(source, f"{rev or 'tree'}:publisher/client.py", "exec"), module.__dict__)
    shim = types.ModuleType("redis")
    shim.__dict__.update(real.__dict__)
    shim.Redis = Proxied  # type: ignore[attr-defined]
    module.redis = shim  # type: ignore[attr-defined]
    return module.BlockingPublisher


def _blocking_batches(publisher: Any, url: str, seconds: float) -> dict[str, Any]:
    from publisher import RedisSettings

    events = _events(100)
    with publisher(RedisSettings(url=url, timeout=10, partitions=3)) as pub:
        for _ in range(10):  # connect, warm up
            pub.publish_many(events)
        latencies, start = [], time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            begin = time.perf_counter()
            pub.publish_many(events)
            latencies.append(time.perf_counter() - begin)
    latencies.sort()
    return {
        "events_per_s": round(len(latencies) * 100 / elapsed),
        "batch_p50_ms": round(latencies[len(latencies) // 2] * 1e3, 2),
        "batch_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1e3, 2),
    }


def _blocking_figures(seconds: float, rtt_ms: float, against: str | None, rounds: int = 3) -> dict[str, Any]:
    """Section 3: medians of ``rounds`` alternating rounds per variant."""
    from tests.ha.topology import ClusterTopology
    from tests.support.redis_server import free_port

    runs: dict[str, list[dict[str, Any]]] = {}
    with ClusterTopology() as cluster:
        ports = {node.port: free_port() for node in cluster.nodes}
        proxy = multiprocessing.get_context("spawn").Process(
            target=_delay_proxy, args=([(p, n) for n, p in ports.items()], rtt_ms / 1000), daemon=True
        )
        proxy.start()
        try:
            variants = {}
            for rev in ([against] if against else []) + [None]:
                label = f"{'this tree' if rev is None else rev}"
                variants[f"{label}, loopback"] = _blocking_class(rev, {})
                variants[f"{label}, +{rtt_ms:g} ms per primary"] = _blocking_class(rev, ports)
            time.sleep(1.0)  # the proxy listening
            for r in range(rounds):
                for name in sorted(variants, reverse=bool(r % 2)):
                    runs.setdefault(name, []).append(_blocking_batches(variants[name], cluster.url, seconds))
        finally:
            proxy.kill()
            proxy.join()
    return {
        name: {k: statistics.median(run[k] for run in rows) for k in rows[0]} for name, rows in runs.items()
    }


def measure(
    seconds: float = 2.0, rtt_ms: float = 1.0, against: str | None = None, only: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if only is None:
        out["gateway_per_instance"] = asyncio.run(_gateway_figures(seconds))
        out["publisher_cluster_3_primaries"] = _publisher_figures(seconds)
    out["blocking_publisher_P3_batch_100"] = _blocking_figures(seconds, rtt_ms, against)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--out", help="default results/partitions.json (--only: partitions_blocking.json)")
    parser.add_argument("--rtt-ms", type=float, default=1.0, help="section 3: reply delay per primary")
    parser.add_argument("--against", help="section 3: also publisher/client.py as of this git revision")
    parser.add_argument("--only", choices=["blocking"], help="section 3 alone")
    args = parser.parse_args(argv)
    started = time.monotonic()
    result = measure(args.seconds, args.rtt_ms, args.against, args.only)
    result["seconds"] = round(time.monotonic() - started, 1)
    default = "partitions_blocking.json" if args.only else "partitions.json"
    Path(args.out or RESULTS_DIR / default).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
