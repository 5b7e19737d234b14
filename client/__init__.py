"""flowwire's Python client for services: subscribe, iterate typed events, and resume
across any disconnect, on any gateway of a list.

    import asyncio
    from client import Client, ResumeGap

    async def main() -> None:
        async with Client(["ws://gw-1:8080/ws", "ws://gw-2:8080/ws"], token=get_token) as c:
            await c.subscribe("executions", {"statuses": ["failed"]})
            async for item in c:
                if isinstance(item, ResumeGap):
                    reload_state()          # events after item.since may be missing
                else:
                    print(item.id, item.type, item.data.execution_id)

It speaks protocol version 2 (``flowwire.v2.json``; ``protocol="v2.msgpack"`` or
``"v1"`` to choose): with a token callback, an expiring token is refreshed in-band,
without a reconnect. Each event is delivered once, in stream order (approvals may
overtake a backlog on version 2), whatever the reconnects; a resume the
stream can no longer serve yields a :class:`ResumeGap`. Fatal conditions raise a
:class:`ClientError` subclass (the tree is in :mod:`client.errors`). Scripts use
:class:`BlockingClient`, the same client iterated synchronously.

Light: imports ``websockets``, ``msgspec``, ``schemas`` and ``gateway.core.backoff``
(stdlib only), never the server's dependencies.
"""

from client.aio import Client, Control, Event, FiltersLike, Item, ProtocolChoice, TokenSource
from client.blocking import BlockingClient
from client.errors import (
    AuthRefused,
    ClientError,
    ConnectFailed,
    ProtocolFailure,
    ResumeGap,
    ServerError,
    SubscriptionRefused,
)

__all__ = [
    "AuthRefused",
    "BlockingClient",
    "Client",
    "ClientError",
    "ConnectFailed",
    "Control",
    "Event",
    "FiltersLike",
    "Item",
    "ProtocolChoice",
    "ProtocolFailure",
    "ResumeGap",
    "ServerError",
    "SubscriptionRefused",
    "TokenSource",
]
