"""The Python client against real gateways (``flowwire serve`` processes on a private
redis-server): kills, drains, token expiry, gaps, refusals; every event once, in order."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys

import msgspec
import pytest
import redis
from websockets.exceptions import ConnectionClosedError
from websockets.frames import Close

from client import (
    AuthRefused,
    BlockingClient,
    Client,
    ConnectFailed,
    Event,
    Item,
    ProtocolChoice,
    ProtocolFailure,
    ResumeGap,
    SubscriptionRefused,
)
from gateway.auth import API_KEYS_KEY, digest, new_api_key
from gateway.core.backoff import Backoff
from schemas.control import Welcome
from tests.gateway.test_pods import WANTS, pods, publish
from tests.support.checker import Appended, Want, check, expected_ids
from tests.support.clients import token
from tests.support.gateway import GatewayProcess
from tests.support.redis_server import RedisServer, free_port

FAST = Backoff(base=0.05, cap=0.5)


class Collector:
    """Iterates a client in a task; keeps every item."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.items: list[Item] = []
        self.error: BaseException | None = None
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for item in self.client:
                self.items.append(item)
        except Exception as exc:
            self.error = exc

    @property
    def ids(self) -> list[str]:
        return [i.id for i in self.items if isinstance(i, Event)]

    async def wait_for(self, count: int, timeout: float = 60) -> None:
        async with asyncio.timeout(timeout):
            while len(self.ids) < count and self.error is None:
                await asyncio.sleep(0.02)

    async def subscribed(self) -> None:
        async with asyncio.timeout(20):
            while self.client.cursor is None:
                assert self.error is None, self.error
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        await self.client.aclose()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def _exact(col: Collector, appended: list[Appended], wants: list[Want]) -> None:
    want = expected_ids(appended, wants)
    await col.wait_for(len(want))
    await asyncio.sleep(0.3)  # a duplicate would arrive now
    report = check(col.ids, want)
    assert report.exact, f"connects={col.client.connects} close={col.client.last_close}: {report}"


def test_importing_the_client_pulls_no_server_dependency() -> None:
    code = (
        "import sys, client\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('starlette', 'uvicorn', 'redis', 'jwt', 'publisher', 'prometheus_client')"
        " or (m.startswith('gateway') and m not in ('gateway', 'gateway.core', 'gateway.core.backoff')))\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("n_pods", "sig", "wants", "close_code"),
    [
        # SIGKILL: the socket just breaks (1006, no close frame); 1500 events, 3 pods.
        (3, signal.SIGKILL, [Want("executions"), Want("approvals")], None),
        # SIGTERM: a drain closes with 1012 naming a delay; the client resumes elsewhere.
        (2, signal.SIGTERM, [Want("executions", {"statuses": ["failed", "completed"]})], 1012),
    ],
    ids=["killed", "drained"],
)
async def test_a_pod_goes_away_mid_stream_every_event_once_in_order(
    redis_server: RedisServer,
    redis_url: str,
    n_pods: int,
    sig: int,
    wants: list[Want],
    close_code: int | None,
) -> None:
    gws = pods(redis_server, n_pods)
    try:
        client = Client([g.url for g in gws], token=token("svc"), backoff=FAST)
        for w in wants:
            await client.subscribe(w.channel, w.filters)
        col = Collector(client)
        await col.subscribed()
        load = asyncio.create_task(publish(redis_url, 1500, batch=50, pause=0.02))
        await col.wait_for(50)
        victim = next(g for g in gws if g.url == client.url)
        victim.signal(sig)
        appended = await load
        await _exact(col, appended, wants)
        assert client.connects >= 2 and client.url != victim.url
        assert client.last_close is not None and client.last_close[0] == close_code
        await col.stop()
    finally:
        for g in gws:
            g.stop()


async def test_token_callback_refreshes_after_4001(redis_server: RedisServer, redis_url: str) -> None:
    """Version 1: the token expires, 4001, a reconnect with a new token, a resume."""
    [gw] = pods(redis_server, 1)
    calls: list[str] = []

    async def fresh_token() -> str:
        calls.append("called")
        return token("svc", ttl=1.5)

    try:
        client = Client(gw.url, token=fresh_token, backoff=FAST, protocol="v1")
        await client.subscribe("executions")
        col = Collector(client)
        await col.subscribed()
        appended = await publish(redis_url, 60, batch=10, pause=0.05)
        async with asyncio.timeout(30):  # the token expires: 4001, a new token, resume
            while len(calls) < 2 or client.cursor is None:
                await asyncio.sleep(0.05)
        appended += await publish(redis_url, 60, start=60, batch=10, pause=0.05)
        await _exact(col, appended, [Want("executions")])
        assert client.connects >= 2 and col.error is None
        await col.stop()
    finally:
        gw.stop()


