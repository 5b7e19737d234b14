"""Presence (docs/protocol.md, "Presence") with real processes: two ``flowwire serve``
instances on one redis-server, users of two organizations, real WebSocket clients. The
query is right across instances, watchers get join/leave diffs, organizations see only
their own, a SIGKILLed instance's users leave within the documented bound, Redis
restarting empty is recovered from, and bad presence messages get an ``error``."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from websockets.asyncio.client import ClientConnection

from tests.gateway.test_pods import _stop, pods, publish, redis_srv
from tests.support.clients import assert_nothing_more, open_ws, recv_json, subscribe, token
from tests.support.gateway import GatewayProcess
from tests.support.redis_server import RedisServer

INTERVAL = 0.1
HEARTBEAT = 0.5
#: docs/operations.md, "Presence": a dead instance's users leave within this
BOUND = 4 * HEARTBEAT + INTERVAL
#: scheduling on a loaded CI machine (2 cores shared by the whole suite)
SLACK = 2.0
__all__ = ["redis_srv"]

PRESENCE_ENV = {"PRESENCE_INTERVAL": f"{int(INTERVAL * 1000)}ms", "PRESENCE_HEARTBEAT": f"{HEARTBEAT}s"}


@pytest.fixture
def pair(redis_srv: RedisServer) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    a, b = pods(redis_srv, 2, **PRESENCE_ENV)
    yield a, b
    _stop([a, b])


async def ask(ws: ClientConnection, channel: str | None = None, **data: Any) -> dict[str, Any]:
    """Send ``presence`` and return its ``presence.state`` (diffs on the way are skipped)."""
    body = {"channel": channel, **data} if channel else data
    await ws.send(json.dumps({"type": "presence", "data": body}))
    while (doc := await recv_json(ws))["type"] != "presence.state":
        assert doc["type"] == "presence.diff", doc
    data = doc["data"]
    assert "id" not in doc  # ephemeral: never a resume cursor
    return dict(data)


def users(state: dict[str, Any]) -> dict[str, int]:
    return {m["user_id"]: m["connections"] for m in state["members"]}


async def until(ws: ClientConnection, channel: str | None, want: dict[str, int], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (got := users(await ask(ws, channel))) != want:
        assert time.monotonic() < deadline, f"presence of {channel or 'the organization'}: {got} != {want}"
        await asyncio.sleep(0.05)


class Watcher:
    """A connection's member list, as the web client keeps it: a snapshot, then diffs."""

    def __init__(self, ws: ClientConnection, channel: str | None) -> None:
        self.ws, self.channel = ws, channel
        self.members: dict[str, int] = {}
        self.diffs: list[dict[str, Any]] = []

    async def start(self) -> None:
        state = await ask(self.ws, self.channel, watch=True)
        assert state["watching"] is True
        self.members = users(state)

    async def until(self, want: dict[str, int], timeout: float) -> float:
        """Apply diffs until the members are ``want``; returns when (monotonic)."""
        async with asyncio.timeout(timeout):
            while self.members != want:
                doc = await recv_json(self.ws, timeout)
                assert doc["type"] == "presence.diff", doc
                assert "id" not in doc and doc["data"].get("channel") == self.channel, doc
                self.diffs.append(doc["data"])
                self.members.update({m["user_id"]: m["connections"] for m in doc["data"]["joined"]})
                for user in doc["data"]["left"]:
                    self.members.pop(user, None)
        return time.monotonic()


