"""Deliveries per second, server CPU per delivery and append-to-receive latency, for
flowwire and the baselines, measured the same way (see benchmarks/README.md).

Throughput, "bursts of events": the server under test is stopped (SIGSTOP), a burst of
events is published (pipelined), the server is continued (SIGCONT) and drains the
burst as fast as it can. Deliveries/s = deliveries / (last receive - continue); server
CPU per delivery from /proc/<pid>/stat over the same interval. "One event at a time":
the same, with the stream servers reading one entry per XREAD (``READER_BATCH=1``), so
nothing can be coalesced. Latency: events published one by one at a fixed rate.

Every round checks that every client got every event it is owed, exactly once, in
order: per connection, ids strictly increasing (no duplicate, no reordering), and the
count and id hash equal to those of the events published for its subscription.

    python -m benchmarks.bench_delivery --kind flowwire --clients 1000     # one scenario
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from typing import Any, Final

from benchmarks.common import Receiver, RedisProc, ServerProc, expected_hashes, pin_self, raise_nofile
from benchmarks.servers import KINDS, Feeder, Kind, make_feeder, start_receiver, start_server

__all__ = ["FLOWWIRE_ENV", "Session", "check", "latency", "throughput"]

EXECUTIONS: Final = 100  # events cycle over 100 executions; the 1 % variant subscribes to one

#: flowwire runs with its defaults except these (README: "settings"). It used to need
#: READER_BATCH=256: a burst larger than CLIENT_SEND_BUFFER read in one batch closed
#: every connection with 4008; fixed in the gateway, and the probe in run.py re-checks it.
FLOWWIRE_ENV: Final[dict[str, str]] = {}

#: Rough deliveries/s per kind, only to size the first (calibration) burst.
_GUESS: Final = {
    "flowwire": 5e5,
    "flowwire-deflate": 3e4,
    "raw1": 1e5,
    "raw10": 6e5,
    "naive": 2e4,
    "socketio": 6e3,
}


def check(report: dict[str, Any], ids: Sequence[str], n_channels: int) -> dict[str, Any]:
    """Did every connection get every event of its channel, once, in order?"""
    groups = [i % n_channels for i in range(len(ids))]
    counts, sums = expected_hashes(ids, groups, n_channels)
    wrong_count = wrong_hash = 0
    for conn, (got, digest) in enumerate(zip(report["counts"], report["hashes"], strict=True)):
        group = conn % n_channels
        if got != counts[group]:
            wrong_count += 1
        elif digest != sums[group]:
            wrong_hash += 1
    problems = []
    if report["timed_out"]:
        owed = sum(counts[c % n_channels] for c in range(report["conns"]))
        problems.append(f"timed out: {report['received']} deliveries of {owed}")
    if wrong_count:
        problems.append(f"{wrong_count} connections with a wrong number of events")
    if wrong_hash:
        problems.append(f"{wrong_hash} connections with the right count of the wrong events")
    if report["order_violations"] or report["duplicates"]:
        problems.append(f"{report['order_violations']} out of order, {report['duplicates']} duplicates")
    if report["open"] != report["conns"]:
        problems.append(f"{report['conns'] - report['open']} connections closed {report['close_codes']}")
    return {"ok": not problems, "problems": problems}


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in ("counts", "hashes")}


class Session:
    """One server of one kind with ``clients`` subscribed connections."""

    def __init__(
        self,
        redis: RedisProc,
        kind: Kind,
        clients: int,
        *,
        one_pct: bool = False,
        batch: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.kind = kind
        self.clients = clients
        self.n_channels = EXECUTIONS if one_pct else 1
        channels = [f"executions:exec_{g:08d}" for g in range(EXECUTIONS)] if one_pct else ["executions"]
        server_env = {**(FLOWWIRE_ENV if kind.name.startswith("flowwire") else {}), **(env or {})}
        self.server: ServerProc = start_server(kind, redis.url, batch=batch, env=server_env)
        self.receiver: Receiver | None = None
        self.feeder: Feeder | None = None
        try:
            self.receiver = start_receiver(kind, self.server.port, clients, channels, sources=4)
            self.feeder = make_feeder(kind, redis.url, EXECUTIONS)
        except BaseException:
            self.close()
            raise
        self.ready = self.receiver.ready
        self.next_event = 0

    def close(self) -> None:
        if self.receiver is not None:
            self.receiver.close()
        if self.feeder is not None:
            self.feeder.close()
        self.server.stop()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _numbers(self, n: int) -> list[int]:
        """Event ``k`` is on execution ``k % 100``; every burst starts at a multiple of the
        channel count, so that ``check`` may group ids by their position."""
        start = self.next_event
        assert start % self.n_channels == 0, start
        self.next_event += n
        return list(range(start, start + n))

    def per_event(self) -> int:
        return self.clients // self.n_channels if self.n_channels > 1 else self.clients

    def burst(self, events: int, timeout: float) -> dict[str, Any]:
        """Publish ``events`` while the server is stopped, then time the drain."""
        assert self.receiver is not None and self.feeder is not None
        events = max(self.n_channels, events - events % self.n_channels)
        numbers = self._numbers(events)
        self.receiver.reset()
        self.server.pause()
        try:
            ids = self.feeder.publish(numbers)
            cpu0 = self.server.cpu_seconds()
            t0 = time.monotonic()
        finally:
            self.server.resume()
        report = self.receiver.wait(events * self.per_event(), timeout)
        cpu1 = self.server.cpu_seconds()
        elapsed = max(1e-6, report["t_last"] - t0) if report["received"] else 0.0
        delivered = report["received"]
        rcpu = report["cpu_user_s"] + report["cpu_sys_s"]
        return {
            "events": events,
            "deliveries": delivered,
            "seconds": round(elapsed, 4),
            "deliveries_per_s": delivered / elapsed if elapsed else 0.0,
            "server_cpu_us_per_delivery": (cpu1 - cpu0) * 1e6 / delivered if delivered else None,
            "server_cpu_share": (cpu1 - cpu0) / elapsed if elapsed else None,
            "receiver_cpu_share": rcpu / elapsed if elapsed else None,
            "check": check(report, ids, self.n_channels),
            "receiver": _summary(report),
        }

    def paced(self, rate: float, seconds: float, timeout: float) -> dict[str, Any]:
        """Publish one event at a time, ``rate`` per second, for ``seconds``."""
        assert self.receiver is not None and self.feeder is not None
        events = max(1, int(rate * seconds))
        events = max(self.n_channels, events - events % self.n_channels)
        numbers = self._numbers(events)
        self.receiver.reset()
        ids: list[str] = []
        start = time.monotonic()
        late = 0.0
        for k, n in enumerate(numbers):
            due = start + k / rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            else:
                late = max(late, now - due)
            ids += self.feeder.publish([n])
        published = time.monotonic() - start
        report = self.receiver.wait(events * self.per_event(), timeout)
        return {
            "rate": rate,
            "events": events,
            "publish_seconds": round(published, 3),
            "publisher_max_late_ms": round(late * 1000, 2),
            "p50_ms": report["lat_p50_us"] / 1000,
            "p99_ms": report["lat_p99_us"] / 1000,
            "max_ms": report["lat_max_us"] / 1000,
            "check": check(report, ids, self.n_channels),
            "receiver": _summary(report),
        }


def throughput(
    redis: RedisProc,
    kind_name: str,
    clients: int,
    *,
    one_pct: bool = False,
    batch: int | None = None,
    rounds: int = 3,
    seconds: float = 3.0,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A calibration burst, then ``rounds`` bursts sized to last about ``seconds``."""
    kind = KINDS[kind_name]
    out: dict[str, Any] = {
        "kind": kind_name,
        "label": kind.label,
        "clients": clients,
        "variant": "1%" if one_pct else "all",
        "batch": batch,
        "rounds": [],
    }
    with Session(redis, kind, clients, one_pct=one_pct, batch=batch, env=env) as s:
        out["connect"] = s.ready
        per_event = s.per_event()
        guess = _GUESS.get(kind_name, 5e4) * (0.1 if batch == 1 and kind_name != "raw1" else 1)
        events = int(min(20_000, max(10, guess * min(1.0, seconds / 3) / per_event)))
        cal = s.burst(events, timeout=60)
        out["calibration"] = {k: cal[k] for k in ("events", "deliveries_per_s", "check")}
        rate = cal["deliveries_per_s"] or guess
        for _ in range(rounds):
            n = int(min(50_000, max(10, rate * seconds / per_event)))
            r = s.burst(n, timeout=max(30.0, 6 * seconds))
            out["rounds"].append(r)
            rate = r["deliveries_per_s"] or rate
    good = [r for r in out["rounds"] if r["deliveries_per_s"]]
    out["deliveries_per_s"] = statistics.median(r["deliveries_per_s"] for r in good) if good else 0.0
    cpu = [r["server_cpu_us_per_delivery"] for r in good if r["server_cpu_us_per_delivery"]]
    out["server_cpu_us_per_delivery"] = statistics.median(cpu) if cpu else None
    out["receiver_cpu_share_max"] = max((r["receiver_cpu_share"] or 0 for r in good), default=0.0)
    out["server_cpu_share_min"] = min((r["server_cpu_share"] or 0 for r in good), default=0.0)
    problems = [p for r in [cal, *out["rounds"]] for p in r["check"]["problems"]]
    out["check"] = {"ok": not problems, "problems": sorted(set(problems))}
    return out