@pytest.mark.parametrize("protocol", ["v2.json", "v2.msgpack"])
async def test_version_2_refreshes_the_token_in_band(
    redis_server: RedisServer, redis_url: str, protocol: ProtocolChoice
) -> None:
    """Version 2: each ``token_expiring`` calls the callback and sends a ``refresh``; the
    connection outlives three tokens, never reconnecting, every event once, in order."""
    [gw] = pods(redis_server, 1, TOKEN_REFRESH_NOTICE="2s", JWT_LEEWAY="0s")
    calls: list[str] = []

    def fresh_token() -> str:  # a sync callback: both kinds are called
        calls.append("called")
        return token("svc", ttl=3)

    try:
        client = Client(gw.url, token=fresh_token, backoff=FAST, protocol=protocol)
        await client.subscribe("executions")
        col = Collector(client)
        await col.subscribed()
        assert client.subprotocol == f"flowwire.{protocol}"
        appended: list[Appended] = []
        async with asyncio.timeout(30):  # past the first two tokens' expiry
            while client.refreshes < 2:
                appended += await publish(redis_url, 10, start=len(appended), batch=10)
                await asyncio.sleep(0.3)
        await _exact(col, appended, [Want("executions")])
        assert client.connects == 1 and client.refresh_failures == 0 and col.error is None
        assert len(calls) >= 3 and client.expires_at is not None
        await col.stop()
    finally:
        gw.stop()


async def test_a_refused_refresh_is_counted_and_the_4001_reconnects(
    redis_server: RedisServer, redis_url: str
) -> None:
    """A callback that returns another user's token: ``TOKEN_MISMATCH``, logged and
    counted, nothing raised; the connection closes 4001 at expiry and reconnects."""
    [gw] = pods(redis_server, 1, TOKEN_REFRESH_NOTICE="1s", JWT_LEEWAY="0s")
    calls: list[str] = []

    def flaky_token() -> str:
        calls.append("called")
        return token("svc" if len(calls) % 2 else "someone-else", ttl=2)

    try:
        client = Client(gw.url, token=flaky_token, backoff=FAST)
        await client.subscribe("executions")
        col = Collector(client)
        await col.subscribed()
        async with asyncio.timeout(30):
            while client.connects < 2:
                await asyncio.sleep(0.05)
        assert client.refresh_failures >= 1 and col.error is None
        assert client.last_close is not None and client.last_close[0] == 4001
        await col.stop()
    finally:
        gw.stop()


async def test_4001_without_a_callback_raises_auth_refused(redis_server: RedisServer, redis_url: str) -> None:
    [gw] = pods(redis_server, 1)
    try:
        client = Client(gw.url, token=token("svc", ttl=1.0), backoff=FAST)
        await client.subscribe("executions")
        with pytest.raises(AuthRefused) as info:
            async with asyncio.timeout(30):
                async for _ in client:
                    pass
        assert info.value.status == 4001
    finally:
        gw.stop()


async def test_a_bad_token_is_refused_once_and_for_all(redis_server: RedisServer, redis_url: str) -> None:
    [gw] = pods(redis_server, 1)
    calls: list[int] = []

    def bad() -> str:
        calls.append(1)
        return "not-a-jwt"

    try:
        with pytest.raises(AuthRefused) as info:
            await Client(gw.url, token="not-a-jwt").__anext__()
        assert info.value.status == 401
        with pytest.raises(AuthRefused):
            await Client(gw.url, token=bad, backoff=FAST).__anext__()
        assert len(calls) == 2  # the callback had its second chance
    finally:
        gw.stop()


async def test_api_key_and_refused_subscription(redis_server: RedisServer, redis_url: str) -> None:
    [gw] = pods(redis_server, 1)
    key = new_api_key()
    r = redis.Redis.from_url(redis_url)
    r.hset(API_KEYS_KEY, digest(key), json.dumps({"user": "svc-key", "org": None}))
    r.close()
    try:
        client = Client(gw.url, api_key=key, control=True)
        await client.subscribe("users:someone-else")
        await client.subscribe("users:svc-key")
        with pytest.raises(SubscriptionRefused) as info:
            async with asyncio.timeout(10):
                async for _ in client:
                    pass
        assert info.value.code == "FORBIDDEN" and info.value.channel == "users:someone-else"
        assert list(client.channels) == ["users:svc-key"]
        await client.aclose()
    finally:
        gw.stop()


