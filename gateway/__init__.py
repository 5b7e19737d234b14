"""The flowwire gateway: Redis Stream in, WebSocket frames out (DESIGN §1-§7).

``gateway.core`` is the sans-I/O core (no asyncio, no Redis, no Starlette); the
modules beside it are the I/O shell that moves bytes between sockets, the event log
and the core.
"""
