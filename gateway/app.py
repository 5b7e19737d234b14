"""The ASGI application: ``create_app(config) -> FlowwireApp``.

Under ``flowwire serve``, uvicorn hands ``/ws`` upgrades to flowwire's own protocol
(``gateway.websocket``) before any ASGI is involved; :class:`Gateway` holds what both
WebSocket paths share (admission, opening, inbound messages, closing). The ASGI
``/ws`` handler here is the other path (``WS_COMPRESSION=on``, other servers).
Everything else (``/ws/stats``, ``/metrics``, ``/healthz``, ``/readyz`` and the
lifespan) is Starlette.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.auth import AuthError, Denial, Identity
from gateway.config import Config
from gateway.instance import Gateway
from gateway.log import EventLog
from gateway.supervisor import cancel_all
from schemas.control import V2_MSGPACK, CloseCode
from schemas.partition import format_cursor

__all__ = ["FlowwireApp", "Gateway", "create_app"]

logger = logging.getLogger("flowwire.app")

#: who sees ``/ws/stats`` process-wide (JWT ``roles`` / ``permissions`` claims)
STATS_ROLE = "admin"
STATS_PERMISSION = "ws:stats"


def _stats_admin(identity: Identity) -> bool:
    return STATS_ROLE in identity.roles or STATS_PERMISSION in identity.permissions


class FlowwireApp:
    """The ASGI callable: ``/ws`` directly, everything else through Starlette."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        routes: Sequence[BaseRoute] = (),
        background: Sequence[Callable[[Gateway], Coroutine[Any, Any, None]]] = (),
    ) -> None:
        self.gateway = gateway
        self.background = background
        self.starlette = Starlette(
            routes=[
                Route("/ws/stats", self.stats),
                Route(
                    "/ws",
                    self.ws_without_upgrade,
                    methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                ),
                Route("/metrics", self.metrics),
                Route("/healthz", self.healthz),
                Route("/readyz", self.readyz),
                *routes,
            ],
            lifespan=self.lifespan,
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket" and scope["path"] == "/ws":
            await self.websocket(scope, receive, send)
        else:
            await self.starlette(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.gateway.start()
        tasks = [asyncio.create_task(job(self.gateway)) for job in self.background]
        try:
            yield
        finally:
            await cancel_all(tasks)
            await self.gateway.stop()

    # -- HTTP --------------------------------------------------------------------------

    async def ws_without_upgrade(self, request: Request) -> Response:
        """``/ws`` asked for without a WebSocket upgrade: refused like the other refusals,
        with a JSON body; 426 names the upgrade to ask for (RFC 9110 §15.5.22)."""
        if request.method not in ("GET", "HEAD"):
            denial = Denial(405, "/ws takes a WebSocket upgrade: GET", "METHOD_NOT_ALLOWED")
            return Response(denial.body(), 405, {"allow": "GET"}, media_type="application/json")
        denial = Denial(426, "/ws takes a WebSocket upgrade", "UPGRADE_REQUIRED")
        headers = {"upgrade": "websocket", "connection": "Upgrade"}
        return Response(denial.body(), 426, headers, media_type="application/json")

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        ready, why = self.gateway.ready()
        body = {"ready": ready, "status": why, "degraded": self.gateway.degraded()}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(self, request: Request) -> Response:
        return Response(self.gateway.metrics.render(), media_type="text/plain; version=0.0.4")

    async def stats(self, request: Request) -> Response:
        """The original's JSON, scoped to the caller: a caller with the role ``admin`` or
        the permission ``ws:stats`` sees the whole process and its counters; any other
        sees its organization's connections, users and subscriptions (without an
        organization: its own user's), and nothing process-wide."""
        gw = self.gateway
        try:
            caller = await gw.auth.authenticate(
                {k.lower(): v for k, v in request.headers.items()}, dict(request.query_params)
            )
        except AuthError as exc:
            gw.stats.auth_failures += 1
            return JSONResponse({"error": str(exc), "code": "UNAUTHORIZED"}, status_code=401)
        # The original reported its Go channels' queue lengths; flowwire has no such
        # queues, so they are always 0 (kept for dashboards that read them).
        channels = {"register": 0, "unregister": 0, "broadcast": 0}
        if not _stats_admin(caller):
            if caller.org_id is not None:
                scope, mine = (
                    "organization",
                    [c for c in gw.hub.connections.values() if c.identity.org_id == caller.org_id],
                )
            else:
                scope, mine = (
                    "user",
                    [c for c in gw.hub.connections.values() if c.identity.user_id == caller.user_id],
                )
            return JSONResponse(
                {
                    "total_clients": len(mine),
                    "total_users": len({c.identity.user_id for c in mine}),
                    "channels": channels,
                    "subscriptions": sum(len(c.session.channels) for c in mine if not c.closing),
                    "scope": scope,
                }
            )
        s = gw.stats
        return JSONResponse(
            {
                "total_clients": len(gw.hub.connections),
                "total_users": len(gw.hub.users),
                "channels": channels,
                "subscriptions": len(gw.hub.index),
                "scope": "process",
                "events_read": s.events_read,
                "entries_skipped": s.entries_skipped,
                "deliveries": s.deliveries,
                "replayed": s.replayed,
                "slow_consumer_closes": s.slow_consumer_closes,
                "rate_limit_closes": s.rate_limit_closes,
                "reader": {
                    "position": format_cursor(gw.hub.position),
                    "connected": gw.reader.connected,
                    "lag_seconds": round(gw.reader.lag_seconds(), 3),
                    "errors": s.reader_errors,
                },
            }
        )

    # -- WebSocket ---------------------------------------------------------------------

    async def websocket(self, scope: Any, receive: Any, send: Any) -> None:
        """The ASGI path (``WS_COMPRESSION=on``, or another ASGI server); the default is
        ``gateway.websocket``, which uvicorn hands the socket to directly."""
        gw = self.gateway
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        admitted = await gw.admit(headers, query)
        if isinstance(admitted, Denial):
            body = admitted.body()
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": admitted.status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "websocket.http.response.body", "body": body})
            return
        accept: dict[str, Any] = {"type": "websocket.accept"}
        if admitted.protocol is not None:  # version 2: named in the 101
            accept["subprotocol"] = admitted.protocol
        await send(accept)
        if gw.at_capacity():
            reason = "too many connections"
            await send({"type": "websocket.close", "code": CloseCode.TRY_AGAIN_LATER, "reason": reason})
            return
        client = scope.get("client") or ("?", 0)
        conn = gw.open(admitted, f"{client[0]}:{client[1]}", send=send)
        # The frame kind of the connection's format: text (JSON) or bytes (msgpack).
        kind = "bytes" if admitted.protocol == V2_MSGPACK else "text"
        code = 1006
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.receive":
                    data = message.get(kind)
                    if data is None:  # the other kind: never parsed
                        gw.refused_frame(conn)
                        continue
                    actions = gw.receive(conn, data)
                    if actions:
                        await gw.hub.apply(conn, actions)
                elif message["type"] == "websocket.disconnect":
                    code = message.get("code", 1006)
                    break
        finally:
            gw.disconnected(conn, code)


def create_app(
    config: Config | None = None,
    *,
    log: EventLog | None = None,
    routes: Sequence[BaseRoute] = (),
    background: Sequence[Callable[[Gateway], Coroutine[Any, Any, None]]] = (),
) -> FlowwireApp:
    """The gateway as an ASGI app; ``routes`` and ``background`` jobs extend it (demo)."""
    return FlowwireApp(Gateway(config or Config.from_env(), log), routes=routes, background=background)
