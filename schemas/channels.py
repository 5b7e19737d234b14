"""Channel names (docs/protocol.md, "Channels and routing").

``executions``, ``approvals``, ``executions:{execution_id}``, ``workflows:{workflow_id}``,
``users:{user_id}``. Anything else is refused with ``INVALID_SUBSCRIPTION`` (defect 13:
the original accepted any name and silently delivered nothing).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "BARE_CHANNELS",
    "KEYED_PREFIXES",
    "MAX_CHANNEL_LENGTH",
    "Channel",
    "parse_channel",
]

BARE_CHANNELS: Final = frozenset({"executions", "approvals"})
KEYED_PREFIXES: Final = frozenset({"executions", "workflows", "users"})
MAX_CHANNEL_LENGTH: Final = 200

# Ids are opaque to flowwire, but a channel name is printable ASCII without spaces, so
# that it can be logged and used as a label without escaping.
_ID = re.compile(r"[A-Za-z0-9_.@\-]{1,180}\Z")


class Channel(tuple[str, str | None]):
    """A parsed channel: ``(kind, key)``; ``key`` is ``None`` for bare channels."""

    __slots__ = ()

    @property
    def kind(self) -> str:
        return self[0]

    @property
    def key(self) -> str | None:
        return self[1]


def parse_channel(name: str) -> Channel:
    """Parse a channel name; ``ValueError`` with a reason when it is not one."""
    if len(name) > MAX_CHANNEL_LENGTH:
        raise ValueError(f"channel name longer than {MAX_CHANNEL_LENGTH} characters")
    if name in BARE_CHANNELS:
        return Channel((name, None))
    kind, sep, key = name.partition(":")
    if sep and kind in KEYED_PREFIXES:
        if _ID.match(key):
            return Channel((kind, key))
        raise ValueError(f"invalid id in channel {name!r}")
    raise ValueError(
        f"unknown channel {name!r}; expected executions, approvals, "
        "executions:{execution_id}, workflows:{workflow_id} or users:{user_id}"
    )
