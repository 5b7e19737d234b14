"""Append typed events to the stream: :class:`Publisher` (asyncio) and
:class:`BlockingPublisher` (threads, or executors not on asyncio).

Exceptions::

    PublishError              Redis refused the append (e.g. the key is not a stream)
    ├── InvalidEvent          the event is not valid; nothing was written
    └── PublisherUnavailable  Redis could not be reached within ``timeout``; retryable

A publish never blocks its caller longer than ``RedisSettings.timeout`` (defect 11: the
original's synchronous Redis publish stalled workflow execution when Redis was slow).
Within that bound, connection failures are retried with jittered exponential backoff,
and every attempt goes to the primary of the moment (``publisher.connect``: Sentinel
and Cluster failovers are followed without a restart).

The publish guarantee (docs/operations.md, "High availability")
----------------------------------------------------------------
By default a publish returns once the primary has appended the entry. Redis replicates
asynchronously: a failover can lose the last entries the primary acknowledged before it
died, and a retry after an ambiguous failure (the command ran, the reply was lost) may
append the event twice.

The strict publish removes both:

- ``PUBLISH_WAIT_REPLICAS=N``: after the appends, ``WAIT N`` on the same connection; the
  publish returns only once N replicas hold them (else it retries, then raises
  :class:`PublisherUnavailable`).
- Idempotency keys (``PUBLISH_DEDUPE_WINDOW``, on by default with ``WAIT``): each event
  is appended by a Lua script that first looks up its key ``{stream}:dedupe:<key>``
  (in the stream's Cluster slot: with partitioned streams, its partition's); when the
  key exists the script returns the id stored there instead of appending. The append
  and the key are one script, so they replicate together: a primary, old or newly
  promoted, holds both or neither. A retry therefore appends the event at most once,
  exactly: a key is checked where the entry would be.
  Within one call the key is random and reused by every retry; a caller that retries
  across calls (or processes) passes its own ``idempotency_key``. On a hit the script
  refreshes the key's expiry, a write, so that the retry's ``WAIT`` also covers the
  entry appended by the first attempt (``WAIT`` counts the writes of its connection).

Partitioned streams (``STREAM_PARTITIONS=P``): each event goes to the stream of its
execution (``schemas.partition.partition_of``); a batch is one packed write per Redis
node (one in all unless on a Cluster, where the partitions' primaries are written
concurrently, each with its own ``WAIT``), and the ids come back in the batch's order.
Both publishers write the primaries concurrently: :class:`Publisher` with
``asyncio.gather``, :class:`BlockingPublisher` with the first primary's share in the
calling thread and the others' on a ``ThreadPoolExecutor`` of its own (one thread per
primary it has seen, made on the first batch that spans two primaries, so never with
P = 1 or off a Cluster; shut down by ``close()``). When one primary fails, the ids the
others returned are kept and a retry sends only the failed share (``_merge``).
"""

from __future__ import annotations

import asyncio
import functools
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, Self

import redis
import redis.asyncio as aioredis
import redis.cluster
import redis.exceptions

from publisher.connect import UNAVAILABLE, async_client, companion_key, retry_pause, sync_client
from publisher.settings import DEFAULT_DEDUPE_WINDOW, RedisSettings
from schemas.events import Event, make_event
from schemas.partition import partition_keys, partition_of, partitions_key
from schemas.stream import encode_entry

__all__ = [
    "BlockingPublisher",
    "InvalidEvent",
    "Publication",
    "PublishError",
    "Publisher",
    "PublisherUnavailable",
]

_RETRYABLE: Final = UNAVAILABLE

#: Append unless the idempotency key is known (module docstring). KEYS: stream, key;
#: ARGV: window ms, MAXLEN (0: none), field, value, ...
DEDUPE_SCRIPT: Final = b"""\
local seen = redis.call('GET', KEYS[2])
if seen then
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
  return seen
end
local id
if ARGV[2] == '0' then
  id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
else
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
end
redis.call('SET', KEYS[2], id, 'PX', ARGV[1])
return id
"""


class PublishError(Exception):
    """Base of the publisher's errors."""

    retryable: bool = False


class InvalidEvent(PublishError, ValueError):
    """The event failed validation; nothing was written."""


class PublisherUnavailable(PublishError):
    """Redis did not accept the event within the configured time. Safe to retry."""

    retryable = True


@dataclass(frozen=True, slots=True)
class Publication:
    """An event with its optional routing envelope, for ``publish_many``."""

    event: Event
    org: str | None = None
    user: str | None = None
    #: the caller's idempotency key: a publish with a key already appended within
    #: ``PUBLISH_DEDUPE_WINDOW`` returns the first append's id and appends nothing
    idempotency_key: str | None = None


