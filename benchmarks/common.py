"""What every benchmark script shares: CPU pinning, a private redis-server, the C
receiver, server processes, the benchmark's events and the delivery check.

Layout of the machine during a run (2 cores): the server under test alone on core 0
(``taskset -c 0``); the receiver, redis-server, the publisher and this runner on core 1.
Everything listens and connects on 127.0.0.1 only; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

__all__ = [
    "BENCH_DIR",
    "BUILD_DIR",
    "CLIENT_CORE",
    "RESULTS_DIR",
    "SECRET",
    "SERVER_CORE",
    "Receiver",
    "RedisProc",
    "ServerProc",
    "build_receiver",
    "expected_hashes",
    "free_port",
    "id_hash",
    "pin_self",
    "raise_nofile",
    "sample_payload",
    "token",
]

BENCH_DIR: Final = Path(__file__).resolve().parent
ROOT: Final = BENCH_DIR.parent
BUILD_DIR: Final = BENCH_DIR / ".build"
RESULTS_DIR: Final = BENCH_DIR / "results"
SERVER_CORE: Final = 0
CLIENT_CORE: Final = 1
SECRET: Final = "bench-secret-0123456789abcdef-0123456789"
MASK64: Final = (1 << 64) - 1


# -- the machine ---------------------------------------------------------------------


def pin_self(core: int = CLIENT_CORE) -> None:
    """Pin this process (and so the children it starts without taskset) to ``core``."""
    with contextlib.suppress(OSError, AttributeError):
        if (os.cpu_count() or 1) > core:
            os.sched_setaffinity(0, {core})


def raise_nofile(wanted: int = 65536) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def taskset(core: int) -> list[str]:
    if shutil.which("taskset") is None or (os.cpu_count() or 1) <= core:
        return []
    return ["taskset", "-c", str(core)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def token(user: str = "bench", ttl: float = 7200) -> str:
    from gateway.auth import mint_token

    return mint_token(SECRET, user, ttl=ttl)


# -- the events ----------------------------------------------------------------------


def sample_payload(n: int, executions: int = 100) -> dict[str, Any]:
    """An ``execution.*`` payload; the frame a client gets is about 300 bytes."""
    return {
        "execution_id": f"exec_{n % executions:08d}",
        "workflow_id": f"3f2b8c9e-5d1a-4c7e-9b2f-{n % executions:012d}",
        "status": "running",
        "trigger_event": "schedule.tick",
        "started_at": "2025-11-26T10:30:00Z",
        "context": {"attempt": 1, "node": "bench-executor-1", "note": "x" * 24},
    }


def splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def id_hash(entry_id: str) -> int:
    """The receiver's per-id hash (recv.c): splitmix64((ms << 20) ^ seq)."""
    ms, _, seq = entry_id.partition("-")
    return splitmix64(((int(ms) << 20) ^ int(seq)) & MASK64)


def expected_hashes(ids: Sequence[str], groups: Sequence[int], n_groups: int) -> tuple[list[int], list[int]]:
    """Per group: how many events and the sum of their hashes (mod 2**64)."""
    counts = [0] * n_groups
    sums = [0] * n_groups
    for entry_id, group in zip(ids, groups, strict=True):
        counts[group] += 1
        sums[group] = (sums[group] + id_hash(entry_id)) & MASK64
    return counts, sums


# -- redis -------------------------------------------------------------------------------


