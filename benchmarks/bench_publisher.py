"""``publish_many`` events/s from one process (target: >= 25,000).

The publisher process runs alone on the server core, redis-server on the other; events
are the benchmark's ~300-byte ``execution.started`` events, validated and appended by
flowwire's own :class:`publisher.BlockingPublisher` and :class:`publisher.Publisher`
(pipelined ``XADD ... MAXLEN ~``) in batches. The publisher's own CPU time per event
is reported beside the rate.

    python -m benchmarks.bench_publisher [--seconds 5] [--batch 100]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.common import SERVER_CORE, RedisProc, pin_self, sample_payload, taskset

__all__ = ["main", "measure"]


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _events(n: int) -> list[Any]:
    from schemas.events import make_event

    return [make_event("execution.started", sample_payload(i)) for i in range(n)]


def _blocking(url: str, seconds: float, batch: int) -> dict[str, float]:
    from publisher import BlockingPublisher, RedisSettings

    events = _events(batch)
    with BlockingPublisher(RedisSettings(url=url)) as pub:
        pub.publish_many(events)  # connect, warm up
        sent, cpu0, start = 0, _cpu(), time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            sent += len(pub.publish_many(events))
        cpu = _cpu() - cpu0
    return {"events_per_s": sent / elapsed, "cpu_us_per_event": cpu * 1e6 / sent, "events": sent}


def _async(url: str, seconds: float, batch: int) -> dict[str, float]:
    from publisher import Publisher, RedisSettings

    async def run() -> dict[str, float]:
        events = _events(batch)
        async with Publisher(RedisSettings(url=url)) as pub:
            await pub.publish_many(events)
            sent, cpu0, start = 0, _cpu(), time.perf_counter()
            while (elapsed := time.perf_counter() - start) < seconds:
                sent += len(await pub.publish_many(events))
            cpu = _cpu() - cpu0
        return {"events_per_s": sent / elapsed, "cpu_us_per_event": cpu * 1e6 / sent, "events": sent}

    import uvloop

    return uvloop.run(run())


def _child(url: str, seconds: float, batch: int) -> None:
    """In the publisher process: both clients, one after the other; JSON on stdout."""
    out = {"blocking": _blocking(url, seconds, batch), "asyncio": _async(url, seconds, batch)}
    print(json.dumps(out))


def measure(seconds: float = 5.0, batch: int = 100) -> dict[str, Any]:
    with RedisProc() as redis:
        proc = subprocess.run(
            [
                *taskset(SERVER_CORE),
                sys.executable,
                "-m",
                "benchmarks.bench_publisher",
                "--child",
                redis.url,
                "--seconds",
                str(seconds),
                "--batch",
                str(batch),
            ],
            capture_output=True,
            text=True,
            timeout=60 + 4 * seconds,
            check=True,
        )
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["batch"] = batch
    result["events_per_s"] = max(result["blocking"]["events_per_s"], result["asyncio"]["events_per_s"])
    result["target"] = 25_000
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=100, help="events per publish_many call")
    parser.add_argument("--child", metavar="REDIS_URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.seconds, args.batch)
        return 0
    pin_self()
    result = measure(args.seconds, args.batch)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
