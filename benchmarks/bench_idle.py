"""Concurrent idle connections held by one gateway process, heartbeats on
(target: >= 10,000, none dropped over 5 minutes).

The gateway pings every ``WS_PING_INTERVAL`` (10 s here, the default is 54 s: more
heartbeats in the window) and closes a connection whose pong is late; the receiver
answers every ping. Every 5 s the receiver reports how many connections are still
open. At the end one event is published: every connection must receive it, exactly
once (the connections counted are live, not half-open).

    python -m benchmarks.bench_idle [--clients 10000] [--seconds 300]
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

__all__ = ["main", "measure"]


def measure(clients: int, seconds: float, ping_interval: float = 10.0) -> dict[str, Any]:
    kind = KINDS["flowwire"]
    env = {
        **FLOWWIRE_ENV,
        "WS_PING_INTERVAL": f"{ping_interval:g}s",
        "WS_PONG_TIMEOUT": f"{2 * ping_interval:g}s",
        "MAX_CONNECTIONS": str(max(50_000, 2 * clients)),
    }
    with RedisProc() as redis:
        server = start_server(kind, redis.url, env=env)
        feeder = make_feeder(kind, redis.url)
        rec = None
        try:
            rec = start_receiver(kind, server.port, clients, ["executions"], sources=8, connect_timeout=180)
            connected = int(rec.ready.get("connected", 0))
            rec.reset()
            cpu0 = server.cpu_seconds()
            start = time.monotonic()
            samples: list[dict[str, Any]] = []
            min_open = connected
            while (elapsed := time.monotonic() - start) < seconds:
                time.sleep(min(5.0, max(0.0, seconds - elapsed)))
                r = rec.report()
                min_open = min(min_open, r["open"])
                samples.append(
                    {"t": round(time.monotonic() - start, 1), "open": r["open"], "pings": r["pings"]}
                )
            held = time.monotonic() - start
            cpu = server.cpu_seconds() - cpu0
            rss = server.rss_bytes()
            before = rec.report()
            rec.reset()
            ids = feeder.publish([0])
            final = rec.wait(connected, 30)
            verdict = check(final, ids, 1)
            return {
                "clients": clients,
                "connected": connected,
                "connect_seconds": rec.ready.get("secs"),
                "seconds": round(held, 1),
                "ping_interval_s": ping_interval,
                "pings_answered": before["pings"],
                "open_at_end": final["open"],
                "min_open": min_open,
                "dropped": connected - final["open"],
                "close_codes": before["close_codes"],
                "server_cpu_share": cpu / held,
                "rss_mb": rss / 2**20,
                "final_event_check": verdict,
                "samples": samples,
            }
        finally:
            if rec is not None:
                rec.close()
            feeder.close()
            server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--ping-interval", type=float, default=10.0)
    args = parser.parse_args(argv)
    pin_self()
    raise_nofile()
    result = measure(args.clients, args.seconds, args.ping_interval)
    print(json.dumps(result, indent=2))
    return 0 if result["dropped"] == 0 and result["final_event_check"]["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
