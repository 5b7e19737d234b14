"""Token connections' expiry (docs/protocol.md, "Close codes" and "Token refresh").

A connection authenticated with a token is closed with 4001 at ``exp + JWT_LEEWAY``: one
timer per such connection. Protocol version 2 adds, for a connection granted
``token_refresh``, a second timer ``TOKEN_REFRESH_NOTICE`` before it that sends
``token_expiring``, and the in-band ``refresh``: its token verified exactly as at the
upgrade, then judged by the session (same user and organization), which moves both
timers. What is decided lives in the session (``gateway.core.session``); this module
runs the timers and the verification.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from gateway.auth import Authenticator, AuthError
from gateway.connection import Connection
from gateway.core.session import Action, Close, RefreshToken, WatchExpiry
from gateway.metrics import Stats
from schemas.codec import rfc3339_now

__all__ = ["TokenWatch", "carry_out_close"]

logger = logging.getLogger("flowwire.app")


def carry_out_close(conn: Connection, actions: list[Action]) -> None:
    for action in actions:
        if isinstance(action, Close):
            conn.close(action.code, action.reason)


class TokenWatch:
    """The expiry and notice timers of a process's token connections."""

    def __init__(
        self,
        auth: Authenticator,
        stats: Stats,
        notice: float,
        apply: Callable[[Connection, list[Action]], object],
    ) -> None:
        self.auth = auth
        self.stats = stats
        self.notice = notice  # TOKEN_REFRESH_NOTICE
        self.apply = apply  # queues replies (Hub.apply_nowait)
        self._expiries: dict[int, asyncio.TimerHandle] = {}
        self._notices: dict[int, asyncio.TimerHandle] = {}

    def watch(self, conn: Connection, watch: WatchExpiry) -> None:
        """(Re)arm the connection's 4001 timer at ``expires_at`` and, for a connection
        granted ``token_refresh``, its ``token_expiring`` notice ``TOKEN_REFRESH_NOTICE``
        before it (at once if that is past)."""
        loop = asyncio.get_running_loop()
        left = watch.expires_at - time.time()
        for timers, delay, callback in (
            (self._expiries, left, self._expire),
            (self._notices, left - self.notice, self._notice),
        ):
            if timers is self._notices and not watch.notice:
                continue
            old = timers.pop(conn.id, None)
            if old is not None:
                old.cancel()
            timers[conn.id] = loop.call_later(max(0.0, delay), callback, conn)

    def forget(self, conn: Connection) -> None:
        """The socket is gone."""
        for timers in (self._expiries, self._notices):
            timer = timers.pop(conn.id, None)
            if timer is not None:
                timer.cancel()

    def carry_out(self, conn: Connection, actions: list[Action], timestamp: str) -> list[Action]:
        """A version 2 message's actions: a ``refresh`` verified and judged, expiries
        re-armed; the rest (replies among them, in order) for the hub."""
        done: list[Action] = []
        for action in actions:
            if isinstance(action, RefreshToken):
                self.stats.token_refreshes += 1
                done += self.carry_out(conn, self._refresh(conn, action.token, timestamp), timestamp)
            elif isinstance(action, WatchExpiry):
                self.watch(conn, action)
            else:
                done.append(action)
        return done

    def _expire(self, conn: Connection) -> None:
        self._expiries.pop(conn.id, None)
        carry_out_close(conn, conn.session.expire())

    def _notice(self, conn: Connection) -> None:
        self._notices.pop(conn.id, None)
        self.apply(conn, conn.session.expiring(rfc3339_now()))

    def _refresh(self, conn: Connection, token: str, timestamp: str) -> list[Action]:
        """The token verified exactly as at the upgrade (a JWT; its ``exp`` checked with
        ``JWT_LEEWAY``), then judged by the session."""
        try:
            fresh = self.auth.verify_jwt(token)
        except AuthError as exc:
            self.stats.auth_failures += 1
            logger.info("conn=%d user=%s refresh refused: %s", conn.id, conn.identity.user_id, exc)
            return conn.session.refresh_refused(str(exc), timestamp)
        actions = conn.session.refreshed(fresh.user_id, fresh.org_id, fresh.expires_at, timestamp)
        logger.info(
            "conn=%d user=%s refresh %s", conn.id, conn.identity.user_id,
            "accepted" if len(actions) > 1 else f"refused: token of user={fresh.user_id} org={fresh.org_id}",
        )  # fmt: skip
        return actions
