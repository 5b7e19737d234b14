"""Control messages, error codes and close codes (docs/protocol.md, "Frames").

Client -> server: ``ping``, ``subscribe``, ``unsubscribe``, ``presence``. Server ->
client: ``pong``, ``subscribed``, ``unsubscribed``, ``error``, ``presence.state``,
``presence.diff`` (docs/protocol.md, "Presence": only a client that sends ``presence``
ever gets the last two). Every frame is ``{"type", "timestamp",
"data"}``; the client's ``timestamp`` is optional and never validated (defect 13: a
non-RFC 3339 client timestamp made the original reject the whole message).

Protocol version 2 (docs/protocol.md, "Protocol version 2") adds ``hello`` and
``refresh`` (client -> server) and ``welcome``, ``token_expiring`` and ``refreshed``
(server -> client), in JSON text frames (``flowwire.v2.json``) or msgpack binary frames
(``flowwire.v2.msgpack``); a version 1 connection knows none of them.

:func:`decode_client` turns *any* bytes into either a typed message or a
:class:`ProtocolError` carrying the ``error`` code to reply with; it never raises.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Annotated, Any, Final, TypeAlias

import msgspec

from schemas.channels import parse_channel
from schemas.codec import parse_id
from schemas.partition import CURSOR_PREFIX

__all__ = [
    "FEATURES",
    "SUBPROTOCOLS",
    "V2_JSON",
    "V2_MSGPACK",
    "ClientMessage",
    "ClientMessageV2",
    "CloseCode",
    "ErrorCode",
    "ErrorData",
    "ErrorMessage",
    "ExpiryData",
    "Filters",
    "Hello",
    "HelloData",
    "Ping",
    "Pong",
    "Presence",
    "PresenceData",
    "PresenceDiff",
    "PresenceDiffData",
    "PresenceMember",
    "PresenceState",
    "PresenceStateData",
    "ProtocolError",
    "Refresh",
    "RefreshData",
    "Refreshed",
    "ServerControl",
    "Subscribe",
    "SubscribeData",
    "Subscribed",
    "SubscribedData",
    "TokenExpiring",
    "Unsubscribe",
    "UnsubscribeData",
    "Unsubscribed",
    "Welcome",
    "WelcomeData",
    "decode_client",
]

MAX_FILTER_VALUES: Final = 1000

#: The subprotocols (``Sec-WebSocket-Protocol``) of version 2: these names are the contract.
V2_JSON: Final = "flowwire.v2.json"
V2_MSGPACK: Final = "flowwire.v2.msgpack"
SUBPROTOCOLS: Final = (V2_JSON, V2_MSGPACK)
#: The optional features a version 2 client may ask for in ``hello`` and this gateway
#: grants (``token_refresh``: ``token_expiring`` notices, granted to token connections;
#: ``presence``: the ``presence`` message and its ``presence.diff`` events, granted
#: while ``PRESENCE`` is on).
FEATURES: Final = ("token_refresh", "presence")

_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
_IdList = Annotated[list[_Id], msgspec.Meta(max_length=MAX_FILTER_VALUES)]
#: A stream id, or the cursor of a partitioned deployment (``v1.<id>.<id>...``, at most
#: 64 ids: ``schemas.partition``), which a version 2 connection may follow with the
#: events written ahead of it (``~<partition>.<id>``, at most 16: ``schemas.lanes``).
_CursorText = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(\d{1,20}(-\d{1,20})?|v1(\.\d{1,20}(-\d{1,20})?){1,64}(~\d{1,2}\.\d{1,20}-\d{1,20}){0,16})$",
        max_length=2800,
    ),
]


class ErrorCode(StrEnum):
    PARSE_ERROR = "PARSE_ERROR"
    INVALID_SUBSCRIPTION = "INVALID_SUBSCRIPTION"
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    FORBIDDEN = "FORBIDDEN"
    TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"
    TOO_MANY_FILTER_VALUES = "TOO_MANY_FILTER_VALUES"
    RATE_LIMITED = "RATE_LIMITED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    # version 2
    INVALID_HELLO = "INVALID_HELLO"  # a hello that is not the connection's first message
    INVALID_TOKEN = "INVALID_TOKEN"  # refresh: the token is not valid (as at the upgrade)
    TOKEN_MISMATCH = "TOKEN_MISMATCH"  # refresh: a token of another user or organization
    REFRESH_NOT_SUPPORTED = "REFRESH_NOT_SUPPORTED"  # refresh on an API-key connection


class CloseCode(IntEnum):
    NORMAL = 1000
    UNSUPPORTED_DATA = 1003  # a frame of the other kind: binary on JSON, text on msgpack
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
    since: _CursorText | None = None
    #: version 2: the latest event per execution when backlogged, instead of 4008
    #: (docs/protocol.md "Conflation"); ignored on version 1
    conflate: bool = False

    def __post_init__(self) -> None:
        parse_channel(self.channel)  # ValueError -> msgspec.ValidationError
        if self.since is not None:
            head, *ahead = self.since.split("~")
            for part in head.removeprefix(CURSOR_PREFIX).split(".") + [a.partition(".")[2] for a in ahead]:
                parse_id(part)  # each part at most 2^64 - 1, as Redis stream ids


class UnsubscribeData(msgspec.Struct):
    channel: str

    def __post_init__(self) -> None:
        parse_channel(self.channel)


class PresenceData(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True):
    """``channel``: whose presence (a channel name; absent or null: the organization's).
    ``watch``: ``true`` starts ``presence.diff`` events for it, ``false`` stops them;
    absent leaves them as they are."""

    channel: str | None = None
    watch: bool | None = None

    def __post_init__(self) -> None:
        if self.channel is not None:
            parse_channel(self.channel)


class Ping(_Frame, tag="ping"):
    data: Any = None


class Subscribe(_Frame, tag="subscribe"):
    data: SubscribeData


class Unsubscribe(_Frame, tag="unsubscribe"):
    data: UnsubscribeData


class HelloData(msgspec.Struct, omit_defaults=True):
    #: feature names; an unknown one is simply not granted
    features: Annotated[list[Annotated[str, msgspec.Meta(max_length=64)]], msgspec.Meta(max_length=32)] = []


class RefreshData(msgspec.Struct):
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=16384)]


class Hello(_Frame, tag="hello"):
    """Version 2: the connection's first message (optional), asking for features."""

    data: HelloData = msgspec.field(default_factory=HelloData)


class Refresh(_Frame, tag="refresh"):
    """Version 2: a fresh token for this connection (same user and organization)."""

    data: RefreshData


class Presence(_Frame, tag="presence"):
    data: PresenceData | None = None


#: ``presence`` is answered on both versions (an original client never sends it, so
#: what it receives is unchanged); version 2 lists it in ``welcome``'s features.
ClientMessage: TypeAlias = Ping | Subscribe | Unsubscribe | Presence
ClientMessageV2: TypeAlias = Ping | Subscribe | Unsubscribe | Presence | Hello | Refresh
CLIENT_TYPES: Final = frozenset({"ping", "subscribe", "unsubscribe", "presence"})
CLIENT_TYPES_V2: Final = CLIENT_TYPES | {"hello", "refresh"}


class SubscribedData(msgspec.Struct, omit_defaults=True):
    """``filters`` and ``position`` are always sent by flowwire; the original sent only
    ``channel``, so they are optional for decoders that talk to both."""

    channel: str
    filters: Filters | None = None
    position: str | None = None
    recovered: bool | None = None
    #: version 2, when the subscribe asked for it: conflation granted
    conflate: bool | None = None


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


class PresenceMember(msgspec.Struct):
    user_id: str
    connections: int


class PresenceStateData(msgspec.Struct, omit_defaults=True):
    """The members of a channel (or, without ``channel``, of the organization): at most
    ``PRESENCE_MAX_MEMBERS`` of them, by user id; ``count`` is how many there are.
    ``watching``: whether this connection gets ``presence.diff`` events for it."""

    members: list[PresenceMember]
    count: int
    watching: bool
    channel: str | None = None


class PresenceState(_Frame, tag="presence.state"):
    timestamp: str
    data: PresenceStateData


class PresenceDiffData(msgspec.Struct, omit_defaults=True):
    """What changed in one interval: ``joined`` are members now present whose entry
    changed (new, or another connection count), ``left`` the users no longer present;
    ``count`` is how many members there are now. ``resync``: too many changes to list,
    ask with ``presence`` again."""

    joined: list[PresenceMember]
    left: list[str]
    count: int
    channel: str | None = None
    resync: bool = False


class PresenceDiff(_Frame, tag="presence.diff"):
    timestamp: str
    data: PresenceDiffData


class WelcomeData(msgspec.Struct):
    protocol: str  # the subprotocol selected
    granted: list[str]  # the features of the hello granted on this connection
    features: list[str]  # every feature this gateway supports


class ExpiryData(msgspec.Struct):
    #: RFC 3339 UTC: when the connection closes with 4001 unless refreshed (exp + JWT_LEEWAY)
    expires_at: str


class Welcome(_Frame, tag="welcome"):
    timestamp: str
    data: WelcomeData


class TokenExpiring(_Frame, tag="token_expiring"):
    timestamp: str
    data: ExpiryData


class Refreshed(_Frame, tag="refreshed"):
    timestamp: str
    data: ExpiryData


ServerControl: TypeAlias = Pong | Subscribed | Unsubscribed | ErrorMessage | PresenceState | PresenceDiff
ServerControlV2: TypeAlias = ServerControl | Welcome | TokenExpiring | Refreshed


class ProtocolError(msgspec.Struct, frozen=True):
    """A client frame that cannot be acted on, with the ``error`` reply's code."""

    code: ErrorCode
    message: str
    type: str | None = None


class _Probe(msgspec.Struct):
    type: Any = None


_client_decoder: Final = msgspec.json.Decoder(ClientMessage)
_probe_decoder: Final = msgspec.json.Decoder(_Probe)
_v2_json_decoder: Final = msgspec.json.Decoder(ClientMessageV2)
_v2_msgpack_decoder: Final = msgspec.msgpack.Decoder(ClientMessageV2)
_msgpack_probe_decoder: Final = msgspec.msgpack.Decoder(_Probe)


def decode_client(
    frame: bytes | str, *, version: int = 1, msgpack: bool = False
) -> ClientMessage | ClientMessageV2 | ProtocolError:
    """Decode one client frame: version 1 (no subprotocol) or 2, JSON or (version 2)
    msgpack. Never raises: whatever goes wrong, even in the decoder itself (a frame
    nested deeper than the interpreter's recursion limit), is an ``error`` reply, never
    an exception that would close the connection."""
    if version == 1:
        decoder: Any = _client_decoder
    else:
        decoder = _v2_msgpack_decoder if msgpack else _v2_json_decoder
    try:
        message: ClientMessageV2 = decoder.decode(frame)
        return message
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return _classify(frame, exc, version, msgpack)
    except RecursionError:
        return _TOO_DEEP
    except Exception as exc:  # a decoder bug must not close the connection either
        return ProtocolError(ErrorCode.PARSE_ERROR, f"frame could not be decoded: {type(exc).__name__}")


_TOO_DEEP: Final = ProtocolError(ErrorCode.PARSE_ERROR, "frame is nested too deeply")


def _classify(frame: bytes | str, exc: Exception, version: int, msgpack: bool) -> ProtocolError:
    # Only on the error path: decode again, loosely, to say *what* was wrong.
    encoding = "msgpack" if msgpack else "JSON"
    try:
        probe_decoder: Any = _msgpack_probe_decoder if msgpack else _probe_decoder
        probe = probe_decoder.decode(frame)
    except RecursionError:
        return _TOO_DEEP
    except msgspec.ValidationError:
        return ProtocolError(ErrorCode.PARSE_ERROR, f"frame is not a {encoding} object")
    except msgspec.DecodeError as parse_error:
        return ProtocolError(ErrorCode.PARSE_ERROR, f"frame is not valid {encoding}: {parse_error}")
    if not isinstance(probe.type, str):
        return ProtocolError(ErrorCode.PARSE_ERROR, "frame has no string 'type'")
    if probe.type not in (CLIENT_TYPES if version == 1 else CLIENT_TYPES_V2):
        expected = "ping, subscribe or unsubscribe" if version == 1 else _EXPECTED_V2
        return ProtocolError(
            ErrorCode.UNKNOWN_TYPE,
            f"unknown message type {probe.type[:64]!r}; expected {expected}",
            type=probe.type[:64],
        )
    code = ErrorCode.INVALID_SUBSCRIPTION
    if probe.type == "hello":
        code = ErrorCode.INVALID_HELLO
    elif probe.type == "refresh":
        code = ErrorCode.INVALID_TOKEN
    return ProtocolError(code, f"invalid {probe.type}: {exc}", type=probe.type)


_EXPECTED_V2: Final = "ping, subscribe, unsubscribe, hello or refresh"