async def test_presence_across_instances_and_organizations(
    pair: tuple[GatewayProcess, GatewayProcess],
) -> None:
    a, b = pair
    alice = await open_ws(a.url, token("alice", "acme"))
    bob = await open_ws(b.url, token("bob", "acme"))
    bob2 = await open_ws(a.url, token("bob", "acme"))
    carol = await open_ws(b.url, token("carol", "globex"))
    # An original client (never sends presence) in the same organization: nothing new.
    original = await open_ws(b.url, token("olga", "acme"))
    await subscribe(original, "executions")
    try:
        await until(alice, None, {"alice": 1, "bob": 2, "olga": 1})
        await until(carol, None, {"carol": 1})  # the other organization's only
        await until(bob, None, {"alice": 1, "bob": 2, "olga": 1})  # eventually, on the other instance too
        state = await ask(bob, None)
        assert state["count"] == 3 and state["watching"] is False and "channel" not in state

        watch_a = Watcher(alice, "executions:e1")
        await watch_a.start()
        watch_c = Watcher(carol, "executions:e1")
        await watch_c.start()
        assert watch_a.members == {} and watch_c.members == {}
        await subscribe(bob, "executions:e1")
        await subscribe(bob2, "executions:e1", filters={"statuses": ["failed"]})
        await watch_a.until({"bob": 2}, 10)
        await subscribe(bob2, "executions:e1")  # again (filters replaced): still one
        await until(carol, "executions:e1", {})  # acme's channel is not globex's
        await subscribe(carol, "executions:e1")
        await watch_c.until({"carol": 1}, 10)
        await bob.send(json.dumps({"type": "unsubscribe", "data": {"channel": "executions:e1"}}))
        await watch_a.until({"bob": 1}, 10)
        await bob2.close()
        await watch_a.until({}, 10)
        assert all("carol" not in json.dumps(d) for d in watch_a.diffs)
        assert all("bob" not in json.dumps(d) for d in watch_c.diffs)

        # the organization's joins and leaves, to a watcher on the other instance
        watch_org = Watcher(carol, None)
        await watch_org.start()
        dave = await open_ws(a.url, token("dave", "globex"))
        await watch_org.until({"carol": 1, "dave": 1}, 10)
        await dave.close()
        await watch_org.until({"carol": 1}, 10)
        stop = await ask(carol, watch=False)
        assert stop["watching"] is False
        dave = await open_ws(a.url, token("dave", "globex"))
        await until(carol, None, {"carol": 1, "dave": 1})
        await dave.close()

        assert await assert_nothing_more(original) == []
    finally:
        for ws in (alice, bob, bob2, carol, original):
            await ws.close()


async def test_a_killed_instance_users_leave_within_the_bound(redis_srv: RedisServer) -> None:
    a, b = pods(redis_srv, 2, **PRESENCE_ENV)
    try:
        alice = await open_ws(a.url, token("alice", "acme"))
        bob = await open_ws(b.url, token("bob", "acme"))
        await subscribe(bob, "workflows:wf-1")
        watch = Watcher(alice, "workflows:wf-1")
        await until(alice, "workflows:wf-1", {"bob": 1})
        await watch.start()
        org = await open_ws(a.url, token("alice", "acme"))
        watch_org = Watcher(org, None)
        await watch_org.start()
        assert watch_org.members == {"alice": 2, "bob": 1}
        b.signal(signal.SIGKILL)
        killed = time.monotonic()
        left = await watch.until({}, BOUND + SLACK) - killed
        await watch_org.until({"alice": 2}, BOUND + SLACK)
        # it left because the instance expired (3 heartbeats after its last, at least 2 after the
        # kill), not because it closed (that takes an interval)
        assert left > HEARTBEAT, f"left after {left:.2f}s"
        assert users(await ask(alice, "workflows:wf-1")) == {}
        for ws in (alice, org):
            await ws.close()
    finally:
        _stop([a, b])


async def test_a_stopped_instance_users_leave_at_once(redis_srv: RedisServer) -> None:
    """SIGTERM: the drain closes the connections and the instance withdraws its presence,
    long before the expiry (3 heartbeats of 10 s here) would."""
    a, b = pods(redis_srv, 2, PRESENCE_INTERVAL="100ms", PRESENCE_HEARTBEAT="10s")
    try:
        alice = await open_ws(a.url, token("alice", "acme"))
        bob = await open_ws(b.url, token("bob", "acme"))
        await until(alice, None, {"alice": 1, "bob": 1})
        watch = Watcher(alice, None)
        await watch.start()
        stopped = time.monotonic()
        await asyncio.to_thread(b.stop)  # DRAIN_WINDOW=1s; this loop answers the close handshakes
        await watch.until({"alice": 1}, 10)
        assert time.monotonic() - stopped < 10
        await alice.close()
        await bob.close()
    finally:
        _stop([a, b])


async def test_presence_is_republished_after_redis_restarts_empty(
    redis_srv: RedisServer, pair: tuple[GatewayProcess, GatewayProcess]
) -> None:
    a, b = pair
    alice = await open_ws(a.url, token("alice", "acme"))
    bob = await open_ws(b.url, token("bob", "acme"))
    try:
        await until(alice, None, {"alice": 1, "bob": 1})
        redis_srv.stop()
        redis_srv.start()  # empty: every hash and the registry are gone
        await asyncio.sleep(4 * HEARTBEAT)
        await until(alice, None, {"alice": 1, "bob": 1}, timeout=20)
        carol = await open_ws(b.url, token("carol", "acme"))  # changes flow again
        await until(alice, None, {"alice": 1, "bob": 1, "carol": 1}, timeout=20)
        # an instance started now knows only what the others wrote again
        c = GatewayProcess({"REDIS_URL": redis_srv.url, **PRESENCE_ENV})
        c.start()
        try:
            dave = await open_ws(c.url, token("dave", "acme"))
            await until(dave, None, {"alice": 1, "bob": 1, "carol": 1, "dave": 1})
            await dave.close()
        finally:
            c.stop()
        await carol.close()
    finally:
        await alice.close()
        await bob.close()


