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
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.auth import Authenticator, AuthError, Denial, Identity, MemoryApiKeys, RedisApiKeys
from gateway.config import Config
from gateway.connection import Connection, Wire
from gateway.core.session import Action, Close, Session
from gateway.hub import Hub
from gateway.log import EventLog, LogUnavailable
from gateway.log.memory import MemoryLog
from gateway.metrics import Metrics, Stats
from gateway.mirror import Mirror
from gateway.reader import StreamReader
from schemas.codec import format_id, rfc3339_now
from schemas.control import CloseCode

__all__ = ["FlowwireApp", "Gateway", "create_app"]

logger = logging.getLogger("flowwire.app")


class Gateway:
    """Everything one gateway process runs, wired together; started by the lifespan."""

    def __init__(self, config: Config, log: EventLog | None = None) -> None:
        self.config = config
        self.stats = Stats()
        self.metrics = Metrics(self.stats, self._gauges)
        if log is None:
            if config.redis_url:
                from gateway.log.redis import RedisLog

                log = RedisLog(config.redis_url, config.stream_key, maxlen=config.stream_maxlen)
            else:
                log = MemoryLog(maxlen=config.stream_maxlen)
        self.log = log
        self.redis_client: Any = getattr(log, "client", None)
        api_keys = RedisApiKeys(self.redis_client) if self.redis_client is not None else MemoryApiKeys()
        self.auth = Authenticator(config, api_keys)
        self.hub = Hub(config, log, self.stats, self.metrics)
        self.reader = StreamReader(self.hub, log, batch=config.reader_batch)
        self.mirror: Mirror | None = None
        if config.redis_url and config.mirror_enabled:
            self.mirror = Mirror(
                config.redis_url, config.stream_key, claim_idle=config.mirror_claim_idle, stats=self.stats
            )
        self.draining = False
        self.started = False
        self._ids = itertools.count(1)
        self._expiries: dict[int, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def _gauges(self) -> dict[str, float]:
        return {
            "connections": len(self.hub.connections),
            "users": len(self.hub.users),
            "subscriptions": len(self.hub.index),
            "reader_connected": float(self.reader.connected),
            "reader_position_ms": self.hub.position[0],
            "reader_lag_seconds": self.lag_seconds(),
        }

    def lag_seconds(self) -> float:
        """How far behind the newest entry the reader is, by the position's time."""
        if not self.hub.position[0]:
            return 0.0
        if time.monotonic() - self.reader.last_read_at < 6:  # idle stream, reader waiting
            return 0.0
        return max(0.0, time.time() - self.hub.position[0] / 1000)

    async def start(self) -> None:
        for attempt in itertools.count():
            try:
                await self.reader.start()
                break
            except LogUnavailable as exc:
                if attempt == 0:
                    logger.error("event log unavailable at start-up, retrying: %s", exc)
                await asyncio.sleep(min(5.0, 0.1 * 2**attempt))
        self._tasks.append(asyncio.create_task(self.reader.run(), name="flowwire-reader"))
        if self.mirror is not None:
            self._tasks.append(asyncio.create_task(self.mirror.run(), name="flowwire-mirror"))
        self.started = True

    async def stop(self) -> None:
        self.draining = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.hub.aclose()
        if self.mirror is not None:
            await self.mirror.aclose()
        await self.log.aclose()

    async def drain(self) -> None:
        """Graceful drain (DESIGN §7): refuse new upgrades, report not ready, and close
        the clients with 1012 in jittered batches spread over ``DRAIN_WINDOW``, each
        told after how long to reconnect, so that they resume elsewhere without a
        thundering herd."""
        self.draining = True
        conns = list(self.hub.connections.values())
        random.shuffle(conns)
        window = self.config.drain_window
        batches = max(1, min(len(conns), int(window * 10)))  # up to 10 batches a second
        logger.info("draining %d connections over %.1fs", len(conns), window)
        for i in range(batches):
            for conn in conns[i::batches]:
                delay = random.uniform(0.1, 1.0)
                conn.close(CloseCode.SERVICE_RESTART, f"restart; reconnect after {delay:.1f}s")
            if i + 1 < batches:
                await asyncio.sleep(window / batches)
        # Let the close frames go out before the server stops.
        deadline = time.monotonic() + self.config.write_timeout
        while self.hub.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def ready(self) -> tuple[bool, str]:
        if self.draining:
            return False, "draining"
        if not self.started:
            return False, "starting"
        if not self.reader.connected:
            return False, "event log unreachable"
        if self.reader.stalled(self.config.reader_stall_timeout):
            return False, "reader stalled"
        return True, "ready"

    # -- one connection's life, for both WebSocket paths -------------------------------

    async def admit(self, headers: dict[str, str], query: dict[str, str]) -> Identity | Denial:
        """Whether an upgrade may go ahead (headers with lower-case names): the caller's
        identity, or why not (draining 503, origin 403, authentication 401)."""
        if self.draining:
            self.stats.connections_refused += 1
            return Denial(503, "gateway is draining; connect to another instance", "DRAINING")
        if not _origin_allowed(self.config, headers):
            self.stats.connections_refused += 1
            return Denial(403, "origin not allowed", "FORBIDDEN_ORIGIN")
        try:
            return await self.auth.authenticate(headers, query)
        except AuthError as exc:
            self.stats.auth_failures += 1
            self.stats.connections_refused += 1
            return Denial(401, str(exc), "UNAUTHORIZED")
        except Exception:
            logger.exception("authentication failed unexpectedly")
            return Denial(503, "authentication unavailable", "UNAVAILABLE")

    def at_capacity(self) -> bool:
        """``MAX_CONNECTIONS`` reached: the upgrade completes, then closes with 1013."""
        limit = self.config.max_connections
        if limit and len(self.hub.connections) >= limit:
            self.stats.connections_refused += 1
            return True
        return False

    def open(
        self, identity: Identity, client: str, *, wire: Wire | None = None, send: Any = None
    ) -> Connection:
        """A connection accepted: registered, its token expiry timer set."""
        config = self.config
        session = Session(
            identity.user_id,
            max_subscriptions=config.max_subscriptions,
            rate_limit=config.rate_limit,
            now=time.monotonic(),
        )
        conn = Connection(
            next(self._ids),
            identity,
            session,
            wire=wire,
            send=send,
            send_buffer=config.send_buffer,
            write_timeout=config.write_timeout,
            on_closed=self.hub.on_close,
        )
        self.hub.register(conn)
        if identity.expires_at is not None:
            delay = max(0.0, identity.expires_at - time.time())
            self._expiries[conn.id] = asyncio.get_running_loop().call_later(delay, self._expire, conn)
        logger.info(
            "open conn=%d user=%s org=%s auth=%s client=%s",
            conn.id, identity.user_id, identity.org_id, identity.method, client,
        )  # fmt: skip
        return conn

    def _expire(self, conn: Connection) -> None:
        self._expiries.pop(conn.id, None)
        for action in conn.session.expire():
            if isinstance(action, Close):
                conn.close(action.code, action.reason)

    def receive(self, conn: Connection, data: bytes | str) -> list[Action]:
        """An inbound message: the actions it asks for (``Hub.apply`` carries them out)."""
        return conn.session.receive(data, time.monotonic(), rfc3339_now())

    def disconnected(self, conn: Connection, code: int) -> None:
        """The socket is gone."""
        timer = self._expiries.pop(conn.id, None)
        if timer is not None:
            timer.cancel()
        conn.session.closed()
        self.hub.unregister(conn)
        logger.info("close conn=%d user=%s code=%s", conn.id, conn.identity.user_id, conn.close_code or code)


def _origin_allowed(config: Config, headers: dict[str, str]) -> bool:
    origin = headers.get("origin")
    if not origin:
        return True  # not a browser: no cross-site hijacking to prevent
    if "*" in config.allowed_origins or origin in config.allowed_origins:
        return True
    if config.allowed_origins:
        return False
    return urlsplit(origin).netloc.lower() == headers.get("host", "").lower()


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
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.gateway.stop()

    # -- HTTP --------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        ready, why = self.gateway.ready()
        return JSONResponse({"ready": ready, "status": why}, status_code=200 if ready else 503)

    async def metrics(self, request: Request) -> Response:
        return Response(self.gateway.metrics.render(), media_type="text/plain; version=0.0.4")

    async def stats(self, request: Request) -> Response:
        gw = self.gateway
        try:
            await gw.auth.authenticate(
                {k.lower(): v for k, v in request.headers.items()}, dict(request.query_params)
            )
        except AuthError as exc:
            gw.stats.auth_failures += 1
            return JSONResponse({"error": str(exc), "code": "UNAUTHORIZED"}, status_code=401)
        s = gw.stats
        return JSONResponse(
            {
                "total_clients": len(gw.hub.connections),
                "total_users": len(gw.hub.users),
                # The original reported its Go channels' queue lengths; flowwire has no
                # such queues, so they are always 0 (kept for dashboards that read them).
                "channels": {"register": 0, "unregister": 0, "broadcast": 0},
                "subscriptions": len(gw.hub.index),
                "events_read": s.events_read,
                "entries_skipped": s.entries_skipped,
                "deliveries": s.deliveries,
                "replayed": s.replayed,
                "slow_consumer_closes": s.slow_consumer_closes,
                "rate_limit_closes": s.rate_limit_closes,
                "reader": {
                    "position": format_id(gw.hub.position),
                    "connected": gw.reader.connected,
                    "lag_seconds": round(gw.lag_seconds(), 3),
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
        identity = await gw.admit(headers, query)
        if isinstance(identity, Denial):
            body = identity.body()
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": identity.status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "websocket.http.response.body", "body": body})
            return
        await send({"type": "websocket.accept"})
        if gw.at_capacity():
            reason = "too many connections"
            await send({"type": "websocket.close", "code": CloseCode.TRY_AGAIN_LATER, "reason": reason})
            return
        client = scope.get("client") or ("?", 0)
        conn = gw.open(identity, f"{client[0]}:{client[1]}", send=send)
        code = 1006
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.receive":
                    data = message.get("text")
                    if data is None:
                        data = message.get("bytes") or b""
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
