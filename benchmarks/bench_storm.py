"""Storms (issue 12): many clients resuming at once, live clients' latency meanwhile,
a reconnect storm at the door, and the most connections one process holds.

Every figure is read beside a baseline measured in the same run:

``storm``     N clients resume on one instance from the same cursor after M missed
              events (``since``). Measured: the Redis commands the replays cost (INFO
              commandstats, the reader's XREAD excluded) against ``2 x ceil(M / batch) + N``,
              and the time until every client caught up, exactly, against the time the
              same instance takes to connect N clients and deliver the same M events to
              them as a burst (target: at most 2 x).
``live``      200 live clients at 20 events/s: p99 before, during a storm of N resuming
              clients, and during 50 connections replaying ``since=0-0`` over a long
              stream with filters that match nothing (target: at most 2 x the p99 before).
``door``      N clients connecting at once (every handshake in flight together, JWT
              checked): how many were refused or failed on their first try, and
              upgrades per second.
``hold``      N subscribed connections in one process: RSS per connection, and a burst
              that must reach every one of them once, in order.

    python -m benchmarks.bench_storm storm --clients 10000 --missed 1000
    python -m benchmarks.bench_storm live --clients 10000 --missed 1000 --backlog 200000
    python -m benchmarks.bench_storm door --clients 10000
    python -m benchmarks.bench_storm hold --clients 50000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import threading
import time
from collections.abc import Sequence
from typing import Any, Final

import redis

from benchmarks.bench_delivery import check
from benchmarks.common import Receiver, RedisProc, ServerProc, pin_self, sample_payload, token
from benchmarks.servers import KINDS, start_server

__all__ = ["door", "hold", "live", "storm"]

BATCH: Final = 100  # REPLAY_BATCH (the default)
_STORM_WF: Final = "wf-storm"
_LIVE_WF: Final = "wf-live"


def raise_nofile(wanted: int) -> int:
    """Raise this process's file limit (soft and, as root, hard): the server and the
    receiver it starts inherit it. Returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted and os.geteuid() == 0:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, OSError):
            pass
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Feed:
    """Pipelined XADDs of ``execution.started`` events of one workflow."""

    def __init__(self, url: str) -> None:
        from publisher import BlockingPublisher, RedisSettings

        self.pub = BlockingPublisher(RedisSettings(url=url, timeout=30))

    def publish(self, count: int, workflow: str) -> list[str]:
        from schemas.events import make_event

        ids: list[str] = []
        for start in range(0, count, 500):
            events = []
            for n in range(start, min(count, start + 500)):
                payload = sample_payload(n)
                payload["workflow_id"] = workflow
                events.append(make_event("execution.started", payload))
            ids += self.pub.publish_many(events)
        return ids

    def close(self) -> None:
        self.pub.close()


def _subscribe(workflow: str, since: str | None = None) -> str:
    data: dict[str, Any] = {"channel": "executions", "filters": {"workflow_ids": [workflow]}}
    if since is not None:
        data["since"] = since
    return json.dumps({"type": "subscribe", "data": data}, separators=(",", ":"))


def _receiver(port: int, conns: int, line: str, *, inflight: int = 200, timeout: float = 300) -> Receiver:
    return Receiver(
        port=port,
        conns=conns,
        subscribe=[line],
        path=f"/ws?token={token()}",
        sources=4,
        inflight=inflight,
        connect_timeout=timeout,
    )


def _commands(url: str) -> dict[str, int]:
    client = redis.Redis.from_url(url)
    try:
        stats: Any = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


#: Settings of the server under test: its defaults, but for the limits a load generator
#: with one token and no pause trips, and the legacy mirror (it would mirror the long
#: backlog the scans read, a cost of the publishing, spread over every pod in production).
SERVER_ENV: dict[str, str] = {"CLIENT_RATE_LIMIT": "0", "MIRROR_ENABLED": "off"}


def _server(redis_proc: RedisProc, env: dict[str, str] | None = None) -> ServerProc:
    return start_server(KINDS["flowwire"], redis_proc.url, env={**SERVER_ENV, **(env or {})})