BAD = [
    ({"channel": "nope"}, "INVALID_SUBSCRIPTION"),
    ({"channel": 7}, "INVALID_SUBSCRIPTION"),
    ({"watch": "yes"}, "INVALID_SUBSCRIPTION"),
    ({"channel": "executions", "extra": 1}, "INVALID_SUBSCRIPTION"),
    ({"channel": "users:bob"}, "FORBIDDEN"),
]


@pytest.fixture(scope="module")
def embedded() -> Iterator[GatewayProcess]:
    """No Redis: presence is this process's alone."""
    gw = GatewayProcess({"CLIENT_RATE_LIMIT": "0", "MAX_SUBSCRIPTIONS": "2"})
    gw.start()
    yield gw
    gw.stop()


async def test_readyz_names_presence_while_its_redis_access_fails(redis_srv: RedisServer) -> None:
    """Presence cannot reach Redis (an ACL forbids its channel) while the stream reads
    on: ``/readyz`` stays 200, names presence under ``degraded``, events still flow;
    once the ACL allows it again presence recovers and ``degraded`` is empty."""
    [gw] = pods(redis_srv, 1, MIRROR_ENABLED="off", **PRESENCE_ENV)
    admin = redis.Redis.from_url(redis_srv.url)

    def channels(rule: str) -> None:  # the default user's pub/sub channels (ACL)
        admin.execute_command("ACL", "SETUSER", "default", rule)  # type: ignore[no-untyped-call]

    def readyz() -> tuple[int, dict[str, Any]]:
        status, body = gw.get("/readyz")
        return status, json.loads(body)

    async def until_degraded(want: bool) -> dict[str, Any]:
        deadline = time.monotonic() + 10 + SLACK
        while True:
            status, doc = readyz()
            if bool(doc["degraded"]) == want:
                break
            assert time.monotonic() < deadline, doc
            await asyncio.sleep(0.05)
        assert status == 200 and doc["ready"] is True, doc
        return doc

    try:
        assert readyz() == (200, {"ready": True, "status": "ready", "degraded": []})
        ws = await open_ws(gw.url, token("u1"))
        await subscribe(ws, "executions")
        channels("resetchannels")  # presence's pub/sub is refused; the stream reads on
        body = await until_degraded(True)
        assert [d.split(":")[0] for d in body["degraded"]] == ["presence"], body
        assert "presence: Redis unavailable" in gw.output()
        await publish(redis_srv.url, 1)
        assert "id" in await recv_json(ws)  # delivery goes on
        channels("allchannels")
        await until_degraded(False)
        await ws.close()
    finally:
        channels("allchannels")
        _stop([gw])


async def test_bad_presence_messages_get_an_error_and_change_nothing(embedded: GatewayProcess) -> None:
    ws = await open_ws(embedded.url, token("alice", "acme"))
    try:
        for data, code in BAD:
            await ws.send(json.dumps({"type": "presence", "data": data}))
            reply = await recv_json(ws)
            assert reply["type"] == "error" and reply["data"]["code"] == code, (data, reply)
        assert (await ask(ws, "users:alice"))["members"] == []  # own user channel: allowed
        await ask(ws, "executions", watch=True)
        await ask(ws, "approvals", watch=True)
        await ws.send(json.dumps({"type": "presence", "data": {"channel": "workflows:w", "watch": True}}))
        reply = await recv_json(ws)
        assert reply["data"]["code"] == "TOO_MANY_SUBSCRIPTIONS", reply
        assert (await ask(ws))["members"] == [{"user_id": "alice", "connections": 1}]
        await ws.send('{"type": "presence"}')  # no data at all: the organization
        assert (await recv_json(ws))["data"]["count"] == 1
    finally:
        await ws.close()


async def test_presence_off_answers_unknown_type() -> None:
    gw = GatewayProcess({"PRESENCE": "off"})
    gw.start()
    try:
        ws = await open_ws(gw.url, token("alice", "acme"))
        await ws.send('{"type": "presence", "data": {}}')
        reply = await recv_json(ws)
        assert reply["type"] == "error" and reply["data"]["code"] == "UNKNOWN_TYPE", reply
        await ws.close()
    finally:
        gw.stop()
