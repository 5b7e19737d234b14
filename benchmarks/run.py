"""The benchmark runner: flowwire and its baselines, side by side, in one run.

    python -m benchmarks.run --short   # < 3 min: results/short.json; exit 1 only when a
                                       # ratio falls below half its target, or flowwire
                                       # lost, duplicated or reordered an event
    python -m benchmarks.run --full    # ~15 min: results/*.json, results/*.png, and the
                                       # results section of benchmarks/README.md

Every figure and target is described in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from benchmarks import bench_delivery, bench_idle, bench_memory, bench_publisher
from benchmarks.common import BENCH_DIR, RESULTS_DIR, RedisProc, build_receiver, pin_self, raise_nofile

__all__ = ["main"]

README: Final = BENCH_DIR / "README.md"
START: Final = "<!-- results:start -->"
END: Final = "<!-- results:end -->"


@dataclass(frozen=True)
class Plan:
    name: str
    clients: tuple[int, ...]  # throughput, bursts
    baselines_5000: tuple[str, ...]
    rounds: int
    seconds: float
    latency_seconds: float
    one_pct: tuple[tuple[str, int], ...]
    deflate: bool
    memory_kinds: tuple[str, ...]
    memory_clients: int
    idle_clients: int
    idle_seconds: float
    idle_ping: float
    publisher_seconds: float
    index_counts: tuple[int, ...]
    index_seconds: float
    probe_defaults: bool


SHORT: Final = Plan(
    name="short",
    clients=(1000,),
    baselines_5000=(),
    rounds=1,
    seconds=1.5,
    latency_seconds=3.0,
    one_pct=(),
    deflate=False,
    memory_kinds=("flowwire",),
    memory_clients=5000,
    idle_clients=2000,
    idle_seconds=20.0,
    idle_ping=5.0,
    publisher_seconds=2.0,
    index_counts=(10, 1_000, 100_000),
    index_seconds=0.1,
    probe_defaults=False,
)
FULL: Final = Plan(
    name="full",
    clients=(1000, 5000),
    baselines_5000=("raw1", "raw10", "naive", "socketio"),
    rounds=3,
    seconds=3.0,
    latency_seconds=10.0,
    one_pct=(("flowwire", 1000), ("flowwire", 5000), ("naive", 1000), ("socketio", 1000)),
    deflate=True,
    memory_kinds=("flowwire", "raw1", "naive", "socketio"),
    memory_clients=5000,
    idle_clients=10_000,
    idle_seconds=300.0,
    idle_ping=10.0,
    publisher_seconds=5.0,
    index_counts=(10, 1_000, 10_000, 100_000),
    index_seconds=0.5,
    probe_defaults=True,
)


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _timed(results: dict[str, Any], key: str, fn: Callable[[], Any]) -> Any:
    t0 = time.monotonic()
    try:
        value = fn()
    except Exception as exc:  # one failed part must not lose the others' figures
        _log(f"{key}: FAILED {exc!r}")
        value = {"error": repr(exc)}
    results.setdefault("durations", {})[key] = round(time.monotonic() - t0, 1)
    return value


def _strip(result: dict[str, Any]) -> dict[str, Any]:
    """Drop the receivers' raw reports from per-round results (kept in the summaries)."""
    for r in result.get("rounds", []):
        r.pop("receiver", None)
    return result


# -- the measurements ------------------------------------------------------------------------------


