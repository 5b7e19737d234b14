"""The resume cursor of a version 2 connection that writes events out of stream order
(docs/protocol.md "Priority and conflation").

A backlogged version 2 connection writes ``approval.*`` events ahead of the bulk events
queued before them. The last frame's ``id`` (or its reader position) is then no longer
a resume point, so every frame written while such events are outstanding carries a
cursor of two parts:

- the *low-water mark*: a position vector (``schemas.partition``) at or below which
  every event owed to the connection has been written;
- the events *ahead*: the (partition, id) of each event above the mark already written
  (at most :data:`MAX_AHEAD`; when that many are outstanding, approvals stop jumping
  the queue until the mark passes them).

A resume from it replays from the mark and skips the events ahead: once, and no gap.
On the wire: ``v1.<id>.<id>...`` (the partition cursor, one id per partition, also with
one partition) followed by ``~<partition>.<id>`` for each event ahead, e.g.
``v1.1700000000000-3~0.1700000000042-0``. Clients treat it as opaque.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from schemas.codec import StreamId, format_id, parse_id
from schemas.partition import CURSOR_PREFIX, Vector, parse_cursor

__all__ = ["AHEAD_MARK", "MAX_AHEAD", "Ahead", "format_resume", "parse_resume"]

#: At most this many events written ahead of the low-water mark at once.
MAX_AHEAD: Final = 16
AHEAD_MARK: Final = "~"

#: Events written ahead of the low-water mark: (partition, id).
Ahead = frozenset[tuple[int, StreamId]]


def format_resume(low: Vector, ahead: Iterable[tuple[int, StreamId]]) -> str:
    """The wire form of a mark and the events ahead of it (module docstring)."""
    head = CURSOR_PREFIX + ".".join(map(format_id, low))
    return head + "".join(f"{AHEAD_MARK}{part}.{format_id(sid)}" for part, sid in sorted(ahead))


def parse_resume(text: str, partitions: int) -> tuple[Vector | None, Ahead]:
    """A ``since``: its position vector (``None`` as :func:`schemas.partition.parse_cursor`
    answers: no position of this deployment) and the events ahead it names (empty for a
    plain id or cursor). ``ValueError`` when it is malformed."""
    head, *rest = text.split(AHEAD_MARK)
    if len(rest) > MAX_AHEAD:
        raise ValueError(f"a cursor naming more than {MAX_AHEAD} events ahead")
    vector = parse_cursor(head, partitions)
    ahead = []
    for item in rest:
        part, _, sid = item.partition(".")
        if not part.isdigit() or len(part) > 2:
            raise ValueError(f"not an event ahead: {item[:64]!r}")
        ahead.append((int(part), parse_id(sid)))
    if vector is None or any(part >= partitions for part, _ in ahead):
        return None, frozenset()
    return vector, frozenset(ahead)
