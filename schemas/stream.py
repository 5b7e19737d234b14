"""The stream entry layout, the cross-language publishing contract
(docs/protocol.md, "Publishing (the stream contract)").

Fields of an entry of ``ws:events``:

========  =========  =========================================================
``type``  required   an event type (``execution.started`` ...)
``data``  required   a JSON object: the payload exactly as clients will see it
``ts``    optional   RFC 3339; default: the entry id's time
``org``   optional   organization id: only that organization's connections get it
``user``  optional   target user id: the event goes to ``users:{user}`` only
========  =========  =========================================================

:func:`encode_entry` and :func:`decode_entry` are pure. ``decode_entry`` decodes only
what routing needs (``execution_id``, ``workflow_id``, ``status``) and keeps the
payload as the publisher's bytes, to be forwarded, never re-encoded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec

from schemas.codec import StreamId, is_rfc3339, parse_id, rfc3339_from_ms
from schemas.events import EVENT_TYPES, Event

__all__ = [
    "MAX_EVENT_SIZE",
    "InvalidEntry",
    "StreamEvent",
    "decode_entry",
    "encode_entry",
    "entry_execution_id",
]

_encoder: Final = msgspec.json.Encoder()

#: The default bound on an entry's ``data`` (bytes) the gateway forwards
#: (``MAX_EVENT_SIZE``); a larger entry is skipped, counted and logged.
MAX_EVENT_SIZE: Final = 1024 * 1024


class InvalidEntry(ValueError):
    """A stream entry the gateway cannot use; skipped, counted and logged by id."""


class _Routing(msgspec.Struct):
    execution_id: str | None = None
    workflow_id: str | None = None
    status: str | None = None


_routing_decoder: Final = msgspec.json.Decoder(_Routing)


class StreamEvent(msgspec.Struct, frozen=True):
    """One usable entry: routing keys decoded, the payload kept as raw JSON bytes."""

    id: bytes
    sid: StreamId
    type: str
    data: bytes
    timestamp: bytes
    execution_id: str
    workflow_id: str | None
    status: str | None
    org: str | None = None
    user: str | None = None
    #: the partition the entry was read from (``schemas.partition``; 0 with one stream)
    part: int = 0


def encode_entry(
    event: Event, *, org: str | None = None, user: str | None = None, ts: str | None = None
) -> dict[str, bytes]:
    """The XADD field map for ``event``. The event must be valid (see ``make_event``)."""
    fields = {"type": event.type.encode(), "data": _encoder.encode(event.data)}
    if ts is not None:
        if not is_rfc3339(ts):
            raise ValueError(f"ts is not RFC 3339: {ts!r}")
        fields["ts"] = ts.encode()
    if org:
        fields["org"] = org.encode()
    if user:
        fields["user"] = user.encode()
    return fields


def entry_execution_id(fields: Mapping[str, bytes]) -> str | None:
    """The ``execution_id`` of an entry's ``data`` (to choose its partition:
    ``schemas.partition``); ``None`` when it has none or is not usable."""
    data = fields.get("data")
    if not isinstance(data, bytes | bytearray):
        return None
    try:
        return _routing_decoder.decode(data).execution_id
    except (msgspec.DecodeError, RecursionError):
        return None


def _text(fields: dict[bytes, bytes], name: bytes) -> str | None:
    value = fields.get(name)
    if value is None or value == b"":
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise InvalidEntry(f"field {name.decode()!r} is not UTF-8") from None


def decode_entry(
    entry_id: bytes, fields: dict[bytes, bytes], *, max_size: int = MAX_EVENT_SIZE, part: int = 0
) -> StreamEvent:
    """Decode one entry as read by ``XREAD``; :class:`InvalidEntry` says why not.

    Whatever a publisher wrote, this raises nothing else: an entry the gateway cannot
    forward to every client as it stands (not UTF-8, larger than ``max_size``, nested
    past the decoder's depth, ...) is an :class:`InvalidEntry`.
    """
    try:
        sid = parse_id(entry_id.decode())
    except (UnicodeDecodeError, ValueError):
        raise InvalidEntry(f"not a stream id: {entry_id!r}") from None
    event_type = _text(fields, b"type")
    if event_type not in EVENT_TYPES:
        raise InvalidEntry(f"unknown or missing type {event_type!r}")
    data = fields.get(b"data")
    if not data:
        raise InvalidEntry("missing data")
    if len(data) > max_size:
        raise InvalidEntry(f"data is {len(data)} bytes, above the limit of {max_size}")
    try:
        # The routing decoder skips what it does not need without checking its UTF-8;
        # a client (a browser) fails a text frame that is not UTF-8 with 1007.
        data.decode()
    except UnicodeDecodeError as exc:
        raise InvalidEntry(f"data is not UTF-8 (byte {exc.start})") from None
    try:
        routing = _routing_decoder.decode(data)
    except msgspec.DecodeError as exc:  # ValidationError included: not an object, ...
        raise InvalidEntry(f"data is not a usable JSON object: {exc}") from None
    except RecursionError:
        raise InvalidEntry("data is nested too deeply") from None
    if not routing.execution_id:
        raise InvalidEntry("data has no execution_id")
    if not event_type.startswith("step.") and not routing.workflow_id:
        raise InvalidEntry("data has no workflow_id")
    ts = fields.get(b"ts")
    if ts is None or not is_rfc3339(ts.decode("ascii", "replace")):
        ts = rfc3339_from_ms(sid[0]).encode()
    return StreamEvent(
        id=entry_id,
        sid=sid,
        type=event_type,
        data=data,
        timestamp=ts,
        execution_id=routing.execution_id,
        workflow_id=routing.workflow_id,
        status=routing.status,
        org=_text(fields, b"org"),
        user=_text(fields, b"user"),
        part=part,
    )
