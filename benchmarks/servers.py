"""The servers the harness compares, how each is started, subscribed to and fed.

========================  ==============================================================
``flowwire``              ``python -m gateway serve`` (uvicorn, websockets-sansio, direct
                          coalesced writes), reading the stream; default settings
``flowwire-deflate``      the same with ``WS_COMPRESSION=on`` and clients that ask for it
``raw1`` / ``raw10``      baselines/raw_server.py: one pre-built frame per write / 10 frames
                          per write, reading the stream
``naive``                 baselines/naive_gateway.py: Starlette, Redis pub/sub, one
                          ``send_text`` per client per channel per event
``socketio``              baselines/socketio_server.py: python-socketio, AsyncRedisManager,
                          emit to a room
========================  ==============================================================

Feeds: the stream servers get events from :class:`publisher.BlockingPublisher`
(``publish_many``, pipelined ``XADD``); the ids are Redis's. The pub/sub servers get
them the way they would in production: the legacy pub/sub messages of the original
(one per target channel), or a write-only ``socketio.RedisManager``; their ids,
``"<ms>-<seq>"``, are made by the feeder at publish time, so the receiver measures the
same append-to-receive latency and checks order the same way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from benchmarks.common import SECRET, Receiver, ServerProc, free_port, python, sample_payload, token

__all__ = ["KINDS", "Feeder", "Kind", "make_feeder", "start_receiver", "start_server"]

_EVENT_TYPE: Final = "execution.started"


@dataclass(frozen=True)
class Kind:
    name: str
    label: str
    feed: str  # "stream" | "legacy" | "socketio"
    sio: bool = False
    deflate: bool = False


KINDS: Final[dict[str, Kind]] = {
    k.name: k
    for k in (
        Kind("flowwire", "flowwire", "stream"),
        Kind("flowwire-deflate", "flowwire, permessage-deflate on", "stream", deflate=True),
        Kind("raw1", "raw uvloop, 1 frame per write", "stream"),
        Kind("raw10", "raw uvloop, 10 frames per write", "stream"),
        Kind("naive", "naive gateway (Starlette, pub/sub, send_text loop)", "legacy"),
        Kind("socketio", "python-socketio + AsyncRedisManager", "socketio", sio=True),
    )
}


#: The baselines served by uvicorn, with the same command line (baselines/__init__.py).
_UVICORN_BASELINES: Final[dict[str, str]] = {
    "naive": "benchmarks.baselines.naive_gateway",
    "socketio": "benchmarks.baselines.socketio_server",
}


def start_server(
    kind: Kind, redis_url: str, *, batch: int | None = None, env: dict[str, str] | None = None
) -> ServerProc:
    """Start ``kind`` pinned to the server core; returns once it listens.

    ``batch``: entries per ``XREAD`` of the stream servers (1: one event at a time)."""
    port = free_port()
    py = python()
    if kind.name.startswith("flowwire"):
        server_env = {
            "REDIS_URL": redis_url,
            "JWT_SECRET": SECRET,
            "LOG_LEVEL": "warning",
            # The receiver's connections all use one token, so one user: the per-user
            # limit (default 100) would refuse all but the first 100 with 429.
            "MAX_CONNECTIONS_PER_USER": "0",
            "WS_COMPRESSION": "on" if kind.deflate else "off",
            **(env or {}),
            **({"READER_BATCH": str(batch)} if batch else {}),
        }
        argv = [py, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", str(port)]
        proc = ServerProc(kind.name, argv, port, server_env)
    elif kind.name in ("raw1", "raw10"):
        argv = [
            py,
            "-m",
            "benchmarks.baselines.raw_server",
            "--port",
            str(port),
            "--redis",
            redis_url,
            "--per-write",
            "1" if kind.name == "raw1" else "10",
            "--count",
            str(batch or 500),
        ]
        proc = ServerProc(kind.name, argv, port, env)
    elif kind.name in _UVICORN_BASELINES:
        module = _UVICORN_BASELINES[kind.name]
        argv = [py, "-m", module, "--port", str(port), "--redis", redis_url, "--secret", SECRET]
        proc = ServerProc(kind.name, argv, port, env)
    else:
        raise ValueError(kind.name)
    proc.wait_listening()
    time.sleep(0.5)  # the reader / pub/sub subscription settles
    return proc


def subscribe_line(kind: Kind, channel: str) -> str:
    if kind.sio:
        return "42" + json.dumps(["subscribe", {"channel": channel}], separators=(",", ":"))
    return json.dumps({"type": "subscribe", "data": {"channel": channel}}, separators=(",", ":"))


def start_receiver(
    kind: Kind,
    port: int,
    conns: int,
    channels: Sequence[str],
    *,
    sources: int = 1,
    connect_timeout: float = 120,
) -> Receiver:
    """The C receiver with ``conns`` connections; connection ``i`` subscribes to
    ``channels[i % len(channels)]``. Returns once all are subscribed (or failed)."""
    tok = token()
    rec = Receiver(
        port=port,
        conns=conns,
        subscribe=[subscribe_line(kind, c) for c in channels],
        path="/socket.io/?EIO=4&transport=websocket" if kind.sio else f"/ws?token={tok}",
        sio_auth=("40" + json.dumps({"token": tok})) if kind.sio else None,
        deflate=kind.deflate,
        sources=sources,
        inflight=100 if kind.sio else 200,
        connect_timeout=connect_timeout,
    )
    try:
        rec.start()
    except BaseException:
        rec.close()
        raise
    return rec


# -- feeders ---------------------------------------------------------------------------------


class Feeder(Protocol):
    def publish(self, numbers: Sequence[int]) -> list[str]:
        """Publish the events numbered ``numbers`` (pipelined); their ids, in order."""

    def close(self) -> None: ...


class StreamFeeder:
    """flowwire's own publisher: ``BlockingPublisher.publish_many`` (pipelined XADD)."""

    def __init__(self, url: str, executions: int) -> None:
        from publisher import BlockingPublisher, RedisSettings
        from schemas.events import make_event

        self.pub = BlockingPublisher(RedisSettings(url=url, timeout=30))
        self.events = [make_event(_EVENT_TYPE, sample_payload(n, executions)) for n in range(executions)]
        self.executions = executions

    def publish(self, numbers: Sequence[int]) -> list[str]:
        ids: list[str] = []
        for i in range(0, len(numbers), 500):
            ids += self.pub.publish_many([self.events[n % self.executions] for n in numbers[i : i + 500]])
        return ids

    def close(self) -> None:
        self.pub.close()


