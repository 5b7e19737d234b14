"""The flowwire gateway: Redis Stream in, WebSocket frames out (docs/protocol.md, docs/operations.md).

``gateway.core`` is the sans-I/O core (no asyncio, no Redis, no Starlette); the
modules beside it are the I/O shell that moves bytes between sockets, the event log
and the core.
"""
