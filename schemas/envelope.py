"""Server -> client event frames (DESIGN §3).

An event frame is the original's ``{"type", "timestamp", "data"}`` plus ``"id"``, the
stream entry id and the client's resume cursor. The gateway never re-encodes a payload:
:func:`event_frame` splices the payload bytes, exactly as the publisher wrote them,
into the envelope, once per event (DESIGN §1, STYLE habit 4).

:data:`EVENT_MESSAGES` holds one tagged Struct per event type: for clients, for the
golden tests against the original's frames, and for the published JSON Schemas.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from schemas.control import ServerControl
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
    "server_decoder",
]


class EventMessage(msgspec.Struct, omit_defaults=True):
    """Any event frame, payload typed by category. ``id`` is absent in the original's."""

    type: str
    timestamp: str
    data: Payload | dict[str, Any]
    id: str | None = None


def _event_struct(event_type: str, payload: type[Payload]) -> type[msgspec.Struct]:
    name = "".join(part.capitalize() for part in event_type.split(".")) + "Message"
    return msgspec.defstruct(
        name,
        [("timestamp", str), ("data", payload), ("id", str | None, None)],
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


def event_frame(event_type: bytes, timestamp: bytes, entry_id: bytes, data: bytes) -> bytes:
    """Splice an event frame. Inputs must already be validated: ``event_type`` a known
    type, ``timestamp`` RFC 3339, ``entry_id`` a stream id (all plain ASCII, needing no
    JSON escaping) and ``data`` a JSON object."""
    return b"".join(
        (
            b'{"type":"',
            event_type,
            b'","timestamp":"',
            timestamp,
            b'","id":"',
            entry_id,
            b'","data":',
            data,
            b"}",
        )
    )