class _Short(Exception):
    """``WAIT`` returned before enough replicas acknowledged the appends."""

    def __init__(self, acked: int, wanted: int) -> None:
        super().__init__(f"the entries were appended, but {acked} of {wanted} replicas confirmed them")


#: One event to append: its entry fields, its idempotency key (``None``: plain XADD) and
#: its partition.
_Item = tuple[dict[str, bytes], str | None, int]


def _fields(event: Event, org: str | None, user: str | None) -> tuple[dict[str, bytes], str | None]:
    """The entry's fields and the event's execution id."""
    if not isinstance(event, Event):
        raise InvalidEvent(f"expected an Event, got {type(event).__name__}")
    try:
        checked = make_event(event.type, event.data)
        return encode_entry(checked, org=org, user=user), getattr(checked.data, "execution_id", None)
    except ValueError as exc:
        raise InvalidEvent(str(exc)) from None


def _batch(settings: RedisSettings, items: Iterable[Event | Publication]) -> list[_Item]:
    """The items to append, each with its idempotency key: the caller's, else (dedupe
    on) a random one kept by every retry of this call, else none."""
    auto = settings.dedupe > 0
    out: list[_Item] = []
    for item in items:
        if isinstance(item, Publication):
            key = item.idempotency_key
            if key is not None and not key:
                raise InvalidEvent("idempotency_key must be a non-empty string")
            fields, execution_id = _fields(item.event, item.org, item.user)
            key = key or (secrets.token_hex(12) if auto else None)
        else:
            fields, execution_id = _fields(item, None, None)
            key = secrets.token_hex(12) if auto else None
        out.append((fields, key, partition_of(execution_id, settings.partitions)))
    return out


def _retry_delay(attempt: int) -> float:
    # Full jitter, 20 ms doubling, capped at 500 ms.
    return random.uniform(0, min(0.5, 0.02 * 2**attempt))


def _attempt_timeout(settings: RedisSettings) -> float:
    # Sockets time out after a quarter of the budget, and an attempt starts only when a
    # whole one fits before the deadline: the caller is never blocked past ``timeout``.
    return settings.timeout / 4


def _wait_ms(settings: RedisSettings) -> int:
    # WAIT answers before the socket times out.
    return max(1, int(_attempt_timeout(settings) * 800))


def _client_options(settings: RedisSettings) -> dict[str, Any]:
    return {
        "socket_connect_timeout": _attempt_timeout(settings),
        "socket_timeout": _attempt_timeout(settings),
        "retry_on_timeout": False,
        "retry": None,
        "health_check_interval": 0,
    }


def _node_options(settings: RedisSettings) -> dict[str, Any]:
    # A client made with its constructor warns about retry_on_timeout (deprecated).
    return {k: v for k, v in _client_options(settings).items() if k != "retry_on_timeout"}


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def pack_xadd(key: bytes, maxlen: int, fields: dict[str, bytes]) -> bytes:
    """One ``XADD key [MAXLEN ~ n] * field value ...`` in RESP: the asyncio publisher
    packs its batch itself, once, instead of through redis-py's per-command Python
    packer (the publisher benchmark's largest cost)."""
    parts = [b"XADD", key]
    if maxlen:
        parts += [b"MAXLEN", b"~", str(maxlen).encode()]
    parts.append(b"*")
    for name, value in fields.items():
        parts += [name.encode(), value]
    return b"*%d\r\n" % len(parts) + b"".join(map(_bulk, parts))


def pack_dedupe(
    key: bytes, dedupe_key: bytes, window_ms: int, maxlen: int, fields: dict[str, bytes]
) -> bytes:
    """One ``EVAL`` of :data:`DEDUPE_SCRIPT`. ``EVAL``, not ``EVALSHA``: a newly
    promoted primary's script cache is empty, and the script is 400 bytes."""
    parts = [b"EVAL", DEDUPE_SCRIPT, b"2", key, dedupe_key, str(window_ms).encode(), str(maxlen).encode()]
    for name, value in fields.items():
        parts += [name.encode(), value]
    return b"*%d\r\n" % len(parts) + b"".join(map(_bulk, parts))


