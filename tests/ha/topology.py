"""Redis topologies started from ``redis-server`` and ``redis-cli`` on free loopback
ports, for the high-availability tests and benchmarks (issue 14):

- :class:`SentinelTopology`: one primary, one replica, three sentinels (quorum 2), with
  fast failure detection (``down-after-milliseconds`` 500);
- :class:`ClusterTopology`: six nodes, three primaries and three replicas
  (``redis-cli --cluster create ... --cluster-replicas 1``), ``cluster-node-timeout``
  1000 ms.

Each is a context manager: every process it started is killed (SIGKILL, by its own
handle, never by name) and its directory removed on exit, also when the test failed.
Never the shared server on 6379.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import redis

from tests.support.redis_server import free_port

__all__ = ["CLI_DATA", "ClusterTopology", "Node", "SentinelTopology", "cli", "wait_until"]

MASTER = "flowwire"


def wait_until(what: str, check: Any, timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll ``check()`` until it returns something truthy; its value. Errors count as no."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (redis.exceptions.RedisError, OSError) as exc:
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"{what}: not after {timeout}s (last error: {last!r})")


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too (so at most 55535)."""
    while True:
        port = free_port()
        if port <= 55535:
            with contextlib.suppress(OSError), socket.socket() as bus:
                bus.bind(("127.0.0.1", port + 10000))
                return port


class Node:
    """One ``redis-server`` process (a data node or a sentinel)."""

    def __init__(
        self, root: Path, args: list[str], *, conf: str = "", sentinel: bool = False, cluster: bool = False
    ) -> None:
        self.port = _cluster_port() if cluster else free_port()
        self.dir = root / str(self.port)
        self.dir.mkdir()
        self.args = args
        self.conf = conf
        self.sentinel = sentinel
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH")
        conf = self.dir / "redis.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\n"
            f'dir "{self.dir}"\nsave ""\nappendonly no\n{self.conf}'
        )
        argv = [binary, str(conf), *(["--sentinel"] if self.sentinel else []), *self.args]
        with (self.dir / "log").open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_until(f"redis on {self.port}", self.ping, timeout=10)

    def client(self, **kw: Any) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=1, **kw)

    def entries(self, key: str = "ws:events") -> list[tuple[str, dict[bytes, bytes]]]:
        """The stream as this node holds it: (id, fields) in order."""
        with contextlib.closing(self.client()) as c:
            raw: Any = c.xrange(key)
        return [(eid.decode(), dict(fields)) for eid, fields in raw]

    def ping(self) -> bool:
        with contextlib.closing(self.client()) as c:
            return bool(c.ping())

    def info(self, section: str) -> dict[str, Any]:
        with contextlib.closing(self.client()) as c:
            return dict(c.info(section))

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: what it had not replicated is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGCONT)
            self.kill()
            self.proc = None


class _Topology:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="flowwire-ha-"))
        self.nodes: list[Node] = []

    def _node(
        self, args: list[str] | None = None, *, conf: str = "", sentinel: bool = False, cluster: bool = False
    ) -> Node:
        node = Node(self.root, args or [], conf=conf, sentinel=sentinel, cluster=cluster)
        self.nodes.append(node)
        return node

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
    ) -> None:
        self.close()

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        for node in self.nodes:
            node.close()
        if os.environ.get("FLOWWIRE_KEEP_HA_LOGS"):
            print(f"HA topology logs kept in {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)


class SentinelTopology(_Topology):
    """One primary, one replica, three sentinels monitoring ``MASTER`` (quorum 2)."""

    def __init__(self, *, down_after_ms: int = 500, failover_timeout_ms: int = 3000) -> None:
        super().__init__()
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.primary = self._node()
        self.replica = self._node(["--replicaof", "127.0.0.1", "0"])  # port set in start()
        self.sentinels: list[Node] = []

    def start(self) -> None:
        self.primary.start()
        self.replica.args = ["--replicaof", "127.0.0.1", str(self.primary.port)]
        self.replica.start()
        wait_until(
            "replica in sync", lambda: self.replica.info("replication").get("master_link_status") == "up"
        )
        conf = (
            f"sentinel monitor {MASTER} 127.0.0.1 {self.primary.port} 2\n"
            f"sentinel down-after-milliseconds {MASTER} {self.down_after_ms}\n"
            f"sentinel failover-timeout {MASTER} {self.failover_timeout_ms}\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
        )
        for _ in range(3):
            self.sentinels.append(self._node(conf=conf, sentinel=True))
        for sentinel in self.sentinels:
            sentinel.start()
        for sentinel in self.sentinels:
            wait_until("sentinels know each other and the replica", lambda s=sentinel: self._settled(s))

    def _settled(self, sentinel: Node) -> bool:
        with contextlib.closing(sentinel.client()) as c:
            others = c.execute_command("SENTINEL", "SENTINELS", MASTER)  # type: ignore[no-untyped-call]
            replicas = c.execute_command("SENTINEL", "REPLICAS", MASTER)  # type: ignore[no-untyped-call]
        return len(others) == 2 and len(replicas) == 1

    @property
    def env(self) -> dict[str, str]:
        return {"REDIS_SENTINELS": ",".join(s.addr for s in self.sentinels), "REDIS_SENTINEL_MASTER": MASTER}

    @property
    def url(self) -> str:
        from publisher.connect import sentinel_url

        return sentinel_url(tuple(("127.0.0.1", s.port) for s in self.sentinels), MASTER)

    def primary_port(self) -> int | None:
        """The port the sentinels name as the primary now (a majority of them)."""
        votes: dict[int, int] = {}
        for sentinel in self.sentinels:
            if not sentinel.alive:
                continue
            with (
                contextlib.suppress(redis.exceptions.RedisError, OSError),
                contextlib.closing(sentinel.client()) as c,
            ):
                _, port = c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)  # type: ignore[no-untyped-call]
                votes[int(port)] = votes.get(int(port), 0) + 1
        best = max(votes.items(), key=lambda kv: kv[1], default=None)
        return best[0] if best and best[1] >= 2 else None

    def node(self, port: int) -> Node:
        return next(n for n in self.nodes if n.port == port)

    def wait_failover(self, old: Node, timeout: float = 30.0) -> Node:
        """The new primary, once the sentinels name it and it accepts writes."""

        def promoted() -> Node | None:
            port = self.primary_port()
            if port is None or port == old.port:
                return None
            node = self.node(port)
            return node if node.info("replication").get("role") == "master" else None

        result: Node = wait_until("failover", promoted, timeout=timeout)
        return result


