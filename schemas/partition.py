"""Partitioned streams (``STREAM_PARTITIONS=P``): which stream an event goes to, the
partitions' keys, and the resume cursor of a partitioned deployment (docs/protocol.md
"Partitioned streams", docs/operations.md "Partitioned streams").

Written once, here, for every appender (``publisher``, the gateway's embedded twin, the
demo executor) and every reader (the gateway):

- :func:`partition_of`: ``crc32(execution_id as UTF-8) mod P``. Every event of one
  execution is in one partition, so its events keep their order. An entry without an
  execution id (the gateway skips it anyway) goes where the empty key does: partition 0.
- :func:`partition_keys`: with P = 1 the stream key itself (``ws:events``, today's
  layout); with P > 1, ``{ws:events:0}`` ... ``{ws:events:P-1}``: each name is its own
  Cluster hash tag, so the partitions hash to different slots (spread over the
  primaries), and each partition's companion keys (``{ws:events:0}:dedupe:<key>``) share
  its slot.
- :func:`partitions_key`: ``ws:events:partitions``, where the gateways record P at
  start-up (``SET NX``); a gateway started with another P refuses to start, a publisher
  configured with another P refuses to publish (``PublishError``): events written to
  streams no gateway reads would be lost.
- A position in a partitioned deployment is a vector of P stream ids (:data:`Vector`);
  clients see it as the opaque string ``v1.<id 0>.<id 1>...`` (:func:`format_cursor`,
  :func:`parse_cursor`). With P = 1 the vector has one id and the wire keeps the bare id.
"""

from __future__ import annotations

import zlib
from typing import Final

from schemas.codec import ZERO_ID, StreamId, format_id, parse_id

__all__ = [
    "CURSOR_PREFIX",
    "MAX_PARTITIONS",
    "Vector",
    "format_cursor",
    "parse_cursor",
    "partition_keys",
    "partition_of",
    "partitions_key",
    "zero",
]

#: One stream id per partition.
Vector = tuple[StreamId, ...]

MAX_PARTITIONS: Final = 64
CURSOR_PREFIX: Final = "v1."


def partition_of(execution_id: str | None, partitions: int) -> int:
    """The partition of an event of ``execution_id`` (module docstring)."""
    if partitions == 1:
        return 0
    return zlib.crc32((execution_id or "").encode()) % partitions


def partition_keys(stream_key: str, partitions: int) -> tuple[str, ...]:
    """The stream key of each partition (module docstring)."""
    if partitions == 1:
        return (stream_key,)
    return tuple(f"{{{stream_key}:{p}}}" for p in range(partitions))


def partitions_key(stream_key: str) -> str:
    """Where the gateways record P (module docstring)."""
    return f"{stream_key}:partitions"


def zero(partitions: int) -> Vector:
    return (ZERO_ID,) * partitions


def format_cursor(vector: Vector) -> str:
    """The wire form: the bare id for one partition, else ``v1.<id>.<id>...``."""
    if len(vector) == 1:
        return format_id(vector[0])
    return CURSOR_PREFIX + ".".join(map(format_id, vector))


def parse_cursor(text: str, partitions: int) -> Vector | None:
    """A ``since`` as a vector of ``partitions`` ids, or ``None`` when it names no
    position of this deployment (answered ``recovered: false``, never a gap): a
    ``v1.`` cursor of another partition count, or, with P > 1, a bare id other than
    ``0-0`` (a bare ``0-0`` means the start of every partition). ``ValueError`` when
    it is neither an id nor a cursor."""
    if text.startswith(CURSOR_PREFIX):
        parts = text[len(CURSOR_PREFIX) :].split(".")
        if len(parts) > MAX_PARTITIONS:
            raise ValueError(f"a cursor of more than {MAX_PARTITIONS} partitions: {text[:64]!r}")
        vector = tuple(parse_id(part) for part in parts)
        return vector if len(vector) == partitions else None
    sid = parse_id(text)
    if partitions == 1:
        return (sid,)
    return zero(partitions) if sid == ZERO_ID else None