class _Packer:
    """The RESP of one attempt: the appends, then ``WAIT`` (strict publish)."""

    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        #: each partition's stream key, and its dedupe keys' prefix (in its slot)
        self.names = partition_keys(settings.stream_key, settings.partitions)
        self.keys = [name.encode() for name in self.names]
        self.dedupe_prefixes = [companion_key(name, "dedupe:").encode() for name in self.names]
        self.window_ms = int((settings.dedupe or DEFAULT_DEDUPE_WINDOW) * 1000)

    def pack(self, batch: list[_Item]) -> tuple[bytes, int]:
        """The bytes to send and the number of replies to read."""
        s = self.settings
        out = []
        for fields, idem, part in batch:
            key = self.keys[part]
            if idem is None:
                out.append(pack_xadd(key, s.maxlen, fields))
            else:
                out.append(
                    pack_dedupe(
                        key, self.dedupe_prefixes[part] + idem.encode(), self.window_ms, s.maxlen, fields
                    )
                )
        if s.wait_replicas:
            out.append(
                b"*3\r\n$4\r\nWAIT\r\n"
                + _bulk(str(s.wait_replicas).encode())
                + _bulk(str(_wait_ms(s)).encode())
            )
        return b"".join(out), len(batch) + (1 if s.wait_replicas else 0)

    def ids(self, replies: list[Any]) -> list[str]:
        """The ids, once ``WAIT`` (if any) was answered by enough replicas."""
        wanted = self.settings.wait_replicas
        if wanted:
            acked = int(replies.pop())
            if acked < wanted:
                raise _Short(acked, wanted)
        return _ids(replies)


def _ids(replies: Sequence[Any]) -> list[str]:
    return [r.decode() if isinstance(r, bytes) else str(r) for r in replies]


def _unavailable(s: RedisSettings, attempt: int, exc: BaseException) -> PublisherUnavailable:
    if isinstance(exc, _Short):
        return PublisherUnavailable(
            f"not confirmed by replicas within {s.timeout:g}s ({attempt} attempts): {exc}"
        )
    return PublisherUnavailable(f"Redis unavailable for {s.timeout:g}s ({attempt} attempts): {exc!r}")


def _mismatch(s: RedisSettings, recorded: Any) -> None:
    """The first publish checks ``STREAM_PARTITIONS`` against the value the gateways
    recorded (``schemas.partition.partitions_key``; none yet: nothing to check)."""
    if recorded is not None and int(recorded) != s.partitions:
        raise PublishError(
            f"STREAM_PARTITIONS is {s.partitions}, but the gateways of this stream read {int(recorded)} "
            f"partitions ({partitions_key(s.stream_key)}): its events would reach no client"
        )


def _is_cluster(client: Any) -> bool:
    return isinstance(client, aioredis.RedisCluster | redis.cluster.RedisCluster)


def _by_node(
    cluster: Any, names: Sequence[str], batch: list[_Item], nodes: dict[str, Any], make: Callable[..., Any]
) -> list[tuple[Any, list[int]]]:
    """A Cluster's batch grouped by the primary of each item's partition: each node's
    connection pool (a client per node, made once with ``make`` and kept in ``nodes``)
    and the items (by index) it appends. The same for the asyncio and blocking
    publishers; the cluster client's slot map must be current."""
    groups: dict[str, list[int]] = {}
    for i, (_, _, part) in enumerate(batch):
        node = cluster.get_node_from_key(names[part])
        if node.name not in nodes:
            password = cluster.nodes_manager.connection_kwargs.get("password")
            nodes[node.name] = make(host=node.host, port=node.port, password=password)
        groups.setdefault(node.name, []).append(i)
    return [(nodes[name].connection_pool, items) for name, items in groups.items()]


def _pending(ids: list[str | None]) -> list[int]:
    """The items of a batch not appended yet (``None`` in ``ids``)."""
    return [i for i, entry_id in enumerate(ids) if entry_id is None]


def _share(batch: list[_Item], pending: list[int], items: list[int]) -> list[_Item]:
    """One node's share of the pending items (``items`` index ``pending``)."""
    return [batch[pending[j]] for j in items]


def _merge(
    groups: list[tuple[Any, list[int]]],
    results: Sequence[list[str] | BaseException],
    pending: list[int],
    ids: list[str | None],
) -> list[str]:
    """Each node's ids (``results``, in the order of ``groups``) into ``ids``; the first
    node's failure is raised after the others' ids are kept, so that a retry sends only
    the failed nodes' shares. The ids in batch order when every node answered."""
    failure: BaseException | None = None
    for (_, items), got in zip(groups, results, strict=True):
        if isinstance(got, BaseException):
            failure = failure or got
            continue
        for j, entry_id in zip(items, got, strict=True):
            ids[pending[j]] = entry_id
    if failure is not None:
        raise failure
    return [entry_id or "" for entry_id in ids]


