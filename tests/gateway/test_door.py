"""Hostile clients at the door (issue 11): slow and silent request heads, too many
sockets waiting for theirs, ``/ws`` without an upgrade, the open-files limit. A real
``flowwire serve`` process (real uvicorn), real TCP sockets, real WebSocket clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.clients import open_ws, recv_json, token
from tests.support.gateway import GatewayProcess

HEAD_TIMEOUT = 2.0  # SERVER_READ_TIMEOUT of the gateway under test
PENDING = 4  # its MAX_PENDING_SOCKETS
#: A client's own bound on any wait: far beyond HEAD_TIMEOUT, so that only a gateway that
#: never answers fails the tests.
PATIENCE = 12.0


@pytest.fixture(scope="module")
def door() -> Iterator[GatewayProcess]:
    gw = GatewayProcess({"SERVER_READ_TIMEOUT": f"{HEAD_TIMEOUT:g}s", "MAX_PENDING_SOCKETS": str(PENDING)})
    gw.start()
    yield gw
    gw.stop()


def _connect(gw: GatewayProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=PATIENCE)
    sock.settimeout(PATIENCE)
    return sock


def _response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP response up to EOF (every refusal closes the connection)."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return _parse(data)


def _parse(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), f"not an HTTP response: {data[:200]!r}"
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def _one_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response on a kept-alive connection (by its content-length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    status, headers, body = _parse(data)
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return status, headers, body


def _trickle(sock: socket.socket, text: bytes, pause: float = 0.25) -> int:
    """Send ``text`` one byte at a time until the server answers or closes; the bytes
    sent."""
    for i in range(len(text)):
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            return i
        try:
            sock.sendall(text[i : i + 1])
        except (BrokenPipeError, ConnectionResetError):
            return i
        time.sleep(pause)
    return len(text)


def _metric(gw: GatewayProcess, name: str) -> float:
    """A counter from /metrics (retried while the door is full)."""
    deadline = time.monotonic() + PATIENCE
    while True:
        try:
            status, body = gw.get("/metrics")
        except OSError:
            status, body = 0, b""
        if status == 200:
            for line in body.decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
            raise AssertionError(f"{name} not in /metrics")
        assert time.monotonic() < deadline, f"/metrics unavailable: {status} {body[:200]!r}"
        time.sleep(0.1)


def _refusal(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    assert headers.get("content-type", "").startswith("application/json"), headers
    doc: dict[str, Any] = json.loads(body)
    assert set(doc) == {"error", "code"}, doc
    return doc


# -- slow and silent request heads -------------------------------------------------------


def test_an_upgrade_request_sent_a_byte_at_a_time_is_cut_off(door: GatewayProcess) -> None:
    before = _metric(door, "flowwire_request_head_timeouts_total")
    head = (
        f"GET /ws?token={token()} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    ).encode()
    with _connect(door) as sock:
        sent = _trickle(sock, head)  # ~0.25 s a byte: a minute for the whole head
        status, headers, body = _response(sock)
    assert sent < len(head), "the whole head went out a byte at a time: nothing cut it off"
    assert status == 408
    assert _refusal(status, headers, body)["code"] == "REQUEST_TIMEOUT"
    assert _metric(door, "flowwire_request_head_timeouts_total") == before + 1


def test_a_socket_that_sends_nothing_is_closed(door: GatewayProcess) -> None:
    with _connect(door) as sock:
        status, headers, body = _response(sock)
    assert status == 408
    assert _refusal(status, headers, body)["code"] == "REQUEST_TIMEOUT"


def test_a_slow_second_request_on_a_kept_alive_connection_is_cut_off(door: GatewayProcess) -> None:
    with _connect(door) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _one_response(sock)[0] == 200
        sent = _trickle(
            sock, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"z" * 60 + b"\r\n\r\n"
        )
        status, headers, body = _response(sock)
    assert sent > 0
    assert status == 408
    assert _refusal(status, headers, body)["code"] == "REQUEST_TIMEOUT"


# -- the limit on sockets waiting at the door ------------------------------------------


def test_past_max_pending_sockets_a_new_socket_is_refused_at_once(door: GatewayProcess) -> None:
    before = _metric(door, "flowwire_pending_sockets_refused_total")
    waiting = [_connect(door) for _ in range(PENDING)]
    try:
        time.sleep(0.2)  # the gateway has accepted them (well within HEAD_TIMEOUT)
        with _connect(door) as sock:
            status, headers, body = _response(sock)
        assert status == 503
        assert _refusal(status, headers, body)["code"] == "TOO_MANY_PENDING"
        assert headers.get("retry-after") == "1"
        # The ones waiting were not disturbed: each still gets its answer.
        waiting[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _one_response(waiting[0])[0] == 200
    finally:
        for sock in waiting:
            sock.close()
    assert _metric(door, "flowwire_pending_sockets_refused_total") == before + 1


async def test_sockets_leave_the_count_whatever_their_end(door: GatewayProcess) -> None:
    """Upgraded, answered, timed out, closed by the client: none stays counted, so many
    more than MAX_PENDING_SOCKETS clients, one after another, all get in."""
    clients = []
    for i in range(PENDING * 3):
        ws = await open_ws(door.url, token(f"door-{i % 50}"))
        await ws.send('{"type":"ping"}')
        assert (await recv_json(ws))["type"] == "pong"
        clients.append(ws)
        _connect(door).close()  # a client that gives up before sending anything
        status, _ = await asyncio.to_thread(door.get, "/healthz")
        assert status == 200
    for ws in clients:
        await ws.close()


# -- /ws without an upgrade --------------------------------------------------------------


def test_ws_without_an_upgrade_is_426_with_a_json_body(door: GatewayProcess) -> None:
    with _connect(door) as sock:
        sock.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, headers, body = _one_response(sock)
    assert status == 426
    assert headers["upgrade"] == "websocket"
    assert _refusal(status, headers, body)["code"] == "UPGRADE_REQUIRED"


def test_ws_with_another_method_is_405_with_a_json_body(door: GatewayProcess) -> None:
    with _connect(door) as sock:
        sock.sendall(b"POST /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
        status, headers, body = _one_response(sock)
    assert status == 405
    assert headers["allow"] == "GET"
    assert _refusal(status, headers, body)["code"] == "METHOD_NOT_ALLOWED"


# -- the open-files limit -----------------------------------------------------------------


def _open_files_soft_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no 'Max open files' line")


def test_the_open_files_soft_limit_is_raised_to_the_hard_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    low = 256
    if hard != resource.RLIM_INFINITY and hard <= low:
        pytest.fail(f"the hard open-files limit ({hard}) leaves nothing to raise")
    gw = GatewayProcess()

    def low_soft_limit() -> None:  # in the gateway's process only, before it starts
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))

    command = [sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", str(gw.port)]
    with gw.log_path.open("ab") as log:
        gw.proc = subprocess.Popen(
            command, env=gw.env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=low_soft_limit
        )
    try:
        gw.wait_ready()
        assert gw.proc is not None
        # Linux takes at most fs.nr_open when the hard limit is "unlimited".
        expected = hard if hard != resource.RLIM_INFINITY else int(Path("/proc/sys/fs/nr_open").read_text())
        assert _open_files_soft_limit(gw.proc.pid) == expected
        assert f"soft limit raised from {low} to the hard limit {expected}" in gw.output()
    finally:
        gw.stop()