def run_delivery(plan: Plan) -> dict[str, Any]:
    out: dict[str, Any] = {"bursts": [], "one_at_a_time": [], "one_pct": [], "latency": [], "deflate": None}
    with RedisProc() as redis:
        out["redis_version"] = redis.version()
        for clients in plan.clients:
            kinds = ["flowwire", "raw1", "raw10", "naive", "socketio"]
            if clients != 1000:
                kinds = ["flowwire", *plan.baselines_5000]
            if plan.name == "short":
                kinds = ["flowwire", "raw1", "naive", "socketio"]
            for kind in kinds:
                _log(f"bursts: {kind}, {clients} clients")
                res = _strip(
                    bench_delivery.throughput(redis, kind, clients, rounds=plan.rounds, seconds=plan.seconds)
                )
                out["bursts"].append(res)
                cpu = res["server_cpu_us_per_delivery"] or 0
                _log(f"  {res['deliveries_per_s']:,.0f} deliveries/s, {cpu:.2f} µs/delivery, {res['check']}")
        for kind in ("flowwire", "raw1"):
            _log(f"one event at a time: {kind}")
            res = _strip(
                bench_delivery.throughput(
                    redis, kind, 1000, batch=1, rounds=plan.rounds, seconds=plan.seconds
                )
            )
            out["one_at_a_time"].append(res)
            _log(f"  {res['deliveries_per_s']:,.0f} deliveries/s, check {res['check']}")
        for kind, clients in plan.one_pct:
            _log(f"1 % variant: {kind}, {clients} clients")
            res = _strip(
                bench_delivery.throughput(
                    redis, kind, clients, one_pct=True, rounds=plan.rounds, seconds=plan.seconds
                )
            )
            out["one_pct"].append(res)
            _log(f"  {res['deliveries_per_s']:,.0f} deliveries/s, check {res['check']}")
        if plan.deflate:
            _log("permessage-deflate: flowwire, 1000 clients")
            out["deflate"] = _strip(
                bench_delivery.throughput(
                    redis, "flowwire-deflate", 1000, rounds=plan.rounds, seconds=plan.seconds
                )
            )
        capacity = {(r["kind"], r["clients"]): r["deliveries_per_s"] for r in out["bursts"]}
        lat_kinds = (
            ["flowwire"] if plan.name == "short" else ["flowwire", "raw1", "raw10", "naive", "socketio"]
        )
        for kind in lat_kinds:
            _log(f"latency: {kind}")
            cap = None if kind == "flowwire" else capacity.get((kind, 1000))
            out["latency"].append(
                bench_delivery.latency(
                    redis, kind, 1000, (20.0, 200.0), seconds=plan.latency_seconds, capacity=cap
                )
            )
        if plan.probe_defaults:
            out["defaults_probe"] = probe_defaults(redis)
    return out


def probe_defaults(redis: RedisProc) -> dict[str, Any]:
    """flowwire with every default (READER_BATCH=500): a burst of 400 events, 1000 clients."""
    _log("probe: flowwire defaults, a burst of 400 events")
    from benchmarks.servers import KINDS

    with bench_delivery.Session(redis, KINDS["flowwire"], 1000, env={"READER_BATCH": "500"}) as s:
        r = s.burst(400, timeout=20)
    return {
        "burst_events": 400,
        "clients": 1000,
        "check": r["check"],
        "close_codes": r["receiver"]["close_codes"],
        "deliveries": r["deliveries"],
    }


def run_index(plan: Plan) -> dict[str, Any]:
    try:
        from benchmarks import bench_index
    except ImportError as exc:
        return {"error": f"benchmarks.bench_index unavailable: {exc}"}
    result: dict[str, Any] = bench_index.measure(plan.index_counts, min_seconds=plan.index_seconds)
    return result


# -- ratios and targets -------------------------------------------------------------------------------

#: The short mode fails when a ratio (achieved / required) falls below half its target,
#: except for the targets listed here: gaps measured and explained in README.md ("Missed
#: targets") that are wider than 2x on this machine. For those, the guard protects the
#: level reached instead, at about half of it. Remove an entry once its gap is closed.
GUARD_FLOOR: Final[dict[str, tuple[float, str]]] = {
    "latency_p50_20": (0.2, "kernel cost per write: even the raw server misses it (README)"),
    # p99 over a 3 s window varies most: 44-84 ms between short runs.
    "latency_p99_200": (0.125, "kernel cost per write: one lone event's fan-out alone takes ~20 ms (README)"),
}


def _find(rows: Sequence[dict[str, Any]], kind: str, clients: int = 1000) -> dict[str, Any] | None:
    for r in rows:
        if r.get("kind") == kind and r.get("clients") == clients:
            return r
    return None


