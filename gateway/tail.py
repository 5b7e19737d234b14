"""``flowwire tail``: subscribe and print frames as they arrive, one JSON per line."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

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


async def _tail(args: argparse.Namespace, filters: dict[str, list[str]], token: str) -> int:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with connect(args.url, additional_headers=headers, max_size=None) as ws:
            for channel in args.channels:
                data: dict[str, Any] = {"channel": channel}
                if filters:
                    data["filters"] = filters
                if args.since:
                    data["since"] = args.since
                await ws.send(json.dumps({"type": "subscribe", "data": data}))
            seen = 0
            async for frame in ws:
                print(frame if isinstance(frame, str) else frame.decode(), flush=True)
                if "id" in json.loads(frame):
                    seen += 1
                    if args.count and seen >= args.count:
                        return 0
    except InvalidStatus as exc:
        print(
            f"flowwire: refused: HTTP {exc.response.status_code} {exc.response.body!r}",
            file=sys.stderr,
        )
        return 1
    except ConnectionClosed as exc:
        print(f"flowwire: connection closed: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"flowwire: cannot connect to {args.url}: {exc}", file=sys.stderr)
        return 1
    return 0


def main(args: argparse.Namespace) -> int:
    try:
        filters = parse_filters(args.filter)
    except ValueError as exc:
        print(f"flowwire: {exc}", file=sys.stderr)
        return 2
    token = args.token or os.environ.get("FLOWWIRE_TOKEN", "")
    return asyncio.run(_tail(args, filters, token))
