"""flowwire's wire protocol and stream entry layout, as msgspec Structs.

Exceptions: this package raises only ``ValueError`` subclasses
(``schemas.stream.InvalidEntry``) and ``ValueError`` from ``make_event``; the client
decoder never raises, it returns a ``ProtocolError``.
"""

from schemas.channels import Channel, parse_channel
from schemas.codec import format_id, parse_id, rfc3339_from_ms, rfc3339_now
from schemas.control import (
    ClientMessage,
    CloseCode,
    ErrorCode,
    Filters,
    Ping,
    ProtocolError,
    Subscribe,
    Unsubscribe,
    decode_client,
)
from schemas.envelope import EVENT_MESSAGES, EventMessage, event_frame, server_decoder
from schemas.events import (
    EVENT_TYPES,
    ApprovalPayload,
    Event,
    ExecutionPayload,
    StepPayload,
    make_event,
)
from schemas.stream import InvalidEntry, StreamEvent, decode_entry, encode_entry

__all__ = [
    "EVENT_MESSAGES",
    "EVENT_TYPES",
    "ApprovalPayload",
    "Channel",
    "ClientMessage",
    "CloseCode",
    "ErrorCode",
    "Event",
    "EventMessage",
    "ExecutionPayload",
    "Filters",
    "InvalidEntry",
    "Ping",
    "ProtocolError",
    "StepPayload",
    "StreamEvent",
    "Subscribe",
    "Unsubscribe",
    "decode_client",
    "decode_entry",
    "encode_entry",
    "event_frame",
    "format_id",
    "make_event",
    "parse_channel",
    "parse_id",
    "rfc3339_from_ms",
    "rfc3339_now",
    "server_decoder",
]
