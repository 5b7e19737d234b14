"""Plots (PNG, matplotlib) and the results section of benchmarks/README.md, from the
results of one full run (``benchmarks.run --full``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

__all__ = ["plots", "results_markdown", "write_readme"]

_ORDER: Final = ("flowwire", "raw1", "raw10", "naive", "socketio")
_SHORT_LABEL: Final = {
    "flowwire": "flowwire",
    "raw1": "raw, 1/write",
    "raw10": "raw, 10/write",
    "naive": "naive gateway",
    "socketio": "python-socketio",
    "flowwire-deflate": "flowwire + deflate",
}


def _fmt(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "n/a"
    return f"{x:,.{digits}f}"


def _row(rows: Sequence[dict[str, Any]], kind: str, clients: int) -> dict[str, Any] | None:
    return next((r for r in rows if r.get("kind") == kind and r.get("clients") == clients), None)


# -- plots ------------------------------------------------------------------------------------------


def plots(results: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib  # type: ignore[import-not-found,unused-ignore]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]

    made: list[Path] = []
    d = results.get("delivery", {})
    bursts = d.get("bursts", [])
    clients = sorted({r["clients"] for r in bursts})

    def bars(metric: str, title: str, ylabel: str, name: str) -> None:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        width = 0.8 / max(1, len(clients))
        for j, c in enumerate(clients):
            xs, ys = [], []
            for i, kind in enumerate(_ORDER):
                row = _row(bursts, kind, c)
                if row and row.get(metric):
                    xs.append(i + j * width)
                    ys.append(row[metric])
            rects = ax.bar(xs, ys, width, label=f"{c:,} clients")
            ax.bar_label(rects, labels=[f"{y:,.0f}" if y >= 10 else f"{y:.2f}" for y in ys], fontsize=7)
        ax.set_xticks([i + width * (len(clients) - 1) / 2 for i in range(len(_ORDER))])
        ax.set_xticklabels([_SHORT_LABEL[k] for k in _ORDER])
        ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend()
        fig.tight_layout()
        path = out / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path)

    if bursts:
        bars(
            "deliveries_per_s",
            "Deliveries/s, bursts of events (one server core)",
            "deliveries/s",
            "deliveries.png",
        )
        bars(
            "server_cpu_us_per_delivery", "Server CPU per delivery", "µs per delivery", "cpu_per_delivery.png"
        )

    for part in (_plot_latency, _plot_memory, _plot_index, _plot_idle):
        path = part(plt, results, out)
        if path is not None:
            made.append(path)
    return made


def _plot_latency(plt: Any, results: dict[str, Any], out: Path) -> Path | None:
    d = results.get("delivery", {})
    lat = [r for r in d.get("latency", []) if any(not v.get("overloaded") for v in r["rates"].values())]
    if lat:
        fig, ax = plt.subplots(figsize=(10, 4.5))
        labels, p50, p99, pmax = [], [], [], []
        for r in lat:
            for rate, v in sorted(r["rates"].items(), key=lambda kv: float(kv[0])):
                if v.get("overloaded"):
                    continue
                labels.append(f"{_SHORT_LABEL[r['kind']]}\n{float(rate):g}/s")
                p50.append(max(v["p50_ms"], 0.01))
                p99.append(max(v["p99_ms"], 0.01))
                pmax.append(max(v["max_ms"], 0.01))
        xs = list(range(len(labels)))
        ax.bar([x - 0.27 for x in xs], p50, 0.27, label="p50")
        ax.bar(xs, p99, 0.27, label="p99")
        ax.bar([x + 0.27 for x in xs], pmax, 0.27, label="max")
        ax.axhline(20, color="red", lw=0.8, ls="--", label="p99 target (200/s)")
        ax.axhline(5, color="orange", lw=0.8, ls="--", label="p50 target (20/s)")
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("append → receive, ms")
        ax.set_title("Latency, 1,000 clients (rates a server cannot sustain are not run)")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
        path = out / "latency.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path
    return None


def _plot_memory(plt: Any, results: dict[str, Any], out: Path) -> Path | None:
    mem = results.get("memory", {}).get("rows", [])
    if mem:
        fig, ax = plt.subplots(figsize=(7, 4))
        rects = ax.bar([_SHORT_LABEL[r["kind"]] for r in mem], [r["kb_per_connection"] for r in mem])
        ax.bar_label(rects, fmt="%.1f")
        ax.axhline(12, color="red", lw=0.8, ls="--", label="target 12 KB")
        ax.set_ylabel("KB RSS per idle connection")
        ax.set_title(f"Memory per idle subscribed connection ({results['memory']['clients']:,} connections)")
        ax.legend()
        fig.tight_layout()
        path = out / "memory.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path
    return None


def _plot_index(plt: Any, results: dict[str, Any], out: Path) -> Path | None:
    idx = results.get("index", {}).get("rows", [])
    if idx:
        fig, ax = plt.subplots(figsize=(7, 4))
        xs = [r["subscriptions"] for r in idx]
        ax.plot(xs, [r["index_us"] for r in idx], "o-", label="flowwire index")
        ax.plot(xs, [r["loop_us"] for r in idx], "s--", label="loop over subscriptions (original)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("subscriptions (10 match every event)")
        ax.set_ylabel("µs per event")
        ax.set_title("Match cost versus subscription count")
        ax.legend()
        fig.tight_layout()
        path = out / "index.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path
    return None


def _plot_idle(plt: Any, results: dict[str, Any], out: Path) -> Path | None:
    idle = results.get("idle", {})
    if idle.get("samples"):
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.plot([s["t"] for s in idle["samples"]], [s["open"] for s in idle["samples"]], "-")
        ax.set_ylim(0, max(idle["clients"], 1) * 1.1)
        ax.set_xlabel("seconds")
        ax.set_ylabel("open connections")
        ax.set_title(f"Idle connections, pings every {idle['ping_interval_s']:g} s")
        fig.tight_layout()
        path = out / "idle.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path
    return None


# -- README -----------------------------------------------------------------------------------------


def _targets_table(results: dict[str, Any]) -> list[str]:
    """Each target met or missed, and what the CI guard (``--short``) does with it."""
    lines = [
        "| target | flowwire | required | achieved / required | | CI guard (`--short`) |",
        "|---|---|---|---|---|---|",
    ]
    for t in results.get("targets", []):
        digits = 0 if t["unit"] in ("connections", "events/s") else 2
        value = "n/a" if t["value"] is None else f"{t['value']:,.{digits}f} {t['unit']}"
        ratio = "n/a" if t["ratio"] is None else f"{t['ratio']:.2f}"
        status = "met" if t["met"] else f"**missed** ({ratio})"
        guard = t.get("guard", "")
        lines.append(f"| {t['target']} | {value} | {t['required']} | {ratio} | {status} | {guard} |")
    return lines


def _bursts_table(d: dict[str, Any]) -> list[str]:
    bursts = d.get("bursts", [])
    clients = sorted({r["clients"] for r in bursts})
    lines = ["### Deliveries/s and server CPU per delivery (bursts, every client matches every event)", ""]
    head = (
        "| server | "
        + " | ".join(f"{c:,} clients: deliveries/s | µs CPU/delivery | x raw" for c in clients)
        + " |"
    )
    lines += [head, "|---|" + "---|---|---|" * len(clients)]
    for kind in _ORDER:
        cells = []
        for c in clients:
            row = _row(bursts, kind, c)
            raw = _row(bursts, "raw1", c)
            if row is None:
                cells += ["—", "—", "—"]
                continue
            x = row["deliveries_per_s"] / raw["deliveries_per_s"] if raw and raw["deliveries_per_s"] else None
            ok = "" if row["check"]["ok"] else " ⚠"
            cells += [
                _fmt(row["deliveries_per_s"]) + ok,
                _fmt(row["server_cpu_us_per_delivery"], 2),
                _fmt(x, 2),
            ]
        lines.append(f"| {_SHORT_LABEL[kind]} | " + " | ".join(cells) + " |")
    defl = d.get("deflate")
    if defl and defl.get("deliveries_per_s"):
        raw = _row(bursts, "raw1", 1000)
        x = defl["deliveries_per_s"] / raw["deliveries_per_s"] if raw and raw["deliveries_per_s"] else None
        pad = " | —" * 3 * (len(clients) - 1)
        lines.append(
            f"| flowwire, permessage-deflate on | {_fmt(defl['deliveries_per_s'])} | "
            f"{_fmt(defl['server_cpu_us_per_delivery'], 2)} | {_fmt(x, 2)}{pad} |"
        )
    return lines


def _delivery_tables(d: dict[str, Any]) -> list[str]:
    lines = _bursts_table(d)
    lines += [
        "",
        "### One event at a time (one entry per XREAD: nothing to coalesce), 1,000 clients",
        "",
        "| server | deliveries/s | µs CPU/delivery |",
        "|---|---|---|",
    ]
    for r in d.get("one_at_a_time", []):
        lines.append(
            f"| {_SHORT_LABEL[r['kind']]} | {_fmt(r['deliveries_per_s'])} | "
            f"{_fmt(r['server_cpu_us_per_delivery'], 2)} |"
        )
    if d.get("one_pct"):
        lines += [
            "",
            "### Each client matches 1 % of events (100 executions, one per client)",
            "",
            "| server | clients | deliveries/s | events/s | µs CPU/delivery |",
            "|---|---|---|---|---|",
        ]
        for r in d["one_pct"]:
            eps = r["deliveries_per_s"] * 100 / r["clients"]
            lines.append(
                f"| {_SHORT_LABEL[r['kind']]} | {r['clients']:,} | {_fmt(r['deliveries_per_s'])} | "
                f"{_fmt(eps)} | {_fmt(r['server_cpu_us_per_delivery'], 2)} |"
            )
    rounds = [
        x for part in ("bursts", "one_at_a_time", "one_pct") for r in d.get(part, []) for x in r["rounds"]
    ]
    rcpu = max([x["receiver_cpu_share"] or 0 for x in rounds] or [0])
    bad = [
        f"{r['kind']} {r['clients']}"
        for part in ("bursts", "one_at_a_time", "one_pct")
        for r in d.get(part, [])
        if not r["check"]["ok"]
    ]
    scpu = min([x["server_cpu_share"] or 0 for x in rounds] or [0])
    lines += [
        "",
        f"Server under test: at least {scpu:.0%} of its core busy in every throughput round (each figure is "
        f"the server's own limit). Receiver (C, epoll, core 1): at most {rcpu:.0%} of its core in any round. "
        "Every run checked every client's events: "
        + (
            "all complete, exactly once, in order."
            if not bad
            else f"problems in {', '.join(bad)} (⚠; see results/delivery.json)."
        ),
    ]
    lat = d.get("latency", [])
    if lat:
        lines += [
            "",
            "### Append → receive latency, 1,000 clients",
            "",
            "| server | rate | p50 ms | p99 ms | max ms |",
            "|---|---|---|---|---|",
        ]
        for r in lat:
            for rate, v in sorted(r["rates"].items(), key=lambda kv: float(kv[0])):
                name = _SHORT_LABEL[r["kind"]]
                if v.get("overloaded"):
                    lines.append(f"| {name} | {float(rate):g}/s | overloaded: {v['note']} | | |")
                else:
                    ok = "" if v["check"]["ok"] else " ⚠"
                    lines.append(
                        f"| {name} | {float(rate):g}/s | {v['p50_ms']:.2f}{ok} | {v['p99_ms']:.2f} "
                        f"| {v['max_ms']:.2f} |"
                    )
    probe = d.get("defaults_probe")
    if probe:
        lines += [
            "",
            f"**Defaults probe** (flowwire with `READER_BATCH=500`, its default; a burst of "
            f"{probe['burst_events']} events, {probe['clients']:,} clients): "
            + (
                "every event delivered."
                if probe["check"]["ok"]
                else f"{'; '.join(probe['check']['problems'])}."
            ),
        ]
    return lines


def _other_tables(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    mem = results.get("memory", {})
    if mem.get("rows"):
        lines += [
            "",
            f"### RSS per idle connection, one subscription, {mem['clients']:,} connections",
            "",
            "| server | KB per connection | RSS before → after (MB) | connect time (s) |",
            "|---|---|---|---|",
        ]
        for r in mem["rows"]:
            lines.append(
                f"| {_SHORT_LABEL[r['kind']]} | {r['kb_per_connection']:.1f} | "
                f"{r['rss_before_mb']:.0f} → {r['rss_after_mb']:.0f} | {r['connect_seconds']} |"
            )
    idx = results.get("index", {})
    if idx.get("rows"):
        lines += [
            "",
            "### Match cost per event versus subscriptions (10 matching)",
            "",
            "| subscriptions | flowwire index µs/event | loop µs/event |",
            "|---|---|---|",
        ]
        for r in idx["rows"]:
            lines.append(f"| {r['subscriptions']:,} | {r['index_us']:.2f} | {r['loop_us']:,.1f} |")
    elif idx.get("error"):
        lines += ["", f"Match cost: {idx['error']}"]
    pub = results.get("publisher", {})
    if pub.get("blocking"):
        lines += [
            "",
            f"### publish_many, one process (batches of {pub['batch']})",
            "",
            "| client | events/s | publisher CPU µs/event |",
            "|---|---|---|",
        ]
        for client in ("blocking", "asyncio"):
            v = pub[client]
            name = "BlockingPublisher" if client == "blocking" else "Publisher (asyncio, uvloop)"
            lines.append(f"| {name} | {v['events_per_s']:,.0f} | {v['cpu_us_per_event']:.1f} |")
    idle = results.get("idle", {})
    if idle.get("clients"):
        verdict = idle["final_event_check"]
        final = "every one, once" if verdict["ok"] else f"NOT all: {verdict['problems']}"
        lines += [
            "",
            "### Idle connections, heartbeats on",
            "",
            f"{idle['connected']:,} of {idle['clients']:,} connected in {idle['connect_seconds']} s; held "
            f"{idle['seconds']:.0f} s with a ping every {idle['ping_interval_s']:g} s "
            f"({idle['pings_answered']:,} pings "
            f"answered); open at the end: {idle['open_at_end']:,}, dropped: {idle['dropped']}; a final event "
            f"reached {final}. "
            f"Server CPU while idle: {idle['server_cpu_share']:.1%} of its core; "
            f"RSS {idle['rss_mb']:.0f} MB.",
        ]
    return lines


def results_markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    pk = m["packages"]
    d = results.get("delivery", {})
    lines = [
        f"Measured {m['date']} by `python -m benchmarks.run --full` "
        f"({results['wall_seconds'] / 60:.1f} min), one run.",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gb']} GiB, {m['os']}. Python {m['python']}, "
        f"redis-server {d.get('redis_version', '?')}, {m['gcc']}; uvicorn {pk['uvicorn']}, "
        f"starlette {pk['starlette']}, websockets {pk['websockets']}, uvloop {pk['uvloop']}, "
        f"redis-py {pk['redis']}, hiredis {pk['hiredis']}, msgspec {pk['msgspec']}, "
        f"python-socketio {pk['python-socketio']}, python-engineio {pk['python-engineio']}.",
        "flowwire settings: defaults, except "
        + "".join(f"`{k}={v}`, " for k, v in results["settings"]["flowwire_env"].items())
        + "`LOG_LEVEL=warning`, `MAX_CONNECTIONS_PER_USER=0` (see *Settings* above).",
        "",
        "### Targets",
        "",
        *_targets_table(results),
        "",
        *_delivery_tables(d),
        *_other_tables(results),
        "",
        "Plots: [deliveries](results/deliveries.png), [CPU per delivery](results/cpu_per_delivery.png), "
        "[latency](results/latency.png), [memory](results/memory.png), [match cost](results/index.png), "
        "[idle connections](results/idle.png). Raw figures: `results/*.json`.",
    ]
    return "\n".join(lines)


def write_readme(results: dict[str, Any], readme: Path, start: str, end: str) -> None:
    text = readme.read_text() if readme.exists() else f"# Benchmarks\n\n{start}\n{end}\n"
    if start not in text or end not in text:
        text = text.rstrip() + f"\n\n## Results\n\n{start}\n{end}\n"
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    readme.write_text(f"{head}{start}\n{results_markdown(results)}\n{end}{tail}")