async def test_trimmed_since_yields_a_resume_gap(redis_server: RedisServer, redis_url: str) -> None:
    [gw] = pods(redis_server, 1)
    try:
        appended = await publish(redis_url, 20)
        r = redis.Redis.from_url(redis_url)
        r.xtrim("ws:events", maxlen=5, approximate=False)
        r.close()
        client = Client(gw.url, token=token("svc"), since=appended[2].id, backoff=FAST)
        await client.subscribe("executions")
        first = await client.__anext__()
        assert first == ResumeGap("executions", appended[2].id, appended[-1].id)
        more = await publish(redis_url, 10, start=20)
        want = expected_ids(more, [Want("executions")])
        got = [(await client.__anext__()) for _ in want]
        assert [e.id for e in got if isinstance(e, Event)] == want
        await client.aclose()
    finally:
        gw.stop()


async def test_rotates_past_a_dead_url_and_gives_up_when_all_are_dead(
    redis_server: RedisServer, redis_url: str
) -> None:
    [gw] = pods(redis_server, 1)
    dead = f"ws://127.0.0.1:{free_port()}/ws"
    try:
        client = Client([dead, gw.url], token=token("svc"), backoff=FAST, control=True)
        await client.subscribe("executions")
        reply = await client.__anext__()
        assert client.url == gw.url and client.connects == 1
        assert type(reply).__name__ == "Subscribed"
        await client.aclose()
        with pytest.raises(ConnectFailed, match="after 3 attempts"):
            await Client([dead], token=token("svc"), backoff=FAST, max_attempts=3).__anext__()
    finally:
        gw.stop()


def test_blocking_client(redis_server: RedisServer, redis_url: str) -> None:
    gw = GatewayProcess({"REDIS_URL": redis_url})
    gw.start()
    try:
        with BlockingClient(gw.url, token=token("svc"), timeout=20) as client:
            client.subscribe("executions", {"statuses": ["failed"]})
            client.client.backoff = FAST
            client.timeout = 1.0  # nothing published yet: next() times out, the client stays usable
            with pytest.raises(TimeoutError):
                next(client)
            client.timeout = 20
            appended = asyncio.run(publish(redis_url, 30))
            want = expected_ids(appended, [Want("executions", {"statuses": ["failed"]})])
            got = [next(client) for _ in want]
            assert [e.id for e in got if isinstance(e, Event)] == want
            assert all(isinstance(e, Event) and e.data.status == "failed" for e in got)
    finally:
        gw.stop()


def test_dedup_and_stream_restart_are_pure_bookkeeping() -> None:
    client = Client("ws://unused/ws")

    def feed(frame: str) -> Item | None:
        return client._handle(frame)

    def ev(i: str) -> str:
        data = {"execution_id": "e", "workflow_id": "w", "status": "running"}
        return json.dumps(
            {"type": "execution.started", "timestamp": "2026-01-01T00:00:00Z", "id": i, "data": data}
        )

    def sub(position: str, recovered: str) -> str:
        return (
            '{"type":"subscribed","timestamp":"2026-01-01T00:00:00Z",'
            f'"data":{{"channel":"executions","position":"{position}"{recovered}}}}}'
        )

    assert feed(sub("10-0", "")) is None and client.cursor == "10-0"
    assert isinstance(feed(ev("11-0")), Event)
    assert feed(ev("11-0")) is None and feed(ev("9-5")) is None  # twice / older: dropped
    assert client.duplicates_dropped == 2 and client.cursor == "11-0"
    # Redis came back empty: the new position is below the cursor, and becomes it.
    assert feed(sub("3-0", ',"recovered":false')) == ResumeGap("executions", "11-0", "3-0")
    assert client.cursor == "3-0" and isinstance(feed(ev("4-0")), Event)
    # An event type this client does not know: skipped, but the cursor moves past it.
    assert feed(ev("5-0").replace("execution.started", "execution.teleported")) is None
    assert client.undecodable == 1 and client.cursor == "5-0"