class Publisher:
    """Asyncio publisher. Use as ``async with Publisher(settings) as pub: ...``."""

    def __init__(
        self, settings: RedisSettings | None = None, *, client: aioredis.Redis | Any | None = None
    ) -> None:
        self.settings = settings or RedisSettings.from_env()
        self._owns_client = client is None
        self._redis: Any = client or async_client(self.settings.url, **_client_options(self.settings))
        self._packer = _Packer(self.settings)
        # Cluster: appends go straight to the stream slot's primary, on a client of its
        # own (so that WAIT runs on the appends' connection); re-resolved after a failure.
        self._nodes: dict[str, aioredis.Redis] = {}
        self._refresh = False
        self._checked = False  # STREAM_PARTITIONS against the gateways' (_mismatch)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Publisher:
        return cls(RedisSettings(url=url, **options))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for node in self._nodes.values():
            await node.aclose()
        self._nodes.clear()
        if self._owns_client:
            await self._redis.aclose()

    async def publish(
        self,
        event: Event,
        *,
        org: str | None = None,
        user: str | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Append one event; returns its stream entry id. With ``idempotency_key``, a
        key already appended within ``PUBLISH_DEDUPE_WINDOW`` returns that append's id."""
        return (await self._send(_batch(self.settings, [Publication(event, org, user, idempotency_key)])))[0]

    async def publish_many(self, events: Iterable[Event | Publication]) -> list[str]:
        """Append several events in one round trip (a pipeline); their ids, in order."""
        batch = _batch(self.settings, events)
        return await self._send(batch) if batch else []

    async def _pools(self, batch: list[_Item]) -> list[tuple[Any, list[int]]]:
        """Which connection pool appends which items (by index): one pool, but on a
        Cluster the primary of each item's partition."""
        if not _is_cluster(self._redis):
            return [(self._redis.connection_pool, list(range(len(batch))))]
        if not self._redis.get_nodes():
            self._refresh = False
            await self._redis.initialize()
        elif self._refresh:
            self._refresh = False
            await self._redis.nodes_manager.initialize()
        make = functools.partial(aioredis.Redis, **_node_options(self.settings))
        return _by_node(self._redis, self._packer.names, batch, self._nodes, make)

    async def _append(self, batch: list[_Item], ids: list[str | None]) -> list[str]:
        """The items of ``batch`` not appended yet (``None`` in ``ids``) as one packed
        write per node (concurrently), then their replies. The ids of the nodes that
        answered are kept in ``ids`` when another failed: a retry sends only the rest."""
        pending = _pending(ids)
        groups = await self._pools([batch[i] for i in pending])
        if len(groups) == 1 and len(pending) == len(batch):  # one node (always with one stream)
            return await self._append_to(groups[0][0], batch)
        results = await asyncio.gather(
            *(self._append_to(pool, _share(batch, pending, items)) for pool, items in groups),
            return_exceptions=True,
        )
        return _merge(groups, results, pending, ids)

    async def _append_to(self, pool: Any, batch: list[_Item]) -> list[str]:
        """Items as one packed write, then their replies: one round trip."""
        packed, count = self._packer.pack(batch)
        conn = await pool.get_connection()
        try:
            await conn.send_packed_command(packed, check_health=False)
            replies = [await conn.read_response() for _ in range(count)]
        except BaseException:
            # Replies may be left unread on it: never hand this connection out again.
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)
        return self._packer.ids(replies)

    async def _send(self, batch: list[_Item]) -> list[str]:
        s = self.settings
        deadline = time.monotonic() + s.timeout
        attempt = 0
        ids: list[str | None] = [None] * len(batch)
        while True:
            try:
                async with asyncio.timeout(max(0.001, deadline - time.monotonic())):
                    if not self._checked:
                        _mismatch(s, await self._redis.get(partitions_key(s.stream_key)))
                        self._checked = True
                    return await self._append(batch, ids)
            except (*_RETRYABLE, TimeoutError, _Short) as exc:
                self._refresh = True
                delay = _retry_delay(attempt)
                attempt += 1
                if time.monotonic() + delay + _attempt_timeout(s) > deadline:
                    raise _unavailable(s, attempt, exc) from exc
                await retry_pause(delay)
            except redis.exceptions.ResponseError as exc:
                raise PublishError(f"Redis refused the append: {exc}") from exc


