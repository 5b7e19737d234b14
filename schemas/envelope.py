"""Server -> client event frames (docs/protocol.md, "Frames").

An event frame is the original's ``{"type", "timestamp", "data"}`` plus ``"id"``, the
stream entry id and the client's resume cursor. The gateway never re-encodes a payload:
:func:`event_frame` splices the payload bytes, exactly as the publisher wrote them,
into the envelope, once per event (decode once, encode once per event, never per client).

:data:`EVENT_MESSAGES` holds one tagged Struct per event type: for clients, for the
golden tests against the original's frames, and for the published JSON Schemas.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from schemas.control import ServerControl, ServerControlV2
from schemas.events import (
    APPROVAL_EVENT_TYPES,
    EXECUTION_EVENT_TYPES,
    STEP_EVENT_TYPES,
    ApprovalPayload,
    ExecutionPayload,
    Payload,
    StepPayload,
)

__all__ = [
    "EVENT_MESSAGES",
    "EventMessage",
    "event_frame",
    "msgpack_of_json",
    "server_decoder",
    "server_decoder_v2",
    "server_msgpack_decoder",
]


class EventMessage(msgspec.Struct, omit_defaults=True):
    """Any event frame, payload typed by category. ``id`` is absent in the original's."""

    type: str
    timestamp: str
    data: Payload | dict[str, Any]
    id: str | None = None
    #: the resume cursor, with partitioned streams (docs/protocol.md "Partitioned streams")
    #: and on a version 2 connection while an approval is ahead of stream order ("Priority
    #: and conflation"): the last frame's, else its ``id``, is where to resume
    cursor: str | None = None


def _event_struct(event_type: str, payload: type[Payload]) -> type[msgspec.Struct]:
    name = "".join(part.capitalize() for part in event_type.split(".")) + "Message"
    return msgspec.defstruct(
        name,
        [("timestamp", str), ("data", payload), ("id", str | None, None), ("cursor", str | None, None)],
        tag=event_type,
        tag_field="type",
        omit_defaults=True,
        module=__name__,
    )


EVENT_MESSAGES: Final[dict[str, type[msgspec.Struct]]] = {
    **{t: _event_struct(t, ExecutionPayload) for t in EXECUTION_EVENT_TYPES},
    **{t: _event_struct(t, StepPayload) for t in STEP_EVENT_TYPES},
    **{t: _event_struct(t, ApprovalPayload) for t in APPROVAL_EVENT_TYPES},
}

_server_union: Any = ServerControl
for _cls in EVENT_MESSAGES.values():
    _server_union = _server_union | _cls

#: Decodes any frame a flowwire (or the original Go) server sends, strictly typed.
server_decoder: Final[msgspec.json.Decoder[Any]] = msgspec.json.Decoder(_server_union)

_server_union_v2: Any = ServerControlV2
for _cls in EVENT_MESSAGES.values():
    _server_union_v2 = _server_union_v2 | _cls

#: The same on a version 2 connection (``welcome``, ``token_expiring``, ``refreshed``
#: too): ``flowwire.v2.json`` text frames and ``flowwire.v2.msgpack`` binary frames.
server_decoder_v2: Final[msgspec.json.Decoder[Any]] = msgspec.json.Decoder(_server_union_v2)
server_msgpack_decoder: Final[msgspec.msgpack.Decoder[Any]] = msgspec.msgpack.Decoder(_server_union_v2)


def event_frame(
    event_type: bytes, timestamp: bytes, entry_id: bytes, data: bytes, cursor: bytes = b""
) -> bytes:
    """Splice an event frame. Inputs must already be validated: ``event_type`` a known
    type, ``timestamp`` RFC 3339, ``entry_id`` a stream id, ``cursor`` (partitioned
    streams only; else empty and absent from the frame) a ``v1.`` cursor (all plain
    ASCII, needing no JSON escaping) and ``data`` a JSON object."""
    return b"".join(
        (
            b'{"type":"',
            event_type,
            b'","timestamp":"',
            timestamp,
            b'","id":"',
            entry_id,
            b'","cursor":"' + cursor + b'","data":' if cursor else b'","data":',
            data,
            b"}",
        )
    )


_json_decode: Final = msgspec.json.Decoder().decode
_msgpack_encode: Final = msgspec.msgpack.Encoder().encode
#: msgpack's integers: int64 and uint64
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1


def msgpack_of_json(doc: bytes) -> bytes:
    """A JSON message (an event frame, payload included) as msgpack: decoded once,
    encoded once, the same keys in the same order (protocol ``flowwire.v2.msgpack``).

    JSON integers outside msgpack's range (-2^63 .. 2^64 - 1) become float64, which is
    what a JavaScript client's ``JSON.parse`` makes of them too (docs/protocol.md)."""
    value = _json_decode(doc)
    try:
        return _msgpack_encode(value)
    except OverflowError:
        return _msgpack_encode(_floats_for_big_ints(value))


def _floats_for_big_ints(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _floats_for_big_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats_for_big_ints(v) for v in value]
    if type(value) is int and not _INT_MIN <= value <= _INT_MAX:
        return float(value)
    return value
