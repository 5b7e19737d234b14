"""``flowwire tail``: subscribe and print frames as they arrive, one JSON per line.

Built on the Python client (:mod:`client`): it reconnects and resumes across a drain
(1012), a killed pod (with several ``--url``) or a dropped connection, and never prints
an event twice. stdout carries only JSON lines (``subscribed`` replies and events);
stderr carries one-line notices (reconnects, resume gaps) and the reason of an exit.

Exit status: 0 after ``--count`` events; 1 when the gateway refuses the credentials,
refuses a subscription (an ``error`` reply: tail holds nothing else, so running on would
print nothing, forever), or cannot be reached ``--retries`` times in a row; 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from typing import Any

import msgspec

from client import AuthRefused, Client, ClientError, Event, ResumeGap, ServerError

__all__ = ["main", "parse_filters"]


def parse_filters(items: list[str]) -> dict[str, list[str]]:
    """``["statuses=running,failed", "workflow_ids=wf-1"]`` -> filters."""
    filters: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or key not in ("workflow_ids", "execution_ids", "statuses"):
            raise ValueError(f"bad --filter {item!r}: use workflow_ids=, execution_ids= or statuses=")
        filters.setdefault(key, []).extend(v for v in values.split(",") if v)
    return filters


def _line(item: Any) -> bytes:
    if isinstance(item, Event):  # the wire's field order (a cursor: partitioned streams)
        cursor = {} if item.cursor is None else {"cursor": item.cursor}
        item = {"type": item.type, "timestamp": item.timestamp, "id": item.id, **cursor, "data": item.data}
    return msgspec.json.encode(item) + b"\n"


def _refusal(exc: AuthRefused) -> str:
    try:
        reason = json.loads(exc.detail)["error"]
    except (ValueError, KeyError, TypeError):
        reason = exc.detail
    what = f"HTTP {exc.status}" if exc.status < 1000 else f"closed {exc.status}"
    return f"authentication refused ({what}): {reason}"


async def _tail(args: argparse.Namespace, client: Client, filters: dict[str, list[str]]) -> int:
    out = sys.stdout.buffer
    seen = 0
    async with client:
        for channel in args.channels:
            await client.subscribe(channel, filters or None)
        try:
            async for item in client:
                if isinstance(item, ResumeGap):
                    print(f"flowwire: {item.channel}: the stream no longer holds {item.since or '0-0'}: "
                          f"events may be missing; live from {item.position}", file=sys.stderr)  # fmt: skip
                    continue
                out.write(_line(item))
                out.flush()
                if isinstance(item, Event):
                    seen += 1
                    if args.count and seen >= args.count:
                        return 0
        except AuthRefused as exc:
            print(f"flowwire: {_refusal(exc)}", file=sys.stderr)
            return 1
        except ServerError as exc:
            print(f"flowwire: error reply {exc}", file=sys.stderr)
            return 1
        except ClientError as exc:
            print(f"flowwire: {exc}", file=sys.stderr)
            return 1
    return 0


def main(args: argparse.Namespace) -> int:
    try:
        filters = parse_filters(args.filter)
    except ValueError as exc:
        print(f"flowwire: {exc}", file=sys.stderr)
        return 2
    token = args.token or os.environ.get("FLOWWIRE_TOKEN") or None
    api_key = args.api_key or os.environ.get("FLOWWIRE_API_KEY") or None
    if token and api_key:
        print("flowwire: give a token or an API key, not both", file=sys.stderr)
        return 2
    if args.retries < 1:
        print(f"flowwire: --retries={args.retries} is invalid: expected an integer >= 1", file=sys.stderr)
        return 2
    # The client's reconnect notices, one line each, on stderr.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("flowwire: %(message)s"))
    log = logging.getLogger("flowwire.client")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        client = Client(
            args.url or ["ws://127.0.0.1:8080/ws"],
            token=token,
            api_key=api_key,
            since=args.since,
            control=True,
            max_attempts=args.retries,
        )
    except ValueError as exc:  # a --since that is not a stream id
        print(f"flowwire: --since: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_tail(args, client, filters))
