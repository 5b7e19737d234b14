"""Presence's I/O shell: this process's connections into the core's view
(``gateway.core.presence``), that view kept in step with the other instances through
Redis, and ``presence.diff`` events out to the watching connections
(docs/protocol.md, "Presence"; docs/operations.md, "Presence").

Theory of operation
-------------------
The hub calls :meth:`PresenceService.connect`, ``subscribe``, ``unsubscribe`` and
``disconnect`` as connections come and go: each is O(1), counted in the core at once (a
``presence`` query on this instance sees it). Two supervised components do the rest:

- ``presence`` (:meth:`PresenceService.run`), every ``PRESENCE_INTERVAL``: the diffs of
  the scopes that changed, each encoded once and queued to every connection watching it
  (a control reply: never dropped; no await per client).
- ``presence-sync`` (:meth:`PresenceService.sync`, with Redis only), on one connection
  and one pub/sub subscription:

  * every ``PRESENCE_INTERVAL``, this instance's changes since the last flush (a join and
    a leave within it cancel out) go in one pipeline: ``HSET``/``HDEL`` on its hash
    ``ws:presence:{<instance>}`` (field ``["org","channel","user"]`` -> connections, and
    ``~seq``, the batch's sequence number), ``PEXPIRE`` (3 heartbeats), and one
    ``PUBLISH ws:presence`` with the same changes;
  * every ``PRESENCE_HEARTBEAT``: ``ZADD ws:presence:instances <instance> <now>``, the
    hash's expiry renewed, a ``PUBLISH`` of the sequence number alone (a receiver that
    missed a batch reloads the hash: ``HGETALL``), and the sweep: instances whose last
    heartbeat is older than 3 heartbeats are dead; their users leave, their hash and
    registry entry are deleted (by whichever instance sees it first). An instance that
    finds itself purged (its ``ZADD`` added it anew) republishes its whole state;
  * a message from another instance is applied in order, or triggers a reload of its
    hash when one was missed.

  On every (re)connection to Redis this instance writes its whole state again (Redis
  may have lost it, or other instances purged it while it was cut off) and reloads the
  others': a Redis outage is logged, reported (``flowwire_presence_connected``) and
  recovered from without a restart.

Without Redis (the embedded log), presence is this process's alone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
import time
from typing import TYPE_CHECKING, Any, Final

import msgspec
import redis.exceptions
from redis.asyncio.cluster import RedisCluster

from gateway.core.backoff import Backoff
from gateway.core.presence import Key, Presence, expired
from gateway.core.session import Encode, PresenceQuery, presence_diff_frame, presence_state_frame
from gateway.metrics import Stats
from publisher.connect import UNAVAILABLE, async_client, raise_if_cancelled, retry_pause
from schemas.codec import rfc3339_now

if TYPE_CHECKING:
    from gateway.connection import Connection

__all__ = ["CHANNEL", "REGISTRY_KEY", "PresenceService", "hash_key"]

logger = logging.getLogger("flowwire.presence")

REGISTRY_KEY: Final = "ws:presence:instances"
CHANNEL: Final = "ws:presence"
SEQ_FIELD: Final = b"~seq"
#: an instance is dead when its last heartbeat is older than this many heartbeats
EXPIRY_BEATS: Final = 3


def hash_key(instance: str) -> str:
    """An instance's hash; its own hash tag (Cluster: one slot per instance)."""
    return f"ws:presence:{{{instance}}}"


class _Batch(msgspec.Struct, array_like=True):
    """A pub/sub message: instance, sequence number, changes (``None``: the sequence
    number alone, a heartbeat or a republish)."""

    i: str
    s: int
    c: list[tuple[str, str, str, int]] | None = None


_encode: Final = msgspec.json.Encoder().encode
_batch_decoder: Final = msgspec.json.Decoder(_Batch)
_key_decoder: Final = msgspec.json.Decoder(tuple[str, str, str])