def latency(
    redis: RedisProc,
    kind_name: str,
    clients: int,
    rates: Sequence[float],
    *,
    seconds: float = 5.0,
    capacity: float | None = None,
) -> dict[str, Any]:
    """Latency at each rate; a rate beyond ``capacity`` (deliveries/s) is not run:
    the server cannot keep up, its latency only grows with the run's length."""
    kind = KINDS[kind_name]
    out: dict[str, Any] = {"kind": kind_name, "clients": clients, "rates": {}}
    runnable = [r for r in rates if capacity is None or r * clients <= 0.9 * capacity]
    for r in rates:
        if r not in runnable:
            out["rates"][str(r)] = {
                "rate": r,
                "overloaded": True,
                "note": f"needs {r * clients:,.0f} deliveries/s; capacity {capacity:,.0f}",
            }
    if not runnable:
        return out
    with Session(redis, kind, clients) as s:
        s.burst(10, timeout=30)  # warm-up
        for r in runnable:
            res = s.paced(r, seconds, timeout=seconds + 30)
            res["overloaded"] = False
            out["rates"][str(r)] = res
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kind", choices=sorted(KINDS), default="flowwire")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--one-pct", action="store_true", help="each client matches 1 %% of events")
    parser.add_argument("--batch", type=int, help="entries per XREAD (stream servers); 1: one at a time")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--latency", type=float, nargs="*", help="also measure latency at these events/s")
    args = parser.parse_args(argv)
    pin_self()
    raise_nofile()
    with RedisProc() as redis:
        result = throughput(
            redis,
            args.kind,
            args.clients,
            one_pct=args.one_pct,
            batch=args.batch,
            rounds=args.rounds,
            seconds=args.seconds,
        )
        for r in result["rounds"]:
            r.pop("receiver", None)
        print(json.dumps(result, indent=2))
        if args.latency:
            lat = latency(redis, args.kind, args.clients, args.latency)
            print(json.dumps(lat, indent=2, default=str))
    return 0 if result["check"]["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
