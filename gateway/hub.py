"""The registry of connections, the subscription index, and event dispatch.

Theory of operation
-------------------
One reader task per process (``gateway.reader``) reads the stream in batches and calls
:meth:`Hub.dispatch`, which for each event: decodes the routing keys only, matches it
through the index, builds its frame once, and offers the same frame to every matching
connection's outbox. After the batch, each touched connection is flushed once: the
frames it is owed go out in one write. Nothing here awaits a client (DESIGN §1, §5).

``position`` is the id of the last entry dispatched. A subscription made now is live
for every event after ``position``; that is the ``position`` of ``subscribed``.

Resume (``since``): the connection enters *replay*: live dispatch skips it, and a replay
task reads the log from its cursor, queues the events its subscriptions owe it, and
flips it back to live in the same step in which it catches up with ``position``: no gap.
Each connection keeps the id of the last event it queued and never queues one at or
below it: no duplicate, stream order, however subscriptions and replays overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from typing import Final

from gateway.config import Config
from gateway.connection import Connection, OutFrame
from gateway.core.backoff import Backoff
from gateway.core.filters import CompiledFilter, compile_filters
from gateway.core.index import Subscription, SubscriptionIndex
from gateway.core.resume import is_recoverable
from gateway.core.session import (
    Action,
    Close,
    Reply,
    SubscribeChannel,
    UnsubscribeChannel,
    error_frame,
    subscribed_frame,
)
from gateway.log import EventLog, LogUnavailable
from gateway.metrics import Metrics, Stats
from schemas.channels import Channel
from schemas.codec import ZERO_ID, StreamId, format_id, parse_id, rfc3339_now
from schemas.control import CloseCode, ErrorCode
from schemas.envelope import event_frame
from schemas.stream import InvalidEntry, StreamEvent, decode_entry

__all__ = ["Hub"]

logger = logging.getLogger("flowwire.hub")

_REPLAY_BATCH: Final = 200
_MISSED_SCAN_LIMIT: Final = 20_000
_REPLAY_GATHER: Final = 0.05


class Hub:
    def __init__(self, config: Config, log: EventLog, stats: Stats, metrics: Metrics) -> None:
        self.config = config
        self.log = log
        self.stats = stats
        self.metrics = metrics
        self.index: SubscriptionIndex[Connection] = SubscriptionIndex()
        self.connections: dict[int, Connection] = {}
        self.users: Counter[str] = Counter()
        self.position: StreamId = ZERO_ID
        self._replays: set[asyncio.Task[None]] = set()
        self._debug = logger.isEnabledFor(logging.DEBUG)

    # -- registry ----------------------------------------------------------------------

    def register(self, conn: Connection) -> None:
        self.connections[conn.id] = conn
        self.users[conn.identity.user_id] += 1
        self.stats.connections_opened += 1

    def unregister(self, conn: Connection) -> None:
        conn.closing = True  # gone: its replay (if any) and drain stop here
        if self.connections.pop(conn.id, None) is None:
            return
        self.index.remove_owner(conn)
        self.users[conn.identity.user_id] -= 1
        if not self.users[conn.identity.user_id]:
            del self.users[conn.identity.user_id]
        self.stats.connections_closed += 1

    def on_close(self, conn: Connection, code: int) -> None:
        """A connection decided to close: it gets no more events from now on."""
        self.index.remove_owner(conn)
        if code == CloseCode.SLOW_CONSUMER:
            self.stats.slow_consumer_closes += 1
            logger.warning("conn=%d user=%s slow consumer: closing 4008", conn.id, conn.identity.user_id)
        elif code == CloseCode.RATE_LIMITED:
            self.stats.rate_limit_closes += 1

    # -- the hot path ------------------------------------------------------------------

    def dispatch(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Route a batch of stream entries. Synchronous: never awaits a client."""
        touched: dict[Connection, None] = {}
        match = self.index.match
        # A lone event (a quiet stream) is written to each socket at once; a batch is
        # queued and each connection's share goes out in one write at the end.
        batch = len(entries) > 1
        deliver = Connection.deliver if batch else Connection.deliver_now
        for entry_id, fields in entries:
            try:
                event = decode_entry(entry_id, fields)
            except InvalidEntry as exc:
                self._skip(entry_id, exc)
                continue
            self.position = event.sid
            targets = match(event)
            if not targets:
                continue
            frame = OutFrame(event_frame(event.type.encode(), event.timestamp, event.id, event.data))
            sid = event.sid
            queued = 0
            for conn in targets:
                if deliver(conn, frame, sid):
                    queued += 1
                    if batch:
                        touched[conn] = None
            self.stats.events_matched += 1
            self.stats.deliveries += queued
            self.metrics.observe_entry(sid[0])
        self.stats.events_read += len(entries)
        for conn in touched:
            conn.flush()

    def _skip(self, entry_id: bytes, exc: InvalidEntry) -> None:
        self.stats.entries_skipped += 1
        logger.warning("skipping stream entry %s: %s", entry_id.decode(errors="replace"), exc)
        with contextlib.suppress(UnicodeDecodeError, ValueError):
            self.position = max(self.position, parse_id(entry_id.decode()))

    # -- protocol actions --------------------------------------------------------------

    def apply_nowait(self, conn: Connection, actions: list[Action]) -> list[Action]:
        """Carry out ``actions`` up to the first that must ask the log (a subscribe with
        ``since``); returns that one and those after it, for :meth:`apply`."""
        for i, action in enumerate(actions):
            match action:
                case Reply(frame=frame):
                    conn.reply(frame)
                case SubscribeChannel(since=None):
                    self._add_subscription(conn, action, None)
                case SubscribeChannel():
                    conn.flush()
                    return actions[i:]
                case UnsubscribeChannel(name=name, channel=channel):
                    self.index.remove(conn, channel)
                    if self._debug:
                        logger.debug("conn=%d unsubscribed %s", conn.id, name)
                case Close(code=code, reason=reason):
                    conn.close(code, reason)
        conn.flush()
        return []

    async def apply(self, conn: Connection, actions: list[Action]) -> None:
        while actions := self.apply_nowait(conn, actions):
            first = actions[0]
            assert isinstance(first, SubscribeChannel)
            await self._subscribe_since(conn, first)
            actions = actions[1:]

    async def _subscribe_since(self, conn: Connection, action: SubscribeChannel) -> None:
        since = action.since
        assert since is not None
        # Holds this connection's replay meanwhile: the subscriptions a client sends
        # together after a reconnect resume together, from the same cursor.
        conn.subscribing += 1
        flt = compile_filters(action.filters)
        try:
            recovered = await self._recoverable(conn, action.channel, flt, since)
        except LogUnavailable:
            if action.channel not in self.index.subscriptions_of(conn):
                conn.session.channels.pop(action.name, None)  # nothing was subscribed
            conn.reply(error_frame(rfc3339_now(), ErrorCode.INTERNAL_ERROR,
                                   "event log unavailable; subscribe again shortly",
                                   type="subscribe", channel=action.name))  # fmt: skip
            conn.flush()
            return
        finally:
            conn.subscribing -= 1
        self._add_subscription(conn, action, recovered, flt)
        conn.flush()

    def _add_subscription(
        self,
        conn: Connection,
        action: SubscribeChannel,
        recovered: bool | None,
        flt: CompiledFilter | None = None,
    ) -> None:
        if conn.closing:
            return
        since = action.since
        position = self.position
        from_sid = max(since, conn.last_sid) if recovered and since is not None else position
        if flt is None:
            flt = compile_filters(action.filters)
        self.index.add(Subscription(conn, conn.identity.org_id, action.channel, flt, from_sid))
        frame = subscribed_frame(rfc3339_now(), action.name, action.filters, format_id(position), recovered)
        conn.reply(frame)
        if from_sid < position:
            self._start_replay(conn, from_sid)
        if self._debug:
            logger.debug("conn=%d subscribed %s since=%s", conn.id, action.name, since)

    async def _recoverable(
        self, conn: Connection, channel: Channel, flt: CompiledFilter, since: StreamId
    ) -> bool:
        info = await self.log.info()
        held = since != ZERO_ID and await self.log.contains(since)
        if not is_recoverable(since, held=held, floor=info.floor):
            return False
        if since >= conn.last_sid:
            return True
        # This connection already delivered events after `since`: the new channel's
        # events in between can no longer come in order. Recovered only if there are none.
        probe = Subscription(conn, conn.identity.org_id, channel, flt, since)
        cursor, scanned = since, 0
        while cursor < conn.last_sid and scanned < _MISSED_SCAN_LIMIT:
            entries = await self.log.range(cursor, _REPLAY_BATCH)
            if not entries:
                return True
            for entry_id, fields in entries:
                try:
                    event = decode_entry(entry_id, fields)
                except InvalidEntry:
                    continue
                if event.sid > conn.last_sid:
                    return True
                if probe.matches(event) and not self._owed(conn, event):
                    return False
                cursor = event.sid
            scanned += len(entries)
        return cursor >= conn.last_sid

    # -- resume ------------------------------------------------------------------------

    def _start_replay(self, conn: Connection, from_sid: StreamId) -> None:
        cursor = max(from_sid, conn.last_sid)
        if conn.replay_cursor is not None:
            conn.replay_cursor = min(conn.replay_cursor, cursor)  # the running task rewinds
            return
        conn.replay_cursor = cursor
        task = asyncio.get_running_loop().create_task(self._replay(conn))
        self._replays.add(task)
        task.add_done_callback(self._replays.discard)

    async def _replay(self, conn: Connection) -> None:
        # A client resubscribes all its channels at once after a reconnect, in separate
        # frames: give the rest a moment to join this replay, so that they all resume
        # from the same cursor, in order (nothing is delivered to this connection meanwhile).
        await asyncio.sleep(_REPLAY_GATHER)
        backoff = Backoff(base=0.05, cap=2.0)
        failures = 0
        while not conn.closing and conn.replay_cursor is not None:
            if conn.subscribing:
                await asyncio.sleep(0.002)  # let the subscriptions sent with it join in
                continue
            cursor = conn.replay_cursor
            if cursor >= self.position:
                conn.replay_cursor = None  # caught up: live from here, in the same step
                conn.flush()
                return
            try:
                entries = await self.log.range(cursor, _REPLAY_BATCH)
            except LogUnavailable:
                failures += 1
                await asyncio.sleep(backoff.delay(failures, random.random()))
                continue
            failures = 0
            if conn.replay_cursor != cursor:
                continue  # a new subscription rewound the cursor meanwhile
            if not entries:
                conn.replay_cursor = None  # the log has nothing after cursor
                conn.flush()
                return
            if not await self._replay_batch(conn, entries):
                return

    async def _replay_batch(self, conn: Connection, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> bool:
        for entry_id, fields in entries:
            cursor = conn.replay_cursor
            if cursor is None or conn.closing:
                return False
            try:
                event = decode_entry(entry_id, fields)
            except InvalidEntry:
                continue
            if event.sid > conn.last_sid and self._owed(conn, event):
                if conn.outbox.full and not await conn.wait_room():
                    return False
                if conn.replay_cursor != cursor:
                    return True  # rewound while waiting: start over from the new cursor
                frame = OutFrame(event_frame(event.type.encode(), event.timestamp, event.id, event.data))
                if conn.queue_event(frame, event.sid):
                    self.stats.replayed += 1
            conn.replay_cursor = max(cursor, event.sid)
        conn.flush()
        return True

    def _owed(self, conn: Connection, event: StreamEvent) -> bool:
        for sub in self.index.subscriptions_of(conn).values():
            if sub.from_sid < event.sid and sub.matches(event):
                return True
        return False

    # -- lifecycle ---------------------------------------------------------------------

    def close_all(self, code: int, reason: str) -> None:
        for conn in list(self.connections.values()):
            conn.close(code, reason)

    async def aclose(self) -> None:
        for task in list(self._replays):
            task.cancel()
        await asyncio.gather(*self._replays, return_exceptions=True)
