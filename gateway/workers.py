"""``flowwire serve --workers N``: N gateway processes on one port.

For hosts that run one pod per machine rather than one per core. Each worker is a whole
gateway (``flowwire serve`` in its own process: its own stream reader, hub, mirror
consumer and metrics); nothing is shared between them but the port and Redis, exactly
as between pods. The embedded event log is per process, so ``--workers`` needs Redis.

How the port is shared: each worker binds its own listening socket with
``SO_REUSEPORT`` and the kernel spreads new connections over them by a hash of the
connection's addresses (measured: 200 connections split 91/109 at worst over 2
workers). One socket shared by all workers would do too, but every worker then wakes
for every connection and the busiest tends to win them (uneven load); uvicorn's own
``--workers`` supervisor wants the app as an import string and cannot hand its workers
flowwire's WebSocket protocol or drain. The supervisor here is small:

- It binds the port first (``SO_REUSEPORT``, never listening: no connection goes to
  it), so a port already in use is a clear error before any worker starts, and
  ``--port 0`` becomes one real port for all.
- It starts the workers (``python -m gateway.workers``), each in its own process group
  with the supervisor's environment plus ``FLOWWIRE_WORKER=<index>``, and a pipe on
  its stdin: a worker whose supervisor dies (SIGKILL) sees end-of-file there and
  drains, rather than serve on as an orphan.
- SIGTERM or SIGINT: sent on (SIGTERM) to every worker, which drains its clients with
  1012 over ``DRAIN_WINDOW`` and exits; the supervisor exits once all have, 0 when all
  exited 0. A second signal is sent on too (a worker then exits at once).
- A worker that exits on its own is restarted, unless it ran less than
  ``_MIN_UPTIME`` (it cannot start): then all are stopped and the supervisor exits 1
  rather than restart in a loop.
- Each worker also listens on a private Unix socket (in a directory of the
  supervisor's), through which ``--metrics-port`` gathers every worker's ``/metrics``
  (``gateway.worker_metrics``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from gateway.app import create_app
from gateway.config import Config, SettingError
from gateway.process_metrics import WORKER_ENV
from gateway.server import _Server, configure_logging, uvicorn_config
from gateway.worker_metrics import MetricsServer

__all__ = ["bind_reuseport", "supervise"]

logger = logging.getLogger("flowwire.workers")

_MIN_UPTIME = 5.0  # seconds: a worker that dies sooner is not restarted
_POLL = 0.1


def bind_reuseport(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT`` (not listening)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


class _Worker:
    def __init__(self, index: int, argv: list[str]) -> None:
        self.index = index
        env = {**os.environ, WORKER_ENV: str(index)}
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.PIPE,  # the supervisor's lifeline: EOF when it dies
            process_group=0,  # a terminal's Ctrl-C reaches the supervisor only
        )
        logger.info("worker %d started, pid %d", index, self.proc.pid)

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)


def supervise(config: Config, host: str, port: int, workers: int, metrics_port: int | None = None) -> int:
    """Run ``workers`` gateway processes on ``host:port`` until SIGTERM/SIGINT; with
    ``metrics_port``, serve all their metrics there."""
    configure_logging(config)
    if not config.redis_url:
        print(
            "flowwire: --workers needs Redis (REDIS_URL or REDIS_HOST): the embedded event log "
            "is one process's own",
            file=sys.stderr,
        )
        return 2
    try:
        reserved = bind_reuseport(host, port)
    except OSError as exc:
        print(f"flowwire: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 1
    port = reserved.getsockname()[1]
    private = Path(tempfile.mkdtemp(prefix="flowwire-workers-"))
    sockets = {str(i): str(private / f"worker-{i}.sock") for i in range(workers)}
    metrics: MetricsServer | None = None
    if metrics_port is not None:
        try:
            metrics = MetricsServer(host, metrics_port, sockets)
        except OSError as exc:
            reserved.close()
            shutil.rmtree(private, ignore_errors=True)
            print(f"flowwire: cannot listen on {host}:{metrics_port}: {exc.strerror}", file=sys.stderr)
            return 1
        metrics.start()
        logger.info("every worker's metrics on %s:%d/metrics", host, metrics.port)
    logger.info("%d workers on %s:%d (SO_REUSEPORT)", workers, host, port)
    signals: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signals.append(signum)

    def start(index: int) -> _Worker:
        argv = [sys.executable, "-m", "gateway.workers", host, str(port), sockets[str(index)]]
        return _Worker(index, argv)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    pool: list[_Worker] = []
    status = 0
    try:
        pool = [start(i) for i in range(workers)]
        status = _watch(pool, signals, start)
    finally:
        for worker in pool:  # only on an error above: _watch returns when all are gone
            worker.signal(signal.SIGKILL)
            worker.proc.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if metrics is not None:
            metrics.close()
        reserved.close()
        shutil.rmtree(private, ignore_errors=True)
    return status


def _watch(pool: list[_Worker], signals: list[int], start: Callable[[int], _Worker]) -> int:
    stopping = False
    forwarded = 0
    failed = False
    while True:
        while forwarded < len(signals):
            forwarded += 1
            if not stopping:
                logger.info("signal %s: draining %d workers", signal.Signals(signals[0]).name, len(pool))
            stopping = True
            for worker in pool:
                worker.signal(signal.SIGTERM)
        for i, worker in enumerate(pool):
            code = worker.proc.poll()
            if code is None or stopping:
                continue
            uptime = time.monotonic() - worker.started
            if uptime < _MIN_UPTIME:
                logger.error(
                    "worker %d exited %d after %.1fs: stopping all workers", worker.index, code, uptime
                )
                failed = stopping = True
                for other in pool:
                    other.signal(signal.SIGTERM)
                break
            logger.error("worker %d exited %d: restarting it", worker.index, code)
            pool[i] = start(worker.index)
        if stopping and all(w.proc.poll() is not None for w in pool):
            codes = [w.proc.returncode for w in pool]
            logger.info("workers exited: %s", codes)
            return 1 if failed or any(codes) else 0
        time.sleep(_POLL)


# -- one worker ------------------------------------------------------------------------


class _WorkerServer(_Server):
    """The gateway's server (SIGTERM drains), also draining when the supervisor is gone:
    end-of-file on stdin, the pipe only the supervisor writes to."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        fd = sys.stdin.fileno()
        loop.add_reader(fd, self._on_stdin, fd)
        try:
            with super().capture_signals():
                yield
        finally:
            loop.remove_reader(fd)

    def _on_stdin(self, fd: int) -> None:
        if not os.read(fd, 512):
            asyncio.get_running_loop().remove_reader(fd)
            logger.warning("the supervisor is gone: draining")
            self._on_signal()


class _WorkerTag(logging.Filter):
    """Names the worker in each line: ``flowwire.app[w1]: open conn=3 ...``."""

    def __init__(self, index: str) -> None:
        super().__init__()
        self.suffix = f"[w{index}]"

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.endswith(self.suffix):
            record.name += self.suffix
        return True


def _worker_main(host: str, port: int, private: str) -> int:
    try:
        config = Config.from_env()
    except SettingError as exc:
        print(f"flowwire: {exc}", file=sys.stderr)
        return 2
    configure_logging(config)
    tag = _WorkerTag(os.environ.get(WORKER_ENV, "?"))
    for handler in logging.getLogger().handlers:
        handler.addFilter(tag)
    sock = bind_reuseport(host, port)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(private)  # a restarted worker's predecessor's
    metrics_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    metrics_sock.bind(private)  # for the supervisor's --metrics-port
    app = create_app(config)
    server = _WorkerServer(uvicorn_config(app, config, host, port), app)
    logger.info("pid %d serving %s:%d", os.getpid(), host, port)
    server.run(sockets=[sock, metrics_sock])
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