class RedisProc:
    """A private redis-server on a free loopback port (never the shared 6379), on the
    client core. Pub/sub output buffers are unlimited: the pub/sub baselines are fed a
    whole burst while they are stopped, and must not be cut off for it."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="flowwire-bench-redis-"))
        self.proc = subprocess.Popen(
            [
                *taskset(CLIENT_CORE),
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--client-output-buffer-limit",
                "pubsub 0 0 0",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, 10, self.proc)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def version(self) -> str:
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            info: Any = client.info("server")
            return str(info.get("redis_version", "?"))
        finally:
            client.close()

    def flush(self) -> None:
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            client.flushall()
        finally:
            client.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisProc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- processes under test --------------------------------------------------------------


def _proc_stat(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()


class ServerProc:
    """A server under test, pinned to the server core, its output in a log file."""

    def __init__(
        self, name: str, argv: Sequence[str], port: int, env: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.port = port
        self.log_path = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*taskset(SERVER_CORE), *argv], env=full_env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        self.paused = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_listening(self, timeout: float = 30) -> None:
        try:
            wait_port(self.port, timeout, self.proc)
        except RuntimeError as exc:
            raise RuntimeError(f"{self.name}: {exc}\n{self.output()[-3000:]}") from None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def cpu_seconds(self) -> float:
        """User + system CPU of the process so far (all its threads)."""
        fields = _proc_stat(self.pid)
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        if self.paused:
            self.resume()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(8)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log_path.unlink(missing_ok=True)


# -- the receiver --------------------------------------------------------------------------


def build_receiver(force: bool = False) -> Path:
    """Compile receiver/recv.c with gcc -O2 into .build/ (when the source is newer)."""
    src = BENCH_DIR / "receiver" / "recv.c"
    out = BUILD_DIR / "recv"
    if force or not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
        BUILD_DIR.mkdir(exist_ok=True)
        cc = os.environ.get("CC", "gcc")
        subprocess.run(
            [cc, "-O2", "-Wall", "-Wextra", "-o", str(out), str(src), "-lz"], check=True, capture_output=True
        )
    return out


@dataclass
class Receiver:
    """The C receiver as a child process on the client core, driven through stdin."""

    port: int
    conns: int
    subscribe: Sequence[str]
    path: str = "/ws"
    sio_auth: str | None = None
    deflate: bool = False
    sources: int = 1
    inflight: int = 200
    connect_timeout: float = 120.0
    proc: subprocess.Popen[str] | None = field(default=None, init=False)
    ready: dict[str, Any] = field(default_factory=dict, init=False)
    _subs_path: Path | None = field(default=None, init=False)

    def start(self) -> dict[str, Any]:
        binary = build_receiver()
        fd, name = tempfile.mkstemp(prefix="bench-subs-", suffix=".txt")
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(self.subscribe) + "\n")
        self._subs_path = Path(name)
        argv = [
            *taskset(CLIENT_CORE),
            str(binary),
            "--port",
            str(self.port),
            "--conns",
            str(self.conns),
            "--subs",
            name,
            "--path",
            self.path,
            "--inflight",
            str(self.inflight),
            "--sources",
            str(self.sources),
            "--connect-timeout",
            str(int(self.connect_timeout * 1000)),
        ]
        if self.sio_auth is not None:
            argv += ["--sio", "--sio-auth", self.sio_auth]
        if self.deflate:
            argv.append("--deflate")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, cwd=ROOT
        )
        self.ready = self._read_line(self.connect_timeout + 10)
        return self.ready

    def _read_line(self, timeout: float) -> dict[str, Any]:
        import selectors

        assert self.proc is not None and self.proc.stdout is not None
        stdout: IO[str] = self.proc.stdout
        with selectors.DefaultSelector() as sel:
            sel.register(stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                raise TimeoutError(f"receiver said nothing for {timeout:.0f}s")
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"receiver exited ({self.proc.poll()})")
        doc: dict[str, Any] = json.loads(line)
        return doc

    def _send(self, command: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def reset(self) -> float:
        """Zero the counters; the receiver's monotonic clock at that moment."""
        self._send("reset")
        return float(self._read_line(10)["t_now"])

    def wait(self, total: int, timeout: float) -> dict[str, Any]:
        """Until ``total`` events were received since the reset (or ``timeout``)."""
        self._send(f"wait {total} {int(timeout * 1000)}")
        return self._read_line(timeout + 10)

    def report(self) -> dict[str, Any]:
        self._send("report")
        return self._read_line(10)

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                with contextlib.suppress(OSError, ValueError):
                    self._send("quit")
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
            self.proc = None
        if self._subs_path is not None:
            self._subs_path.unlink(missing_ok=True)

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def receiver(**kw: Any) -> Iterator[Receiver]:
    rec = Receiver(**kw)
    try:
        rec.start()
        yield rec
    finally:
        rec.close()


def python() -> str:
    return sys.executable