class PresenceService:
    def __init__(
        self,
        stats: Stats,
        *,
        url: str | None,
        interval: float,
        heartbeat: float,
        max_members: int,
    ) -> None:
        self.instance = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self.state: Presence[Connection] = Presence(self.instance)
        self.stats = stats
        self.interval = interval
        self.heartbeat = heartbeat
        self.expiry = heartbeat * EXPIRY_BEATS
        self.max_members = max_members
        self.url = url
        self.client: Any = None
        if url:
            timeout = max(5.0, 2 * heartbeat)
            self.client = async_client(url, socket_connect_timeout=2.0, socket_timeout=timeout, retry=None)
        self.connected = False
        self.backoff = Backoff(base=0.1, cap=5.0)

    # -- the hub's hooks: synchronous, O(1) --------------------------------------------

    def connect(self, conn: Connection) -> None:
        self.state.connect(conn.id, conn.identity.org_id or "", conn.identity.user_id)

    def subscribe(self, conn: Connection, channel: str) -> None:
        self.state.subscribe(conn.id, channel)

    def unsubscribe(self, conn: Connection, channel: str) -> None:
        self.state.unsubscribe(conn.id, channel)

    def disconnect(self, conn: Connection) -> None:
        self.state.disconnect(conn.id)
        self.state.unwatch_all(conn)

    def query(self, conn: Connection, query: PresenceQuery) -> None:
        """Answer ``presence.state`` and start or stop the watch: the reply is queued
        before any diff that follows it, so a client applying those diffs to it stays
        current."""
        org = conn.identity.org_id or ""
        if query.watch:
            self.state.watch(conn, org, query.channel)
        elif query.watch is False:
            self.state.unwatch(conn, org, query.channel)
        members, count = self.state.members(org, query.channel, self.max_members)
        watching = query.channel in conn.session.watching
        conn.reply(
            presence_state_frame(rfc3339_now(), query.channel, members, count, watching, conn.session.encode)
        )

    # -- component: diffs out ----------------------------------------------------------

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.tick()

    def tick(self) -> None:
        """The interval's diffs to their watchers: each frame encoded once."""
        diffs = self.state.take_diffs()
        if not diffs:
            return
        touched: dict[Connection, None] = {}
        timestamp = rfc3339_now()
        for diff in diffs:
            watchers = self.state.watchers(diff.org, diff.name)
            if not watchers:
                continue
            frames: dict[Encode, bytes] = {}  # encoded once per format
            # A copy: a reply past the outbox's byte bound closes its connection, which
            # stops watching (the set changes under the loop).
            for conn in list(watchers):
                encode = conn.session.encode
                if (frame := frames.get(encode)) is None:
                    frame = frames[encode] = presence_diff_frame(
                        timestamp, diff.name, diff.joined, diff.left, diff.count, self.max_members, encode
                    )
                conn.reply(frame)
                touched[conn] = None
            self.stats.presence_diffs += 1
        for conn in touched:
            conn.flush()

    # -- component: Redis --------------------------------------------------------------

    async def sync(self) -> None:
        failures = 0
        while True:
            pubsub: Any = None
            try:
                if isinstance(self.client, RedisCluster):
                    await self.client.initialize()  # its pub/sub needs the slot map first
                pubsub = self.client.pubsub()
                await pubsub.subscribe(CHANNEL)
                await self._republish()
                await self._beat(reload_all=True)  # what was published meanwhile was lost
                if not self.connected:
                    logger.info("presence: in step through Redis as %s", self.instance)
                self.connected = True
                failures = 0
                await self._follow(pubsub)
            except (*UNAVAILABLE, redis.exceptions.RedisError) as exc:
                if self.connected:
                    logger.error("presence: Redis unavailable, retrying: %r", exc)
                self.connected = False
                await retry_pause(self.backoff.delay(failures, random.random()))
                failures += 1
            finally:
                try:
                    if pubsub is not None:
                        await pubsub.aclose()
                except Exception:
                    logger.debug("presence: closing the subscription failed", exc_info=True)

    async def _follow(self, pubsub: Any) -> None:
        loop = asyncio.get_running_loop()
        next_flush = loop.time() + self.interval
        next_beat = loop.time() + self.heartbeat
        while True:
            raise_if_cancelled()
            wait = max(0.0, min(next_flush, next_beat) - loop.time())
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
            if message is not None:
                await self._received(message["data"])
            now = loop.time()
            if now >= next_flush:
                await self._flush()
                next_flush = now + self.interval
            if now >= next_beat:
                await self._beat()
                next_beat = now + self.heartbeat

    def _pipeline(self) -> Any:
        return self.client.pipeline(transaction=False)

    async def _publish(self, pipe: Any, batch: _Batch) -> list[Any]:
        """Run ``pipe`` with the ``PUBLISH`` of ``batch`` last (Cluster: after it, since
        its pipelines refuse ``PUBLISH``); the hash is written before the message goes."""
        if isinstance(self.client, RedisCluster):
            replies: list[Any] = await pipe.execute()
            await self.client.publish(CHANNEL, _encode(batch))
            return replies
        pipe.publish(CHANNEL, _encode(batch))
        replies = await pipe.execute()
        return replies

    async def _flush(self) -> None:
        changes = self.state.take_changes()
        if not changes:
            return
        key = hash_key(self.instance)
        sets: dict[bytes, int] = {_encode(k): n for k, n in changes if n}
        sets[SEQ_FIELD] = self.state.seq
        pipe = self._pipeline()
        pipe.hset(key, mapping=sets)
        if gone := [_encode(k) for k, n in changes if not n]:
            pipe.hdel(key, *gone)
        pipe.pexpire(key, int(self.expiry * 1000))
        await self._publish(pipe, _Batch(self.instance, self.state.seq, [(*k, n) for k, n in changes]))
        self.stats.presence_flushes += 1

    async def _republish(self) -> None:
        seq, state = self.state.republish()
        key = hash_key(self.instance)
        pipe = self._pipeline()
        pipe.delete(key)
        pipe.hset(key, mapping={SEQ_FIELD: seq, **{_encode(k): n for k, n in state.items()}})
        pipe.pexpire(key, int(self.expiry * 1000))
        pipe.zadd(REGISTRY_KEY, {self.instance: time.time()})
        await self._publish(pipe, _Batch(self.instance, seq))
        self.stats.presence_flushes += 1

    async def _beat(self, *, reload_all: bool = False) -> None:
        now = time.time()
        pipe = self._pipeline()
        pipe.zadd(REGISTRY_KEY, {self.instance: now})
        pipe.pexpire(hash_key(self.instance), int(self.expiry * 1000))
        pipe.zrange(REGISTRY_KEY, 0, -1, withscores=True)
        added, _, registry = (await self._publish(pipe, _Batch(self.instance, self.state.seq)))[:3]
        if added:  # purged while cut off (the others took it for dead): write it all again
            logger.warning("presence: this instance had been taken for dead; republishing")
            await self._republish()
        beats = {(m.decode() if isinstance(m, bytes) else m): float(s) for m, s in registry}
        await self._sweep(beats, now, reload_all)

    async def _sweep(self, beats: dict[str, float], now: float, reload_all: bool) -> None:
        dead = [i for i in expired(beats, now, self.expiry) if i != self.instance]
        if dead:
            pipe = self._pipeline()
            for instance in dead:
                pipe.zrem(REGISTRY_KEY, instance)
                pipe.delete(hash_key(instance))
            await pipe.execute()
            logger.info("presence: instances expired (no heartbeat for %.1fs): %s", self.expiry, dead)
            self.stats.presence_expired += len(dead)
        live = {i for i in beats if i not in dead}
        for instance in self.state.others():
            if instance not in live:
                self.state.drop(instance)
        for instance in live:
            if instance != self.instance and (reload_all or instance not in self.state.instances):
                await self._reload(instance)

    async def _received(self, data: bytes) -> None:
        try:
            batch = _batch_decoder.decode(data)
        except msgspec.DecodeError:
            logger.warning("presence: ignoring a message that is not a presence batch (%d bytes)", len(data))
            return
        changes = None if batch.c is None else [((o, n, u), c) for o, n, u, c in batch.c]
        if not self.state.remote(batch.i, batch.s, changes):
            await self._reload(batch.i)

    async def _reload(self, instance: str) -> None:
        raw: dict[bytes, bytes] = await self.client.hgetall(hash_key(instance))
        self.stats.presence_reloads += 1
        if not raw:  # a live instance's hash always holds ~seq: this one is gone
            self.state.drop(instance)
            return
        seq = int(raw.pop(SEQ_FIELD, b"0"))
        full: dict[Key, int] = {}
        for field, value in raw.items():
            try:
                full[_key_decoder.decode(field)] = int(value)
            except (msgspec.DecodeError, ValueError):
                logger.warning("presence: ignoring a bad field in %s", hash_key(instance))
        self.state.reload(instance, seq, full)

    async def aclose(self) -> None:
        """On shutdown: this instance's presence is deleted at once (its users leave
        everywhere now, not after the expiry); best effort, bounded by a heartbeat."""
        if self.client is None:
            return
        if self.connected:
            try:
                async with asyncio.timeout(min(2.0, self.heartbeat)):
                    pipe = self._pipeline()
                    pipe.zrem(REGISTRY_KEY, self.instance)
                    pipe.delete(hash_key(self.instance))
                    await self._publish(pipe, _Batch(self.instance, self.state.seq + 1))
            except (TimeoutError, *UNAVAILABLE, redis.exceptions.RedisError) as exc:
                logger.warning("presence: could not withdraw this instance at shutdown: %r", exc)
        await self.client.aclose()
