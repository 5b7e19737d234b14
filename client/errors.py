"""What the client raises, and the gap marker it yields.

::

    ClientError                      base of everything this package raises
    ├── AuthRefused                  401/403 at the upgrade, or 1008/4001 with nothing to
    │                                refresh the credentials with: fatal
    ├── ConnectFailed                no gateway accepted within ``max_attempts`` tries, or
    │                                one answered a status that retrying cannot fix
    ├── ProtocolFailure              closed 1002 / 1007 / 1009: a bug, not an outage
    └── ServerError                  an ``error`` reply the client cannot act on
        └── SubscriptionRefused      a subscribe refused (FORBIDDEN, TOO_MANY_SUBSCRIPTIONS);
                                     the channel is dropped, the other subscriptions go on

Outages (1006, 1011, 1012, 1013, 4008, 4029, refused or broken connects) are never
raised: the client reconnects and resumes.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AuthRefused",
    "ClientError",
    "ConnectFailed",
    "ProtocolFailure",
    "ResumeGap",
    "ServerError",
    "SubscriptionRefused",
]


class ClientError(Exception):
    """Base of the client's exceptions."""


class AuthRefused(ClientError):
    """The gateway refused the credentials (``status`` is the HTTP status, or the close
    code when refused after the upgrade)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"authentication refused ({status}): {detail}")
        self.status = status
        self.detail = detail


class ConnectFailed(ClientError):
    """No gateway could be reached (or one answered a status retrying cannot fix)."""


class ProtocolFailure(ClientError):
    """The gateway closed with a protocol error code (1002, 1007, 1009)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed by the gateway with {code} {reason!r}")
        self.code = code
        self.reason = reason


class ServerError(ClientError):
    """An ``error`` reply the client does not handle by itself."""

    def __init__(self, code: str, message: str, channel: str | None = None) -> None:
        where = f" ({channel})" if channel else ""
        super().__init__(f"{code}{where}: {message}")
        self.code = code
        self.message = message
        self.channel = channel


class SubscriptionRefused(ServerError):
    """A subscribe was refused; the client no longer holds that channel."""


@dataclass(frozen=True, slots=True)
class ResumeGap:
    """Yielded (not raised) when a resume answered ``recovered: false``: the stream no
    longer holds ``since`` (trimmed, or Redis lost its data), so events of ``channel``
    after ``since`` may be missing. Reload the state from the source of truth; the
    subscription is live from ``position`` and the iteration goes on."""

    channel: str
    since: str
    position: str
