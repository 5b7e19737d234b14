"""Resume bookkeeping (DESIGN §5): may a ``since`` cursor be served from the stream?"""

from __future__ import annotations

from schemas.codec import ZERO_ID, StreamId

__all__ = ["is_recoverable"]


def is_recoverable(since: StreamId, *, held: bool, floor: StreamId) -> bool:
    """``True`` when every entry after ``since`` is still in the stream.

    A cursor is always an entry id (an event's, or a ``position``, the last entry when
    subscribing) or ``0-0``. ``held``: the log still holds the entry ``since``; as the
    oldest entries are trimmed first, all later ones are then held too. This also
    refuses a cursor from a stream that was lost and began again (a Redis that came
    back empty): its ids are not in the new stream. ``0-0`` is whole only while nothing
    was ever trimmed (``floor``, see ``LogInfo``).
    """
    if since == ZERO_ID:
        return floor == ZERO_ID
    return held
