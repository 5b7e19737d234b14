"""Conflation (docs/protocol.md "Priority and conflation"): a backlogged dashboard with
and without ``conflate``, through the real delivery core (``gateway.core.delivery``,
``gateway.core.lanes``), in one process, deterministic but for CPU time.

The scenario: ``executions`` executions emit ``per_execution`` step events each,
interleaved (a busy workflow engine); one version 2 connection subscribed to their
workflow reads one frame for every ``slowdown`` events published (a dashboard on a slow
link). Three ways to serve it:

- ``exactly_once``: today's default, ``CLIENT_SEND_BUFFER`` events queued at most: the
  connection is closed 4008 when the backlog exceeds it (the client then reconnects and
  replays: the whole backlog again).
- ``unbounded``: what exactly-once would cost without the bound (every event kept): the
  reference for what conflation saves.
- ``conflate``: the same bound, conflating: never closed, the latest event per execution.

Reported: frames and bytes written, events conflated, the backlog when the flood ends,
*time to the latest state* (frames the client still reads after the flood before it
holds the last event of every execution, in ms at its read rate), and server CPU per
event offered (conflation finds the queued event of an execution through an index).

    python -m benchmarks.bench_conflation
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import deque
from typing import Any

from gateway.core.delivery import Delivery, Frame
from gateway.core.filters import compile_filters
from gateway.core.index import Subscription
from schemas.channels import parse_channel
from schemas.control import Filters
from schemas.events import make_event
from schemas.stream import StreamEvent, decode_entry, encode_entry

__all__ = ["measure"]

CHANNEL = parse_channel("workflows:wf-1")


def events(executions: int, per_execution: int) -> list[StreamEvent]:
    """Step events, interleaved over the executions, with increasing ids."""
    out = []
    for n in range(executions * per_execution):
        eid, step = f"exec_{n % executions:06d}", n // executions
        data = {"execution_id": eid, "workflow_id": "wf-1", "step_id": f"step-{step}",
                "step_type": "task", "status": "completed", "duration_ms": 40 + step,
                "output": {"rows": step, "ok": True}}  # fmt: skip
        fields = encode_entry(make_event("step.completed", data))
        out.append(decode_entry(f"{1_000_000 + n}-0".encode(), {k.encode(): v for k, v in fields.items()}))
    return out


def _serve(
    evs: list[StreamEvent], buffer: int, slowdown: int, high_water: int, *, conflate: bool
) -> dict[str, Any]:
    """One connection through the flood. The socket is a queue the client reads one frame
    from per ``slowdown`` events; the shell writes the outbox into it while it holds
    fewer than ``high_water`` frames (the transport's pause), else the outbox waits."""
    conn = Delivery(buffer, 1 << 40, direct=True, lanes=True)
    conn.conflate(CHANNEL, conflate)
    conn.add(CHANNEL, Subscription(conn, None, CHANNEL, compile_filters(Filters()), ((0, 0),)), ((0, 0),))
    socket: deque[bytes] = deque()
    read: list[bytes] = []
    cpu = 0.0
    for n, event in enumerate(evs, 1):
        t0 = time.process_time()
        ok = conn.offer_live(event, Frame.of(event))
        if len(socket) < high_water:
            socket.extend(conn.outbox.take())
            conn.drained()
        else:
            conn.stall()
        cpu += time.process_time() - t0
        if not ok and conn.close_code:
            return {"closed_4008_at_event": n, "frames_read_before": len(read)}
        if n % slowdown == 0 and socket:
            read.append(socket.popleft())
    backlog = [*socket, *conn.outbox.take()]
    pending = {e.id for e in {e.execution_id: e for e in evs}.values()}
    to_latest = 0
    for data in backlog:  # what the client reads after the flood until it is current
        if not pending:
            break
        to_latest += 1
        pending.discard(json.loads(data[data.index(b"{") :])["id"].encode())
    written = read + backlog
    return {
        "frames_written": len(written),
        "bytes_written": sum(map(len, written)),
        "events_conflated": conn.conflated,
        "backlog_at_end": len(backlog),
        "frames_to_latest_state": to_latest,
        "cpu_ns_per_event": cpu / len(evs) * 1e9,
    }


def measure(
    *,
    executions: int = 100,
    per_execution: int = 100,
    buffer: int = 256,
    slowdown: int = 10,
    high_water: int = 200,
    read_rate: float = 1000.0,
    rounds: int = 3,
) -> dict[str, Any]:
    """The three ways (module docstring); ``read_rate``: the client's frames per second,
    to express the time to the latest state."""
    evs = events(executions, per_execution)
    runs: dict[str, list[dict[str, Any]]] = {"exactly_once": [], "unbounded": [], "conflate": []}
    for _ in range(rounds):
        for mode, size, conflate in (("exactly_once", buffer, False), ("unbounded", len(evs), False),
                                     ("conflate", buffer, True)):  # fmt: skip
            runs[mode].append(_serve(evs, size, slowdown, high_water, conflate=conflate))
    out: dict[str, Any] = {
        "events": len(evs), "executions": executions, "buffer": buffer, "slowdown": slowdown,
        "high_water": high_water, "read_rate": read_rate,
    }  # fmt: skip
    for mode, results in runs.items():
        row = dict(results[0])
        if "cpu_ns_per_event" in row:
            row["cpu_ns_per_event"] = statistics.median(r["cpu_ns_per_event"] for r in results)
            row["ms_to_latest_state"] = row["frames_to_latest_state"] / read_rate * 1000
        out[mode] = row
    unbounded, conflated = out["unbounded"], out["conflate"]
    out["conflate_over_unbounded"] = {
        key: conflated[key] / unbounded[key]
        for key in ("frames_written", "bytes_written", "ms_to_latest_state", "cpu_ns_per_event")
        if unbounded.get(key)
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--executions", type=int, default=100)
    parser.add_argument("--per-execution", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    result = measure(executions=args.executions, per_execution=args.per_execution, rounds=args.rounds)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