class _IdClock:
    """``"<ms>-<seq>"`` ids for the pub/sub feeds: the publish time, strictly increasing."""

    def __init__(self) -> None:
        self.seq = 0

    def next(self) -> str:
        self.seq += 1
        return f"{time.time_ns() // 1_000_000}-{self.seq}"


def _message(n: int, executions: int, entry_id: str) -> dict[str, Any]:
    return {
        "type": _EVENT_TYPE,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "id": entry_id,
        "data": sample_payload(n, executions),
    }


class LegacyFeeder:
    """The original executor's path: ``PUBLISH ws:broadcast:all``, one legacy message per
    target channel of the event (executions, executions:{id}, workflows:{id}), pipelined."""

    def __init__(self, url: str, executions: int) -> None:
        import redis

        self.client: Any = redis.Redis.from_url(url)
        self.executions = executions
        self.ids = _IdClock()

    def publish(self, numbers: Sequence[int]) -> list[str]:
        ids: list[str] = []
        for i in range(0, len(numbers), 500):
            pipe = self.client.pipeline(transaction=False)
            for n in numbers[i : i + 500]:
                entry_id = self.ids.next()
                msg = _message(n, self.executions, entry_id)
                data = msg["data"]
                for channel in (
                    "executions",
                    f"executions:{data['execution_id']}",
                    f"workflows:{data['workflow_id']}",
                ):
                    legacy = {
                        "Channel": channel,
                        "Message": msg,
                        "WorkflowID": data["workflow_id"],
                        "ExecutionID": data["execution_id"],
                        "Status": data["status"],
                        "UserID": "",
                    }
                    pipe.publish("ws:broadcast:all", json.dumps(legacy, separators=(",", ":")))
                ids.append(entry_id)
            pipe.execute()
        return ids

    def close(self) -> None:
        self.client.close()


class SocketioFeeder:
    """python-socketio's producer: a write-only ``RedisManager`` emitting each event to
    the rooms of its channels (one pub/sub message; a member of several gets it once)."""

    def __init__(self, url: str, executions: int) -> None:
        import socketio  # type: ignore[import-untyped,import-not-found,unused-ignore]

        self.mgr: Any = socketio.RedisManager(url, write_only=True)
        self.executions = executions
        self.ids = _IdClock()

    def publish(self, numbers: Sequence[int]) -> list[str]:
        ids: list[str] = []
        for n in numbers:
            entry_id = self.ids.next()
            msg = _message(n, self.executions, entry_id)
            data = msg["data"]
            rooms = ["executions", f"executions:{data['execution_id']}", f"workflows:{data['workflow_id']}"]
            self.mgr.emit("event", msg, namespace="/", room=rooms)
            ids.append(entry_id)
        return ids

    def close(self) -> None:
        redis_client = getattr(self.mgr, "redis", None)
        if redis_client is not None:
            redis_client.close()


def make_feeder(kind: Kind, url: str, executions: int = 100) -> Feeder:
    if kind.feed == "stream":
        return StreamFeeder(url, executions)
    if kind.feed == "legacy":
        return LegacyFeeder(url, executions)
    return SocketioFeeder(url, executions)
