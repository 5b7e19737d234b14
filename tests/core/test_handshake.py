"""The opening handshake, without an event loop (RFC 6455 §4.2)."""

from __future__ import annotations

import pytest

from gateway.core.handshake import (
    MAX_REQUEST_SIZE,
    HandshakeError,
    Request,
    accept_key,
    check_upgrade,
    http_response,
    parse_request,
    switching_protocols,
)

UPGRADE = (
    b"GET /ws?token=a%2Bb&x=1 HTTP/1.1\r\nHost: gw:8080\r\nUpgrade: websocket\r\n"
    b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\nX-Multi: a\r\nx-multi: b\r\n\r\n"
)


def test_rfc_example_accept_key() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 §1.3


def test_parse_and_accept() -> None:
    request = parse_request(UPGRADE)
    assert isinstance(request, Request)
    assert (request.method, request.path, request.query) == ("GET", "/ws", {"token": "a+b", "x": "1"})
    assert request.headers["host"] == "gw:8080"
    assert request.headers["x-multi"] == "a, b"
    assert check_upgrade(request) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert switching_protocols("abc") == (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: abc\r\n\r\n"
    )


def test_incomplete_request_waits_then_refuses_when_too_large() -> None:
    assert parse_request(UPGRADE[:-2]) is None
    assert parse_request(b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_REQUEST_SIZE) == HandshakeError(
        431, "request head too large"
    )


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ((b"GET /ws", b"POST /ws"), 405, "GET"),
        ((b"Upgrade: websocket", b"Upgrade: h2c"), 400, "Upgrade"),
        ((b"keep-alive, Upgrade", b"keep-alive"), 400, "Connection"),
        ((b"Version: 13", b"Version: 8"), 426, "version"),
        ((b"dGhlIHNhbXBsZSBub25jZQ==", b"short=="), 400, "Sec-WebSocket-Key"),
        ((b"dGhlIHNhbXBsZSBub25jZQ==", b"not base64!!"), 400, "Sec-WebSocket-Key"),
    ],
)
def test_invalid_upgrades(change: tuple[bytes, bytes], status: int, message: str) -> None:
    request = parse_request(UPGRADE.replace(*change))
    assert isinstance(request, Request)
    error = check_upgrade(request)
    assert isinstance(error, HandshakeError)
    assert error.status == status and message in error.message
    if status == 426:
        assert ("sec-websocket-version", "13") in error.headers


@pytest.mark.parametrize(
    "head",
    [
        b"GET /ws\r\n\r\n",
        b"GET /ws HTTP/1.1 extra\r\n\r\n",
        b"GET /ws SPDY/3\r\n\r\n",
        b"GET /ws HTTP/1.1\r\nNoColon\r\n\r\n",
    ],
)
def test_malformed_requests(head: bytes) -> None:
    error = parse_request(head)
    assert isinstance(error, HandshakeError) and error.status == 400


def test_http_response() -> None:
    response = http_response(401, b'{"error":"no"}', headers=(("www-authenticate", "Bearer"),))
    head, body = response.split(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 401 Unauthorized"
    assert {"content-type: application/json", "content-length: 14", "connection: close"} <= set(lines)
    assert "www-authenticate: Bearer" in lines
    assert body == b'{"error":"no"}'
