"""Running a gateway under uvicorn: ``flowwire serve``.

uvicorn is configured from :class:`Config`. WebSocket upgrades go to flowwire's own
protocol (``gateway.websocket``: the direct write path of ``gateway.connection``), which
enforces ``MAX_MESSAGE_SIZE`` (1009 above) and the heartbeat as the original's: a ping
every ``WS_PING_INTERVAL``, closed without a pong within ``WS_PONG_TIMEOUT`` of the
previous ping. With ``WS_COMPRESSION=on`` (permessage-deflate costs a compression per
client per frame: benchmarks/README.md) they go to uvicorn's ``websockets-sansio`` protocol and the
ASGI path instead, with the same limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from gateway.app import FlowwireApp, create_app
from gateway.config import Config
from gateway.door import Door, http_protocol_factory, raise_open_files_limit
from gateway.websocket import protocol_factory

__all__ = ["configure_logging", "run", "uvicorn_config"]


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


class _NoUvicornConnectionLines(logging.Filter):
    """flowwire logs one line per connection open and close; uvicorn's own lines for
    the same (accepted, open, closed) would double them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg if isinstance(record.msg, str) else ""
        return not (message in ("connection open", "connection closed") or '"WebSocket %s"' in message)


class _NoQuery(logging.Filter):
    """uvicorn's access lines include the query string: it may hold ``?token=``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(
                a.split("?", 1)[0] + "?…" if isinstance(a, str) and "token=" in a else a for a in record.args
            )
        return True


def configure_logging(config: Config) -> None:
    """Handlers are set here, in the CLI, never by the library."""
    handler = logging.StreamHandler(sys.stderr)
    if config.log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_NoQuery())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.log_level_number)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # One line per connection is ours; uvicorn's per-request access lines are noise.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.error").setLevel(max(logging.INFO, config.log_level_number))
    logging.getLogger("uvicorn.error").addFilter(_NoUvicornConnectionLines())


def uvicorn_config(app: FlowwireApp, config: Config, host: str, port: int, **extra: Any) -> uvicorn.Config:
    ws: Any = "websockets-sansio" if config.compression else protocol_factory(app.gateway)
    # The door (gateway.door): SERVER_READ_TIMEOUT on every request head, MAX_PENDING_SOCKETS.
    door = Door(config.read_timeout, config.max_pending_sockets, app.gateway.stats)
    http: Any = http_protocol_factory(door)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=http,
        ws=ws,
        ws_max_size=config.max_message_size,
        ws_ping_interval=config.ping_interval,
        ws_ping_timeout=config.pong_wait,
        ws_per_message_deflate=config.compression,
        timeout_keep_alive=max(1, int(config.read_timeout)),
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        backlog=config.listen_backlog,
        **extra,
    )


class _Server(uvicorn.Server):
    """uvicorn, with SIGTERM/SIGINT starting flowwire's drain instead of an abrupt
    close; a second signal forces the exit. Exits 0 after a drain."""

    def __init__(self, config: uvicorn.Config, app: FlowwireApp) -> None:
        super().__init__(config)
        self.app = app
        self._drain: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal)
        try:
            yield
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    def _on_signal(self) -> None:
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_task(self._drain_then_exit())
        else:
            self.force_exit = True

    async def _drain_then_exit(self) -> None:
        try:
            await self.app.gateway.drain()
        finally:
            self.should_exit = True


def run(config: Config, host: str, port: int, app: FlowwireApp | None = None) -> int:
    configure_logging(config)
    raise_open_files_limit()  # every connection is a file descriptor (gateway.door)
    if not config.redis_url:
        logging.getLogger("flowwire").warning(
            "no REDIS_URL/REDIS_HOST: running on the embedded event log, a single node; "
            "events appended here are not seen by other gateways"
        )
    if not config.jwt_secret and not config.jwt_public_key:
        logging.getLogger("flowwire").warning(
            "no JWT_SECRET or JWT_PUBLIC_KEY_FILE: only API keys authenticate"
        )
    app = app or create_app(config)
    server = _Server(uvicorn_config(app, config, host, port), app)
    app.gateway.on_fatal = functools.partial(setattr, server, "should_exit", True)
    server.run()
    if app.gateway.fatal is not None:
        logging.getLogger("flowwire").critical("exiting: %s", app.gateway.fatal)
        return 1
    return 0