def _rate(row: dict[str, Any] | None) -> float | None:
    if row is None or not row.get("deliveries_per_s"):
        return None
    return float(row["deliveries_per_s"])


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def targets(results: dict[str, Any], plan: Plan) -> list[dict[str, Any]]:
    """Each target as ``ratio`` = achieved / required (>= 1: met; < 0.5: the guard fails)."""
    d = results.get("delivery", {})
    bursts = d.get("bursts", [])
    rows: list[dict[str, Any]] = []

    def add(key: str, name: str, value: float | None, unit: str, target: str, ratio: float | None) -> None:
        floor, why = GUARD_FLOOR.get(key, (0.5, ""))
        rows.append(
            {
                "key": key,
                "target": name,
                "value": value,
                "unit": unit,
                "required": target,
                "ratio": ratio,
                "met": ratio is not None and ratio >= 1.0,
                "guard_floor": floor,
                "known_gap": why,
                "guard_fail": ratio is None or ratio < floor,
            }
        )

    fw = {c: _rate(_find(bursts, "flowwire", c)) for c in plan.clients}
    for c in plan.clients:
        x = _div(fw[c], _rate(_find(bursts, "raw1", c)))
        add(
            f"bursts_{c}",
            f"bursts, {c:,} clients: flowwire / raw (1 frame per write)",
            x,
            "x",
            "≥ 3",
            _div(x, 3.0),
        )
    one = d.get("one_at_a_time", [])
    x = _div(_rate(_find(one, "flowwire")), _rate(_find(one, "raw1")))
    add("one_at_a_time", "one event at a time, 1,000 clients: flowwire / raw", x, "x", "≥ 0.8", _div(x, 0.8))
    for c in plan.clients:
        naive = _rate(_find(bursts, "naive", c))
        sio = _rate(_find(bursts, "socketio", c))
        if naive is not None or c == 1000:
            x = _div(fw[c], naive)
            add(
                f"vs_naive_{c}",
                f"bursts, {c:,} clients: flowwire / naive gateway",
                x,
                "x",
                "≥ 5",
                _div(x, 5.0),
            )
        if sio is not None or c == 1000:
            x = _div(fw[c], sio)
            add(
                f"vs_socketio_{c}",
                f"bursts, {c:,} clients: flowwire / python-socketio",
                x,
                "x",
                "≥ 30",
                _div(x, 30.0),
            )
    lat = next((r for r in d.get("latency", []) if r.get("kind") == "flowwire"), None)
    p99 = p50 = None
    if lat is not None:
        p99 = lat["rates"].get("200.0", {}).get("p99_ms")
        p50 = lat["rates"].get("20.0", {}).get("p50_ms")
    add(
        "latency_p99_200",
        "latency p99 at 200 events/s, 1,000 clients",
        p99,
        "ms",
        "≤ 20 ms",
        _div(20.0, p99 and max(p99, 1e-3)),
    )
    add(
        "latency_p50_20",
        "latency p50 at 20 events/s, 1,000 clients",
        p50,
        "ms",
        "≤ 5 ms",
        _div(5.0, p50 and max(p50, 1e-3)),
    )
    mem = next((r for r in results.get("memory", {}).get("rows", []) if r["kind"] == "flowwire"), None)
    kb = mem["kb_per_connection"] if mem else None
    add(
        "rss_idle",
        f"RSS per idle connection, {plan.memory_clients:,} connections",
        kb,
        "KB",
        "≤ 12 KB",
        _div(12.0, kb and max(kb, 1e-3)),
    )
    idx = results.get("index", {})
    flat = idx.get("index_max_over_min")
    add(
        "match_flat",
        "match cost, 10 → 100,000 subscriptions: largest / smallest",
        flat,
        "x",
        "≤ 2",
        _div(2.0, flat),
    )
    pub = results.get("publisher", {})
    for client in ("blocking", "asyncio"):
        eps = pub.get(client, {}).get("events_per_s")
        add(
            f"publish_{client}",
            f"publish_many, one process ({client})",
            eps,
            "events/s",
            "≥ 25,000",
            _div(eps, 25_000.0),
        )
    idle = results.get("idle", {})
    held = idle.get("open_at_end")
    if held is not None and not idle.get("final_event_check", {}).get("ok", False):
        held = 0
    add(
        "idle_held",
        f"idle connections held {idle.get('seconds', 0):.0f} s, heartbeats on, none dropped",
        held,
        "connections",
        f"≥ {plan.idle_clients:,}",
        _div(held, float(plan.idle_clients)),
    )
    return rows


def correctness(results: dict[str, Any]) -> list[str]:
    """flowwire's delivery checks (lost, duplicated, reordered events, dropped connections)."""
    problems = []
    d = results.get("delivery", {})
    for part in ("bursts", "one_at_a_time", "one_pct"):
        for r in d.get(part, []):
            if r.get("kind") == "flowwire" and not r["check"]["ok"]:
                problems.append(f"{part} {r['clients']} clients: {r['check']['problems']}")
    for r in d.get("latency", []):
        if r.get("kind") == "flowwire":
            for rate, v in r["rates"].items():
                if not v.get("overloaded") and not v["check"]["ok"]:
                    problems.append(f"latency {rate}/s: {v['check']['problems']}")
    return problems


