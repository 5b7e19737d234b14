"""Resume bookkeeping (DESIGN §5): may a ``since`` cursor be served from the stream?"""

from __future__ import annotations

from schemas.codec import StreamId

__all__ = ["is_recoverable"]


def is_recoverable(since: StreamId, *, last: StreamId, max_deleted: StreamId) -> bool:
    """``True`` when every entry after ``since`` is still in the stream.

    ``max_deleted`` is the highest id ever trimmed or deleted (Redis 7's
    ``max-deleted-entry-id``): entries after ``since`` are all there iff none of them was
    deleted. A ``since`` beyond the stream's last id means the stream was rewound (a
    Redis that came back empty): not recoverable either, the client must reload.
    """
    return max_deleted <= since <= last
