"""Match cost per event against the number of subscriptions (issue 3).

10, 1,000 and 100,000 subscriptions, of which a fixed 10 match every event; the rest
are on other executions, workflows and statuses, spread over bare and keyed channels,
as a large deployment's would be. The index's cost should stay flat; a loop over all
subscriptions (the original hub's way) is measured beside it for contrast.

    python -m benchmarks.bench_index            # prints a table, writes results/index.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.core.filters import compile_filters
from gateway.core.index import Subscription, SubscriptionIndex
from gateway.core.routing import channels_for
from schemas.channels import parse_channel
from schemas.control import Filters
from schemas.stream import StreamEvent

__all__ = ["main", "measure"]

MATCHING = 10
RESULTS = Path(__file__).parent / "results"


def _event(n: int) -> StreamEvent:
    return StreamEvent(
        id=f"{n}-0".encode(),
        sid=(n, 0),
        type="execution.completed",
        data=b"{}",
        timestamp=b"",
        execution_id="exec_hot",
        workflow_id="wf-hot",
        status="completed",
    )


def _subscriptions(total: int) -> list[Subscription[int]]:
    subs: list[Subscription[int]] = []
    hot = [
        ("executions", Filters()),
        ("executions:exec_hot", Filters()),
        ("workflows:wf-hot", Filters(statuses=["completed"])),
    ]
    for i in range(MATCHING):
        channel, flt = hot[i % len(hot)]
        subs.append(Subscription(i, None, parse_channel(channel), compile_filters(flt)))
    for i in range(MATCHING, total):
        kind = i % 4
        if kind == 0:
            channel, flt = f"executions:exec_{i}", Filters()
        elif kind == 1:
            channel, flt = f"workflows:wf-{i % 5000}", Filters()
        elif kind == 2:
            channel, flt = "executions", Filters(execution_ids=[f"exec_{i}"])
        else:
            channel, flt = "executions", Filters(workflow_ids=[f"wf-{i}"], statuses=["failed"])
        subs.append(Subscription(i, None, parse_channel(channel), compile_filters(flt)))
    return subs[:total]


def _time_per_event(fn: Any, events: list[StreamEvent], min_seconds: float) -> float:
    rounds = 0
    start = time.perf_counter()
    while True:
        for event in events:
            fn(event)
        rounds += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / (rounds * len(events))


def measure(counts: Sequence[int] = (10, 1_000, 100_000), *, min_seconds: float = 0.5) -> dict[str, Any]:
    events = [_event(n) for n in range(1, 101)]
    rows = []
    for total in counts:
        subs = _subscriptions(total)
        index: SubscriptionIndex[int] = SubscriptionIndex()
        for sub in subs:
            index.add(sub)
        matched = index.match(events[0])
        assert len(matched) == min(MATCHING, total), (total, len(matched))
        indexed = _time_per_event(index.match, events, min_seconds)

        def brute(event: StreamEvent, subs: list[Subscription[int]] = subs) -> list[int]:
            routed = set(channels_for(event))  # once per event: the loop is the fair part
            return [s.owner for s in subs if s.channel in routed and s.filter.matches(event)]

        looped = _time_per_event(brute, events[:5], min_seconds / 2)
        rows.append({"subscriptions": total, "matches": len(matched), "index_us": indexed * 1e6,
                     "loop_us": looped * 1e6})  # fmt: skip
    flat = max(r["index_us"] for r in rows) / min(r["index_us"] for r in rows)
    return {"rows": rows, "index_max_over_min": flat, "target_max_over_min": 2.0}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter timing loops")
    parser.add_argument("--no-write", action="store_true", help="do not write results/index.json")
    args = parser.parse_args(argv)
    result = measure(min_seconds=0.15 if args.quick else 0.5)
    print(f"{'subscriptions':>13} {'matches':>7} {'index µs/event':>15} {'loop µs/event':>14}")
    for r in result["rows"]:
        print(f"{r['subscriptions']:>13,} {r['matches']:>7} {r['index_us']:>15.2f} {r['loop_us']:>14.1f}")
    print(f"index cost, largest / smallest: {result['index_max_over_min']:.2f} (target <= 2)")
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "index.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["index_max_over_min"] <= 2 * result["target_max_over_min"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
