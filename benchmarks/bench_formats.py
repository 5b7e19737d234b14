"""JSON against msgpack (protocol version 2, ``flowwire.v2.msgpack``), on the same events
in the same run (issue 15).

The events are realistic: every event of 300 planned executions of the demo's workflows
(``gateway.demo.executor.scenario``: the 16 event types, with their ids, statuses,
timestamps, error messages), plus step outputs and execution contexts of a few hundred
bytes, as an executor's would be.

- **bytes**: on the wire per event, the WebSocket frame included (server frames are
  unmasked: a 2-4 byte header), JSON text frame against msgpack binary frame.
- **server CPU per delivery**: the gateway's hot path in one process, the sans-I/O
  delivery machine of ``gateway.core.delivery``: each event's frame built once
  (``Frame.of``; for msgpack also ``Frame.packed_wire``: the JSON decoded once and
  re-encoded once per event), offered to every one of ``clients`` connections, and each
  connection's share taken from its outbox and joined into one write, as
  ``Connection.flush`` does (the ``write(2)`` itself costs the same per write in both
  formats and is left out). CPU time (``process_time``), JSON and msgpack alternated over
  ``rounds`` rounds, medians; the ratio msgpack / JSON is the figure.
- **Python client decode**: ``msgspec.json`` against ``msgspec.msgpack`` decoding each
  message (a service's client, ``client/``).
- **TypeScript client decode**: the frames are written to a temporary file for
  ``web/scripts/bench-decode.mjs`` (node): ``JSON.parse`` of the text frames against
  ``@msgpack/msgpack``'s ``decode`` of the binary ones, as the TypeScript client would.

    python -m benchmarks.bench_formats [--short]   # a table; results/formats.json
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from gateway.core.delivery import Delivery, Frame
from gateway.demo.executor import WORKFLOWS, scenario
from schemas.envelope import server_decoder_v2, server_msgpack_decoder
from schemas.events import make_event
from schemas.stream import StreamEvent, decode_entry, encode_entry

__all__ = ["main", "measure"]

RESULTS: Final = Path(__file__).parent / "results"
WEB: Final = Path(__file__).parent.parent / "web"


def events(executions: int = 300, seed: int = 15) -> list[StreamEvent]:
    """The demo's planned executions as stream events, with outputs and contexts."""
    rng = random.Random(seed)
    out: list[StreamEvent] = []
    ms = 1_764_152_400_000
    for n in range(executions):
        wf = WORKFLOWS[n % len(WORKFLOWS)]
        for _, event_type, data in scenario(rng, wf, f"exec_{n:08x}", ms):
            data = dict(data)
            if event_type == "step.completed":
                data["output"] = {
                    "status_code": 200,
                    "items": [{"sku": f"SKU-{i}", "qty": i} for i in range(3)],
                }
            if event_type in ("execution.started", "execution.completed"):
                data["context"] = {"order_id": f"ord_{n}", "amount": 129.95, "currency": "EUR", "retries": 0}
            fields = encode_entry(make_event(event_type, data))
            ms += 1
            out.append(decode_entry(f"{ms}-0".encode(), {k.encode(): v for k, v in fields.items()}))
    return out


def _deliver(evs: list[StreamEvent], clients: int, msgpack: bool) -> float:
    """CPU seconds to deliver every event to every client, one batch of 10 per write."""
    conns = [Delivery(1 << 20, 1 << 40, direct=True, msgpack=msgpack) for _ in range(clients)]
    t0 = time.process_time()
    for start in range(0, len(evs), 10):
        for event in evs[start : start + 10]:
            frame = Frame.of(event)
            for conn in conns:
                conn.offer_live(event, frame)
        for conn in conns:
            b"".join(conn.outbox.take())
    return time.process_time() - t0


def _encode_only(evs: list[StreamEvent], msgpack: bool) -> float:
    t0 = time.process_time()
    for event in evs:
        frame = Frame.of(event)
        if msgpack:
            frame.packed_wire()
    return time.process_time() - t0


def measure(*, clients: int = 1000, event_count: int = 500, rounds: int = 5) -> dict[str, Any]:
    evs = events()
    json_bytes = [len(Frame.of(e).wire) for e in evs]
    pack_bytes = [len(Frame.of(e).packed_wire()) for e in evs]
    sample = evs[:event_count]
    times: dict[bool, list[float]] = {False: [], True: []}
    encode: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for msgpack in (False, True):
            times[msgpack].append(_deliver(sample, clients, msgpack))
            encode[msgpack].append(_encode_only(evs, msgpack))
    per_delivery = {m: statistics.median(t) / (len(sample) * clients) * 1e9 for m, t in times.items()}
    per_event = {m: statistics.median(t) / len(evs) * 1e6 for m, t in encode.items()}
    result = {
        "events": len(evs),
        "bytes_per_event": {
            "json": round(statistics.mean(json_bytes), 1),
            "msgpack": round(statistics.mean(pack_bytes), 1),
            "msgpack_over_json": round(sum(pack_bytes) / sum(json_bytes), 3),
        },
        "server_cpu": {
            "clients": clients,
            "events": len(sample),
            "ns_per_delivery_json": round(per_delivery[False], 1),
            "ns_per_delivery_msgpack": round(per_delivery[True], 1),
            "msgpack_over_json": round(per_delivery[True] / per_delivery[False], 3),
            "us_per_event_encode_json": round(per_event[False], 2),
            "us_per_event_encode_msgpack": round(per_event[True], 2),
        },
    }
    frames = {
        "json": [Frame.of(e).payload.decode() for e in evs],
        "msgpack": [base64.b64encode(Frame.of(e).packed()).decode() for e in evs],
    }
    result["python_decode"] = python_decode([Frame.of(e) for e in evs], rounds)
    with tempfile.TemporaryDirectory(prefix="flowwire-formats-") as tmp:
        frames_path = Path(tmp) / "frames.json"
        frames_path.write_text(json.dumps(frames))
        result["client_decode"] = client_decode(frames_path)
    return result


def python_decode(frames: list[Frame], rounds: int) -> dict[str, Any]:
    """Decoding each event into the Python client's typed messages (``client.Client``
    decodes with these): JSON text frames against msgpack binary frames."""
    texts, packs = [f.payload for f in frames], [f.packed() for f in frames]
    json_decode, pack_decode = server_decoder_v2.decode, server_msgpack_decoder.decode
    times: dict[str, list[float]] = {"json": [], "msgpack": []}
    for _ in range(rounds):
        for name, decode, docs in (("json", json_decode, texts), ("msgpack", pack_decode, packs)):
            t0 = time.process_time()
            for doc in docs:
                decode(doc)
            times[name].append((time.process_time() - t0) / len(docs) * 1e9)
    j, m = statistics.median(times["json"]), statistics.median(times["msgpack"])
    return {
        "ns_per_message_json": round(j),
        "ns_per_message_msgpack": round(m),
        "msgpack_over_json": round(m / j, 3),
    }


def client_decode(frames_path: Path) -> dict[str, Any]:
    """The node script's figures (JSON.parse vs @msgpack/msgpack decode), or why not."""
    script = WEB / "scripts" / "bench-decode.mjs"
    try:
        done = subprocess.run(
            ["node", str(script), str(frames_path)], cwd=WEB, capture_output=True, text=True, timeout=300
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": repr(exc)}
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-500:]}
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--short", action="store_true", help="fewer clients and rounds")
    args = parser.parse_args(argv)
    result = measure(clients=200 if args.short else 1000, rounds=3 if args.short else 7)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "formats.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
