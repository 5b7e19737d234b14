"""End to end, one test per server defect of the original (reference/original-defects.md).

A real redis-server, ``flowwire serve`` as a process under uvicorn, real WebSocket
clients. Each test fails on the original's behaviour.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
import uuid

import pytest
import redis
from websockets.exceptions import ConnectionClosed, InvalidStatus

from publisher import BlockingPublisher, Publication, make_event
from schemas.events import Event
from tests.support.clients import open_ws, recv_json, recv_until, subscribe, token
from tests.support.gateway import GatewayProcess
from tests.support.redis_server import RedisServer


def execution(eid: str, wf: str = "wf-1", status: str = "running", etype: str = "execution.started") -> Event:
    return make_event(etype, {"execution_id": eid, "workflow_id": wf, "status": status})


async def test_1_jwt_bearer_with_uuid_user_is_accepted(
    gateway: GatewayProcess, publisher: BlockingPublisher
) -> None:
    user = str(uuid.uuid4())  # the platform's user ids are UUIDs
    from websockets.asyncio.client import connect

    async with connect(gateway.url, additional_headers={"Authorization": f"Bearer {token(user)}"}) as ws:
        await subscribe(ws, f"users:{user}")
        publisher.publish(execution("exec_00000001"), user=user)
        [event] = await recv_until(ws, 1)
        assert event["data"]["execution_id"] == "exec_00000001"


async def test_1_bad_credentials_get_401_json_before_upgrade(gateway: GatewayProcess) -> None:
    for tok in ("", "not-a-jwt", token(ttl=-60), token(iss="someone-else")):
        with pytest.raises(InvalidStatus) as info:
            await open_ws(gateway.url, tok)
        assert info.value.response.status_code == 401
        body = json.loads(info.value.response.body or b"{}")
        assert body["code"] == "UNAUTHORIZED" and body["error"]


async def test_2_query_token_authenticates(gateway: GatewayProcess) -> None:
    async with await open_ws(gateway.url, token("browser-user")) as ws:
        await ws.send('{"type":"ping"}')
        assert (await recv_json(ws))["type"] == "pong"
    # ... and the token never reaches the log.
    assert token("browser-user").split(".")[2] not in gateway.output()


async def test_3_one_json_message_per_frame(gateway: GatewayProcess, publisher: BlockingPublisher) -> None:
    async with await open_ws(gateway.url) as ws:
        await subscribe(ws, "executions:exec_burst")
        publisher.publish_many([execution("exec_burst") for _ in range(50)])
        frames: list[str | bytes] = []
        async with asyncio.timeout(10):
            while len(frames) < 50:
                frames.append(await ws.recv())
        for frame in frames:
            assert "\n" not in frame
            assert json.loads(frame)["type"] == "execution.started"
        ids = [json.loads(f)["id"] for f in frames]
        assert len(set(ids)) == 50


async def test_4_one_copy_per_event_however_many_subscriptions(
    gateway: GatewayProcess, publisher: BlockingPublisher
) -> None:
    async with await open_ws(gateway.url) as ws:
        for channel in ("executions", "executions:exec_dup", "workflows:wf-dup"):
            await subscribe(ws, channel)
        first = publisher.publish(execution("exec_dup", wf="wf-dup"))
        marker = publisher.publish(execution("exec_other", wf="wf-x"))  # matches `executions` only
        events = await recv_until(ws, 2)
        assert [e["id"] for e in events] == [first, marker]


async def test_5_step_and_approval_events_are_delivered(
    gateway: GatewayProcess, publisher: BlockingPublisher
) -> None:
    async with await open_ws(gateway.url) as ws:
        await subscribe(ws, "executions:exec_sa")
        await subscribe(ws, "approvals")
        step = make_event("step.completed", {"execution_id": "exec_sa", "step_id": "s1", "step_type": "http",
                                             "status": "completed", "output": {"code": 200}})  # fmt: skip
        approval = make_event("approval.required", {"approval_id": "ap1", "execution_id": "exec_sa",
                                                    "workflow_id": "wf-1", "status": "pending"})  # fmt: skip
        publisher.publish_many([step, approval])
        events = await recv_until(ws, 2)
        assert [e["type"] for e in events] == ["step.completed", "approval.required"]
        assert events[0]["data"]["output"] == {"code": 200}


async def test_6_foreign_origin_refused_same_host_allowed(gateway: GatewayProcess) -> None:
    with pytest.raises(InvalidStatus) as info:
        await open_ws(gateway.url, origin="https://evil.example")
    assert info.value.response.status_code == 403
    ws = await open_ws(gateway.url, origin=f"http://127.0.0.1:{gateway.port}")
    await ws.close()


async def test_6_allowed_origins_setting(redis_mod: RedisServer) -> None:
    gw = GatewayProcess({"REDIS_URL": redis_mod.url, "ALLOWED_ORIGINS": "https://app.example.com"})
    gw.start()
    try:
        ws = await open_ws(gw.url, origin="https://app.example.com")
        await ws.close()
        with pytest.raises(InvalidStatus) as info:
            await open_ws(gw.url, origin=f"http://127.0.0.1:{gw.port}")
        assert info.value.response.status_code == 403
    finally:
        gw.stop()


async def test_7_tenants_and_user_channels_are_isolated(
    gateway: GatewayProcess, publisher: BlockingPublisher
) -> None:
    async with (
        await open_ws(gateway.url, token("alice", "acme")) as alice,
        await open_ws(gateway.url, token("bob", "globex")) as bob,
    ):
        await subscribe(alice, "executions")
        await subscribe(bob, "executions")
        await bob.send(json.dumps({"type": "subscribe", "data": {"channel": "users:alice"}}))
        refused = await recv_json(bob)
        assert refused["data"]["code"] == "FORBIDDEN"
        publisher.publish_many([
            Publication(execution("exec_acme"), org="acme"),
            Publication(execution("exec_globex"), org="globex"),
            Publication(execution("exec_public")),
        ])  # fmt: skip
        assert [e["data"]["execution_id"] for e in await recv_until(alice, 2)] == ["exec_acme", "exec_public"]
        assert [e["data"]["execution_id"] for e in await recv_until(bob, 2)] == ["exec_globex", "exec_public"]


async def test_8_limits(redis_mod: RedisServer) -> None:
    gw = GatewayProcess(
        {"REDIS_URL": redis_mod.url, "MAX_SUBSCRIPTIONS": "2", "MAX_CONNECTIONS": "2",
         "CLIENT_RATE_LIMIT": "5", "MAX_MESSAGE_SIZE": "2048"}
    )  # fmt: skip
    gw.start()
    try:
        async with await open_ws(gw.url) as ws, await open_ws(gw.url) as other:
            await subscribe(ws, "executions")
            await subscribe(ws, "approvals")
            await ws.send(json.dumps({"type": "subscribe", "data": {"channel": "workflows:w"}}))
            assert (await recv_json(ws))["data"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
            # A third connection is over MAX_CONNECTIONS: 1013.
            third = await open_ws(gw.url)
            with pytest.raises(ConnectionClosed):
                await recv_json(third)
            assert third.close_code == 1013
            # Too big a message: 1009.
            await other.send("x" * 4096)
            with pytest.raises(ConnectionClosed):
                await recv_json(other)
            assert other.close_code == 1009
            # Rate: RATE_LIMITED replies, then 4029 if it goes on.
            codes = []
            with pytest.raises(ConnectionClosed):
                for _ in range(100):
                    await ws.send('{"type":"ping"}')
                while True:
                    reply = await recv_json(ws)
                    codes.append(reply.get("data", {}).get("code", reply["type"]))
            assert "RATE_LIMITED" in codes and ws.close_code == 4029
    finally:
        gw.stop()


async def test_9_slow_consumer_is_closed_4008_and_loses_nothing(redis_mod: RedisServer) -> None:
    gw = GatewayProcess(
        {"REDIS_URL": redis_mod.url, "CLIENT_SEND_BUFFER": "16", "SERVER_WRITE_TIMEOUT": "20s"}
    )
    gw.start()
    big = {"blob": "x" * 60_000}
    try:
        ws = await open_ws(gw.url, max_queue=1, max_size=None)
        start = (await subscribe(ws, "executions:exec_slow"))["data"]["position"]
        ws.transport.pause_reading()  # the client stops reading
        ids = []
        with BlockingPublisher.from_url(redis_mod.url) as pub:
            for _ in range(10):
                events = [make_event("execution.started", {"execution_id": "exec_slow", "workflow_id": "w",
                                                           "status": "running", "context": big})
                          for _ in range(40)]  # fmt: skip
                ids += pub.publish_many(events)
        auth = {"Authorization": f"Bearer {token(roles=['admin'])}"}
        deadline = time.monotonic() + 15
        while json.loads(gw.get("/ws/stats", auth)[1])["slow_consumer_closes"] < 1:
            assert time.monotonic() < deadline, "never closed as a slow consumer"
            await asyncio.sleep(0.1)
        ws.transport.resume_reading()
        got = []
        with pytest.raises(ConnectionClosed):
            while True:
                got.append((await recv_json(ws, 10))["id"])
        assert ws.close_code == 4008
        assert got == ids[: len(got)] and len(got) < len(ids)
        # The client resumes from its last id: the rest, exactly, in order.
        async with await open_ws(gw.url, max_size=None) as again:
            reply = await subscribe(again, "executions:exec_slow", since=got[-1] if got else start)
            assert reply["data"]["recovered"] is True
            rest = [e["id"] for e in await recv_until(again, len(ids) - len(got), timeout=30)]
        assert got + rest == ids
    finally:
        gw.stop()


async def test_9_control_replies_are_not_dropped_under_load(
    gateway: GatewayProcess, publisher: BlockingPublisher
) -> None:
    async with await open_ws(gateway.url) as ws:
        await subscribe(ws, "executions:exec_load")
        publisher.publish_many([execution("exec_load") for _ in range(200)])
        for _ in range(20):
            await ws.send('{"type":"ping"}')
        pongs = events = 0
        async with asyncio.timeout(10):
            while pongs < 20 or events < 200:
                doc = json.loads(await ws.recv())
                pongs += doc["type"] == "pong"
                events += "id" in doc
        assert (pongs, events) == (20, 200)


async def test_12_stats_is_routed_and_authenticated(gateway: GatewayProcess) -> None:
    assert gateway.get("/ws/stats")[0] == 401
    async with await open_ws(gateway.url, token("stats-user")):
        status, body = gateway.get("/ws/stats", {"Authorization": f"Bearer {token(roles=['admin'])}"})
    assert status == 200
    stats = json.loads(body)
    assert {"total_clients", "total_users", "channels", "deliveries", "slow_consumer_closes"} <= set(stats)
    assert stats["total_clients"] >= 1
    assert {"position", "lag_seconds"} <= set(stats["reader"])
    status, metrics = gateway.get("/metrics")
    assert status == 200 and b"flowwire_deliveries_total" in metrics
    assert b"flowwire_append_to_send_seconds_bucket" in metrics


async def test_13_bad_messages_get_errors_and_change_nothing(
    gateway: GatewayProcess, publisher: BlockingPublisher
) -> None:
    async with await open_ws(gateway.url) as ws:
        await subscribe(ws, "executions:exec_13")
        for frame, code in [
            ('{"type":"hello"}', "UNKNOWN_TYPE"),
            ('{"type":"subscribe","data":{"channel":"everything"}}', "INVALID_SUBSCRIPTION"),
            ("not json", "PARSE_ERROR"),
        ]:
            await ws.send(frame)
            reply = await recv_json(ws)
            assert reply["type"] == "error" and reply["data"]["code"] == code
        # A non-RFC 3339 client timestamp is fine.
        await ws.send('{"type":"ping","timestamp":"Tuesday"}')
        assert (await recv_json(ws))["type"] == "pong"
        # The connection is open and its subscription intact.
        eid = publisher.publish(execution("exec_13"))
        assert (await recv_until(ws, 1))[0]["id"] == eid


async def test_14_sigterm_with_clients_connected_exits_cleanly(redis_mod: RedisServer) -> None:
    gw = GatewayProcess({"REDIS_URL": redis_mod.url, "DRAIN_WINDOW": "0.5s"})
    gw.start()
    clients = [await open_ws(gw.url) for _ in range(5)]
    for ws in clients:
        await subscribe(ws, "executions")
    with BlockingPublisher.from_url(redis_mod.url) as pub:
        pub.publish_many([execution("exec_14") for _ in range(20)])
        gw.signal(signal.SIGTERM)
        pub.publish_many([execution("exec_14") for _ in range(20)])
    codes = []
    for ws in clients:
        with pytest.raises(ConnectionClosed):
            while True:
                await recv_json(ws, 10)
        codes.append(ws.close_code)
    assert gw.wait(30) == 0
    assert set(codes) == {1012}
    assert "Traceback" not in gw.output()


async def test_raw_xadd_and_unusable_entries(gateway: GatewayProcess, redis_mod: RedisServer) -> None:
    client = redis.Redis.from_url(redis_mod.url)
    async with await open_ws(gateway.url) as ws:
        await subscribe(ws, "executions:exec_raw")
        client.xadd("ws:events", {"type": "bogus", "data": "{}"})
        client.xadd("ws:events", {"type": "execution.failed", "data": "[not an object"})
        data = '{"execution_id":"exec_raw","workflow_id":"w","status":"failed","error_message":"boom"}'
        good = client.xadd(
            "ws:events", {"type": "execution.failed", "ts": "2026-11-26T10:00:00Z", "data": data}
        )
        [event] = await recv_until(ws, 1)
    client.close()
    assert event["id"] == (good.decode() if isinstance(good, bytes) else good)
    assert event["timestamp"] == "2026-11-26T10:00:00Z"
    assert event["data"]["error_message"] == "boom"
    stats = json.loads(gateway.get("/ws/stats", {"Authorization": f"Bearer {token(roles=['admin'])}"})[1])
    assert stats["entries_skipped"] >= 2
    assert "skipping stream entry" in gateway.output()


async def test_token_expiry_closes_4001(gateway: GatewayProcess) -> None:
    ws = await open_ws(gateway.url, token(ttl=2))
    with pytest.raises(ConnectionClosed):
        await recv_json(ws, 15)
    assert ws.close_code == 4001


def test_no_pong_closes_the_connection(redis_mod: RedisServer) -> None:
    gw = GatewayProcess({"REDIS_URL": redis_mod.url, "WS_PING_INTERVAL": "0.5s", "WS_PONG_TIMEOUT": "1s"})
    gw.start()
    try:
        sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
        sock.sendall(
            f"GET /ws?token={token()} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        received = b""
        start = time.monotonic()
        while chunk := sock.recv(4096):  # never answers the pings
            received += chunk
        elapsed = time.monotonic() - start
        sock.close()
        assert b"101 Switching Protocols" in received
        assert b"\x89" in received  # a ping frame was sent
        assert b"\x88\x18\x03\xf3keepalive ping timeout" in received  # then close 1011, and TCP
        assert elapsed < 5
    finally:
        gw.stop()


def test_invalid_setting_stops_startup_naming_it() -> None:
    gw = GatewayProcess({"CLIENT_SEND_BUFFER": "lots"})
    gw.start(wait_ready=False)
    assert gw.wait(20) == 2
    assert "CLIENT_SEND_BUFFER" in gw.output()