def storm(redis_proc: RedisProc, clients: int, missed: int, *, timeout: float = 600) -> dict[str, Any]:
    feed = Feed(redis_proc.url)
    server = _server(redis_proc)
    try:
        # Baseline: connect the same clients, then the same events as a burst.
        rec = _receiver(server.port, clients, _subscribe(_STORM_WF), timeout=timeout)
        t0 = time.monotonic()
        rec.start()
        connect_s = time.monotonic() - t0
        try:
            rec.reset()
            server.pause()
            try:
                ids = feed.publish(missed, _STORM_WF)
                t0 = time.monotonic()
            finally:
                server.resume()
            report = rec.wait(clients * missed, timeout)
            burst_s = report["t_last"] - t0
            burst_check = check(report, ids, 1)
        finally:
            rec.close()
        time.sleep(1.0)
        # The storm: the same clients come back, resuming from their cursor.
        cursor = ids[-1]
        owed = feed.publish(missed, _STORM_WF)
        time.sleep(0.5)
        before = _commands(redis_proc.url)
        cpu0 = server.cpu_seconds()
        rec = _receiver(server.port, clients, _subscribe(_STORM_WF, since=cursor), timeout=timeout)
        t0 = time.monotonic()
        rec.start()
        try:
            report = rec.wait(clients * missed, timeout)
        finally:
            rec.close()
        storm_s = report["t_last"] - t0
        cpu = server.cpu_seconds() - cpu0
        after = _commands(redis_proc.url)
        used = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        used = {k: v for k, v in used.items() if v and k not in ("xread", "info", "client|setinfo")}
        commands = sum(used.values())
        allowed = 2 * math.ceil(missed / BATCH) + clients
        baseline_s = connect_s + burst_s
        return {
            "clients": clients,
            "missed": missed,
            "baseline_connect_s": round(connect_s, 3),
            "baseline_burst_s": round(burst_s, 3),
            "storm_s": round(storm_s, 3),
            "storm_over_baseline": round(storm_s / baseline_s, 3),
            "server_cpu_s": round(cpu, 3),
            "redis_commands": commands,
            "redis_commands_by_name": used,
            "redis_commands_allowed": allowed,
            "check_burst": burst_check,
            "check": check(report, owed, 1),
        }
    finally:
        feed.close()
        server.stop()


def _paced(rec: Receiver, feed: Feed, rate: float, seconds: float, clients: int) -> dict[str, Any]:
    events = max(1, int(rate * seconds))
    rec.reset()
    ids: list[str] = []
    start = time.monotonic()
    for k in range(events):
        due = start + k / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        ids += feed.publish(1, _LIVE_WF)
    report = rec.wait(events * clients, 60)
    return {
        "events": events,
        "p50_ms": report["lat_p50_us"] / 1000,
        "p99_ms": report["lat_p99_us"] / 1000,
        "max_ms": report["lat_max_us"] / 1000,
        "check": check(report, ids, 1),
    }


