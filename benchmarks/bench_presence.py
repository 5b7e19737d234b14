"""Presence (issue 15): what N connections joining (and then leaving) cost, with the
changes coalesced over ``PRESENCE_INTERVAL`` (250 ms, the default) and with a 1 ms
interval, against the cost without coalescing: one write batch (HSET, PEXPIRE, PUBLISH)
per change, that is two per connection (its connect and its subscribe), 6 commands and
2 pub/sub messages per connection joining.

Two ``flowwire serve`` instances A and B on one private redis-server. One watcher on B
watches its organization's presence; N real WebSocket clients (N / 2 users, two
connections each) connect to A and each subscribes to one of ten channels. Measured, per
interval setting:

- Redis commands the presence sync issued during the joins and the leaves (``INFO
  commandstats``: HSET, HDEL, PEXPIRE, PUBLISH, ZADD, ZRANGE, ZREM, DEL, HGETALL), per
  connection, and the pub/sub messages (PUBLISH) among them;
- ``presence.diff`` frames the watcher received;
- the time from the last client subscribed (or closed) until the watcher's member list,
  kept from its diffs, is complete (or back to itself alone): how long presence takes to
  settle on the other instance.

    python -m benchmarks.bench_presence --clients 10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any, Final

import redis
from websockets.asyncio.client import ClientConnection, connect

from benchmarks.common import SECRET, RedisProc, ServerProc, pin_self
from benchmarks.servers import KINDS, start_server

__all__ = ["join", "main"]

PRESENCE_COMMANDS: Final = ("hset", "hdel", "pexpire", "publish", "zadd", "zrange", "zrem", "del", "hgetall")
ORG: Final = "bench-org"
_CHUNK: Final = 250  # handshakes in flight at once


def _token(user: str) -> str:
    from gateway.auth import mint_token

    return mint_token(SECRET, user, org_id=ORG, ttl=7200)


def _commands(url: str) -> dict[str, int]:
    client = redis.Redis.from_url(url)
    try:
        stats: Any = client.info("commandstats")
    finally:
        client.close()
    return {name: int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in PRESENCE_COMMANDS}


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in before if after[name] != before[name]}


class Watcher:
    """The organization's members as a client keeps them: a snapshot, then diffs."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        #: user -> connections
        self.members: dict[str, int] = {}
        self.diffs = 0
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.ws.send(json.dumps({"type": "presence", "data": {"watch": True}}))
        while (doc := json.loads(await self.ws.recv()))["type"] != "presence.state":
            pass
        self.members = {m["user_id"]: m["connections"] for m in doc["data"]["members"]}
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:
            doc = json.loads(frame)
            if doc["type"] != "presence.diff":
                continue
            self.diffs += 1
            data = doc["data"]
            if data.get("resync"):
                raise RuntimeError("a resync diff: raise PRESENCE_MAX_MEMBERS for this benchmark")
            self.members.update({m["user_id"]: m["connections"] for m in data["joined"]})
            for user in data["left"]:
                self.members.pop(user, None)
            self.changed.set()

    async def until(self, count: int, connections: int, wait: float) -> float:
        """Until ``count`` members with ``connections`` connections in all."""
        async with asyncio.timeout(wait):
            while len(self.members) != count or sum(self.members.values()) != connections:
                self.changed.clear()
                await self.changed.wait()
        return time.monotonic()


async def _open(url: str, tok: str, channel: str) -> ClientConnection:
    ws = await connect(f"{url}?token={tok}", max_queue=None)
    await ws.send(json.dumps({"type": "subscribe", "data": {"channel": channel}}))
    while json.loads(await ws.recv())["type"] != "subscribed":
        pass
    return ws


