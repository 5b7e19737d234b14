"""A private ``redis-server`` on a free loopback port, for tests and benchmarks.

Never the shared server on 6379: each instance has its own port and directory.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["RedisServer", "free_port", "read_stream"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """Start, stop, restart (same data or empty) a redis-server process."""

    def __init__(self, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH; the test command installs it")
        self.binary = binary
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="flowwire-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.dir),
                "--save", "",
                "--appendonly", "no",
                "--dbfilename", "dump.rdb",
                "--protected-mode", "no",
                "--daemonize", "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._wait_up()

    def _wait_up(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self, *, save: bool = False) -> None:
        """Stop the server; ``save=True`` writes an RDB first so a restart keeps the data."""
        if self.proc is None:
            return
        if save:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                s.sendall(b"SHUTDOWN SAVE\r\n")
                s.settimeout(5)
                with contextlib.suppress(OSError):
                    s.recv(64)
        else:
            (self.dir / "dump.rdb").unlink(missing_ok=True)
            self.proc.terminate()
        self.proc.wait(timeout=10)
        self.proc = None

    def restart(self, *, keep_data: bool = True, downtime: float = 0.0) -> None:
        self.stop(save=keep_data)
        if not keep_data:
            (self.dir / "dump.rdb").unlink(missing_ok=True)
        time.sleep(downtime)
        self.start()

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


def read_stream(url: str, key: str = "ws:events") -> list[tuple[str, dict[bytes, bytes]]]:
    """Every entry of a stream, typed: ``[(id, fields), ...]``."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        entries: Any = client.xrange(key)
    finally:
        client.close()
    return [(eid.decode(), dict(fields)) for eid, fields in entries]
