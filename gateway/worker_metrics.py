"""Every worker's metrics on one port: ``flowwire serve --workers N --metrics-port P``.

A scrape of ``/metrics`` on the shared port reaches one worker, whichever the kernel
picks, so counters would jump between workers' values. The supervisor instead serves
``/metrics`` on its own port: it asks each worker over a private Unix socket (each worker
listens on one besides the shared port) and answers with all their series, each labelled
``worker``, plus ``flowwire_worker_up{worker}`` (0 for a worker that did not answer).
"""

from __future__ import annotations

import http.client
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

__all__ = ["MetricsServer", "gather"]

logger = logging.getLogger("flowwire.workers")

_TIMEOUT = 5.0


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=_TIMEOUT)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(_TIMEOUT)
        try:
            sock.connect(self.unix_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _fetch(path: str) -> str:
    conn = _UnixConnection(path)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise OSError(f"HTTP {response.status}")
        return body.decode()
    finally:
        conn.close()


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def gather(sockets: dict[str, str]) -> bytes:
    """The exposition of every worker's metrics (``worker`` -> its Unix socket path)."""
    families: dict[str, Metric] = {}
    up = GaugeMetricFamily("flowwire_worker_up", "1 when the worker answered this scrape", labels=["worker"])
    for worker, path in sockets.items():
        try:
            text = _fetch(path)
        except (OSError, http.client.HTTPException) as exc:
            logger.warning("worker %s did not answer the scrape: %r", worker, exc)
            up.add_metric([worker], 0.0)
            continue
        up.add_metric([worker], 1.0)
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            for sample in family.samples:
                merged.samples.append(sample._replace(labels={**sample.labels, "worker": worker}))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families([*families.values(), up]))
    return generate_latest(registry)


class MetricsServer:
    """``GET /metrics`` on ``host:port``, answered by :func:`gather`, in a thread."""

    def __init__(self, host: str, port: int, sockets: dict[str, str]) -> None:
        self.sockets = sockets

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404)
                    return
                body = gather(sockets)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="flowwire-metrics", daemon=True)

    @property
    def port(self) -> int:
        port: int = self.httpd.server_address[1]
        return port

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