class BlockingPublisher:
    """Thread-safe blocking publisher, same contract as :class:`Publisher`."""

    def __init__(
        self, settings: RedisSettings | None = None, *, client: redis.Redis | Any | None = None
    ) -> None:
        self.settings = settings or RedisSettings.from_env()
        self._owns_client = client is None
        self._redis: Any = client or sync_client(self.settings.url, **_client_options(self.settings))
        self._packer = _Packer(self.settings)
        self._nodes: dict[str, redis.Redis] = {}
        self._refresh = False
        self._lock = threading.Lock()  # Cluster: the slot map, node clients and executor
        self._checked = False
        # Cluster, P > 1: writes the other primaries' shares of a batch (_submit).
        self._executor: ThreadPoolExecutor | None = None
        self._workers = 0

    @classmethod
    def from_url(cls, url: str, **options: Any) -> BlockingPublisher:
        return cls(RedisSettings(url=url, **options))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            executor, self._executor, self._workers = self._executor, None, 0
        if executor is not None:
            executor.shutdown(wait=True)
        for node in self._nodes.values():
            node.close()
        self._nodes.clear()
        if self._owns_client:
            self._redis.close()

    def publish(
        self,
        event: Event,
        *,
        org: str | None = None,
        user: str | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        return self._send(_batch(self.settings, [Publication(event, org, user, idempotency_key)]))[0]

    def publish_many(self, events: Iterable[Event | Publication]) -> list[str]:
        batch = _batch(self.settings, events)
        return self._send(batch) if batch else []

    def _pools(self, batch: list[_Item]) -> list[tuple[Any, list[int]]]:
        if not _is_cluster(self._redis):
            return [(self._redis.connection_pool, list(range(len(batch))))]
        with self._lock:
            if self._refresh:
                self._refresh = False
                self._redis.nodes_manager.initialize()
            make = functools.partial(redis.Redis, **_node_options(self.settings))
            return _by_node(self._redis, self._packer.names, batch, self._nodes, make)

    def _append(self, batch: list[_Item], ids: list[str | None]) -> list[str]:
        """As :meth:`Publisher._append`: one packed write per node, concurrently (the
        first node's in the calling thread, the others' on the publisher's threads), for
        the items not appended yet (``None`` in ``ids``, kept across retries)."""
        pending = _pending(ids)
        groups = self._pools([batch[i] for i in pending])
        if len(groups) == 1 and len(pending) == len(batch):  # one node (always with one stream)
            return self._append_to(groups[0][0], batch)
        futures = self._submit([(pool, _share(batch, pending, items)) for pool, items in groups[1:]])
        results: list[list[str] | BaseException] = []
        try:
            results.append(self._append_to(groups[0][0], _share(batch, pending, groups[0][1])))
        except Exception as exc:
            results.append(exc)
        results += [future.exception() or future.result() for future in futures]
        return _merge(groups, results, pending, ids)

    def _submit(self, shares: list[tuple[Any, list[_Item]]]) -> list[Future[list[str]]]:
        """The shares of the other nodes, started on the publisher's threads: one per
        primary seen (``_nodes``), made on the first batch that spans two primaries
        (never with one stream or off a Cluster), remade larger when primaries appear.
        Under the lock, so that no thread submits to an executor another shut down."""
        if not shares:
            return []
        with self._lock:
            if self._executor is None or self._workers < len(self._nodes):
                if self._executor is not None:
                    self._executor.shutdown(wait=False)  # its running writes finish
                self._workers = len(self._nodes)
                self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="flowwire-publish")
            return [self._executor.submit(self._append_to, pool, share) for pool, share in shares]

    def _append_to(self, pool: Any, batch: list[_Item]) -> list[str]:
        packed, count = self._packer.pack(batch)
        conn = pool.get_connection()
        try:
            conn.send_packed_command([packed], check_health=False)
            replies = [conn.read_response() for _ in range(count)]
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)
        return self._packer.ids(replies)

    def _send(self, batch: list[_Item]) -> list[str]:
        s = self.settings
        deadline = time.monotonic() + s.timeout
        attempt = 0
        ids: list[str | None] = [None] * len(batch)
        while True:
            try:
                if not self._checked:
                    _mismatch(s, self._redis.get(partitions_key(s.stream_key)))
                    self._checked = True
                return self._append(batch, ids)
            except (*_RETRYABLE, _Short) as exc:
                self._refresh = True
                delay = _retry_delay(attempt)
                attempt += 1
                if time.monotonic() + delay + _attempt_timeout(s) > deadline:
                    raise _unavailable(s, attempt, exc) from exc
                time.sleep(delay)
            except redis.exceptions.ResponseError as exc:
                raise PublishError(f"Redis refused the append: {exc}") from exc
