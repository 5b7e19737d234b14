"""RSS per idle connection with one subscription (target for flowwire: <= 12 KB at 5,000).

For each server: start it, open 50 warm-up connections (subscribed; they stay open),
publish a few events so every code path has run, read the RSS; then open N more
connections, each subscribed to ``executions``, let them settle, read the RSS again
and deliver one more event to all of them (every connection must get it exactly once:
the connections counted are live). RSS per connection = the difference / N.

    python -m benchmarks.bench_memory [--clients 5000] [--kinds flowwire raw1 naive socketio]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.bench_delivery import FLOWWIRE_ENV, check
from benchmarks.common import RedisProc, pin_self, raise_nofile
from benchmarks.servers import KINDS, make_feeder, start_receiver, start_server

__all__ = ["main", "measure", "measure_kind"]

_WARM = 50


def measure_kind(redis: RedisProc, kind_name: str, clients: int) -> dict[str, Any]:
    kind = KINDS[kind_name]
    env = FLOWWIRE_ENV if kind_name.startswith("flowwire") else {}
    server = start_server(kind, redis.url, env=env)
    feeder = make_feeder(kind, redis.url)
    warm = big = None
    try:
        warm = start_receiver(kind, server.port, _WARM, ["executions"])
        warm.reset()
        feeder.publish(list(range(5)))
        warm.wait(5 * _WARM, 20)
        time.sleep(1.0)
        rss0 = server.rss_bytes()
        big = start_receiver(kind, server.port, clients, ["executions"], sources=4)
        time.sleep(2.0)
        rss1 = server.rss_bytes()
        big.reset()
        ids = feeder.publish([5])
        report = big.wait(clients, 30)
        return {
            "kind": kind_name,
            "label": kind.label,
            "clients": clients,
            "connected": big.ready.get("connected"),
            "connect_seconds": big.ready.get("secs"),
            "rss_before_mb": rss0 / 2**20,
            "rss_after_mb": rss1 / 2**20,
            "kb_per_connection": (rss1 - rss0) / clients / 1024,
            "check": check(report, ids, 1),
        }
    finally:
        for rec in (big, warm):
            if rec is not None:
                rec.close()
        feeder.close()
        server.stop()


def measure(kinds: Sequence[str], clients: int) -> dict[str, Any]:
    with RedisProc() as redis:
        rows = [measure_kind(redis, k, clients) for k in kinds]
    return {"clients": clients, "rows": rows, "target_kb": 12.0}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument(
        "--kinds", nargs="+", default=["flowwire", "raw1", "naive", "socketio"], choices=sorted(KINDS)
    )
    args = parser.parse_args(argv)
    pin_self()
    raise_nofile()
    print(json.dumps(measure(args.kinds, args.clients), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
