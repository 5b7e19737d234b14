"""Control messages, error codes and close codes (DESIGN §3).

Client -> server: ``ping``, ``subscribe``, ``unsubscribe``. Server -> client: ``pong``,
``subscribed``, ``unsubscribed``, ``error``. Every frame is ``{"type", "timestamp",
"data"}``; the client's ``timestamp`` is optional and never validated (defect 13: a
non-RFC 3339 client timestamp made the original reject the whole message).

:func:`decode_client` turns *any* bytes into either a typed message or a
:class:`ProtocolError` carrying the ``error`` code to reply with; it never raises.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Annotated, Any, Final, TypeAlias

import msgspec

from schemas.channels import parse_channel

__all__ = [
    "ClientMessage",
    "CloseCode",
    "ErrorCode",
    "ErrorData",
    "ErrorMessage",
    "Filters",
    "Ping",
    "Pong",
    "ProtocolError",
    "ServerControl",
    "Subscribe",
    "SubscribeData",
    "Subscribed",
    "SubscribedData",
    "Unsubscribe",
    "UnsubscribeData",
    "Unsubscribed",
    "decode_client",
]

MAX_FILTER_VALUES: Final = 1000

_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
_IdList = Annotated[list[_Id], msgspec.Meta(max_length=MAX_FILTER_VALUES)]
_StreamIdText = Annotated[str, msgspec.Meta(pattern=r"^\d{1,20}(-\d{1,20})?$")]


class ErrorCode(StrEnum):
    PARSE_ERROR = "PARSE_ERROR"
    INVALID_SUBSCRIPTION = "INVALID_SUBSCRIPTION"
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    FORBIDDEN = "FORBIDDEN"
    TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"
    RATE_LIMITED = "RATE_LIMITED"
    INTERNAL_ERROR = "INTERNAL_ERROR"


class CloseCode(IntEnum):
    NORMAL = 1000
    POLICY_VIOLATION = 1008  # origin or auth refused after the upgrade
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012  # drain: reconnect (elsewhere) and resume after the delay
    TRY_AGAIN_LATER = 1013  # overloaded, e.g. MAX_CONNECTIONS reached
    TOKEN_EXPIRED = 4001
    SLOW_CONSUMER = 4008  # outbox full: resume from your last id
    RATE_LIMITED = 4029


class Filters(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True):
    """Per-subscription filters: a non-empty list constrains, constraints are ANDed.

    ``null`` is accepted for a list (Go's encoding of an empty slice) and means empty.
    """

    workflow_ids: _IdList | None = None
    execution_ids: _IdList | None = None
    statuses: _IdList | None = None

    def __post_init__(self) -> None:
        # Normalise: [] and null both mean "no constraint"; kept as None so that the
        # echo in ``subscribed`` omits them.
        if not self.workflow_ids:
            self.workflow_ids = None
        if not self.execution_ids:
            self.execution_ids = None
        if not self.statuses:
            self.statuses = None


class _Frame(msgspec.Struct, tag_field="type", omit_defaults=True, kw_only=True):
    timestamp: Any = None  # never validated, never required


class SubscribeData(msgspec.Struct, omit_defaults=True):
    channel: str
    filters: Filters | None = None
    since: _StreamIdText | None = None

    def __post_init__(self) -> None:
        parse_channel(self.channel)  # ValueError -> msgspec.ValidationError


class UnsubscribeData(msgspec.Struct):
    channel: str

    def __post_init__(self) -> None:
        parse_channel(self.channel)


class Ping(_Frame, tag="ping"):
    data: Any = None


class Subscribe(_Frame, tag="subscribe"):
    data: SubscribeData


class Unsubscribe(_Frame, tag="unsubscribe"):
    data: UnsubscribeData


ClientMessage: TypeAlias = Ping | Subscribe | Unsubscribe
CLIENT_TYPES: Final = frozenset({"ping", "subscribe", "unsubscribe"})


class SubscribedData(msgspec.Struct, omit_defaults=True):
    """``filters`` and ``position`` are always sent by flowwire; the original sent only
    ``channel``, so they are optional for decoders that talk to both."""

    channel: str
    filters: Filters | None = None
    position: str | None = None
    recovered: bool | None = None


class ChannelData(msgspec.Struct):
    channel: str


class ErrorData(msgspec.Struct, omit_defaults=True):
    code: str
    message: str
    type: str | None = None
    channel: str | None = None
    retry_after_ms: int | None = None


class Pong(_Frame, tag="pong"):
    timestamp: str = ""


class Subscribed(_Frame, tag="subscribed"):
    timestamp: str
    data: SubscribedData


class Unsubscribed(_Frame, tag="unsubscribed"):
    timestamp: str
    data: ChannelData


class ErrorMessage(_Frame, tag="error"):
    timestamp: str
    data: ErrorData


ServerControl: TypeAlias = Pong | Subscribed | Unsubscribed | ErrorMessage


class ProtocolError(msgspec.Struct, frozen=True):
    """A client frame that cannot be acted on, with the ``error`` reply's code."""

    code: ErrorCode
    message: str
    type: str | None = None


class _Probe(msgspec.Struct):
    type: Any = None


_client_decoder: Final = msgspec.json.Decoder(ClientMessage)
_probe_decoder: Final = msgspec.json.Decoder(_Probe)


def decode_client(frame: bytes | str) -> ClientMessage | ProtocolError:
    """Decode one client frame. Never raises."""
    try:
        message: ClientMessage = _client_decoder.decode(frame)
        return message
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return _classify(frame, exc)


def _classify(frame: bytes | str, exc: Exception) -> ProtocolError:
    # Only on the error path: decode again, loosely, to say *what* was wrong.
    try:
        probe = _probe_decoder.decode(frame)
    except msgspec.ValidationError:
        return ProtocolError(ErrorCode.PARSE_ERROR, "frame is not a JSON object")
    except msgspec.DecodeError as parse_error:
        return ProtocolError(ErrorCode.PARSE_ERROR, f"frame is not valid JSON: {parse_error}")
    if not isinstance(probe.type, str):
        return ProtocolError(ErrorCode.PARSE_ERROR, "frame has no string 'type'")
    if probe.type not in CLIENT_TYPES:
        return ProtocolError(
            ErrorCode.UNKNOWN_TYPE,
            f"unknown message type {probe.type[:64]!r}; expected ping, subscribe or unsubscribe",
            type=probe.type[:64],
        )
    return ProtocolError(ErrorCode.INVALID_SUBSCRIPTION, f"invalid {probe.type}: {exc}", type=probe.type)
