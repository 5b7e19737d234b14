"""A subscribe with ``since``: the conversation with the log before a subscription
is filed (docs/protocol.md "Resume").

The decision is the core's (``gateway.core.delivery.plan_subscribe``); this asks the log
what it needs: whether ``since`` is still held (one command), and, when the connection
already delivered events after ``since`` (a subscription added later than the others
after a reconnect), a probe of the log between ``since`` and what it delivered for events
of the new channel that could no longer come in order (``recovered: false`` if there
were any, or past ``PROBE_LIMIT`` entries: never a gap). Then the subscription is filed,
``subscribed`` is answered, and a replay is scheduled if the subscription is owed events
from before the reader's position.

Partitioned streams: ``since`` is a cursor (``schemas.lanes.parse_resume``); one that
names no position of this deployment (a bare id other than ``0-0``, a cursor of another
partition count) is answered ``recovered: false``. The log is asked about each partition.
A cursor ahead of this instance's reader in some partition (it came from a faster
instance) waits, up to ``AHEAD_WAIT``, for the reader to reach it: the frames this
connection then gets carry cursors at or after it (past the wait: an ``INTERNAL_ERROR``
reply, subscribe again).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import TYPE_CHECKING, Final

from gateway.connection import Connection
from gateway.core.delivery import LogAnswer, covers, plan_subscribe
from gateway.core.filters import CompiledFilter, compile_filters
from gateway.core.index import Subscription
from gateway.core.session import SubscribeChannel, error_frame, subscribed_frame
from gateway.log import LogUnavailable
from schemas.codec import ZERO_ID, parse_id, rfc3339_now
from schemas.control import ErrorCode
from schemas.lanes import parse_resume
from schemas.partition import Vector, format_cursor, zero
from schemas.stream import InvalidEntry, decode_entry

if TYPE_CHECKING:
    from gateway.hub import Hub

__all__ = ["PROBE_LIMIT", "Subscriber"]

logger = logging.getLogger("flowwire.subscribe")

#: A subscription added with a ``since`` below what its connection already delivered is
#: probed over at most this many entries; past it, ``recovered: false`` (never a gap).
PROBE_LIMIT: Final = 1_000
#: How long a cursor found held is taken as held without asking the log again (seconds).
HELD_TTL: Final = 1.0
_HELD_MAX: Final = 10_000
#: How long a subscribe whose cursor is ahead of this instance's reader waits for it
#: (partitioned streams; seconds).
AHEAD_WAIT: Final = 5.0


class _Behind(Exception):
    """The reader did not reach the cursor within ``AHEAD_WAIT``."""


class Subscriber:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._debug = logger.isEnabledFor(logging.DEBUG)
        self._asking: dict[Vector, asyncio.Future[LogAnswer]] = {}
        self._held: dict[Vector, float] = {}

    async def subscribe_since(self, conn: Connection, action: SubscribeChannel) -> None:
        assert action.since is not None
        since, ahead = parse_resume(action.since, self.hub.partitions)
        conn.resume_skip(ahead)  # written ahead of the cursor's mark: the client has them
        conn.subscribing += 1
        flt = compile_filters(action.filters)
        try:
            recovered: bool | None
            if since is None:  # no position of this deployment: never a silent gap
                from_sid, recovered = self.hub.position, False
            else:
                answer = await self._ask(since)
                plan = plan_subscribe(since, self.hub.position, conn.last, answer)
                from_sid, recovered = plan.from_sid, plan.recovered
                if plan.probe and await self._missed(conn, action, flt, since):
                    from_sid, recovered = self.hub.position, False
                if recovered and self.hub.partitions > 1:
                    await self._reach(since)
        except (LogUnavailable, _Behind) as exc:
            if action.channel not in self.hub.index.subscriptions_of(conn):
                conn.session.channels.pop(action.name, None)  # nothing was subscribed
            why = (
                "event log unavailable"
                if isinstance(exc, LogUnavailable)
                else "this instance is behind your cursor"
            )
            conn.reply(error_frame(rfc3339_now(), ErrorCode.INTERNAL_ERROR, f"{why}; subscribe again shortly",
                                   type="subscribe", channel=action.name,
                                   encode=conn.session.encode))  # fmt: skip
            conn.flush()
            return
        finally:
            conn.subscribing -= 1
        if recovered is False:
            from_sid = self.hub.position  # live from now (the position may have moved meanwhile)
        self.add(conn, action, from_sid, recovered, flt)
        conn.flush()

    async def _reach(self, since: Vector) -> None:
        """Wait until the reader's position is at or after ``since`` in every partition."""
        deadline = time.monotonic() + AHEAD_WAIT
        while not covers(self.hub.position, since):
            if time.monotonic() > deadline:
                raise _Behind
            await asyncio.sleep(0.01)

    async def _ask(self, since: Vector) -> LogAnswer:
        """Whether ``since`` is held (or, for ``0-0``, the floor): one log command per
        cursor for all the subscribes that ask together (a storm of clients resuming
        from the same cursor), and a cursor found held is taken as held for
        ``HELD_TTL`` (a trim meanwhile is caught by the replay's floor check)."""
        now = time.monotonic()
        found = self._held.get(since)
        if found is not None and now - found < HELD_TTL:
            return LogAnswer(held=True, floor=zero(len(since)))
        task = self._asking.get(since)
        if task is None:
            task = asyncio.ensure_future(self._query(since))
            self._asking[since] = task
            task.add_done_callback(functools.partial(self._asked, since))
        answer = await asyncio.shield(task)
        if answer.held and ZERO_ID not in since:  # a 0-0 partition is answered by its floor
            if len(self._held) >= _HELD_MAX:
                self._held = {s: t for s, t in self._held.items() if now - t < HELD_TTL}
                if len(self._held) >= _HELD_MAX:
                    self._held.clear()
            self._held[since] = now
        return answer

    def _asked(self, since: Vector, task: asyncio.Future[LogAnswer]) -> None:
        self._asking.pop(since, None)
        if not task.cancelled():
            task.exception()  # retrieved: every waiter got it (LogUnavailable), or none is left

    async def _query(self, since: Vector) -> LogAnswer:
        log = self.hub.log
        held, floors = True, []
        for part, sid in enumerate(since):
            if sid == ZERO_ID:
                floors.append((await log.info(part)).floor)
            else:
                floors.append(ZERO_ID)
                held = held and await log.contains(sid, part)
        return LogAnswer(held=held, floor=tuple(floors))

    async def _missed(
        self, conn: Connection, action: SubscribeChannel, flt: CompiledFilter, since: Vector
    ) -> bool:
        """The probe: did the new channel have events after ``since`` that ``conn``
        already passed (they can no longer come in order)? ``True`` past PROBE_LIMIT
        (entries of all partitions together)."""
        probe = Subscription(conn, conn.identity.org_id, action.channel, flt, since)
        scanned = 0
        for part, cursor in enumerate(since):
            while cursor < conn.last[part]:  # `last` may move while the log is read: follow it
                if scanned >= PROBE_LIMIT:
                    return True
                entries = await self.hub.log.range(cursor, min(500, PROBE_LIMIT - scanned + 1), part)
                if not entries:
                    break
                events = []
                for entry_id, fields in entries:
                    try:
                        events.append(
                            decode_entry(entry_id, fields, max_size=self.hub.max_event_size, part=part)
                        )
                    except InvalidEntry:
                        continue
                if conn.missed(probe, events):
                    return True
                cursor = parse_id(entries[-1][0].decode())
                scanned += len(entries)
        return False

    def add(
        self,
        conn: Connection,
        action: SubscribeChannel,
        from_sid: Vector,
        recovered: bool | None,
        flt: CompiledFilter,
    ) -> None:
        if conn.closing:
            return
        position = self.hub.position
        sub = Subscription(conn, conn.identity.org_id, action.channel, flt, from_sid)
        self.hub.index.add(sub)
        conn.conflate(action.channel, bool(action.conflate))
        frame = subscribed_frame(
            rfc3339_now(),
            action.name,
            action.filters,
            format_cursor(position),
            recovered,
            conn.session.encode,
            conflate=action.conflate and conn.lanes,
        )
        conn.reply(frame)
        if self.hub.presence is not None:
            self.hub.presence.subscribe(conn, action.name)
        if conn.add(action.channel, sub, position):
            self.hub.replayer.add(conn)
        if self._debug:
            logger.debug("conn=%d subscribed %s since=%s", conn.id, action.name, action.since)