async def _storm(a: ServerProc, b: ServerProc, redis_url: str, clients: int, wait: float) -> dict[str, Any]:
    users = max(1, clients // 2)
    tokens = [_token(f"user-{i % users}") for i in range(clients)]
    url_a, url_b = f"ws://127.0.0.1:{a.port}/ws", f"ws://127.0.0.1:{b.port}/ws"
    watcher = Watcher(await connect(f"{url_b}?token={_token('watcher')}", max_queue=None))
    await watcher.start()
    conns: list[ClientConnection] = []
    try:
        before = _commands(redis_url)
        t0 = time.monotonic()
        for first in range(0, clients, _CHUNK):
            chunk = range(first, min(first + _CHUNK, clients))
            conns += await asyncio.gather(*(_open(url_a, tokens[i], f"workflows:wf-{i % 10}") for i in chunk))
        joined = time.monotonic()
        seen = await watcher.until(users + 1, clients + 1, wait)
        await asyncio.sleep(1.0)  # what is still being written
        joins = _delta(before, _commands(redis_url))
        diffs_join = watcher.diffs

        before = _commands(redis_url)
        await asyncio.gather(*(ws.close() for ws in conns))
        closed = time.monotonic()
        conns = []
        gone = await watcher.until(1, 1, wait)
        await asyncio.sleep(1.0)
        leaves = _delta(before, _commands(redis_url))
    finally:
        await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
        if watcher.task is not None:
            watcher.task.cancel()
        await watcher.ws.close()
    return {
        "clients": clients,
        "users": users,
        "connect_s": round(joined - t0, 2),
        "join_settle_s": round(seen - joined, 3),
        "leave_settle_s": round(gone - closed, 3),
        "join_commands": joins,
        "join_commands_per_connection": round(sum(joins.values()) / clients, 4),
        "join_publishes": joins.get("publish", 0),
        "leave_commands": leaves,
        "leave_commands_per_connection": round(sum(leaves.values()) / clients, 4),
        "leave_publishes": leaves.get("publish", 0),
        "watcher_diffs_join": diffs_join,
        "watcher_diffs_leave": watcher.diffs - diffs_join,
    }


def join(redis_proc: RedisProc, clients: int, interval: str, *, timeout: float = 300) -> dict[str, Any]:
    """N clients join on A, then leave, watched from B, at this ``PRESENCE_INTERVAL``."""
    env = {
        "CLIENT_RATE_LIMIT": "0",
        "MIRROR_ENABLED": "off",
        "PRESENCE_INTERVAL": interval,
        "PRESENCE_MAX_MEMBERS": str(clients + 10),
        "MAX_CONNECTIONS": "0",
    }
    servers = [start_server(KINDS["flowwire"], redis_proc.url, env=env) for _ in range(2)]
    try:
        time.sleep(1.0)  # both instances registered and in step
        result = asyncio.run(_storm(servers[0], servers[1], redis_proc.url, clients, timeout))
        result["interval"] = interval
        return result
    finally:
        for server in servers:
            server.stop()


#: without coalescing: one batch (HSET, PEXPIRE, PUBLISH) per change, two changes per
#: connection (its connect and its subscribe)
PER_CHANGE_COMMANDS: Final = 3
CHANGES_PER_CONNECTION: Final = 2


def measure(redis_proc: RedisProc, clients: int) -> dict[str, Any]:
    """The default interval and 1 ms, in one run, against one batch per change."""
    coalesced = join(redis_proc, clients, "250ms")
    short = join(redis_proc, clients, "1ms")
    per_change = PER_CHANGE_COMMANDS * CHANGES_PER_CONNECTION
    return {
        "coalesced": coalesced,
        "interval_1ms": short,
        "without_coalescing_commands_per_connection": per_change,
        "without_coalescing_publishes": CHANGES_PER_CONNECTION * clients,
        # commands per connection joining, coalesced / one batch per change
        "commands_over_uncoalesced": round(coalesced["join_commands_per_connection"] / per_change, 5),
        "interval_1ms_commands_over_uncoalesced": round(
            short["join_commands_per_connection"] / per_change, 5
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_presence", description=__doc__)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--interval", help="one run at this PRESENCE_INTERVAL only (e.g. 250ms)")
    args = parser.parse_args(argv)
    from benchmarks.bench_storm import raise_nofile

    raise_nofile(2 * args.clients + 1024)
    pin_self()
    with RedisProc() as redis_proc:
        if args.interval:
            result = join(redis_proc, args.clients, args.interval)
        else:
            result = measure(redis_proc, args.clients)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
