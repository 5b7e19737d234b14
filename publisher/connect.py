"""Redis clients for the three deployments flowwire runs on: one server, Sentinel,
Cluster (docs/operations.md, "High availability"). The publisher, the gateway and every
CLI command build their clients here, from one *target* string, so that they all follow
a failover the same way.

A target is a URL:

- ``redis://``, ``rediss://``, ``unix://``: one server (redis-py's URL forms);
- ``redis+sentinel://[:password@]host:port,host:port/<master>[/<db>][?sentinel_password=...]``:
  the primary of ``<master>`` as the sentinels name it, asked again after every
  connection failure (``REDIS_SENTINELS``, ``REDIS_SENTINEL_MASTER``,
  ``REDIS_SENTINEL_PASSWORD``; the password is the data nodes');
- ``redis+cluster://[:password@]host:port,host:port``: a Redis Cluster, from seed nodes
  (``REDIS_CLUSTER_NODES``).

Failover: a Sentinel client's connections are made to whatever the sentinels name as
the primary *when the connection is made*; a connection that finds a replica (the old
primary demoted, ``READONLY``) is dropped and reported as a connection error. A Cluster
client refreshes its slot map after a connection error or a ``MOVED``. Either way, a
failure surfaces once as a connection error and the caller's next attempt reaches the
new primary: callers keep their own retry policy (the reader's and the mirror's backoff,
the publisher's deadline).

Keys that must live on one node (Cluster) share a hash tag: :func:`companion_key` names
a key in the slot of the stream key without renaming the stream.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.asyncio.sentinel as aiosentinel
import redis.cluster
import redis.sentinel
from redis.crc import key_slot

__all__ = [
    "CLUSTER_SCHEME",
    "SENTINEL_SCHEME",
    "UNAVAILABLE",
    "Target",
    "async_client",
    "companion_key",
    "parse_target",
    "raise_if_cancelled",
    "retry_pause",
    "sync_client",
]

SENTINEL_SCHEME: Final = "redis+sentinel"
CLUSTER_SCHEME: Final = "redis+cluster"

#: A Redis that cannot be reached, or is failing over: the command was refused before it
#: ran (so a retry cannot apply it twice). The node is a replica now (READONLY), the slot
#: moved or is migrating (ASK, TRYAGAIN), the cluster or the primary is down
#: (CLUSTERDOWN, MASTERDOWN).
UNAVAILABLE: Final = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.AskError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
)


def raise_if_cancelled() -> None:
    """Raise ``CancelledError`` if the current task has been asked to stop. redis-py can
    swallow a cancellation: one that lands while it connects becomes a connection error
    (a Cluster node down: a gateway's SIGTERM waited for its backoff loop for ever), and
    one that lands as a pub/sub read times out becomes an empty read (presence's loop
    went on after its gateway's drain). A loop that calls Redis and goes on looks first."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def retry_pause(delay: float) -> None:
    """Wait ``delay`` seconds before retrying a failed Redis call, unless the task has
    been asked to stop (:func:`raise_if_cancelled`)."""
    raise_if_cancelled()
    await asyncio.sleep(delay)


Mode = Literal["single", "sentinel", "cluster"]


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed target: the mode, and what each mode needs."""

    mode: Mode
    url: str  # single: the redis-py URL
    nodes: tuple[tuple[str, int], ...] = ()  # sentinels, or cluster seeds
    master: str = ""
    db: int = 0
    password: str | None = None
    sentinel_password: str | None = None


def parse_hostports(name: str, value: str) -> tuple[tuple[str, int], ...]:
    """``"host:port,host:port"`` (IPv6 as ``[::1]:port``); the error names ``name``."""
    from publisher.settings import SettingError

    out = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingError(name, value, "comma-separated host:port pairs, e.g. 10.0.0.1:26379")
        out.append((host, int(port)))
    if not out:
        raise SettingError(name, value, "at least one host:port")
    return tuple(out)


def format_hostports(nodes: tuple[tuple[str, int], ...]) -> str:
    return ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in nodes)


def sentinel_url(
    sentinels: tuple[tuple[str, int], ...],
    master: str,
    *,
    password: str | None = None,
    sentinel_password: str | None = None,
    db: int = 0,
) -> str:
    auth = f":{quote(password, safe='')}@" if password else ""
    query = f"?sentinel_password={quote(sentinel_password, safe='')}" if sentinel_password else ""
    return f"{SENTINEL_SCHEME}://{auth}{format_hostports(sentinels)}/{quote(master, safe='')}/{db}{query}"


def cluster_url(nodes: tuple[tuple[str, int], ...], *, password: str | None = None) -> str:
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"{CLUSTER_SCHEME}://{auth}{format_hostports(nodes)}"


def parse_target(url: str) -> Target:
    """The target a URL names; :class:`~publisher.settings.SettingError` (naming
    ``REDIS_URL``) when it is not one."""
    from publisher.settings import SettingError

    scheme, sep, _ = url.partition("://")
    if scheme not in (SENTINEL_SCHEME, CLUSTER_SCHEME):
        return Target("single", url)
    if not sep:
        raise SettingError("REDIS_URL", url, f"a {scheme}://host:port,... URL")
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    password = unquote(userinfo.partition(":")[2]) or None if userinfo else None
    nodes = parse_hostports("REDIS_URL", hosts)
    if scheme == CLUSTER_SCHEME:
        if parts.path.strip("/"):
            raise SettingError("REDIS_URL", url, "a cluster URL without a path (Cluster has database 0 only)")
        return Target("cluster", url, nodes, password=password)
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise SettingError("REDIS_URL", url, f"{SENTINEL_SCHEME}://host:port,.../<master name>[/<db>]")
    sentinel_password = parse_qs(parts.query).get("sentinel_password", [None])[0]
    return Target(
        "sentinel",
        url,
        nodes,
        master=path[0],
        db=int(path[1]) if len(path) == 2 else 0,
        password=password,
        sentinel_password=sentinel_password,
    )


def companion_key(stream_key: str, suffix: str) -> str:
    """A key in the same Cluster slot as ``stream_key``, whatever its name: a key whose
    name holds a ``{tag}`` is hashed by the tag alone, so ``{ws:events}:x`` lives with
    ``ws:events``. Keys a script touches together must share a slot."""
    for candidate in (f"{stream_key}:{suffix}", f"{{{stream_key}}}:{suffix}"):
        if key_slot(candidate.encode()) == key_slot(stream_key.encode()):
            return candidate
    raise ValueError(f"no key shares the slot of {stream_key!r}; use a stream key without '{{' or '}}'")


class _SentinelRedis(aioredis.Redis):
    """The primary's client; closing it closes its sentinels' connections too."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        manager = getattr(self.connection_pool, "sentinel_manager", None)
        for sentinel in getattr(manager, "sentinels", ()):
            await sentinel.aclose()


class _SyncSentinelRedis(redis.Redis):
    def close(self) -> None:
        super().close()
        manager = getattr(self.connection_pool, "sentinel_manager", None)
        for sentinel in getattr(manager, "sentinels", ()):
            sentinel.close()


def _sentinel_kwargs(target: Target, options: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "socket_connect_timeout": options.get("socket_connect_timeout") or 2.0,
        "socket_timeout": options.get("socket_connect_timeout") or 2.0,
    }
    if target.sentinel_password:
        kwargs["password"] = target.sentinel_password
    return kwargs


def _cluster_options(options: dict[str, Any]) -> dict[str, Any]:
    out = dict(options)
    out.pop("retry_on_timeout", None)  # not a cluster option; the cluster retries itself
    if out.get("retry", 0) is None:
        out.pop("retry")
    return out


def async_client(url: str, **options: Any) -> Any:
    """An asyncio client for ``url`` (``redis.asyncio.Redis`` or ``RedisCluster``)."""
    target = parse_target(url)
    if target.mode == "single":
        return aioredis.Redis.from_url(url, **options)
    if target.mode == "sentinel":
        sentinel = aiosentinel.Sentinel(list(target.nodes), sentinel_kwargs=_sentinel_kwargs(target, options))  # type: ignore[no-untyped-call]
        return sentinel.master_for(
            target.master, redis_class=_SentinelRedis, password=target.password, db=target.db, **options
        )
    return aiocluster.RedisCluster(
        startup_nodes=[aiocluster.ClusterNode(h, p) for h, p in target.nodes],
        password=target.password,
        **_cluster_options(options),
    )


def sync_client(url: str, **options: Any) -> Any:
    """A blocking client for ``url`` (``redis.Redis`` or ``redis.cluster.RedisCluster``)."""
    target = parse_target(url)
    if target.mode == "single":
        return redis.Redis.from_url(url, **options)
    if target.mode == "sentinel":
        sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            list(target.nodes), sentinel_kwargs=_sentinel_kwargs(target, options)
        )
        return sentinel.master_for(  # type: ignore[no-untyped-call]
            target.master, redis_class=_SyncSentinelRedis, password=target.password, db=target.db, **options
        )
    return redis.cluster.RedisCluster(
        startup_nodes=[redis.cluster.ClusterNode(h, p) for h, p in target.nodes],  # type: ignore[no-untyped-call]
        password=target.password,
        **_cluster_options(options),
    )
