"""Resume bookkeeping (DESIGN §5): may a ``since`` cursor be served from the stream?"""

from __future__ import annotations

from schemas.codec import StreamId

__all__ = ["is_recoverable"]


def is_recoverable(since: StreamId, *, last: StreamId, floor: StreamId) -> bool:
    """``True`` when every entry after ``since`` is still in the stream.

    ``floor`` is the oldest cursor from which the log still holds every later entry
    (see ``LogInfo``). A ``since`` beyond the stream's last id means the stream was
    rewound (a Redis that came back empty): not recoverable either, the client must
    reload.
    """
    return floor <= since <= last
