"""Small pure helpers shared by every codec: RFC 3339 timestamps and stream ids.

Stream ids (``"1764152400123-0"``) are compared as ``(ms, seq)`` pairs, never as
strings: ``"9-0" < "10-0"`` numerically but not lexically.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Final

__all__ = [
    "ZERO_ID",
    "StreamId",
    "format_id",
    "is_rfc3339",
    "parse_id",
    "rfc3339_from_ms",
    "rfc3339_now",
]

StreamId = tuple[int, int]
ZERO_ID: Final[StreamId] = (0, 0)

#: Redis stream ids are two unsigned 64-bit integers.
_ID_PART_MAX: Final = 2**64 - 1
_ID_RE: Final = re.compile(r"(\d{1,20})(?:-(\d{1,20}))?\Z")
# RFC 3339 date-time, UTC or offset, up to nanoseconds (Go's RFC3339Nano).
_RFC3339_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})\Z")


def parse_id(text: str) -> StreamId:
    """``"1764152400123-5"`` -> ``(1764152400123, 5)``; ``"123"`` means ``(123, 0)``.
    Each part is at most 2^64 - 1, as in Redis (which refuses a larger one)."""
    match = _ID_RE.match(text)
    if match is None:
        raise ValueError(f"not a stream id: {text[:64]!r}")
    ms, seq = int(match[1]), int(match[2] or 0)
    if ms > _ID_PART_MAX or seq > _ID_PART_MAX:
        raise ValueError(f"not a stream id (a part above 2^64 - 1): {text[:64]!r}")
    return ms, seq


def format_id(sid: StreamId) -> str:
    return f"{sid[0]}-{sid[1]}"


def is_rfc3339(text: str) -> bool:
    return _RFC3339_RE.match(text) is not None


def rfc3339_from_ms(ms: int) -> str:
    """A UTC RFC 3339 timestamp with millisecond precision."""
    seconds, millis = divmod(ms, 1000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{base}.{millis:03d}Z"


def rfc3339_now() -> str:
    """Now, UTC, microsecond precision."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
