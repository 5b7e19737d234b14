"""One gateway process's parts wired together (:class:`Gateway`): what both WebSocket
paths share (admission, opening, inbound messages, closing), the supervised background
components (reader, replay, mirror, loop-lag probe), readiness and the drain.

The HTTP side (``/ws/stats``, ``/metrics``, ``/healthz``, ``/readyz``, the ASGI
``/ws``) is :mod:`gateway.app`; uvicorn hands ``/ws`` upgrades to
:mod:`gateway.websocket`, which calls in here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from gateway.auth import Admission, Authenticator, AuthError, Denial, MemoryApiKeys, RedisApiKeys
from gateway.config import Config
from gateway.connection import Connection, Wire
from gateway.contract import REFUSED_FRAME
from gateway.core.handshake import HandshakeError, select_subprotocol
from gateway.core.origin import origin_allowed
from gateway.core.session import Action, Session, WatchExpiry
from gateway.hub import Hub
from gateway.log import EventLog, LogUnavailable, PartitionMismatch
from gateway.log.memory import MemoryLog
from gateway.metrics import Metrics, Stats
from gateway.mirror import BROADCAST_CHANNEL, Mirror
from gateway.presence import PresenceService
from gateway.process_metrics import ProcessMetrics
from gateway.reader import StreamReader
from gateway.supervisor import Supervisor, cancel_all
from gateway.tokens import TokenWatch, carry_out_close
from schemas.codec import rfc3339_now
from schemas.control import SUBPROTOCOLS, V2_MSGPACK, CloseCode
from schemas.partition import partition_keys

__all__ = ["Gateway"]

logger = logging.getLogger("flowwire.app")

#: How long start-up waits for the event log before it opens the port anyway (seconds).
_FIRST_CONNECT = 2.0


def where(redis_url: str | None) -> str:
    """The event log, for logs and ``/readyz``: its Redis URL without any password (in
    the user part, or a ``...password=`` query parameter of the Sentinel form)."""
    if not redis_url:
        return "embedded event log"
    parts = urlsplit(redis_url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    netloc = f"{userinfo.split(':', 1)[0]}:***@{hosts}" if at and ":" in userinfo else parts.netloc
    query = re.sub(r"(password=)[^&]*", r"\1***", parts.query)
    return parts._replace(netloc=netloc, query=query).geturl()


class Gateway:
    """Everything one gateway process runs, wired together; started by the lifespan."""

    def __init__(self, config: Config, log: EventLog | None = None) -> None:
        self.config = config
        self.stats = Stats()
        self.metrics = Metrics(self.stats, self._gauges)
        self.process_metrics = ProcessMetrics(self.metrics.registry)  # RSS, fds, CPU, loop lag
        if log is None:
            if config.redis_url:
                from gateway.log.redis import RedisLog

                log = RedisLog(
                    config.redis_url,
                    config.stream_key,
                    maxlen=config.stream_maxlen,
                    partitions=config.stream_partitions,
                )
            else:
                log = MemoryLog(maxlen=config.stream_maxlen)
        self.log = log
        self.redis_client: Any = getattr(log, "client", None)
        api_keys = RedisApiKeys(self.redis_client) if self.redis_client is not None else MemoryApiKeys()
        self.auth = Authenticator(config, api_keys)
        self.hub = Hub(
            log,
            self.stats,
            self.metrics,
            replay_batch=config.replay_batch,
            replay_rate=config.replay_rate,
            replay_connection_rate=config.replay_connection_rate,
            max_event_size=config.max_event_size,
        )
        self.reader = StreamReader(self.hub, log, batch=config.reader_batch, where=where(config.redis_url))
        self.supervisor = Supervisor(self._fatal, self.stats.component_restarts)
        #: why the process gave up (a component that cannot be restarted), if it did
        self.fatal: str | None = None
        #: called once when the process must exit non-zero (``flowwire serve`` stops uvicorn)
        self.on_fatal: Callable[[], None] | None = None
        #: the legacy mirror: one per partition (each its own consumer group, in its stream)
        self.mirrors: list[Mirror] = []
        if config.redis_url and config.mirror_enabled:
            self.mirrors = [
                Mirror(
                    config.redis_url,
                    key,
                    claim_idle=config.mirror_claim_idle,
                    stats=self.stats,
                    max_event_size=config.max_event_size,
                )
                for key in partition_keys(config.stream_key, config.stream_partitions)
            ]
        if config.presence_enabled:
            self.hub.presence = PresenceService(
                self.stats,
                url=config.redis_url,
                interval=config.presence_interval,
                heartbeat=config.presence_heartbeat,
                max_members=config.presence_max_members,
            )
        self.draining = False
        self.started = False
        self._ids = itertools.count(1)
        #: 4001 at exp + JWT_LEEWAY; version 2's token_expiring and refresh
        self.tokens = TokenWatch(self.auth, self.stats, config.token_refresh_notice, self.hub.apply_nowait)
        self._tasks: list[asyncio.Task[None]] = []
        self._key_recheck: asyncio.Task[None] | None = None  # while API-key connections are open

    def _gauges(self) -> dict[str, float]:
        return {
            "connections": len(self.hub.connections),
            "users": len(self.hub.users),
            "subscriptions": len(self.hub.index),
            "replaying_connections": len(self.hub.replayer),
            "conflating_connections": sum(1 for c in self.hub.connections.values() if c.conflating),
            "reader_connected": float(self.reader.connected),
            "reader_position_ms": max(sid[0] for sid in self.hub.position),
            "reader_lag_seconds": self.reader.lag_seconds(),
            "reader_lag_entries": self.reader.lag_entries,
            **self._presence_gauges(),
        }

    def _presence_gauges(self) -> dict[str, float]:
        presence = self.hub.presence
        if presence is None:
            return {}
        return {
            "presence_connected": float(presence.connected or presence.client is None),
            "presence_instances": len(presence.state.instances),
            "presence_watchers": presence.state.watched(),
        }

    async def start(self) -> None:
        """Start the supervised components. Never waits for Redis for longer than a
        connect: the port opens at once; until the reader has positioned itself on the
        stream, ``/readyz`` is 503 naming the cause and upgrades are refused with 503,
        while the reader retries in the background."""
        try:
            with contextlib.suppress(LogUnavailable, TimeoutError):
                async with asyncio.timeout(_FIRST_CONNECT):
                    await self.reader.start()
        except PartitionMismatch as exc:
            logger.critical("refusing to start: %s", exc)
            raise
        self.supervisor.start("reader", self.reader.run)
        self.supervisor.start("replay", self.hub.replayer.run)
        self.supervisor.start("loop-lag", self.process_metrics.run)
        for i, mirror in enumerate(self.mirrors):
            self.supervisor.start(f"mirror-{i}" if i else "mirror", mirror.run)
        if (presence := self.hub.presence) is not None:
            self.supervisor.start("presence", presence.run)
            if presence.client is not None:
                self.supervisor.start("presence-sync", presence.sync)
        self.started = True

    def _fatal(self, reason: str) -> None:
        if self.fatal is None:
            self.fatal = reason
            if self.on_fatal is not None:
                self.on_fatal()

    async def stop(self) -> None:
        self.draining = True
        await self.supervisor.aclose()
        await cancel_all(list(self._tasks))
        for mirror in self.mirrors:
            await mirror.aclose()
        if self.hub.presence is not None:
            await self.hub.presence.aclose()
        await self.log.aclose()

    async def drain(self) -> None:
        """Graceful drain (docs/operations.md, "Several pods"): refuse new
        upgrades, report not ready, and close the clients with 1012 in jittered batches
        spread over ``DRAIN_WINDOW``, each told after how long to reconnect, so that they
        resume elsewhere without a thundering herd. Ends as soon as every connection is
        closed (clients that leave on their own do not keep it waiting for the window)."""
        self.draining = True
        started = time.monotonic()
        conns = list(self.hub.connections.values())
        random.shuffle(conns)
        window = self.config.drain_window
        batches = max(1, min(len(conns), int(window * 10)))  # up to 10 batches a second
        logger.info("draining %d connections over %.1fs", len(conns), window)
        for i in range(batches):
            for conn in conns[i::batches]:
                if conn.closing:
                    continue  # already leaving (the client closed it, or it expired)
                delay = random.uniform(0.1, 1.0)
                conn.close(CloseCode.SERVICE_RESTART, f"restart; reconnect after {delay:.1f}s")
            if i + 1 < batches:
                await self._until_all_closed(started + window * (i + 1) / batches)
            if not self.hub.connections:
                break
        # Let the close frames go out before the server stops.
        await self._until_all_closed(time.monotonic() + self.config.write_timeout)
        logger.info(
            "drained in %.1fs: %d connections still open",
            time.monotonic() - started,
            len(self.hub.connections),
        )

    async def _until_all_closed(self, deadline: float) -> None:
        """Sleep until ``deadline`` (monotonic), or until no connection is left."""
        while self.hub.connections and (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(0.02, left))

    def ready(self) -> tuple[bool, str]:
        if self.fatal is not None:
            return False, f"exiting: {self.fatal}"
        if self.draining:
            return False, "draining"
        if not self.started:
            return False, "starting"
        down = self.supervisor.down()
        if down:
            return False, "; ".join(f"{name} down ({why})" for name, why in sorted(down.items()))
        if not self.reader.connected:
            return False, f"event log unreachable ({self.reader.where})"
        if self.reader.stalled(self.config.reader_stall_timeout):
            return False, "reader stalled"
        return True, "ready"

    def degraded(self) -> list[str]:
        """What does not work now while delivery does: reported by ``/readyz`` (still
        200: clients are served) and logged by each component; each recovers by itself."""
        out = []
        presence = self.hub.presence
        if presence is not None and presence.client is not None and not presence.connected:
            out.append("presence: Redis unavailable (replies may be stale: other instances' changes unseen)")
        if any(not mirror.connected for mirror in self.mirrors):
            out.append(f"legacy mirror: Redis unavailable (nothing reaches {BROADCAST_CHANNEL} meanwhile)")
        return out

    # -- one connection's life, for both WebSocket paths -------------------------------

    async def admit(self, headers: dict[str, str], query: dict[str, str]) -> Admission | Denial:
        """Whether an upgrade may go ahead (headers with lower-case names): the caller's
        identity and protocol version, or why not (a subprotocol offered none of which
        is supported 400, draining 503, origin 403, authentication 401, the user's
        ``MAX_CONNECTIONS_PER_USER`` reached 429)."""
        protocol = select_subprotocol(headers.get("sec-websocket-protocol"), SUBPROTOCOLS)
        if isinstance(protocol, HandshakeError):
            self.stats.connections_refused += 1
            return Denial(400, protocol.message, "UNSUPPORTED_SUBPROTOCOL", supported=SUBPROTOCOLS)
        if self.draining:
            self.stats.connections_refused += 1
            return Denial(503, "gateway is draining; connect to another instance", "DRAINING")
        if not self.reader.positioned:
            # Not yet on the stream: a subscription's position would mean nothing.
            self.stats.connections_refused += 1
            return Denial(503, "gateway is not ready: the event log is unreachable", "NOT_READY")
        if not origin_allowed(self.config.allowed_origins, headers):
            self.stats.connections_refused += 1
            return Denial(403, "origin not allowed", "FORBIDDEN_ORIGIN")
        try:
            identity = await self.auth.authenticate(headers, query)
        except AuthError as exc:
            self.stats.auth_failures += 1
            self.stats.connections_refused += 1
            return Denial(401, str(exc), "UNAUTHORIZED")
        except Exception:
            logger.exception("authentication failed unexpectedly")
            return Denial(503, "authentication unavailable", "UNAVAILABLE")
        # Counted at the door: on flowwire's own path nothing awaits between here and
        # ``open`` registering the connection, so concurrent upgrades cannot overshoot.
        per_user = self.config.max_connections_per_user
        if per_user and self.hub.users.get(identity.user_id, 0) >= per_user:
            self.stats.connections_refused += 1
            logger.info("refused user=%s: %d connections already open", identity.user_id, per_user)
            return Denial(429, f"at most {per_user} connections per user", "TOO_MANY_CONNECTIONS")
        return Admission(identity, protocol)

    def at_capacity(self) -> bool:
        """``MAX_CONNECTIONS`` reached: the upgrade completes, then closes with 1013."""
        limit = self.config.max_connections
        if limit and len(self.hub.connections) >= limit:
            self.stats.connections_refused += 1
            return True
        return False

    def open(
        self, admitted: Admission, client: str, *, wire: Wire | None = None, send: Any = None
    ) -> Connection:
        """A connection accepted: registered, its token expiry timer set."""
        config = self.config
        identity, protocol = admitted.identity, admitted.protocol
        session = Session(
            identity.user_id,
            max_subscriptions=config.max_subscriptions,
            rate_limit=config.rate_limit,
            now=time.monotonic(),
            max_filter_values=config.max_filter_values,
            protocol=protocol,
            org_id=identity.org_id,
            expires_at=identity.expires_at,
            presence=config.presence_enabled,
        )
        conn = Connection(
            next(self._ids),
            identity,
            session,
            wire=wire,
            send=send,
            send_buffer=config.send_buffer,
            send_buffer_bytes=config.send_buffer_bytes,
            write_timeout=config.write_timeout,
            on_closed=self.hub.on_close,
            msgpack=protocol == V2_MSGPACK,
            partitions=self.log.partitions,
            lanes=protocol is not None,  # version 2: priority lane, conflation
        )
        self.hub.register(conn)
        if identity.expires_at is not None:  # exp + JWT_LEEWAY: the instant the door stops accepting it
            self.tokens.watch(conn, WatchExpiry(identity.expires_at, notice=False))
        if identity.key_digest is not None and self._key_recheck is None:
            self._key_recheck = asyncio.create_task(self._recheck_api_keys(), name="flowwire-key-recheck")
            self._tasks.append(self._key_recheck)  # cancelled by stop() with the others
        logger.info(
            "open conn=%d user=%s org=%s auth=%s protocol=%s client=%s",
            conn.id, identity.user_id, identity.org_id, identity.method, protocol or "v1", client,
        )  # fmt: skip
        return conn

    async def _recheck_api_keys(self) -> None:
        """Every ``API_KEY_RECHECK`` while API-key connections are open: one ``HMGET`` of
        their digests; the connections of a key revoked meanwhile are closed with 4001.
        Runs from the first such connection until none is left. When the store cannot be
        asked, the connections stay open and the next interval asks again."""
        try:
            while True:
                await asyncio.sleep(self.config.api_key_recheck)
                keyed = {c: c.identity.key_digest for c in self.hub.connections.values() if not c.closing}
                digests = {d for d in keyed.values() if d is not None}
                if not digests:
                    return
                try:
                    revoked = await self.auth.revoked(digests)
                except Exception as exc:
                    logger.warning(
                        "API key re-check failed, retrying in %.0fs: %r", self.config.api_key_recheck, exc
                    )
                    continue
                for conn, key_digest in keyed.items():
                    if key_digest in revoked and not conn.closing:
                        logger.info(
                            "conn=%d user=%s API key revoked: closing", conn.id, conn.identity.user_id
                        )
                        carry_out_close(conn, conn.session.close(CloseCode.TOKEN_EXPIRED, "API key revoked"))
        finally:
            if self._key_recheck is asyncio.current_task():
                self._key_recheck = None
                with contextlib.suppress(ValueError):
                    self._tasks.remove(asyncio.current_task())  # type: ignore[arg-type]

    def receive(self, conn: Connection, data: bytes | str) -> list[Action]:
        """An inbound message: the actions it asks for (``Hub.apply`` carries them out);
        a ``refresh``'s token is verified here, and expiry timers are re-armed here."""
        session = conn.session
        errors = session.errors
        timestamp = rfc3339_now()
        actions = session.receive(data, time.monotonic(), timestamp)
        if session.errors != errors:
            self.stats.malformed_messages += 1
            if session.errors == 1:  # once per connection: the log stays bounded
                logger.info("conn=%d user=%s sent a malformed message", conn.id, conn.identity.user_id)
        return actions if session.version == 1 else self.tokens.carry_out(conn, actions, timestamp)

    def refused_frame(self, conn: Connection) -> None:
        """A frame of the other kind than the connection's format (binary on JSON, text
        on msgpack): closed with 1003, counted."""
        self.stats.unsupported_frames += 1
        conn.close(CloseCode.UNSUPPORTED_DATA, REFUSED_FRAME[conn.msgpack])

    def disconnected(self, conn: Connection, code: int) -> None:
        """The socket is gone."""
        self.tokens.forget(conn)
        conn.session.closed()
        self.hub.unregister(conn)
        logger.info("close conn=%d user=%s code=%s", conn.id, conn.identity.user_id, conn.close_code or code)
