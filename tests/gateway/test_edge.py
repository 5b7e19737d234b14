"""Hostile and careless clients (issue 11 §5), against a real gateway: real uvicorn,
real redis-server, real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis.asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gateway.auth import API_KEYS_KEY, digest, new_api_key
from gateway.config import Config, SettingError
from gateway.core.origin import origin_allowed
from publisher import BlockingPublisher
from schemas.events import Event, make_event
from tests.support.clients import open_ws, recv_json, recv_until, subscribe, token
from tests.support.gateway import GatewayProcess
from tests.support.inproc import serve
from tests.support.redis_server import RedisServer

ORIGIN = "http://app.example.com"


@pytest.fixture(scope="module")
def edge(redis_mod: RedisServer) -> Iterator[GatewayProcess]:
    """The default settings (CLIENT_RATE_LIMIT, MAX_SUBSCRIPTIONS, MAX_FILTER_VALUES...)
    but for a small per-user limit, a quick API-key re-check and an allow-list."""
    gw = GatewayProcess(
        {
            "REDIS_URL": redis_mod.url,
            "MAX_CONNECTIONS_PER_USER": "3",
            "API_KEY_RECHECK": "300ms",
            "ALLOWED_ORIGINS": f"{ORIGIN},https://secure.example.com:8443",
        }
    )
    gw.start()
    yield gw
    gw.stop()


def _errors_in(output: str) -> list[str]:
    return [line for line in output.splitlines() if "Traceback" in line or " ERROR " in line]


async def _closed(ws: ClientConnection, timeout: float = 10.0) -> int | None:
    """Read until the server closes; its close code."""
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    return ws.close_code


def _started(execution_id: str, workflow_id: str) -> Event:
    return make_event("execution.started", {"execution_id": execution_id, "workflow_id": workflow_id,
                                            "status": "running"})  # fmt: skip


def _flowwire(redis_url: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    done = subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        env={**env, "REDIS_URL": redis_url},
        timeout=30,
        check=True,
    )
    return done.stdout


# -- 6. deep nesting, huge ids ----------------------------------------------------------


async def test_deep_frames_and_huge_ids_get_error_replies(edge: GatewayProcess) -> None:
    async with await open_ws(edge.url) as ws:
        await subscribe(ws, "executions:exec_deep")
        deep = "[" * 1_000 + "]" * 1_000
        for frame, code in [
            ('{"type":"ping","data":' + deep + "}", "PARSE_ERROR"),
            ('{"type":"subscribe","data":{"channel":"executions","x":' + deep + "}}", "PARSE_ERROR"),
            ('{"type":"subscribe","data":{"channel":"executions","since":"18446744073709551616-0"}}',
             "INVALID_SUBSCRIPTION"),
            ('{"type":"subscribe","data":{"channel":"executions","since":"1-99999999999999999999"}}',
             "INVALID_SUBSCRIPTION"),
        ]:  # fmt: skip
            await ws.send(frame)
            reply = await recv_json(ws)
            assert reply["type"] == "error" and reply["data"]["code"] == code, reply
        await ws.send('{"type":"ping"}')
        assert (await recv_json(ws))["type"] == "pong"
        top = "18446744073709551615-18446744073709551615"  # the largest id Redis accepts
        reply = await subscribe(ws, "executions:exec_top", since=top)
        assert reply["data"]["channel"] == "executions:exec_top"
        await ws.send('{"type":"ping"}')
        assert (await recv_json(ws))["type"] == "pong"
    assert _errors_in(edge.output()) == []


# -- 5. a reconnect's burst of subscribes -----------------------------------------------


async def test_100_subscribes_at_once_with_default_settings(
    edge: GatewayProcess, publisher: BlockingPublisher
) -> None:
    # The original client re-sends every subscribe at once after each reconnect; with
    # the default CLIENT_RATE_LIMIT (20/s, bursts of 40) the 41st got RATE_LIMITED and the
    # 81st closed the connection with 4029.
    async with await open_ws(edge.url, token("burst-user")) as ws:
        for i in range(100):  # no reply awaited in between
            await ws.send(json.dumps({"type": "subscribe", "data": {"channel": f"executions:burst{i}"}}))
        replies = [await recv_json(ws) for _ in range(100)]
        assert [r["type"] for r in replies] == ["subscribed"] * 100
        assert {r["data"]["channel"] for r in replies} == {f"executions:burst{i}" for i in range(100)}
        eid = publisher.publish(_started("burst99", "w"))
        assert (await recv_until(ws, 1))[0]["id"] == eid


# -- 7. bounded filters and connections per user ----------------------------------------


async def test_filter_values_are_bounded_per_connection(
    edge: GatewayProcess, publisher: BlockingPublisher
) -> None:
    values = [f"wf-{i:04d}-" + "x" * 150 for i in range(1000)]  # the decoder allows 1,000 per list
    async with await open_ws(edge.url, token("filter-user"), max_size=None) as ws:
        flt = {"workflow_ids": values, "execution_ids": values, "statuses": values}
        await ws.send(json.dumps({"type": "subscribe", "data": {"channel": "executions", "filters": flt}}))
        reply = await recv_json(ws)
        assert reply["type"] == "error" and reply["data"]["code"] == "TOO_MANY_FILTER_VALUES", reply
        assert reply["data"]["channel"] == "executions"
        # Up to MAX_FILTER_VALUES (1,000 by default) over all subscriptions is fine...
        await subscribe(ws, "executions", filters={"workflow_ids": values[:999]})
        await subscribe(ws, "approvals", filters={"statuses": ["pending"]})
        # ... one more is refused and changes nothing.
        one_more = {"channel": "workflows:w1", "filters": {"statuses": ["x"]}}
        await ws.send(json.dumps({"type": "subscribe", "data": one_more}))
        reply = await recv_json(ws)
        assert reply["type"] == "error" and reply["data"]["code"] == "TOO_MANY_FILTER_VALUES", reply
        eid = publisher.publish(_started("e1", values[5]))
        assert (await recv_until(ws, 1))[0]["id"] == eid


async def test_connections_per_user_are_bounded(edge: GatewayProcess) -> None:
    tok = token("many-conns")
    conns = [await open_ws(edge.url, tok) for _ in range(3)]  # MAX_CONNECTIONS_PER_USER=3
    with pytest.raises(InvalidStatus) as info:
        await open_ws(edge.url, tok)
    assert info.value.response.status_code == 429
    assert json.loads(info.value.response.body or b"{}")["code"] == "TOO_MANY_CONNECTIONS"
    async with await open_ws(edge.url, token("another-user")):  # other users are not affected
        pass
    await conns.pop().close()
    async with asyncio.timeout(10):  # the server unregisters the closed one
        while True:
            try:
                conns.append(await open_ws(edge.url, tok))
                break
            except InvalidStatus as exc:
                refused = exc.response.status_code
            assert refused == 429
            await asyncio.sleep(0.05)
    for ws in conns:
        await ws.close()


# -- 1. token expiry: one rule at the door and in the timer -----------------------------


async def test_a_token_in_its_leeway_is_not_accepted_then_closed_at_once(edge: GatewayProcess) -> None:
    # exp is 1-2 s past: accepted (JWT_LEEWAY, 5 s), so the connection lives until
    # exp + 5 s; it used to be closed with 4001 as soon as it opened.
    tok = token("late-user", ttl=-1)
    ws = await open_ws(edge.url, tok)
    await ws.send('{"type":"ping"}')
    assert (await recv_json(ws))["type"] == "pong"
    assert await _closed(ws) == 4001
    # Past exp + leeway the same token is refused at the door: no accept-then-close storm.
    with pytest.raises(InvalidStatus) as info:
        await open_ws(edge.url, tok)
    assert info.value.response.status_code == 401


# -- 3. origin scheme -------------------------------------------------------------------


async def test_origin_scheme_and_port_are_compared(edge: GatewayProcess) -> None:
    async with await open_ws(edge.url, origin=ORIGIN):
        pass
    async with await open_ws(edge.url, origin="HTTP://App.Example.com:80"):  # normalized: the same origin
        pass
    async with await open_ws(edge.url, origin="https://secure.example.com:8443"):
        pass
    for origin in ("https://app.example.com", "http://app.example.com:8080", "https://secure.example.com",
                   "null", "app.example.com"):  # fmt: skip
        with pytest.raises(InvalidStatus) as info:
            await open_ws(edge.url, origin=origin)
        assert info.value.response.status_code == 403, origin


# -- 2. revoked API keys ----------------------------------------------------------------


async def test_a_revoked_api_key_closes_its_open_connections(
    edge: GatewayProcess, redis_mod: RedisServer
) -> None:
    key = _flowwire(redis_mod.url, "api-key", "create", "--user", "svc-revoke", "--label", "t").strip()
    other = _flowwire(redis_mod.url, "api-key", "create", "--user", "svc-keep", "--label", "t").strip()
    revoked = [await connect(edge.url, additional_headers={"X-API-Key": key}) for _ in range(2)]
    kept = await connect(edge.url, additional_headers={"X-API-Key": other})
    jwt_conn = await open_ws(edge.url, token("jwt-user"))
    for ws in (*revoked, kept):
        await ws.send('{"type":"ping"}')
        assert (await recv_json(ws))["type"] == "pong"
    prefix = next(line.split()[0] for line in _flowwire(redis_mod.url, "api-key", "list").splitlines()
                  if "user=svc-revoke" in line)  # fmt: skip
    _flowwire(redis_mod.url, "api-key", "revoke", prefix)
    for ws in revoked:
        assert await _closed(ws) == 4001
        assert ws.close_reason == "API key revoked"
    for ws in (kept, jwt_conn):  # the others stay open
        await ws.send('{"type":"ping"}')
        assert (await recv_json(ws))["type"] == "pong"
        await ws.close()


def test_origin_normalization() -> None:
    allow = Config(
        allowed_origins=("https://App.example.com", "http://h.example:8080/", "chrome-extension://abc")
    )
    same_host = Config()
    for origin, config, host, allowed in [
        ("https://app.example.com", allow, "", True),
        ("https://APP.example.com:443", allow, "", True),
        ("http://app.example.com", allow, "", False),  # the scheme counts
        ("wss://app.example.com", allow, "", False),
        ("https://app.example.com:8443", allow, "", False),
        ("http://h.example:8080", allow, "", True),
        ("http://h.example", allow, "", False),
        ("chrome-extension://abc", allow, "", True),
        ("null", allow, "", False),
        ("https://app.example.com/path", allow, "", False),
        ("https://user@app.example.com", allow, "", False),
        ("https://app.example.com:99999", allow, "", False),
        ("http://gw.example", same_host, "gw.example", True),
        ("http://gw.example:80", same_host, "gw.example", True),
        ("https://gw.example", same_host, "gw.example:443", True),
        ("https://gw.example", same_host, "gw.example:80", False),
        ("http://gw.example:8080", same_host, "GW.example:8080", True),
        ("http://evil.example", same_host, "gw.example", False),
        ("null", same_host, "gw.example", False),
    ]:
        headers = {"origin": origin, "host": host}
        assert origin_allowed(config.allowed_origins, headers) is allowed, (origin, host)
    assert origin_allowed(allow.allowed_origins, {"host": "x"})  # no Origin: not a browser
    assert origin_allowed(("*",), {"origin": "null"})


# -- 4. /ws/stats is scoped to the caller ----------------------------------------------


async def test_stats_are_scoped_to_the_callers_tenant(edge: GatewayProcess) -> None:
    def stats(tok: str) -> dict[str, object]:
        status, body = edge.get("/ws/stats", {"Authorization": f"Bearer {tok}"})
        assert status == 200, body
        doc: dict[str, object] = json.loads(body)
        return doc

    async with (
        await open_ws(edge.url, token("acme-1", "acme")) as a1,
        await open_ws(edge.url, token("acme-2", "acme")) as a2,
        await open_ws(edge.url, token("acme-2", "acme")),
        await open_ws(edge.url, token("globex-1", "globex")) as g1,
        await open_ws(edge.url, token("loner")) as loner,
    ):
        for ws, channels in ((a1, ["executions", "approvals"]), (a2, ["executions"]), (g1, ["approvals"]),
                             (loner, ["executions"])):  # fmt: skip
            for channel in channels:
                await subscribe(ws, channel)
        acme = stats(token("acme-viewer", "acme"))
        assert acme == {"total_clients": 3, "total_users": 2, "subscriptions": 3, "scope": "organization",
                        "channels": {"register": 0, "unregister": 0, "broadcast": 0}}  # fmt: skip
        assert stats(token("globex-1", "globex"))["total_clients"] == 1
        assert stats(token("loner"))["total_clients"] == 1  # no org: its own user's only
        assert stats(token("nobody"))["total_clients"] == 0
        for admin in (token("ops", roles=["admin"]), token("ops", "acme", permissions=["ws:stats"])):
            everything = stats(admin)
            assert everything["scope"] == "process"
            assert isinstance(everything["total_clients"], int) and everything["total_clients"] >= 5
            assert {"events_read", "deliveries", "reader"} <= set(everything)


async def test_key_recheck_runs_only_while_api_key_connections_are_open(redis_url: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    key = new_api_key()
    await client.hset(API_KEYS_KEY, digest(key), json.dumps({"user": "svc", "org": None}))
    try:
        async with serve("redis", redis_url, api_key_recheck=0.05) as gw:
            gateway = gw.app.gateway
            async with connect(gw.url, additional_headers={"X-API-Key": key}) as ws:
                await ws.send('{"type":"ping"}')
                assert (await recv_json(ws))["type"] == "pong"
                assert gateway._key_recheck is not None
                # A record marked revoked (not deleted) is revoked too.
                await client.hset(API_KEYS_KEY, digest(key), json.dumps({"user": "svc", "revoked": True}))
                assert await _closed(ws) == 4001
            async with asyncio.timeout(10):
                while gateway._key_recheck is not None:  # nothing left to re-check: it ends
                    await asyncio.sleep(0.02)
            await client.hset(API_KEYS_KEY, digest(key), json.dumps({"user": "svc"}))
            ws = await connect(gw.url, additional_headers={"X-API-Key": key})  # open at shutdown
            assert gateway._key_recheck is not None
        assert gateway._key_recheck is None or gateway._key_recheck.done()
        await ws.close()
    finally:
        await client.aclose()


def test_new_settings_are_validated() -> None:
    config = Config.from_env({})
    assert (config.jwt_leeway, config.api_key_recheck) == (5.0, 30.0)
    assert (config.max_connections_per_user, config.max_filter_values) == (100, 1000)
    for name, value in [("API_KEY_RECHECK", "0"), ("JWT_LEEWAY", "soon"), ("MAX_FILTER_VALUES", "-1"),
                        ("MAX_CONNECTIONS_PER_USER", "many")]:  # fmt: skip
        with pytest.raises(SettingError, match=name):
            Config.from_env({name: value})


async def test_api_key_stores_say_which_digests_are_revoked(redis_url: str) -> None:
    from gateway.auth import MemoryApiKeys, RedisApiKeys

    memory = MemoryApiKeys({"a": {"user": "u"}, "b": {"user": "u", "revoked": True}})
    assert await memory.revoked(["a", "b", "c"]) == {"b", "c"}
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        await client.hset(
            API_KEYS_KEY, mapping={"a": '{"user":"u"}', "b": '{"revoked":true}', "d": "not json"}
        )
        store = RedisApiKeys(client)
        assert await store.revoked(["a", "b", "c", "d", "a"]) == {"b", "c", "d"}
        assert await store.revoked([]) == set()
    finally:
        await client.aclose()