class ClusterTopology(_Topology):
    """Six nodes, three primaries with one replica each."""

    def __init__(self, *, node_timeout_ms: int = 1000) -> None:
        super().__init__()
        conf = (
            "cluster-enabled yes\ncluster-config-file nodes.conf\n"
            f"cluster-node-timeout {node_timeout_ms}\ncluster-replica-validity-factor 0\n"
            "cluster-require-full-coverage yes\n"
        )
        for _ in range(6):
            self._node(conf=conf, cluster=True)

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        binary = shutil.which("redis-cli")
        if binary is None:
            raise RuntimeError("redis-cli is not on PATH")
        subprocess.run(
            [
                binary,
                "--cluster",
                "create",
                *(n.addr for n in self.nodes),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for node in self.nodes:
            wait_until("cluster ok", lambda n=node: n.info("cluster") is not None and self.state(n) == "ok")
        # Every replica attached (so that a primary's death can be failed over).
        wait_until("replicas in sync", self._replicas_up)

    def state(self, node: Node) -> str:
        with contextlib.closing(node.client()) as c:
            info = c.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
        text = info.decode() if isinstance(info, bytes) else str(info)
        return next(
            line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("cluster_state:")
        )

    def _replicas_up(self) -> bool:
        roles = [n.info("replication") for n in self.nodes if n.alive]
        replicas = [r for r in roles if r.get("role") == "slave"]
        return len(replicas) == 3 and all(r.get("master_link_status") == "up" for r in replicas)

    @property
    def env(self) -> dict[str, str]:
        return {"REDIS_CLUSTER_NODES": ",".join(n.addr for n in self.nodes)}

    @property
    def url(self) -> str:
        from publisher.connect import cluster_url

        return cluster_url(tuple(("127.0.0.1", n.port) for n in self.nodes))

    def owner(self, key: str) -> Node:
        """The primary serving ``key``'s slot now (asked of a live node)."""
        live = next(n for n in self.nodes if n.alive)
        with contextlib.closing(live.client()) as c:
            slot = int(c.execute_command("CLUSTER", "KEYSLOT", key))  # type: ignore[no-untyped-call]
            for start, end, primary, *_ in c.execute_command("CLUSTER", "SLOTS"):  # type: ignore[no-untyped-call]
                if start <= slot <= end:
                    return next(n for n in self.nodes if n.port == int(primary[1]))
        raise LookupError(slot)

    def wait_failover(self, key: str, old: Node, timeout: float = 30.0) -> Node:
        def promoted() -> Node | None:
            node = self.owner(key)
            if node is old or not node.alive:
                return None
            return node if all(self.state(n) == "ok" for n in self.nodes if n.alive) else None

        result: Node = wait_until("cluster failover", promoted, timeout=timeout)
        return result


#: An event for the CLI tests (``flowwire publish --data``).
CLI_DATA = '{"execution_id": "exec_cli", "workflow_id": "wf", "status": "running"}'


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``flowwire ARGS`` with ``env``'s Redis settings only (none inherited)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
