"""The legacy mirror: every stream entry published to ``ws:broadcast:all`` in the
original's format, exactly once across all pods in normal operation (docs/operations.md, "Several pods").

Theory of operation
-------------------
Pods share the consumer group ``ws-mirror``: ``XREADGROUP`` hands each new entry to one
pod, which publishes one legacy message per target channel (original-defects.md: Go
field names, ``{"Channel", "Message": {"type", "timestamp", "data"}, "WorkflowID",
"ExecutionID", "Status", "UserID"}``) and only then acknowledges the entry. A pod that
dies leaves its entries pending; every live pod periodically claims entries idle for
longer than ``MIRROR_CLAIM_IDLE`` (``XAUTOCLAIM``) and mirrors them. So an entry is
mirrored at least once, and exactly once unless a pod dies between publishing and
acknowledging.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import time
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.cluster import RedisCluster

from gateway.core.backoff import Backoff
from gateway.core.routing import channels_for
from gateway.metrics import Stats
from publisher.connect import UNAVAILABLE, async_client, parse_target, raise_if_cancelled, retry_pause
from schemas.stream import MAX_EVENT_SIZE, InvalidEntry, StreamEvent, decode_entry

__all__ = ["BROADCAST_CHANNEL", "GROUP", "Mirror", "legacy_messages"]

logger = logging.getLogger("flowwire.mirror")

BROADCAST_CHANNEL: Final = "ws:broadcast:all"
GROUP: Final = "ws-mirror"
_BATCH: Final = 100
_FAILURES = UNAVAILABLE


class _Message(msgspec.Struct):
    type: str
    timestamp: str
    data: msgspec.Raw


class _Legacy(msgspec.Struct):
    Channel: str  # the original's Go field names
    Message: _Message
    WorkflowID: str
    ExecutionID: str
    Status: str
    UserID: str


_encoder: Final = msgspec.json.Encoder()


def legacy_messages(event: StreamEvent) -> list[bytes]:
    """The original's pub/sub messages for ``event``: one per target channel."""
    message = _Message(event.type, event.timestamp.decode(), msgspec.Raw(event.data))
    out = []
    for channel in channels_for(event):
        name = channel.kind if channel.key is None else f"{channel.kind}:{channel.key}"
        out.append(
            _encoder.encode(
                _Legacy(
                    Channel=name,
                    Message=message,
                    WorkflowID=event.workflow_id or "",
                    ExecutionID=event.execution_id,
                    Status=event.status or "",
                    UserID=event.user or "",
                )
            )
        )
    return out


class Mirror:
    def __init__(
        self,
        url: str,
        stream_key: str,
        *,
        claim_idle: float,
        stats: Stats,
        max_event_size: int = MAX_EVENT_SIZE,
    ) -> None:
        self.stream_key = stream_key
        self.max_event_size = max_event_size
        self.claim_idle_ms = int(claim_idle * 1000)
        self.stats = stats
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        # A Sentinel primary or a Cluster too (``publisher.connect``); after a failover
        # the next round reaches the new primary.
        # Its XREADGROUP blocks 1 s: a socket silent for 20 s is a primary that vanished.
        self.client: Any = async_client(url, socket_connect_timeout=2.0, socket_timeout=20.0, retry=None)
        self._password = parse_target(url).password
        self._nodes: dict[str, aioredis.Redis] = {}  # Cluster: the stream's primary
        self.backoff = Backoff(base=0.1, cap=5.0)
        self.connected = False
        self._next_claim = 0.0

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                await self._ensure_group()
                self.connected = True
                failures = 0
                while True:
                    raise_if_cancelled()
                    await self._step()
            except (*_FAILURES, redis.exceptions.RedisError) as exc:
                # ResponseError: e.g. NOGROUP after Redis came back empty; the group is
                # created again on the next round. Cluster: MOVED, CLUSTERDOWN during a
                # failover; the slot map is refreshed by the next round's commands.
                if self.connected:
                    logger.error("mirror: Redis unavailable, retrying: %r", exc)
                self.connected = False
                await retry_pause(self.backoff.delay(failures, random.random()))
                failures += 1

    async def _ensure_group(self) -> None:
        try:
            await self.client.xgroup_create(self.stream_key, GROUP, id="$", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _step(self) -> None:
        if time.monotonic() >= self._next_claim:
            self._next_claim = time.monotonic() + max(0.5, self.claim_idle_ms / 2000)
            await self._claim()
        reply: Any = await self.client.xreadgroup(
            GROUP, self.consumer, {self.stream_key: ">"}, count=_BATCH, block=1000
        )
        if reply:
            await self._mirror(reply[0][1])

    async def _claim(self) -> None:
        start = "0-0"
        while True:
            reply: Any = await self.client.xautoclaim(
                self.stream_key, GROUP, self.consumer, self.claim_idle_ms, start_id=start, count=_BATCH
            )
            start, entries = reply[0], reply[1]
            live = [e for e in entries if e[1]]  # trimmed entries come back empty
            if live:
                self.stats.mirror_claimed += len(live)
                logger.info("mirror: claimed %d entries from a silent pod", len(live))
                await self._mirror(live)
            gone = [e[0] for e in entries if not e[1]]
            if gone:
                await self.client.xack(self.stream_key, GROUP, *gone)
            if start in (b"0-0", "0-0"):
                return

    def _pipeline(self) -> Any:
        """A pipeline for the PUBLISHes and the XACK. Cluster: on a client of the stream
        slot's primary (redis-py's cluster pipeline refuses PUBLISH); a PUBLISH on any
        node of a cluster reaches the subscribers of every node."""
        if not isinstance(self.client, RedisCluster):
            return self.client.pipeline(transaction=False)
        node = self.client.get_node_from_key(self.stream_key)
        if node is None:
            raise redis.exceptions.ConnectionError("no primary serves the stream's slot now")
        if node.name not in self._nodes:
            self._nodes[node.name] = aioredis.Redis(
                host=node.host,
                port=int(node.port),
                password=self._password,
                socket_connect_timeout=2.0,
                retry=None,  # type: ignore[arg-type]
            )
        return self._nodes[node.name].pipeline(transaction=False)

    async def _mirror(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        pipe = self._pipeline()
        published = 0
        for entry_id, fields in entries:
            try:
                event = decode_entry(entry_id, fields, max_size=self.max_event_size)
            except InvalidEntry:
                continue  # the reader logs and counts it
            for message in legacy_messages(event):
                pipe.publish(BROADCAST_CHANNEL, message)
                published += 1
        pipe.xack(self.stream_key, GROUP, *[entry_id for entry_id, _ in entries])
        await pipe.execute()
        self.stats.mirror_published += published

    async def aclose(self) -> None:
        for node in self._nodes.values():
            await node.aclose()
        await self.client.aclose()
