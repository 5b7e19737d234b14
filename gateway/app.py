"""The ASGI application: ``create_app(config) -> FlowwireApp``.

``/ws`` is served by a plain ASGI handler in front of Starlette, so that its ``send`` is
the server's own (see ``gateway.connection``: the direct write path). Everything else
(``/ws/stats``, ``/metrics``, ``/healthz``, ``/readyz`` and the lifespan) is Starlette.
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

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.auth import Authenticator, AuthError, Identity, MemoryApiKeys, RedisApiKeys
from gateway.config import Config
from gateway.connection import Connection
from gateway.core.session import Close, Session
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

_json = msgspec.json.Encoder()


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

    def next_id(self) -> int:
        return next(self._ids)


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

    async def _deny(self, send: Any, status: int, message: str, code: str) -> None:
        body = _json.encode({"error": message, "code": code})
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})

    async def websocket(self, scope: Any, receive: Any, send: Any) -> None:
        gw = self.gateway
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if gw.draining:
            gw.stats.connections_refused += 1
            return await self._deny(send, 503, "gateway is draining; connect to another instance", "DRAINING")
        if not _origin_allowed(gw.config, headers):
            gw.stats.connections_refused += 1
            return await self._deny(send, 403, "origin not allowed", "FORBIDDEN_ORIGIN")
        try:
            identity = await gw.auth.authenticate(headers, query)
        except AuthError as exc:
            gw.stats.auth_failures += 1
            gw.stats.connections_refused += 1
            return await self._deny(send, 401, str(exc), "UNAUTHORIZED")
        except Exception:
            logger.exception("authentication failed unexpectedly")
            return await self._deny(send, 503, "authentication unavailable", "UNAVAILABLE")
        await send({"type": "websocket.accept"})
        limit = gw.config.max_connections
        if limit and len(gw.hub.connections) >= limit:
            gw.stats.connections_refused += 1
            await send(
                {
                    "type": "websocket.close",
                    "code": CloseCode.TRY_AGAIN_LATER,
                    "reason": "too many connections",
                }
            )
            return
        await self._serve(identity, scope, receive, send)

    async def _serve(self, identity: Identity, scope: Any, receive: Any, send: Any) -> None:
        gw = self.gateway
        config = gw.config
        session = Session(
            identity.user_id,
            max_subscriptions=config.max_subscriptions,
            rate_limit=config.rate_limit,
            now=time.monotonic(),
        )
        conn = Connection(
            gw.next_id(),
            identity,
            session,
            send,
            send_buffer=config.send_buffer,
            write_timeout=config.write_timeout,
            on_closed=gw.hub.on_close,
        )
        gw.hub.register(conn)
        client = scope.get("client") or ("?", 0)
        logger.info(
            "open conn=%d user=%s org=%s auth=%s client=%s:%s",
            conn.id, identity.user_id, identity.org_id, identity.method, client[0], client[1],
        )  # fmt: skip
        expiry = self._expiry_timer(conn)
        code = 1006
        try:
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    data = message.get("text")
                    if data is None:
                        data = message.get("bytes") or b""
                    actions = session.receive(data, time.monotonic(), rfc3339_now())
                    if actions:
                        await gw.hub.apply(conn, actions)
                elif kind == "websocket.disconnect":
                    code = message.get("code", 1006)
                    break
        finally:
            if expiry is not None:
                expiry.cancel()
            session.closed()
            gw.hub.unregister(conn)
            logger.info(
                "close conn=%d user=%s code=%s",
                conn.id, identity.user_id, conn.close_code or code,
            )  # fmt: skip

    def _expiry_timer(self, conn: Connection) -> asyncio.TimerHandle | None:
        expires_at = conn.identity.expires_at
        if expires_at is None:
            return None

        def expire() -> None:
            for action in conn.session.expire():
                if isinstance(action, Close):
                    conn.close(action.code, action.reason)

        delay = max(0.0, expires_at - time.time())
        return asyncio.get_running_loop().call_later(delay, expire)


def create_app(
    config: Config | None = None,
    *,
    log: EventLog | None = None,
    routes: Sequence[BaseRoute] = (),
    background: Sequence[Callable[[Gateway], Coroutine[Any, Any, None]]] = (),
) -> FlowwireApp:
    """The gateway as an ASGI app; ``routes`` and ``background`` jobs extend it (demo)."""
    return FlowwireApp(Gateway(config or Config.from_env(), log), routes=routes, background=background)