# -- machine, versions -----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions: dict[str, str | None] = {}
    for pkg in (
        "flowwire",
        "uvicorn",
        "starlette",
        "websockets",
        "uvloop",
        "redis",
        "hiredis",
        "msgspec",
        "python-socketio",
        "python-engineio",
        "matplotlib",
    ):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True, check=False).stdout.split(
        "\n"
    )[0]
    os_name = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"') + f" (kernel {platform.release()})"
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_gb, 1),
        "os": os_name,
        "python": platform.python_version(),
        "gcc": gcc,
        "packages": versions,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


# -- main -----------------------------------------------------------------------------------------


def run(plan: Plan) -> dict[str, Any]:
    pin_self()
    raise_nofile()
    build_receiver()
    results: dict[str, Any] = {
        "mode": plan.name,
        "machine": machine(),
        "settings": {"flowwire_env": bench_delivery.FLOWWIRE_ENV, "server_core": 0, "client_core": 1},
    }
    t0 = time.monotonic()
    results["delivery"] = _timed(results, "delivery", lambda: run_delivery(plan))
    _log("memory")
    results["memory"] = _timed(
        results, "memory", lambda: bench_memory.measure(plan.memory_kinds, plan.memory_clients)
    )
    _log("publisher")
    results["publisher"] = _timed(
        results, "publisher", lambda: bench_publisher.measure(plan.publisher_seconds)
    )
    _log("index")
    results["index"] = _timed(results, "index", lambda: run_index(plan))
    _log(f"idle: {plan.idle_clients} connections for {plan.idle_seconds:.0f}s")
    results["idle"] = _timed(
        results, "idle", lambda: bench_idle.measure(plan.idle_clients, plan.idle_seconds, plan.idle_ping)
    )
    results["targets"] = targets(results, plan)
    results["correctness_problems"] = correctness(results)
    results["wall_seconds"] = round(time.monotonic() - t0, 1)
    return results


def _print_targets(results: dict[str, Any]) -> None:
    for t in results["targets"]:
        digits = 0 if t["unit"] in ("connections", "events/s") else 2
        value = "n/a" if t["value"] is None else f"{t['value']:,.{digits}f} {t['unit']}"
        ratio = "n/a" if t["ratio"] is None else f"{t['ratio']:.2f}"
        flag = "met" if t["met"] else ("GUARD FAIL" if t["guard_fail"] else "missed")
        gap = f"; known gap, guard floor {t['guard_floor']}: {t['known_gap']}" if t["known_gap"] else ""
        print(f"{flag:>10}  {t['target']}: {value} (target {t['required']}; ratio {ratio}{gap})")
    for p in results["correctness_problems"]:
        print(f"CORRECTNESS  flowwire: {p}")
    print(f"wall time: {results['wall_seconds']:.0f} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--short", action="store_true", help="the CI guard, under 3 minutes")
    mode.add_argument("--full", action="store_true", help="everything; rewrites README.md's results")
    mode.add_argument(
        "--report-only", action="store_true", help="redo the plots and README.md from results/full.json"
    )
    parser.add_argument("--no-readme", action="store_true", help="full mode: leave README.md alone")
    args = parser.parse_args(argv)
    if args.report_only:
        from benchmarks import report

        results = json.loads((RESULTS_DIR / "full.json").read_text())
        report.plots(results, RESULTS_DIR)
        report.write_readme(results, README, START, END)
        return 0
    plan = SHORT if args.short else FULL
    results = run(plan)
    RESULTS_DIR.mkdir(exist_ok=True)
    if args.short:
        (RESULTS_DIR / "short.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    else:
        from benchmarks import report

        (RESULTS_DIR / "full.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
        for part in ("delivery", "memory", "publisher", "index", "idle"):
            (RESULTS_DIR / f"{part}.json").write_text(json.dumps(results[part], indent=2, default=str) + "\n")
        report.plots(results, RESULTS_DIR)
        if not args.no_readme:
            report.write_readme(results, README, START, END)
    _print_targets(results)
    failed = [t for t in results["targets"] if t["guard_fail"]]
    if args.short and (failed or results["correctness_problems"]):
        print(
            f"benchmark guard: {len(failed)} ratio(s) below half their target, "
            f"{len(results['correctness_problems'])} correctness problem(s)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
