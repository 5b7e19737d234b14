"""The registry of connections and the subscription index, live dispatch, and the
routing of a connection's protocol actions.

Theory of operation
-------------------
One reader task per process (``gateway.reader``) reads the stream in batches and calls
:meth:`Hub.dispatch`, which for each event: decodes the routing keys only, matches it
through the index, builds its frame once, and offers the same frame to every matching
connection. After the batch, each touched connection is flushed once: the frames it is
owed go out in one write. Nothing here awaits a client.

What a connection is owed is decided by its delivery state machine
(``gateway.core.delivery``, which :class:`~gateway.connection.Connection` extends):
``position`` is the id of the last entry dispatched (usable or not), per partition (a
vector, ``schemas.partition``); a subscription made now is live for every event after it
(the ``position`` of ``subscribed``). With partitioned streams, each event's frame
carries the position just after it as its ``cursor``: every live connection has then
been offered everything up to it, in every partition. A subscribe
with ``since`` asks the log first (``gateway.subscribe``); when the subscription is owed
events from before ``position``, the connection replays, through the shared replay
(``gateway.replay``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter

from gateway.connection import Connection
from gateway.core.delivery import Frame
from gateway.core.filters import compile_filters
from gateway.core.index import SubscriptionIndex
from gateway.core.session import (
    Action,
    Close,
    PresenceQuery,
    Reply,
    SubscribeChannel,
    UnsubscribeChannel,
)
from gateway.log import EventLog, PartEntry
from gateway.metrics import Metrics, Stats
from gateway.presence import PresenceService
from gateway.replay import Replayer
from gateway.subscribe import Subscriber
from schemas.codec import parse_id
from schemas.control import CloseCode
from schemas.partition import Vector, zero
from schemas.stream import InvalidEntry, decode_entry

__all__ = ["Hub"]

logger = logging.getLogger("flowwire.hub")


class SkipLog:
    """Logs skipped stream entries with their ids, at most ``per_second`` lines a second;
    past that, one line a second says how many more were skipped. A publisher writing a
    flood of unusable entries is visible in the log without flooding it."""

    def __init__(self, log: logging.Logger, per_second: int = 10) -> None:
        self.log = log
        self.per_second = per_second
        self._window = 0.0
        self._logged = 0
        self._quiet = 0

    def skipped(self, entry_id: bytes, reason: object, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if now - self._window >= 1.0:
            if self._quiet:
                self.log.warning("skipped %d more unusable stream entries", self._quiet)
            self._window, self._logged, self._quiet = now, 0, 0
        if self._logged < self.per_second:
            self._logged += 1
            self.log.warning("skipping stream entry %s: %s", entry_id.decode(errors="replace"), reason)
        else:
            self._quiet += 1


class Hub:
    def __init__(
        self,
        log: EventLog,
        stats: Stats,
        metrics: Metrics,
        *,
        replay_batch: int,
        replay_rate: float,
        replay_connection_rate: float,
        max_event_size: int,
    ) -> None:
        self.log = log
        self.max_event_size = max_event_size
        self.stats = stats
        self.metrics = metrics
        self.index: SubscriptionIndex[Connection] = SubscriptionIndex()
        self.connections: dict[int, Connection] = {}
        self.users: Counter[str] = Counter()
        self.partitions = log.partitions
        self.position: Vector = zero(log.partitions)
        self.replayer = Replayer(
            self, log, batch=replay_batch, rate=replay_rate, connection_rate=replay_connection_rate
        )
        self.subscriber = Subscriber(self)
        #: who is connected and subscribed where (``PRESENCE=on``; set by the Gateway)
        self.presence: PresenceService | None = None
        self._debug = logger.isEnabledFor(logging.DEBUG)
        self._skips = SkipLog(logger)

    # -- registry ----------------------------------------------------------------------

    def register(self, conn: Connection) -> None:
        self.connections[conn.id] = conn
        conn.stats = self.stats
        self.users[conn.identity.user_id] += 1
        self.stats.connections_opened += 1
        if self.presence is not None:
            self.presence.connect(conn)

    def unregister(self, conn: Connection) -> None:
        conn.closed()  # gone: its replay (if any) and drain stop here
        self.replayer.discard(conn)
        if self.presence is not None:
            self.presence.disconnect(conn)
        if self.connections.pop(conn.id, None) is None:
            return
        self.index.remove_owner(conn)
        self.users[conn.identity.user_id] -= 1
        if not self.users[conn.identity.user_id]:
            del self.users[conn.identity.user_id]
        self.stats.connections_closed += 1

    def on_close(self, conn: Connection, code: int | None) -> None:
        """A connection is closing with ``code`` (``None``: the client closed it): it
        gets no more events from now on, and is present no more."""
        self.index.remove_owner(conn)
        if self.presence is not None:
            self.presence.disconnect(conn)
        if code == CloseCode.SLOW_CONSUMER:
            self.stats.slow_consumer_closes += 1
            logger.warning("conn=%d user=%s slow consumer: closing 4008", conn.id, conn.identity.user_id)
        elif code == CloseCode.RATE_LIMITED:
            self.stats.rate_limit_closes += 1

    # -- the hot path ------------------------------------------------------------------

    def dispatch(self, entries: list[PartEntry]) -> None:
        """Route a batch of stream entries (each partition's in order). Synchronous:
        never awaits a client."""
        touched: dict[Connection, None] = {}
        match = self.index.match
        # A lone event (a quiet stream) is written to each socket at once; a batch is
        # queued and each connection's share goes out in one write at the end.
        batch = len(entries) > 1
        deliver = Connection.deliver if batch else Connection.deliver_now
        max_size = self.max_event_size
        one = self.partitions == 1
        for part, (entry_id, fields) in entries:
            try:
                event = decode_entry(entry_id, fields, max_size=max_size, part=part)
            except InvalidEntry as exc:
                self._skip(part, entry_id, exc)
                continue
            sid = event.sid
            if one:
                self.position = (sid,)
            else:
                position = self.position
                self.position = (*position[:part], sid, *position[part + 1 :])
            targets = match(event)
            if not targets:
                continue
            frame = Frame.of(event) if one else Frame.of(event, self.position)
            queued = 0
            for conn in targets:
                if deliver(conn, frame, event):
                    queued += 1
                    if batch:
                        touched[conn] = None
            self.stats.events_matched += 1
            self.stats.deliveries += queued
            self.metrics.observe_entry(sid[0])
        self.stats.events_read += len(entries)
        for conn in touched:
            conn.flush()

    def _skip(self, part: int, entry_id: bytes, exc: InvalidEntry) -> None:
        # Skipped for every connection alike, and the position moves past it: a replay
        # over it later skips it the same way (its range still advances the cursor).
        self.stats.entries_skipped += 1
        self._skips.skipped(entry_id, exc)
        with contextlib.suppress(UnicodeDecodeError, ValueError):
            position = self.position
            sid = max(position[part], parse_id(entry_id.decode()))
            self.position = (*position[:part], sid, *position[part + 1 :])

    # -- protocol actions --------------------------------------------------------------

    def apply_nowait(self, conn: Connection, actions: list[Action]) -> list[Action]:
        """Carry out ``actions`` up to the first that must ask the log (a subscribe with
        ``since``); returns that one and those after it, for :meth:`apply`."""
        for i, action in enumerate(actions):
            match action:
                case Reply(frame=frame):
                    conn.reply(frame)
                case SubscribeChannel(since=None):
                    self.subscriber.add(conn, action, self.position, None, compile_filters(action.filters))
                case SubscribeChannel():
                    conn.flush()
                    return actions[i:]
                case UnsubscribeChannel(name=name, channel=channel):
                    self.index.remove(conn, channel)
                    conn.remove(channel)
                    if self.presence is not None:
                        self.presence.unsubscribe(conn, name)
                    if self._debug:
                        logger.debug("conn=%d unsubscribed %s", conn.id, name)
                case PresenceQuery() if self.presence is not None:
                    self.presence.query(conn, action)
                case Close(code=code, reason=reason):
                    conn.close(code, reason)
        conn.flush()
        return []

    async def apply(self, conn: Connection, actions: list[Action]) -> None:
        while actions := self.apply_nowait(conn, actions):
            first = actions[0]
            assert isinstance(first, SubscribeChannel)
            await self.subscriber.subscribe_since(conn, first)
            actions = actions[1:]

    # -- lifecycle ---------------------------------------------------------------------

    def close_all(self, code: int, reason: str) -> None:
        for conn in list(self.connections.values()):
            conn.close(code, reason)
