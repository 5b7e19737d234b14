"""Protocol version 2 end to end, on both upgrade paths (docs/protocol.md, "Protocol
version 2"): negotiation, msgpack binary frames, hello/welcome, in-band token refresh.

Real uvicorn, real ``websockets`` clients offering ``subprotocols``; the original
protocol's bytes are pinned by ``test_v1_recording.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from gateway.auth import digest
from tests.support.clients import token
from tests.support.inproc import Served, serve

JSON2 = "flowwire.v2.json"
PACK = "flowwire.v2.msgpack"


@pytest.fixture(params=["direct", "asgi"])
def path(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def gateway(path: str, **settings: Any) -> AsyncIterator[Served]:
    async with serve("memory", compression=(path == "asgi"), **settings) as gw:
        yield gw


async def open_v2(url: str, tok: str, *protocols: str) -> ClientConnection:
    if not protocols:  # version 1: no Sec-WebSocket-Protocol header at all
        return await connect(f"{url}?token={tok}")
    return await connect(f"{url}?token={tok}", subprotocols=[Subprotocol(p) for p in protocols])


async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(msgspec.msgpack.encode(message) if ws.subprotocol == PACK else json.dumps(message))


async def recv(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    frame = await asyncio.wait_for(ws.recv(), timeout)
    if ws.subprotocol == PACK:
        assert isinstance(frame, bytes), "msgpack connections get binary frames only"
        doc: dict[str, Any] = msgspec.msgpack.decode(frame)
    else:
        assert isinstance(frame, str), "JSON connections get text frames only"
        doc = json.loads(frame)
    return doc


async def recv_type(ws: ClientConnection, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while (doc := await recv(ws))["type"] != kind:
            pass
    return doc


def ex(eid: str, status: str = "running") -> dict[str, Any]:
    return {"execution_id": eid, "workflow_id": "wf-1", "status": status, "context": {"n": 2**70, "f": 1.5}}


# -- negotiation -----------------------------------------------------------------------


async def test_the_first_offered_subprotocol_supported_is_selected(path: str) -> None:
    async with gateway(path) as gw:
        for offered, selected in (
            ([PACK, JSON2], PACK),
            ([JSON2, PACK], JSON2),
            (["chat", JSON2], JSON2),
            (["flowwire.v3.cbor", PACK], PACK),
        ):
            ws = await open_v2(gw.url, token(), *offered)
            assert ws.subprotocol == selected, offered
            await send(ws, {"type": "ping"})
            assert (await recv(ws))["type"] == "pong"
            await ws.close()
        ws = await connect(f"{gw.url}?token={token()}")  # none offered: version 1
        assert ws.subprotocol is None
        await ws.send('{"type":"hello"}')
        assert json.loads(await ws.recv())["data"]["code"] == "UNKNOWN_TYPE"
        await ws.close()


async def test_unsupported_subprotocols_are_refused_with_400_listing_the_supported(path: str) -> None:
    async with gateway(path) as gw:
        with pytest.raises(InvalidStatus) as caught:
            await open_v2(gw.url, token(), "chat", "flowwire.v1")
        response = caught.value.response
        assert response.status_code == 400
        body = json.loads(response.body or b"")
        assert body["code"] == "UNSUPPORTED_SUBPROTOCOL"
        assert body["supported"] == [JSON2, PACK]
        assert "chat" in body["error"]


# -- msgpack end to end ----------------------------------------------------------------


async def test_msgpack_end_to_end_events_replies_errors_and_resume(path: str) -> None:
    async with gateway(path) as gw:
        ws = await open_v2(gw.url, token(), PACK)
        await send(ws, {"type": "hello", "data": {"features": ["token_refresh", "presence", "teleport"]}})
        welcome = await recv(ws)
        assert welcome["type"] == "welcome"
        assert welcome["data"] == {
            "protocol": PACK,
            "granted": ["token_refresh", "presence"],
            "features": ["token_refresh", "presence"],
        }
        # Presence answers in the connection's format too.
        await send(ws, {"type": "presence"})
        state = await recv(ws)
        assert state["type"] == "presence.state" and state["data"]["watching"] is False
        await send(ws, {"type": "subscribe", "data": {"channel": "executions"}})
        subscribed = await recv(ws)
        assert subscribed["type"] == "subscribed" and subscribed["data"]["channel"] == "executions"
        ids = [await gw.append("execution.started", ex(f"e{i}")) for i in range(3)]
        events = [await recv_type(ws, "execution.started") for _ in ids]
        assert [e["id"] for e in events] == ids
        # The same message as the JSON frame, key for key (integers past msgpack's range
        # become floats, as JSON.parse makes them).
        assert list(events[0]) == ["type", "timestamp", "id", "data"]
        assert events[0]["data"] == {**ex("e0"), "context": {"n": float(2**70), "f": 1.5}}
        # Replies and errors are msgpack too.
        await send(ws, {"type": "ping"})
        assert (await recv(ws))["type"] == "pong"
        await ws.send(b"\xc1 not msgpack")
        error = await recv(ws)
        assert error["type"] == "error" and error["data"]["code"] == "PARSE_ERROR"
        assert "msgpack" in error["data"]["message"]
        await ws.send(msgspec.msgpack.encode([1, 2]))
        assert (await recv(ws))["data"]["code"] == "PARSE_ERROR"
        await send(ws, {"type": "teleport"})
        assert (await recv(ws))["data"]["code"] == "UNKNOWN_TYPE"
        await send(ws, {"type": "hello"})  # only as the first message
        assert (await recv(ws))["data"]["code"] == "INVALID_HELLO"
        # {"type": "ping", "data": [[[...]]]}, nested 200,000 deep: bounded, an error reply.
        await ws.send(b"\x82\xa4type\xa4ping\xa4data" + b"\x91" * 200_000 + b"\xc0")
        error = await recv(ws)
        assert (error["data"]["code"], error["data"]["message"]) == (
            "PARSE_ERROR",
            "frame is nested too deeply",
        )
        await send(ws, {"type": "ping"})
        assert (await recv(ws))["type"] == "pong"  # nothing else changed
        await ws.close()

        # Resume with since, on a new msgpack connection: the missed events, in order.
        ws = await open_v2(gw.url, token(), PACK)
        await send(ws, {"type": "subscribe", "data": {"channel": "executions", "since": ids[0]}})
        assert (await recv(ws))["data"]["recovered"] is True
        replayed = [await recv_type(ws, "execution.started") for _ in ids[1:]]
        assert [e["id"] for e in replayed] == ids[1:]

        # A text frame on a msgpack connection closes it with 1003, counted.
        await ws.send('{"type":"ping"}')
        with pytest.raises(ConnectionClosed) as closed:
            await recv(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003
        assert gw.app.gateway.stats.unsupported_frames == 1
        assert gw.app.gateway.stats.malformed_messages >= 4


async def test_json_and_msgpack_clients_get_the_same_events(path: str) -> None:
    async with gateway(path) as gw:
        clients = [
            await open_v2(gw.url, token(), PACK),
            await open_v2(gw.url, token(), JSON2),
            await connect(f"{gw.url}?token={token()}"),
        ]
        for ws in clients:
            await send(ws, {"type": "subscribe", "data": {"channel": "executions"}})
            assert (await recv(ws))["type"] == "subscribed"
        for i in range(20):
            await gw.append("execution.started", ex(f"e{i}"))
        got = [[await recv_type(ws, "execution.started") for _ in range(20)] for ws in clients]
        assert got[0] == got[1] == got[2]
        await clients[1].send(b"\x80")  # binary on a JSON connection: 1003, as on version 1
        with pytest.raises(ConnectionClosed) as closed:
            await recv(clients[1])
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003


# -- token refresh ---------------------------------------------------------------------


async def test_refresh_keeps_the_connection_its_subscriptions_and_cursor(path: str) -> None:
    async with gateway(path, jwt_leeway=0.0, token_refresh_notice=2.0) as gw:
        ws = await open_v2(gw.url, token("alice", "acme", ttl=3), JSON2)
        await send(ws, {"type": "hello", "data": {"features": ["token_refresh"]}})
        assert (await recv(ws))["data"]["granted"] == ["token_refresh"]
        await send(ws, {"type": "subscribe", "data": {"channel": "executions"}})
        await recv_type(ws, "subscribed")
        started = time.time()
        notice = await recv_type(ws, "token_expiring", timeout=5)
        assert time.time() - started < 2.5  # about 1 s in: 2 s before the 3 s token expires
        expires_at = notice["data"]["expires_at"]
        assert expires_at.endswith("Z")
        for bad, code in (
            (token("mallory", "acme"), "TOKEN_MISMATCH"),
            (token("alice", "other-org"), "TOKEN_MISMATCH"),
            (token("alice"), "TOKEN_MISMATCH"),  # no organization is another organization
            ("not-a-jwt", "INVALID_TOKEN"),
            (token("alice", "acme", ttl=-60), "INVALID_TOKEN"),
        ):
            await send(ws, {"type": "refresh", "data": {"token": bad}})
            error = await recv_type(ws, "error")
            assert (error["data"]["code"], error["data"]["type"]) == (code, "refresh")
        await send(ws, {"type": "refresh", "data": {"token": token("alice", "acme", ttl=600)}})
        refreshed = await recv_type(ws, "refreshed")
        assert refreshed["data"]["expires_at"] > expires_at
        await asyncio.sleep(max(0.0, started + 3.5 - time.time()))  # past the first token's exp
        event_id = await gw.append("execution.started", ex("e1"))
        assert (await recv_type(ws, "execution.started"))["id"] == event_id
        await send(ws, {"type": "ping"})
        assert (await recv_type(ws, "pong"))["type"] == "pong"
        await ws.close()


async def test_no_refresh_closes_with_4001_and_refused_refreshes_change_nothing(path: str) -> None:
    async with gateway(path, jwt_leeway=0.0, token_refresh_notice=1.0) as gw:
        ws = await open_v2(gw.url, token("alice", "acme", ttl=2), PACK)
        await send(ws, {"type": "hello", "data": {"features": ["token_refresh"]}})
        await recv_type(ws, "welcome")
        await recv_type(ws, "token_expiring")
        await send(ws, {"type": "refresh", "data": {"token": token("bob", "acme")}})
        assert (await recv_type(ws, "error"))["data"]["code"] == "TOKEN_MISMATCH"
        with pytest.raises(ConnectionClosed) as closed:
            await recv_type(ws, "never", timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001

        # Without hello (no token_refresh granted) and on version 1: no notice, only 4001.
        for offered in ([JSON2], []):
            ws = await open_v2(gw.url, token("alice", ttl=2), *offered)
            with pytest.raises(ConnectionClosed) as closed:
                doc = await recv(ws, timeout=5)
                raise AssertionError(f"nothing is sent before the close: {doc}")
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001


async def test_api_key_connections_have_nothing_to_refresh(path: str) -> None:
    async with gateway(path) as gw:
        keys = gw.app.gateway.auth.api_keys
        assert keys is not None
        keys.records[digest("fwk_test")] = {"user": "svc", "org": "acme"}  # type: ignore[attr-defined]
        headers = {"X-API-Key": "fwk_test"}
        ws = await connect(gw.url, additional_headers=headers, subprotocols=[Subprotocol(JSON2)])
        await send(ws, {"type": "hello", "data": {"features": ["token_refresh"]}})
        assert (await recv(ws))["data"]["granted"] == []
        await send(ws, {"type": "refresh", "data": {"token": token("svc", "acme")}})
        assert (await recv(ws))["data"]["code"] == "REFRESH_NOT_SUPPORTED"
        await ws.close()