def live(
    redis_proc: RedisProc,
    clients: int,
    missed: int,
    backlog: int,
    *,
    live_clients: int = 200,
    rate: float = 20.0,
    seconds: float = 8.0,
) -> dict[str, Any]:
    feed = Feed(redis_proc.url)
    server = _server(redis_proc)
    try:
        live_rec = _receiver(server.port, live_clients, _subscribe(_LIVE_WF))
        live_rec.start()
        try:
            out: dict[str, Any] = {"live_clients": live_clients, "rate": rate}
            out["before"] = _paced(live_rec, feed, rate, seconds, live_clients)
            # During a storm of resuming clients (started in a thread, paced meanwhile).
            cursor = feed.publish(1, _STORM_WF)[-1]
            owed = feed.publish(missed, _STORM_WF)
            storm_rec = _receiver(server.port, clients, _subscribe(_STORM_WF, since=cursor))
            result: dict[str, Any] = {}

            def run_storm() -> None:
                t0 = time.monotonic()
                storm_rec.start()
                report = storm_rec.wait(clients * missed, 600)
                result["storm_s"] = round(report["t_last"] - t0, 3)
                result["check"] = check(report, owed, 1)

            thread = threading.Thread(target=run_storm)
            thread.start()
            try:
                out["during_storm"] = _paced(live_rec, feed, rate, seconds, live_clients)
            finally:
                thread.join()
                storm_rec.close()
            out["storm"] = {"clients": clients, "missed": missed, **result}
            # During 50 connections replaying a long stream from 0-0, matching nothing.
            feed.publish(backlog, "wf-backlog")
            scan_rec = _receiver(server.port, 50, _subscribe("wf-nothing", since="0-0"))
            scan_rec.start()
            try:
                out["during_scans"] = _paced(live_rec, feed, rate, seconds, live_clients)
                out["scans"] = {"connections": 50, "entries": backlog}
            finally:
                scan_rec.close()
        finally:
            live_rec.close()
        p99 = out["before"]["p99_ms"]
        out["storm_p99_over_before"] = round(out["during_storm"]["p99_ms"] / p99, 3) if p99 else None
        out["scans_p99_over_before"] = round(out["during_scans"]["p99_ms"] / p99, 3) if p99 else None
        return out
    finally:
        feed.close()
        server.stop()


def door(redis_proc: RedisProc, clients: int) -> dict[str, Any]:
    server = _server(redis_proc)
    try:
        rec = _receiver(server.port, clients, _subscribe(_STORM_WF), inflight=clients, timeout=120)
        t0 = time.monotonic()
        ready = rec.start()
        elapsed = time.monotonic() - t0
        report = rec.report()
        rec.close()
        return {
            "clients": clients,
            "seconds": round(elapsed, 3),
            "upgrades_per_s": round(ready.get("connected", 0) / elapsed, 1),
            "subscribed": ready.get("connected", 0),
            "failed": ready.get("failed", 0),
            "open_after": report["open"],
            "close_codes": report["close_codes"],
        }
    finally:
        server.stop()


def hold(redis_proc: RedisProc, clients: int, events: int = 5) -> dict[str, Any]:
    feed = Feed(redis_proc.url)
    server = _server(redis_proc, {"MAX_CONNECTIONS": "0", "MAX_CONNECTIONS_PER_USER": "0"})
    try:
        time.sleep(1.0)
        rss0 = server.rss_bytes()
        rec = _receiver(server.port, clients, _subscribe(_STORM_WF), timeout=600)
        t0 = time.monotonic()
        ready = rec.start()
        connect_s = time.monotonic() - t0
        try:
            time.sleep(2.0)
            rss1 = server.rss_bytes()
            rec.reset()
            ids = feed.publish(events, _STORM_WF)
            report = rec.wait(clients * events, 300)
        finally:
            rec.close()
        return {
            "clients": clients,
            "subscribed": ready.get("connected", 0),
            "connect_s": round(connect_s, 2),
            "rss_per_connection_kb": round((rss1 - rss0) / max(1, ready.get("connected", 0)) / 1024, 2),
            "burst_events": events,
            "check": check(report, ids, 1),
        }
    finally:
        feed.close()
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_storm", description=__doc__)
    parser.add_argument("what", choices=["storm", "live", "door", "hold"])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--missed", type=int, default=1000)
    parser.add_argument("--backlog", type=int, default=200_000)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a server setting")
    args = parser.parse_args(argv)
    SERVER_ENV.update(item.split("=", 1) for item in args.set)
    raise_nofile(max(65536, 2 * args.clients + 1024))
    pin_self()
    with RedisProc() as redis_proc:
        if args.what == "storm":
            result = storm(redis_proc, args.clients, args.missed)
        elif args.what == "live":
            result = live(redis_proc, args.clients, args.missed, args.backlog)
        elif args.what == "door":
            result = door(redis_proc, args.clients)
        else:
            result = hold(redis_proc, args.clients)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
