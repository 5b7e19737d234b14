"""What a client is told beyond the messages: the close codes and the HTTP refusals of
an upgrade, with their meaning and what a client does (docs/protocol.md, "Close codes"
and "Connecting"; the AsyncAPI document carries them, and a test compares the two).
"""

from __future__ import annotations

from typing import Final

__all__ = ["CLOSE_CODES", "REFUSED_FRAME", "SUBPROTOCOLS_NOTE", "UPGRADE_REFUSALS"]

#: docs/protocol.md "Protocol version 2", in short (the AsyncAPI document's)
SUBPROTOCOLS_NOTE: Final = (
    "Protocol version 2 is asked for in `Sec-WebSocket-Protocol`: `flowwire.v2.json` (JSON text "
    "frames) or `flowwire.v2.msgpack` (every message, of the same structure, msgpack-encoded in binary "
    "frames), in order of preference; the gateway selects the first it supports. It adds hello/welcome, "
    "refresh/refreshed and token_expiring; a backlogged connection writes approval.* events ahead of "
    "other queued events (frames then carry a `cursor`: resume from the last frame's `cursor`, else its "
    "`id`), and a subscribe with `conflate: true` gets the latest event per execution instead of 4008. "
    "A client offering no subprotocol gets the original protocol."
)

#: The 1003 close's reason (RFC 6455 §7.4.1, "a type of data it cannot accept"), by the
#: connection's format (msgpack or not): a binary frame on JSON (version 1,
#: ``flowwire.v2.json``), a text frame on ``flowwire.v2.msgpack``.
REFUSED_FRAME: Final = {
    False: "binary frames are not supported: send JSON text frames",
    True: "text frames are not supported on flowwire.v2.msgpack: send msgpack binary frames",
}

#: code -> (name, meaning, what a client does): docs/protocol.md "Close codes"
CLOSE_CODES: Final[dict[int, tuple[str, str, str]]] = {
    1000: ("normal", "normal closure; a client's own close code is echoed", "-"),
    1002: ("protocol error", "an unmasked or malformed frame (the reason says which)", "fix the client"),
    1003: ("unsupported data", "a binary message on a JSON connection (version 1, flowwire.v2.json), or a "
           "text message on flowwire.v2.msgpack", "send the frames of the connection's format"),
    1007: ("invalid payload", "a text message (or close reason) that is not UTF-8", "fix the client"),
    1008: ("policy violation", "the original's code; flowwire refuses origin and auth before "
           "the upgrade, with HTTP 403 / 401", "fix credentials"),
    1009: ("message too big", "a message above MAX_MESSAGE_SIZE", "-"),
    1011: ("internal error", "internal error, or no pong within the heartbeat window",
           "reconnect with backoff, resume"),
    1012: ("service restart", "drain; the reason says after how long to reconnect, e.g. "
           "'restart; reconnect after 1.5s'", "reconnect (any instance), resume"),
    1013: ("try again later", "the gateway's connection limit (MAX_CONNECTIONS)", "reconnect with backoff"),
    4001: ("token expired", "the token expired (exp + JWT_LEEWAY), or the API key was revoked",
           "get a fresh token, reconnect, resume"),
    4008: ("slow consumer", "the connection's outbox is full (CLIENT_SEND_BUFFER) or its socket "
           "accepts nothing for SERVER_WRITE_TIMEOUT", "reconnect promptly, resume from the last id"),
    4029: ("rate limit exceeded", "RATE_LIMITED persisted (CLIENT_RATE_LIMIT)", "reconnect with backoff"),
}  # fmt: skip

#: body code of an upgrade refused before it happens -> (HTTP status, when)
UPGRADE_REFUSALS: Final[dict[str, tuple[int, str]]] = {
    "BAD_REQUEST": (400, "not a valid RFC 6455 handshake (405 another method, 426 another version)"),
    "UNSUPPORTED_SUBPROTOCOL": (
        400,
        "Sec-WebSocket-Protocol offers no subprotocol this gateway supports; the body's `supported` "
        "lists them (flowwire.v2.json, flowwire.v2.msgpack); offer none for the original protocol",
    ),
    "UNAUTHORIZED": (401, "no valid token or API key"),
    "FORBIDDEN_ORIGIN": (403, "Origin not in ALLOWED_ORIGINS"),
    "TOO_MANY_CONNECTIONS": (429, "MAX_CONNECTIONS_PER_USER reached"),
    "DRAINING": (
        503,
        "the gateway is draining (or NOT_READY: it has not reached its event log "
        "yet): connect to another instance, or retry with backoff",
    ),
}