def test_version_2_cursor_and_formats_are_pure_bookkeeping() -> None:
    """An approval overtakes a backlog: frames carry a ``cursor`` (one partition too),
    which is the resume point; the first frame without one after it closes the window
    (its id is the resume point again, and it is not dropped as older than the
    approval). msgpack frames decode to the same items."""
    client = Client("ws://unused/ws", control=True)
    client.subprotocol = "flowwire.v2.json"

    def ev(i: str, kind: str = "step.started", cursor: str | None = None) -> dict[str, object]:
        data = {"execution_id": "e", "step_id": "s", "step_type": "task", "status": "running"}
        if kind.startswith("approval."):
            data = {"approval_id": "a", "execution_id": "e", "workflow_id": "w", "status": "pending"}
        doc: dict[str, object] = {"type": kind, "timestamp": "2026-01-01T00:00:00Z", "id": i, "data": data}
        return doc if cursor is None else {**doc, "cursor": cursor}

    def feed(doc: dict[str, object]) -> Item | None:
        return client._handle(json.dumps(doc))

    assert isinstance(feed(ev("5-0")), Event) and client.cursor == "5-0"
    overtaking = feed(ev("9-0", "approval.required", "v1.5-0~0.9-0"))
    assert isinstance(overtaking, Event) and client.cursor == "v1.5-0~0.9-0"
    assert isinstance(feed(ev("6-0", cursor="v1.6-0~0.9-0")), Event) and client.cursor == "v1.6-0~0.9-0"
    after = feed(ev("10-0"))  # the mark passed the approval: plain frames again
    assert isinstance(after, Event) and client.cursor == "10-0" and client.duplicates_dropped == 0
    assert feed(ev("10-0")) is None and client.duplicates_dropped == 1  # ids compared again

    client.subprotocol = "flowwire.v2.msgpack"
    item = client._handle(msgspec.msgpack.encode(ev("11-0")))
    assert isinstance(item, Event) and item.id == "11-0" and client.cursor == "11-0"
    welcome = {"type": "welcome", "timestamp": "t", "data": {"protocol": "flowwire.v2.msgpack",
               "granted": [], "features": ["token_refresh", "presence"]}}  # fmt: skip
    assert isinstance(client._handle(msgspec.msgpack.encode(welcome)), Welcome)
    assert client._handle(b"\xc1") is None and client.undecodable == 1  # not msgpack: skipped


def test_protocol_is_checked() -> None:
    with pytest.raises(ValueError, match="protocol='v3'"):
        Client("ws://unused/ws", protocol="v3")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rcvd", "sent", "token_source", "outcome"),
    [
        ((1012, "restart; reconnect after 0.3s"), None, "t", 0.3),  # the drain's delay
        ((1012, "restart; reconnect after 99s"), None, "t", 0.5),  # capped by the backoff
        ((4008, "slow consumer"), None, "t", "backoff"),
        ((1011, "keepalive ping timeout"), None, "t", "backoff"),
        (None, None, "t", "backoff"),  # 1006: no close frame
        ((4001, "token expired"), None, "t", AuthRefused),  # nothing to refresh it with
        ((4001, "token expired"), None, "callable", "backoff"),
        ((1008, "policy"), None, "t", AuthRefused),
        ((1002, "bad frame"), None, "t", ProtocolFailure),
        (None, (1009, "message too big"), "t", ProtocolFailure),  # ours: would loop
    ],
)
def test_what_each_close_means(
    rcvd: tuple[int, str] | None, sent: tuple[int, str] | None, token_source: str, outcome: object
) -> None:
    client = Client("ws://unused/ws", token=(lambda: "t") if token_source == "callable" else "t",
                    backoff=FAST, rand=lambda: 0.5)  # fmt: skip
    exc = ConnectionClosedError(Close(*rcvd) if rcvd else None, Close(*sent) if sent else None)
    if isinstance(outcome, type):
        with pytest.raises(outcome):
            client._disconnected(None, exc)  # type: ignore[arg-type]
        assert client._closed
    else:
        client._disconnected(None, exc)  # type: ignore[arg-type]
        assert client._delay == (FAST.delay(0, 0.5) if outcome == "backoff" else outcome)
        assert not client._closed


async def test_twenty_clients_three_pods_one_killed(redis_server: RedisServer, redis_url: str) -> None:
    gws = pods(redis_server, 3)
    urls = [g.url for g in gws]
    try:
        cols = []
        for i in range(20):
            client = Client(urls[i % 3 :] + urls[: i % 3], token=token(f"user{i}"), backoff=FAST)
            for w in WANTS[i % len(WANTS)]:
                await client.subscribe(w.channel, w.filters)
            cols.append(Collector(client))
        for col in cols:
            await col.subscribed()
        load = asyncio.create_task(publish(redis_url, 2000, batch=50, pause=0.02))
        await cols[0].wait_for(50)
        gws[0].signal(signal.SIGKILL)
        appended = await load
        for i, col in enumerate(cols):
            await _exact(col, appended, WANTS[i % len(WANTS)])
        assert all(c.client.connects >= 2 for c in cols[::3])  # those that were on the killed pod
        for col in cols:
            await col.stop()
    finally:
        for g in gws:
            g.stop()
