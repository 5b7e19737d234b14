"""The WebSocket opening handshake (RFC 6455 §4.2), the server's side, sans I/O.

:func:`parse_request` reads an upgrade request; :func:`check_upgrade` says whether it is
a valid WebSocket upgrade and returns the ``Sec-WebSocket-Accept`` value;
:func:`switching_protocols` and :func:`http_response` build what goes back. No extension
is negotiated (permessage-deflate is served by the ASGI path instead,
``WS_COMPRESSION=on``). :func:`select_subprotocol` picks the protocol version
(docs/protocol.md, "Protocol version 2"), for both upgrade paths.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final
from urllib.parse import parse_qsl

__all__ = [
    "HandshakeError",
    "Headers",
    "Request",
    "accept_key",
    "check_upgrade",
    "http_response",
    "parse_request",
    "select_subprotocol",
    "switching_protocols",
]

_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: Above this, a request that has not ended is refused (431).
MAX_REQUEST_SIZE: Final = 16 * 1024

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    #: lower-case names; a repeated header's values joined with ", " (RFC 9110 §5.3)
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class HandshakeError:
    """Refuse the upgrade with this HTTP status; ``headers`` go with it."""

    status: int
    message: str
    headers: Headers = ()


def parse_request(data: bytes) -> Request | HandshakeError | None:
    """The request in ``data``; ``None`` while its head has not fully arrived."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return HandshakeError(431, "request head too large") if len(data) > MAX_REQUEST_SIZE else None
    try:
        head = data[:end].decode("latin-1")
        request_line, *lines = head.split("\r\n")
        method, target, version = request_line.split(" ")
    except ValueError:
        return HandshakeError(400, "malformed request line")
    if not version.startswith("HTTP/1."):
        return HandshakeError(400, "unsupported HTTP version")
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            return HandshakeError(400, "malformed header line")
        name, value = name.lower(), value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    path, _, query = target.partition("?")
    return Request(method, path, dict(parse_qsl(query)), headers)


def _tokens(value: str) -> set[str]:
    return {token.strip().lower() for token in value.split(",")}


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def check_upgrade(request: Request) -> str | HandshakeError:
    """The ``Sec-WebSocket-Accept`` value for a valid upgrade, else why not."""
    headers = request.headers
    if request.method != "GET":
        return HandshakeError(405, "a WebSocket upgrade must be a GET", (("allow", "GET"),))
    if "websocket" not in _tokens(headers.get("upgrade", "")):
        return HandshakeError(400, "missing 'Upgrade: websocket'")
    if "upgrade" not in _tokens(headers.get("connection", "")):
        return HandshakeError(400, "missing 'Connection: Upgrade'")
    if headers.get("sec-websocket-version") != "13":
        return HandshakeError(426, "unsupported WebSocket version", (("sec-websocket-version", "13"),))
    key = headers.get("sec-websocket-key", "")
    try:
        valid = len(base64.b64decode(key, validate=True)) == 16
    except binascii.Error:
        valid = False
    if not valid:
        return HandshakeError(400, "invalid Sec-WebSocket-Key")
    return accept_key(key)


def select_subprotocol(offered: str | None, supported: tuple[str, ...]) -> str | HandshakeError | None:
    """The subprotocol to select from a ``Sec-WebSocket-Protocol`` header (RFC 6455
    §4.2.2: the client's values in its order of preference): the first the gateway
    supports; ``None`` when none is offered (version 1, the original protocol); a 400 when
    some are offered and none is supported."""
    if offered is None:
        return None
    names = [name.strip() for name in offered.split(",") if name.strip()]
    if not names:
        return None
    for name in names:
        if name in supported:
            return name
    shown = ", ".join(names)[:200]
    return HandshakeError(400, f"no offered subprotocol is supported ({shown})")


def switching_protocols(accept: str, subprotocol: str | None = None) -> bytes:
    selected = f"Sec-WebSocket-Protocol: {subprotocol}\r\n" if subprotocol else ""
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n{selected}\r\n"
    ).encode()


def http_response(
    status: int, body: bytes, *, content_type: str = "application/json", headers: Headers = ()
) -> bytes:
    """A complete HTTP/1.1 response that ends the connection (an upgrade refused)."""
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        f"content-type: {content_type}",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{name}: {value}" for name, value in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
